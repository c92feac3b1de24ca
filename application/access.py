"""Use cases for access tokens: issue, revoke, list, and check a presented one."""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID, uuid5

from application.errors import ConcurrencyConflict, NotFound, Unauthenticated
from application.ports import Clock, EventStore, Fingerprints
from domain.access import AccessToken, FirstAdmin, Role, TokenIssued
from domain.model import Actor

logger = logging.getLogger(__name__)

TOKEN_PREFIX: Final = "hw_"
TOKEN_BYTES: Final = 32
TOKEN_NAMESPACE: Final = UUID("8e7c0f4e-2b7d-4d7c-9f51-6f2f3b0a1c55")
PAGE: Final = 1000
FIRST_ADMIN_NAME: Final = "first admin"


@dataclass(frozen=True)
class IssuedToken:
    """A new token: shown once, here, and never again."""

    token: AccessToken
    secret: str
    position: int | None


class AccessTokens:
    """Bearer tokens for the admin API."""

    def __init__(
        self, store: EventStore, fingerprints: Fingerprints, clock: Clock
    ) -> None:
        self._store = store
        self._fingerprints = fingerprints
        self._clock = clock

    def issue(
        self,
        *,
        name: str,
        role: Role,
        expires_at: datetime | None,
        actor: Actor,
    ) -> IssuedToken:
        secret = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        token = self._new_token(
            secret, name=name, role=role, expires_at=expires_at, actor=actor
        )
        position = self._store.save(token)
        logger.info("issued token %s with role %s", token.id, role)
        return IssuedToken(token, secret, position)

    def issue_first_admin(self) -> IssuedToken | None:
        """An admin token when none was ever issued; None otherwise.

        The token is saved with a singleton marker, so when several processes
        start at once exactly one of them issues it.
        """
        if self._store.read(after=0, limit=1, types=[TokenIssued]):
            return None
        secret = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        token = self._new_token(
            secret,
            name=FIRST_ADMIN_NAME,
            role=Role.ADMIN,
            expires_at=None,
            actor=Actor.system(),
        )
        try:
            position = self._store.save(token, FirstAdmin.record(token_id=token.id))
        except ConcurrencyConflict:
            return None
        logger.info("issued the first admin token %s", token.id)
        return IssuedToken(token, secret, position)

    def revoke(self, token_id: UUID, *, actor: Actor) -> tuple[AccessToken, int | None]:
        token = self._store.find(token_id, AccessToken)
        if token is None:
            raise NotFound(f"no token {token_id}")
        token.revoke(actor=actor)
        position = self._store.save(token) if token.has_pending_events else None
        return token, position

    def list(self) -> list[AccessToken]:
        tokens = []
        after = 0
        while True:
            page = self._store.read(after=after, limit=PAGE, types=[TokenIssued])
            for recorded in page:
                token = self._store.find(recorded.event.originator_id, AccessToken)
                if token is not None:
                    tokens.append(token)
            if len(page) < PAGE:
                return tokens
            after = page[-1].position

    def authenticate(self, presented: str) -> AccessToken:
        """The usable token matching `presented`, or `Unauthenticated`."""
        if not presented.startswith(TOKEN_PREFIX) or len(presented) > 200:
            raise Unauthenticated("not a Headwater access token")
        digest = self._digest(presented)
        token = self._store.find(self._id_for(digest), AccessToken)
        # Compare digests in constant time even though the id already matched.
        if token is None or not hmac.compare_digest(token.secret_digest, digest):
            raise Unauthenticated("unknown access token")
        if not token.is_usable(self._clock.now()):
            raise Unauthenticated("the access token was revoked or has expired")
        return token

    def find_usable(self, token_id: UUID) -> AccessToken | None:
        """The token with this id if it may still be used now, else None.

        The console's session holds a token's id, never the token itself: each
        request checks with this that the token was not revoked and has not
        expired since the session began.
        """
        token = self._store.find(token_id, AccessToken)
        if token is None or not token.is_usable(self._clock.now()):
            return None
        return token

    def _new_token(
        self,
        secret: str,
        *,
        name: str,
        role: Role,
        expires_at: datetime | None,
        actor: Actor,
    ) -> AccessToken:
        digest = self._digest(secret)
        return AccessToken.issue(
            id=self._id_for(digest),
            name=name,
            role=role,
            secret_digest=digest,
            expires_at=expires_at,
            now=self._clock.now(),
            actor=actor,
        )

    def _digest(self, secret: str) -> str:
        return self._fingerprints.of("access-token", secret)

    @staticmethod
    def _id_for(digest: str) -> UUID:
        return uuid5(TOKEN_NAMESPACE, digest)
