"""Access tokens, roles and what each role may do."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Final
from uuid import UUID

from domain.errors import InvalidInput, Problem
from domain.model import Actor, Aggregate, CreationEvent, DomainEvent


class Permission(StrEnum):
    MANAGE_TOKENS = "manage-tokens"
    REBUILD = "rebuild"
    ERASE = "erase"
    RETRY_DELIVERIES = "retry-deliveries"
    WRITE_INTEGRATIONS = "write-integrations"
    READ_INTEGRATIONS = "read-integrations"
    READ_STATUS = "read-status"
    READ_DEDUPE = "read-dedupe"
    READ_SUBSCRIBERS = "read-subscribers"
    READ_AUDIT = "read-audit"
    READ_DELIVERIES = "read-deliveries"
    READ_EVENTS = "read-events"


class Role(StrEnum):
    ADMIN = "admin"
    INTEGRATION_MANAGER = "integration-manager"
    AUDITOR = "auditor"
    ANALYST = "analyst"


_EVERYONE: Final = frozenset(
    {Permission.READ_INTEGRATIONS, Permission.READ_STATUS, Permission.READ_DEDUPE}
)

PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    Role.ADMIN: frozenset(Permission),
    Role.INTEGRATION_MANAGER: _EVERYONE | {Permission.WRITE_INTEGRATIONS},
    Role.AUDITOR: _EVERYONE
    | {
        Permission.READ_SUBSCRIBERS,
        Permission.READ_AUDIT,
        Permission.READ_DELIVERIES,
        Permission.READ_EVENTS,
    },
    Role.ANALYST: _EVERYONE | {Permission.READ_SUBSCRIBERS, Permission.READ_EVENTS},
}

MAX_NAME_LENGTH: Final = 100


class TokenIssued(CreationEvent):
    name: str
    role: Role
    #: Keyed hash of the token; the token itself is never stored.
    secret_digest: str
    expires_at: datetime | None
    actor: Actor

    @classmethod
    def aggregate_type(cls) -> type[Aggregate]:
        return AccessToken


class TokenRevoked(DomainEvent):
    actor: Actor


class AccessToken(Aggregate):
    """A bearer token: its name, role and expiry. Its id derives from the
    token's keyed hash, so a presented token is found in one read."""

    name: str
    role: Role
    secret_digest: str
    expires_at: datetime | None
    revoked: bool

    @classmethod
    def issue(
        cls,
        *,
        id: UUID,
        name: str,
        role: Role,
        secret_digest: str,
        expires_at: datetime | None,
        now: datetime,
        actor: Actor,
    ) -> AccessToken:
        problems = []
        if not 1 <= len(name) <= MAX_NAME_LENGTH:
            problems.append(
                Problem("name", "length", f"must be 1 to {MAX_NAME_LENGTH} characters")
            )
        if expires_at is not None and expires_at <= now:
            problems.append(Problem("expiresAt", "future", "must be in the future"))
        if problems:
            raise InvalidInput(problems)
        return cls._start(
            TokenIssued,
            id=id,
            name=name,
            role=role,
            secret_digest=secret_digest,
            expires_at=expires_at,
            actor=actor,
        )

    def revoke(self, *, actor: Actor) -> None:
        if self.revoked:
            return
        self._record(TokenRevoked, actor=actor)

    def is_usable(self, at: datetime) -> bool:
        return not self.revoked and (self.expires_at is None or at < self.expires_at)

    @property
    def permissions(self) -> frozenset[Permission]:
        return PERMISSIONS[self.role]

    def as_actor(self) -> Actor:
        return Actor(kind="token", name=self.name, id=str(self.id))

    def when(self, event: DomainEvent) -> None:
        match event:
            case TokenIssued():
                self.name = event.name
                self.role = event.role
                self.secret_digest = event.secret_digest
                self.expires_at = event.expires_at
                self.revoked = False
            case TokenRevoked():
                self.revoked = True
            case _:
                raise self._unexpected(event)


class FirstAdminIssued(CreationEvent):
    """Marks that the first admin token was issued, so it happens only once."""

    token_id: UUID

    @classmethod
    def aggregate_type(cls) -> type[Aggregate]:
        return FirstAdmin


class FirstAdmin(Aggregate):
    """A singleton that two processes starting at once cannot both create."""

    ID: Final = UUID("0f5d3c9a-6f0e-4b35-9b0c-2f6f2a5a9e01")
    token_id: UUID

    @classmethod
    def record(cls, *, token_id: UUID) -> FirstAdmin:
        return cls._start(FirstAdminIssued, id=cls.ID, token_id=token_id)

    def when(self, event: DomainEvent) -> None:
        match event:
            case FirstAdminIssued():
                self.token_id = event.token_id
            case _:
                raise self._unexpected(event)
