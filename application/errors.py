"""Errors the application layer raises; the API maps each to one HTTP answer."""

from __future__ import annotations


class ApplicationError(Exception):
    """A use case could not be carried out."""


class NotFound(ApplicationError):
    """The named resource does not exist (or is not visible to the caller)."""


class Gone(ApplicationError):
    """The resource existed but was erased."""


class VersionMismatch(ApplicationError):
    """The caller's expected version is not the current one."""

    def __init__(self, *, expected: int, current: int) -> None:
        self.expected = expected
        self.current = current
        super().__init__(
            f"expected version {expected} but the current version is {current}; "
            "fetch the resource again and retry"
        )


class ConcurrencyConflict(ApplicationError):
    """Another writer changed the same aggregate first; retry on fresh state."""


class StoreUnavailable(ApplicationError):
    """The store cannot be reached or is overloaded; nothing was written."""


class Unauthenticated(ApplicationError):
    """No valid access token was presented."""


class Forbidden(ApplicationError):
    """The caller's role lacks the permission the operation needs."""
