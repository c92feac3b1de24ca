"""Compliance: erasing a person without rewriting history, giving a person
their data, forgetting old request metadata, and proving the log untouched.

Erasure destroys the person's key. Every event stays in place (so the hash
chain, which covers the stored ciphertext, still verifies), but the person's
values in it can no longer be read by anyone: they read as null, marked
erased. The identifying values the person held are released, so a later
submission with the same email makes a new profile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol
from uuid import UUID

from application.deliveries import Deliveries
from application.errors import ConcurrencyConflict, Gone, NotFound
from application.ports import Clock, EventStore, Fingerprints, SubjectKeys
from application.reading import (
    AuditFilter,
    ProjectionBehind,
    ReadSide,
    claim_id_for,
    profile_from_aggregate,
)
from domain.identity import IdentityClaim
from domain.model import Actor, Aggregate, DomainEvent
from domain.profile import IDENTIFIERS
from domain.subscriber import Subscriber, SubscriberErased

logger = logging.getLogger(__name__)

DAY_PREFIX: Final = "day-"
ATTEMPTS: Final = 5
PAGE: Final = 1000
MAX_REASON: Final = 1000


class Verification(Protocol):
    @property
    def ok(self) -> bool: ...
    @property
    def checked_through(self) -> int: ...
    @property
    def first_bad_position(self) -> int | None: ...
    @property
    def unchained(self) -> int: ...
    @property
    def reason(self) -> str | None: ...


class Checkpoint(Protocol):
    @property
    def position(self) -> int: ...
    @property
    def hash(self) -> str: ...


class Chain(Protocol):
    """Why: auditors must be able to show that no stored event was changed,
    by recomputing the hash chain, against a checkpoint kept elsewhere."""

    def checkpoint(self) -> Checkpoint: ...

    def verify(
        self,
        *,
        checkpoint: Any = None,
        progress: Callable[[int], None] | None = None,
    ) -> Verification: ...


@dataclass(frozen=True)
class Erased:
    subscriber_id: UUID
    position: int | None


class Compliance:
    """Erasure, the right of access, retention and chain verification."""

    def __init__(
        self,
        *,
        store: EventStore,
        keys: SubjectKeys,
        fingerprints: Fingerprints,
        deliveries: Deliveries,
        read_side: ReadSide,
        chain: Chain,
        clock: Clock,
        metadata_days: int,
        compact: Callable[[], None],
    ) -> None:
        self._store = store
        self._keys = keys
        self._fingerprints = fingerprints
        self._deliveries = deliveries
        self._read_side = read_side
        self.chain = chain
        self._clock = clock
        self._metadata_days = metadata_days
        self._compact = compact

    # -- erasure

    def erase(self, subscriber_id: UUID, *, reason: str, actor: Actor) -> Erased:
        """Erase a person: release their identifiers, record the erasure,
        destroy their key, cancel their deliveries."""
        reason = reason.strip()[:MAX_REASON]
        position: int | None = None
        for _ in range(ATTEMPTS):
            subscriber = self._store.find(subscriber_id, Subscriber)
            if subscriber is None:
                raise NotFound(f"no subscriber {subscriber_id}")
            if subscriber.erased:
                break
            claims = self._release_claims(subscriber)
            subscriber.erase(actor=actor, reason=reason)
            try:
                position = self._store.save(subscriber, *claims)
            except ConcurrencyConflict:
                continue
            break
        else:
            msg = f"subscriber {subscriber_id} kept changing; try the erasure again"
            raise ConcurrencyConflict(msg)

        # After the event: if this process dies here, the start-up sweep
        # destroys the key of every subscriber with a SubscriberErased event.
        self._keys.destroy(subscriber_id.hex)
        cancelled = self._cancel_deliveries(subscriber_id, position, actor)
        self._compact()
        logger.info("erased subscriber %s", subscriber_id)
        return Erased(subscriber_id, cancelled or position)

    def _release_claims(self, subscriber: Subscriber) -> list[Aggregate]:
        released: list[Aggregate] = []
        for name in IDENTIFIERS:
            value = subscriber.values.get(name)
            if not isinstance(value, str):
                continue
            claim_id = claim_id_for(self._fingerprints, name, value)
            claim = self._store.find(claim_id, IdentityClaim)
            if claim is not None and claim.holder == subscriber.id:
                claim.release(subscriber.id)
                released.append(claim)
        return released

    def _cancel_deliveries(
        self, subscriber_id: UUID, position: int | None, actor: Actor
    ) -> int | None:
        # Deliveries triggered just before the erasure may not be in the
        # outbox yet; wait briefly for it. Any missed one is cancelled by the
        # worker, which finds the key gone.
        if position is not None:
            try:
                self._read_side.wait_for("deliveries", position)
            except ProjectionBehind:
                logger.warning("the outbox lags; the worker cancels what it misses")
        return self._deliveries.cancel_for(
            subscriber_id, reason="the subscriber was erased", actor=actor
        )

    def destroy_erased_keys(self) -> int:
        """Destroy again the key of every erased subscriber (after a restore
        from backup brought old keys back). Answers how many existed."""
        subjects = []
        after = 0
        while True:
            page = self._store.read(after=after, limit=PAGE, types=[SubscriberErased])
            subjects += [r.event.originator_id.hex for r in page]
            if len(page) < PAGE:
                break
            after = page[-1].position
        destroyed = self._keys.destroy_many(subjects)
        if destroyed:
            logger.warning(
                "destroyed %d keys of erased subscribers again (a restored backup?)",
                destroyed,
            )
            self._compact()
        return destroyed

    # -- retention of request metadata

    def enforce_retention(self) -> int:
        """Destroy the keys of request metadata older than the retention
        period; answers how many day keys were destroyed."""
        cutoff = (self._clock.now() - timedelta(days=self._metadata_days)).date()
        expired = [
            subject
            for subject in self._keys.subjects(DAY_PREFIX)
            if (day := _day(subject)) is not None and day < cutoff
        ]
        destroyed = self._keys.destroy_many(expired)
        if destroyed:
            logger.info("request metadata of %d days expired", destroyed)
            self._compact()
        return destroyed

    # -- the right of access

    def export(self, subscriber_id: UUID) -> dict[str, Any]:
        """Everything stored about the person, decrypted."""
        subscriber = self._store.find(subscriber_id, Subscriber)
        if subscriber is None:
            raise NotFound(f"no subscriber {subscriber_id}")
        if subscriber.erased:
            raise Gone(f"subscriber {subscriber_id} was erased")
        history = self._store.history(subscriber_id)
        touching = list(
            self._read_side.audit_export(
                AuditFilter(subject_id=str(subscriber_id)), reveal=True
            )
        )
        deliveries = self._deliveries.list(
            status=None,
            activity_id=None,
            subscriber_id=str(subscriber_id),
            cursor=None,
            limit=500,
        ).items
        return {
            "subscriberId": str(subscriber_id),
            "exportedAt": self._clock.now().isoformat().replace("+00:00", "Z"),
            "profile": profile_from_aggregate(subscriber),
            "events": [_event(e) for e in history],
            "auditEntries": touching,
            "deliveries": deliveries,
        }


def _event(event: DomainEvent) -> dict[str, Any]:
    data = event.model_dump(mode="json", by_alias=True)
    for name in ("originatorId", "originatorVersion", "erased"):
        data.pop(name, None)
    return {"type": type(event).__name__, "version": event.originator_version, **data}


def _day(subject: str) -> Any:
    try:
        return datetime.strptime(subject.removeprefix(DAY_PREFIX), "%Y-%m-%d").date()
    except ValueError:
        return None
