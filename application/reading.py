"""The read side: queries over the projections, and replays over the events.

Queries read a projection and say how far it had got (`position`). A caller
who has just written can ask for at least its write's position; `wait_for`
waits up to five seconds for the projection to get there. Time travel and
history replay the events themselves.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from uuid import UUID

import orjson
import phonenumbers

from application.errors import Gone, NotFound
from application.ports import EventStore, Fingerprints
from domain.identity import IdentityClaim
from domain.model import DomainEvent
from domain.profile import CUSTOM_PREFIX, IDENTIFIERS, TEXT_FIELDS
from domain.subscriber import ProfileChanged, Subscriber, SubscriberRegistered

WAIT_SECONDS: Final = 5.0
POLL_SECONDS: Final = 0.05
PROFILE_FIELDS: Final = (*IDENTIFIERS, *TEXT_FIELDS, "dob")
UNSUBSCRIBED_AT: Final = "unsubscribedAt"
LIST_PREFIX: Final = "lists."
FOREIGN_CURSOR: Final = "the cursor is not one this service gave; use nextCursor"
PROFILE_CHANGES: Final = (SubscriberRegistered, ProfileChanged)


class Rows(Protocol):
    @property
    def rows(self) -> list[dict[str, Any]]: ...

    @property
    def position(self) -> int: ...


class ReadModels(Protocol):
    """Why: queries read projections, which live in their own tables and
    advance on their own; the application only needs their rows and positions."""

    def position(self, name: str) -> int: ...

    def integrations(self) -> Rows: ...

    def profiles(
        self, *, claim_id: str | None, after: tuple[str, str] | None, limit: int
    ) -> Rows: ...

    def profile(self, subscriber_id: str) -> Rows: ...

    def open_profiles(self, rows: list[dict[str, Any]], *, reveal: bool) -> None: ...

    def audit(
        self,
        where: AuditFilter,
        *,
        after: int | None,
        limit: int,
        descending: bool = False,
    ) -> Rows: ...

    def audit_export(self, where: AuditFilter) -> Iterator[dict[str, Any]]: ...

    def open_audit(self, rows: list[dict[str, Any]], *, reveal: bool) -> None: ...

    def dedupe(self, *, integration_id: str | None, key_digest: str | None) -> Rows: ...

    def status(self) -> list[dict[str, Any]]:
        """Each projection's name, generations and positions."""
        ...

    def request_rebuild(self, name: str) -> None: ...


@dataclass(frozen=True)
class AuditFilter:
    """Which audit entries a query wants; times are fixed-width UTC text."""

    subject_id: str | None = None
    integration_id: str | None = None
    actor: str | None = None
    action: str | None = None
    occurred_from: str | None = None
    occurred_to: str | None = None


class ProjectionBehind(Exception):
    """The projection did not reach the asked position in time."""

    def __init__(self, name: str, position: int, reached: int) -> None:
        super().__init__(
            f"the {name} projection is at position {reached}, not yet {position}; "
            "retry shortly"
        )
        self.reached = reached


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None
    position: int


def claim_id_for(fingerprints: Fingerprints, name: str, value: str) -> UUID:
    """The identity claim of a normalised identifying value."""
    return IdentityClaim.id_for(fingerprints.of("identifier", f"{name}:{value}"))


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    try:
        return orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as error:
        raise ValueError(FOREIGN_CURSOR) from error


def profile_cursor(cursor: str) -> tuple[str, str]:
    """The (created at, id) a profile cursor holds; ValueError if it is not
    one this service gave."""
    value = decode_cursor(cursor)
    if not (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(part, str) for part in value)
    ):
        raise ValueError(FOREIGN_CURSOR)
    return value[0], value[1]


def audit_cursor(cursor: str) -> int:
    """The position an audit cursor holds; ValueError if it is not one this
    service gave."""
    value = decode_cursor(cursor)
    # bool is an int to Python, but never a position this service gave.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(FOREIGN_CURSOR)
    return value


class ReadSide:
    """Every query of the admin API's read routes."""

    def __init__(
        self, read_models: ReadModels, store: EventStore, fingerprints: Fingerprints
    ) -> None:
        self.read_models = read_models
        self._store = store
        self._fingerprints = fingerprints

    def wait_for(
        self, name: str, position: int, *, timeout: float = WAIT_SECONDS
    ) -> int:
        """Wait until projection `name` has applied `position`; its position."""
        deadline = time.monotonic() + timeout
        while True:
            reached = self.read_models.position(name)
            if reached >= position:
                return reached
            if time.monotonic() >= deadline:
                raise ProjectionBehind(name, position, reached)
            time.sleep(POLL_SECONDS)

    # -- subscribers

    def search_profiles(
        self,
        *,
        identifier: tuple[str, str] | None,
        limit: int,
        cursor: str | None,
        reveal: bool,
    ) -> Page:
        claim = None
        if identifier is not None:
            name, value = identifier
            normalised = normalise_identifier(name, value)
            if normalised is None:
                return Page([], None, self.read_models.position("subscribers"))
            claim = str(claim_id_for(self._fingerprints, name, normalised))
        after = profile_cursor(cursor) if cursor else None
        found = self.read_models.profiles(
            claim_id=claim,
            after=after,
            limit=limit,
        )
        rows = found.rows
        self.read_models.open_profiles(rows, reveal=reveal)
        next_cursor = None
        if claim is None and len(rows) == limit:
            next_cursor = encode_cursor([rows[-1]["created_at"], rows[-1]["id"]])
        return Page([profile_from_row(r) for r in rows], next_cursor, found.position)

    def profile(
        self, subscriber_id: UUID, *, reveal: bool
    ) -> tuple[dict[str, Any], int]:
        found = self.read_models.profile(str(subscriber_id))
        if not found.rows:
            self._missing(subscriber_id)
        rows = found.rows
        self.read_models.open_profiles(rows, reveal=reveal)
        return profile_from_row(rows[0]), found.position

    def profile_as_of(self, subscriber_id: UUID, at: datetime) -> dict[str, Any]:
        """The profile as it was at `at`, replayed from its events. Values
        whose key is gone read as null, and the profile says it was erased."""
        events = [e for e in self._store.history(subscriber_id) if e.timestamp <= at]
        subscriber: Any = None
        for event in events:
            subscriber = event.mutate(subscriber)
        if not isinstance(subscriber, Subscriber):
            raise NotFound(
                f"subscriber {subscriber_id} did not exist at {at.isoformat()}"
            )
        if subscriber.erased:
            raise Gone(f"subscriber {subscriber_id} was erased")
        # The profile view's updatedAt moves with profile changes only, not
        # with consent, messages or refusals; the replay must say the same.
        changed_at = max(e.timestamp for e in events if isinstance(e, PROFILE_CHANGES))
        return profile_from_aggregate(
            subscriber,
            updated_at=changed_at,
            erased=any(e.erased for e in events),
        )

    def profile_history(self, subscriber_id: UUID) -> list[DomainEvent]:
        events = self._store.history(subscriber_id)
        if not events or not isinstance(events[0], DomainEvent):
            raise NotFound(f"no subscriber {subscriber_id}")
        if self._store.find(subscriber_id, Subscriber) is None:
            raise NotFound(f"no subscriber {subscriber_id}")
        return events

    def _missing(self, subscriber_id: UUID) -> None:
        subscriber = self._store.find(subscriber_id, Subscriber)
        if subscriber is not None and subscriber.erased:
            raise Gone(f"subscriber {subscriber_id} was erased")
        if subscriber is None:
            raise NotFound(f"no subscriber {subscriber_id}")
        raise NotFound(
            f"subscriber {subscriber_id} is not in the profile view yet; "
            "retry with ?minPosition="
        )

    # -- audit and dedupe

    def audit(
        self,
        where: AuditFilter,
        *,
        cursor: str | None,
        limit: int,
        descending: bool,
        reveal: bool,
    ) -> Page:
        after = audit_cursor(cursor) if cursor else None
        found = self.read_models.audit(
            where, after=after, limit=limit, descending=descending
        )
        rows = found.rows
        self.read_models.open_audit(rows, reveal=reveal)
        next_cursor = (
            encode_cursor(rows[-1]["position"]) if len(rows) == limit else None
        )
        return Page(rows, next_cursor, found.position)

    def audit_export(
        self, where: AuditFilter, *, reveal: bool
    ) -> Iterator[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        for row in self.read_models.audit_export(where):
            batch.append(row)
            if len(batch) == 500:
                self.read_models.open_audit(batch, reveal=reveal)
                yield from batch
                batch = []
        self.read_models.open_audit(batch, reveal=reveal)
        yield from batch

    def status(self) -> list[dict[str, Any]]:
        """Each projection's position, the head of the log, and the lag."""
        head = self._store.head()
        answers = []
        for state in self.read_models.status():
            answer = {
                "name": state["name"],
                "position": state["position"],
                "headPosition": head,
                "lag": max(0, head - state["position"]),
                "generation": state["generation"],
                "rebuild": None,
            }
            if state["rebuildRequested"] or state["buildingGeneration"] is not None:
                building = state["buildingPosition"] or 0
                answer["rebuild"] = {
                    "generation": state["buildingGeneration"],
                    "position": building,
                    "lag": max(0, head - building),
                }
            answers.append(answer)
        return answers

    def rebuild(self, name: str) -> None:
        if name not in {s["name"] for s in self.read_models.status()}:
            raise NotFound(f"no projection {name!r}")
        self.read_models.request_rebuild(name)

    def dedupe(self, *, integration_id: str | None, key: str | None) -> Page:
        digest = None
        if key is not None:
            # Entries show keyed digests; a plain Idempotency-Key is hashed.
            is_digest = len(key) == 64 and all(c in "0123456789abcdef" for c in key)
            digest = key if is_digest else self._fingerprints.of("idempotency-key", key)
        found = self.read_models.dedupe(
            integration_id=integration_id, key_digest=digest
        )
        return Page(found.rows, None, found.position)


def normalise_identifier(name: str, value: str) -> str | None:
    """The stored form of a searched identifier, or None if it cannot exist."""
    value = value.strip()
    if name == "email":
        return value.lower()
    if name == "phone":
        try:
            number = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            return None
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return value


def profile_from_row(row: dict[str, Any]) -> dict[str, Any]:
    return _profile(
        subscriber_id=row["id"],
        values=row["fields"],
        lists=row["lists"],
        unsubscribed=bool(row["unsubscribed"]),
        source=row["source"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        erased=bool(row.get("erased")),
    )


def profile_from_aggregate(
    subscriber: Subscriber, *, updated_at: datetime | None = None, erased: bool = False
) -> dict[str, Any]:
    """The flat profile of an aggregate; `updated_at` defaults to its last
    event of any kind."""
    return _profile(
        subscriber_id=str(subscriber.id),
        values=subscriber.values,
        lists={str(k): v for k, v in subscriber.lists.items()},
        unsubscribed=subscriber.is_unsubscribed,
        source=subscriber.source,
        created_at=_time(subscriber.created_on),
        updated_at=_time(updated_at or subscriber.modified_on),
        erased=erased,
    )


def _profile(
    *,
    subscriber_id: str,
    values: dict[str, Any],
    lists: dict[str, Any],
    unsubscribed: bool,
    source: str | None,
    created_at: str,
    updated_at: str,
    erased: bool,
) -> dict[str, Any]:
    profile: dict[str, Any] = {"id": subscriber_id}
    for name in PROFILE_FIELDS:
        profile[name] = values.get(name)
    profile["custom"] = {
        name.removeprefix(CUSTOM_PREFIX): value
        for name, value in values.items()
        if name.startswith(CUSTOM_PREFIX)
    }
    profile["lists"] = [
        {
            "listId": int(list_id),
            "subscribedAt": (membership or {}).get("subscribedAt"),
            "unsubscribedAt": (membership or {}).get("unsubscribedAt"),
            "subscriptionOption": (membership or {}).get("subscriptionOption"),
        }
        for list_id, membership in sorted(lists.items(), key=lambda item: int(item[0]))
    ]
    profile["unsubscribed"] = unsubscribed
    profile["unsubscribedAt"] = values.get(UNSUBSCRIBED_AT)
    profile["source"] = source
    profile["createdAt"] = created_at
    profile["updatedAt"] = updated_at
    if erased:
        profile["erased"] = True
    return profile


def _time(moment: datetime) -> str:
    """Fixed-width UTC text, as the profile view writes its times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
