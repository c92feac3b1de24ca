"""Errors raised when a command breaks a business rule."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One broken rule: the field (a dotted path), the rule, and a message."""

    field: str
    rule: str
    message: str


class DomainError(Exception):
    """A command was refused because it breaks a business rule."""


class InvalidInput(DomainError):
    """The input cannot work; `problems` lists every broken rule."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        summary = "; ".join(f"{p.field}: {p.message}" for p in problems[:5])
        super().__init__(f"invalid input: {summary}")


class StateConflict(DomainError):
    """The command does not fit the aggregate's current state."""
