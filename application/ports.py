"""The ports the application needs from the outside world.

Each is a `Protocol`; infrastructure provides the adapters and the
composition root (`api.bootstrap`) wires them in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar
from uuid import UUID

from domain.model import Aggregate, DomainEvent

A = TypeVar("A", bound=Aggregate)


@dataclass(frozen=True)
class Recorded:
    """An event together with its position in the log."""

    position: int
    event: DomainEvent


class EventStore(Protocol):
    """Why: commands record aggregates atomically and queries replay them,
    without the application knowing which database holds the log.

    `save` raises `ConcurrencyConflict` when another writer got there first
    and `StoreUnavailable` when the database cannot be reached.
    """

    def find(self, aggregate_id: UUID, kind: type[A]) -> A | None:
        """The aggregate as it is now, or None if it was never created."""
        ...

    def versions(self, aggregate_ids: Sequence[UUID]) -> dict[UUID, int]:
        """The current version of each aggregate that exists (one round trip)."""
        ...

    def find_many(self, aggregate_ids: Sequence[UUID]) -> dict[UUID, Aggregate]:
        """Several aggregates at once (one round trip); absent ids are left out."""
        ...

    def find_as_of(self, aggregate_id: UUID, kind: type[A], at: datetime) -> A | None:
        """The aggregate as it was at instant `at` (None if it did not exist)."""
        ...

    def history(self, aggregate_id: UUID) -> list[DomainEvent]:
        """Every event of one aggregate, oldest first."""
        ...

    def save(self, *aggregates: Aggregate) -> int | None:
        """Record every pending event of `aggregates` in one transaction.

        Returns the position of the last event recorded, or None if there was
        nothing to record.
        """
        ...

    def record(
        self, *aggregates: Aggregate, new_keys: object = None
    ) -> dict[UUID, int]:
        """Like `save`, answering the position of each aggregate's last event.

        `new_keys` (from `SubjectKeys.prepare_fresh`) are stored in the same
        transaction, so a new subject's key exists exactly when its events do.
        """
        ...

    def read(
        self,
        *,
        after: int,
        limit: int,
        types: Sequence[type[DomainEvent]] = (),
    ) -> list[Recorded]:
        """Events after position `after`, in log order, optionally of some types."""
        ...

    def head(self) -> int:
        """The position of the last event recorded (0 when the log is empty)."""
        ...


class Fingerprints(Protocol):
    """Why: identifying values, tokens and bodies are looked up and compared
    by keyed hash (HMAC under the deployment key), never stored in clear."""

    def of(self, purpose: str, value: str | bytes) -> str:
        """A stable keyed hash of `value` for one purpose, as hex."""
        ...


class SubjectKeys(Protocol):
    """Why: each subject's personal data is encrypted under a key of its own,
    kept apart from the events, so that destroying one key makes that
    person's data unreadable everywhere while every event stays in place.
    """

    def create(self, subject_ids: Sequence[str]) -> Mapping[str, bytes]:
        """Make sure each subject has a key; returns every subject's key."""
        ...

    def prepare_fresh(self, subject_ids: Sequence[str]) -> object:
        """Keys for new random subjects, for `EventStore.record` to store."""
        ...

    def fetch_many(
        self, subject_ids: Sequence[str], *, remember: bool = True
    ) -> Mapping[str, bytes]:
        """The keys that exist among `subject_ids`; destroyed keys are absent.

        `remember=False` is for one pass over many subjects (an export): the
        keys it loads are not kept for later reads.
        """
        ...

    def destroy(self, subject_id: str) -> None:
        """Destroy a subject's key for good."""
        ...

    def destroy_many(self, subject_ids: Sequence[str]) -> int:
        """Destroy several keys; answers how many existed."""
        ...

    def subjects(self, prefix: str) -> list[str]:
        """The ids of the keys that exist and start with `prefix`."""
        ...


class Clock(Protocol):
    """Why: retention and expiry depend on the time, which tests move."""

    def now(self) -> datetime: ...


class CaptchaUnavailable(Exception):
    """The CAPTCHA verifier timed out, failed or answered nonsense."""


class CaptchaVerdict(Protocol):
    """The verifier's answer: whether the token passed, and its score if any."""

    @property
    def success(self) -> bool: ...

    @property
    def score(self) -> float | None: ...


class CaptchaVerifier(Protocol):
    """Why: a CAPTCHA token is only worth what the verifier says of it, and
    the verifier is a remote service that can be slow or down."""

    async def verify(
        self, *, secret: str, token: str, client_ip: str | None
    ) -> CaptchaVerdict:
        """The verifier's verdict; raises `CaptchaUnavailable` when it fails."""
        ...
