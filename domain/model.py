"""Immutable domain events and the aggregates that they build.

Events are frozen pydantic models. They satisfy the `eventsourcing` library's
domain-event protocol (`originator_id`, `originator_version`, `timestamp` and
`mutate`), so the library's repository can rebuild an aggregate from them.
Aggregates decide what happened; events record it; `Aggregate.when` is the
one place where an aggregate's state changes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal, Self, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from domain.errors import DomainError


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Actor(BaseModel):
    """Who caused an event: an access token, the command line, the system, or a
    public endpoint."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    kind: str
    name: str
    id: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(kind="system", name="system")

    @classmethod
    def command_line(cls) -> Actor:
        return cls(kind="cli", name="command line")

    @property
    def label(self) -> str:
        """The name shown in the audit trail."""
        return self.name


class DomainEvent(BaseModel):
    """Something that happened to one aggregate. Frozen once created.

    Field names are stored and exported in camelCase, as the product's JSON is.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        arbitrary_types_allowed=False,
    )

    originator_id: UUID
    originator_version: int
    timestamp: datetime

    #: Set by the store when a personal value could not be decrypted because
    #: its key was destroyed (erasure or retention). Never stored.
    erased: bool = False

    def data_subject(self) -> UUID | None:
        """The person whose key protects this event's personal fields, if any."""
        return None

    def mutate(self, aggregate: Any) -> Any:
        """Evolve `aggregate` by this event (the library's protocol)."""
        if not isinstance(aggregate, Aggregate):
            msg = f"{type(self).__name__} cannot start an aggregate; it needs one"
            raise TypeError(msg)
        if aggregate.id != self.originator_id:
            msg = f"event for {self.originator_id} applied to {aggregate.id}"
            raise ValueError(msg)
        if aggregate.version + 1 != self.originator_version:
            msg = (
                f"event version {self.originator_version} does not follow "
                f"aggregate version {aggregate.version}"
            )
            raise ValueError(msg)
        aggregate.when(self)
        aggregate._version = self.originator_version
        aggregate._modified_on = self.timestamp
        return aggregate


class CreationEvent(DomainEvent):
    """The first event of an aggregate: it builds the aggregate from nothing."""

    @classmethod
    def aggregate_type(cls) -> type[Aggregate]:
        raise NotImplementedError

    def mutate(self, aggregate: Any) -> Any:
        if aggregate is not None:
            msg = f"{type(self).__name__} must be the first event of its aggregate"
            raise ValueError(msg)
        created = self.aggregate_type().__new__(self.aggregate_type())
        Aggregate.__init__(created, self)
        created.when(self)
        return created


A = TypeVar("A", bound="Aggregate")


class Aggregate:
    """A consistency boundary: one stream of events with its own version."""

    #: Event types this aggregate accepts; used by the store to decode.
    events: ClassVar[tuple[type[DomainEvent], ...]] = ()

    def __init__(self, created: CreationEvent) -> None:
        self._id = created.originator_id
        self._version = created.originator_version
        self._created_on = created.timestamp
        self._modified_on = created.timestamp
        self._pending_events: list[DomainEvent] = []

    @property
    def id(self) -> UUID:
        return self._id

    @property
    def version(self) -> int:
        """The number of events this aggregate has recorded."""
        return self._version

    @property
    def created_on(self) -> datetime:
        return self._created_on

    @property
    def modified_on(self) -> datetime:
        return self._modified_on

    @classmethod
    def _start(
        cls, event_type: type[CreationEvent], /, *, id: UUID, **fields: Any
    ) -> Self:
        event = event_type(
            originator_id=id, originator_version=1, timestamp=utc_now(), **fields
        )
        aggregate = event.mutate(None)
        if not isinstance(aggregate, cls):
            msg = f"{event_type.__name__} built a {type(aggregate).__name__}"
            raise TypeError(msg)
        aggregate._pending_events.append(event)
        return aggregate

    def _record(self, event_type: type[DomainEvent], /, **fields: Any) -> None:
        """Record that something happened: apply the event and keep it pending."""
        event = event_type(
            originator_id=self._id,
            originator_version=self._version + 1,
            timestamp=utc_now(),
            **fields,
        )
        event.mutate(self)
        self._pending_events.append(event)

    def when(self, event: DomainEvent) -> None:
        """Change this aggregate's state to reflect `event`."""
        raise NotImplementedError

    def collect_events(self) -> list[DomainEvent]:
        """Hand over the events recorded since the last save (library protocol)."""
        collected, self._pending_events = self._pending_events, []
        return collected

    def clone(self) -> Self:
        """An independent copy: changing it leaves this one as it is.

        Events are immutable, so a shallow copy serves any aggregate whose
        own fields are immutable; one with mutable containers copies them
        too (`_copy_containers`).
        """
        twin = copy.copy(self)
        twin._pending_events = list(self._pending_events)
        self._copy_containers(twin)
        return twin

    def _copy_containers(self, twin: Self) -> None:
        """Give `twin` its own copies of this aggregate's mutable fields."""

    @property
    def has_pending_events(self) -> bool:
        return bool(self._pending_events)

    @property
    def is_new(self) -> bool:
        """Whether this aggregate's first event is still waiting to be saved."""
        return (
            bool(self._pending_events)
            and self._pending_events[0].originator_version == 1
        )

    def _unexpected(self, event: DomainEvent) -> DomainError:
        return DomainError(
            f"{type(self).__name__} does not know event {type(event).__name__}"
        )


@dataclass(frozen=True)
class Sensitive:
    """Marks an event field whose values the store keeps encrypted.

    `key` names whose key protects the values: the data subject's own key
    (`subject`, destroyed on erasure), the key of the day the event happened
    (`day`, destroyed when request metadata expires), or the deployment key
    (`deployment`, for configuration secrets).
    """

    key: Literal["subject", "day", "deployment"]


#: Personal data about the event's data subject (see `DomainEvent.data_subject`).
PERSONAL: Final = Sensitive("subject")
#: The client IP and user agent of a request.
REQUEST_METADATA: Final = Sensitive("day")
#: A configuration secret; never shown, only reported as set or changed.
SECRET: Final = Sensitive("deployment")
