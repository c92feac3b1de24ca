"""The event log for analysts: every event in order, personal values opened.

Each line is `{position, occurredAt, type, aggregateId, version, data}`. The
log is read page by page, so an export of any length runs in constant memory.
A value whose key was destroyed reads as null, and its line says
`erased: true`; a configuration secret reads only as set, changed or cleared.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any, Final

import orjson
from eventsourcing.utils import get_topic, resolve_topic

import domain.access
import domain.delivery
import domain.identity
import domain.integration
import domain.submission
import domain.subscriber
from domain.model import CreationEvent, DomainEvent
from infrastructure.eventstore import LibraryEventStore
from infrastructure.projections.base import utc_text
from infrastructure.sealing import FieldSealer, sensitive_fields

PAGE: Final = 500
DOMAIN_MODULES: Final = (
    domain.access,
    domain.delivery,
    domain.identity,
    domain.integration,
    domain.submission,
    domain.subscriber,
)


@cache
def event_types() -> dict[str, type[DomainEvent]]:
    """Every concrete event class, by name."""
    found: dict[str, type[DomainEvent]] = {}
    for module in DOMAIN_MODULES:
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, DomainEvent)
                and value not in (DomainEvent, CreationEvent)
                and value.__module__ == module.__name__
            ):
                found[value.__name__] = value
    return found


class UnknownEventType(ValueError):
    """A `type` filter names no event."""


class EventLog:
    """The `EventLog` port: decoded lines straight from the stored events."""

    def __init__(self, store: LibraryEventStore, sealer: FieldSealer) -> None:
        self._store = store
        self._sealer = sealer

    def topics(self, names: Sequence[str]) -> list[str]:
        known = event_types()
        unknown = [n for n in names if n not in known]
        if unknown:
            msg = f"unknown event types {unknown}; use names like ProfileChanged"
            raise UnknownEventType(msg)
        return [get_topic(known[n]) for n in names]

    def lines(
        self, *, after: int, limit: int | None, types: Sequence[str] = ()
    ) -> Iterator[dict[str, Any]]:
        """Events after position `after`, at most `limit`, of some types."""
        topics = self.topics(types)
        sent = 0
        while limit is None or sent < limit:
            size = PAGE if limit is None else min(PAGE, limit - sent)
            page = self._store.application.recorder.select_notifications(
                start=after, limit=size, topics=topics, inclusive_of_start=False
            )
            if not page:
                return
            yield from self._decode(page)
            sent += len(page)
            after = page[-1].id
            if len(page) < size:
                return

    def _decode(self, page: Sequence[Any]) -> list[dict[str, Any]]:
        decoded = []
        key_ids: set[str] = set()
        for notification in page:
            event_type = resolve_topic(notification.topic)
            state = orjson.loads(notification.state)
            key_ids |= self._sealer.key_ids(event_type, state)
            decoded.append((notification, event_type, state))
        # One pass over the log: its keys would only crowd the cache.
        keys = self._sealer.prefetch(key_ids, remember=False) if key_ids else {}
        lines = []
        for notification, event_type, state in decoded:
            # The markers replace the secret before opening, and are put back
            # after: opening a marker as an envelope would read it as erased.
            markers = self._secret_markers(event_type, state)
            self._sealer.open(event_type, state, keys)
            state.update(markers)
            timestamp = state.pop("timestamp")
            lines.append(
                {
                    "position": notification.id,
                    "occurredAt": utc_text(timestamp),
                    "type": event_type.__name__,
                    "aggregateId": str(notification.originator_id),
                    "version": notification.originator_version,
                    "data": state,
                }
            )
        return lines

    @staticmethod
    def _secret_markers(
        event_type: type[DomainEvent], state: dict[str, Any]
    ) -> dict[str, str]:
        """Take the sealed secrets out of `state`; what to show in their place."""
        markers = {}
        for _, stored_name, marker in sensitive_fields(event_type):
            if marker.key == "deployment" and state.get(stored_name) is not None:
                markers[stored_name] = state.get("secretChange") or "set"
                del state[stored_name]
        return markers
