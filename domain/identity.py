"""Who holds an identifying value (a ref, an email or a phone).

Each value is held by at most one subscriber at a time: the first one given
it. The claim's id derives from a keyed hash of the value, never the value
itself, so concurrent submissions with the same new value race for the same
aggregate and exactly one of them creates the subscriber.
"""

from __future__ import annotations

from typing import Final
from uuid import UUID, uuid5

from domain.model import Aggregate, CreationEvent, DomainEvent

CLAIM_NAMESPACE: Final = UUID("2d6b7a54-8f5e-4c43-a1f9-7e1d0c6b9a33")

#: (integration id, submission id) of the submission behind a change.
Cause = tuple[UUID, UUID]


def _of(cause: Cause | None) -> dict[str, UUID]:
    if cause is None:
        return {}
    return {"integration_id": cause[0], "submission_id": cause[1]}


class Claimed(DomainEvent):
    """A change of holder, and the submission that caused it (if one did)."""

    subscriber_id: UUID
    integration_id: UUID | None = None
    submission_id: UUID | None = None


class IdentityClaimed(CreationEvent, Claimed):
    @classmethod
    def aggregate_type(cls) -> type[Aggregate]:
        return IdentityClaim


class IdentityReclaimed(Claimed):
    pass


class IdentityReleased(Claimed):
    pass


class IdentityClaim(Aggregate):
    """The current holder of one identifying value, if any."""

    holder: UUID | None

    @staticmethod
    def id_for(fingerprint: str) -> UUID:
        """The claim id for the keyed hash of a normalised identifying value."""
        return uuid5(CLAIM_NAMESPACE, fingerprint)

    @classmethod
    def first(
        cls, *, id: UUID, subscriber_id: UUID, cause: Cause | None = None
    ) -> IdentityClaim:
        return cls._start(
            IdentityClaimed, id=id, subscriber_id=subscriber_id, **_of(cause)
        )

    def claim(self, subscriber_id: UUID, *, cause: Cause | None = None) -> bool:
        """Give the value to `subscriber_id` if nobody holds it; True if so."""
        if self.holder is not None:
            return self.holder == subscriber_id
        self._record(IdentityReclaimed, subscriber_id=subscriber_id, **_of(cause))
        return True

    def release(self, subscriber_id: UUID, *, cause: Cause | None = None) -> None:
        """`subscriber_id` no longer has the value (changed, cleared or erased)."""
        if self.holder == subscriber_id:
            self._record(IdentityReleased, subscriber_id=subscriber_id, **_of(cause))

    def when(self, event: DomainEvent) -> None:
        match event:
            case IdentityClaimed() | IdentityReclaimed():
                self.holder = event.subscriber_id
            case IdentityReleased():
                self.holder = None
            case _:
                raise self._unexpected(event)
