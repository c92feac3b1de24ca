"""The `subscribers` read model: the profile view and its identifier lookups.

Profile values stay sealed under each subscriber's key, exactly as the events
hold them; queries open them. Lookups map an identity claim (the keyed hash of
a ref, email or phone) to the profile that holds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final

import orjson

from infrastructure.database import Cursor
from infrastructure.projections.base import (
    Projection,
    StoredView,
    Tables,
    json_text,
    replace_rows,
)

PROFILE_EVENTS: Final = frozenset(
    {"SubscriberRegistered", "ProfileChanged", "SubscriberErased"}
)
CLAIM_EVENTS: Final = frozenset(
    {"IdentityClaimed", "IdentityReclaimed", "IdentityReleased"}
)
LIST_PREFIX: Final = "lists."
UNSUBSCRIBED_AT: Final = "unsubscribedAt"
COLUMNS: Final = (
    "id",
    "created_at",
    "updated_at",
    "source",
    "unsubscribed",
    "fields",
    "lists",
)


class SubscribersProjection(Projection):
    name: ClassVar[str] = "subscribers"
    tables: ClassVar = {
        "profiles": {
            dialect: [
                "CREATE TABLE IF NOT EXISTS {table} ("
                " id TEXT PRIMARY KEY, created_at TEXT NOT NULL,"
                " updated_at TEXT NOT NULL, source TEXT,"
                " unsubscribed INTEGER NOT NULL, fields TEXT NOT NULL,"
                " lists TEXT NOT NULL)",
                "CREATE INDEX IF NOT EXISTS {table}_created"
                " ON {table} (created_at, id)",
            ]
            for dialect in ("sqlite", "postgres")
        },
        "lookups": {
            dialect: [
                "CREATE TABLE IF NOT EXISTS {table} ("
                " claim_id TEXT PRIMARY KEY, subscriber_id TEXT NOT NULL)",
                "CREATE INDEX IF NOT EXISTS {table}_subscriber"
                " ON {table} (subscriber_id)",
            ]
            for dialect in ("sqlite", "postgres")
        },
    }

    def apply(
        self, cursor: Cursor, events: Sequence[StoredView], tables: Tables
    ) -> None:
        profile_events = [e for e in events if e.event_type in PROFILE_EVENTS]
        if profile_events:
            self._profiles(cursor, profile_events, tables)
        claim_events = [e for e in events if e.event_type in CLAIM_EVENTS]
        if claim_events:
            self._lookups(cursor, claim_events, tables)

    def _profiles(
        self, cursor: Cursor, events: list[StoredView], tables: Tables
    ) -> None:
        table, lookups = tables["profiles"], tables["lookups"]
        rows = _load(cursor, table, {str(e.aggregate_id) for e in events})
        erased: set[str] = set()
        for event in events:
            key = str(event.aggregate_id)
            if event.event_type == "SubscriberRegistered":
                rows[key] = {
                    "id": key,
                    "created_at": event.occurred_at,
                    "updated_at": event.occurred_at,
                    "source": event.state.get("source"),
                    "unsubscribed": 0,
                    "fields": {},
                    "lists": {},
                }
                erased.discard(key)
            elif event.event_type == "SubscriberErased":
                rows.pop(key, None)
                erased.add(key)
            elif key in rows:
                _change(rows[key], event)
        if erased:
            marks = ", ".join(["%s"] * len(erased))
            cursor.execute(
                f"DELETE FROM {lookups} WHERE subscriber_id IN ({marks})",  # noqa: S608
                sorted(erased),
            )
        replace_rows(
            cursor,
            tables.dialect,
            table,
            key="id",
            columns=COLUMNS,
            rows=[_stored(row) for row in rows.values()],
            delete=sorted(erased),
        )

    def _lookups(
        self, cursor: Cursor, events: list[StoredView], tables: Tables
    ) -> None:
        table = tables["lookups"]
        holders: dict[str, str | None] = {}
        for event in events:
            claim = str(event.aggregate_id)
            if event.event_type == "IdentityReleased":
                holders[claim] = None
            else:
                holders[claim] = str(event.state["subscriberId"])
        replace_rows(
            cursor,
            tables.dialect,
            table,
            key="claim_id",
            columns=("claim_id", "subscriber_id"),
            rows=[(c, s) for c, s in holders.items() if s is not None],
            delete=sorted(c for c, s in holders.items() if s is None),
        )


def _change(row: dict[str, Any], event: StoredView) -> None:
    row["updated_at"] = event.occurred_at
    for field, change in event.state.get("changes", {}).items():
        value = change.get("to")
        if field.startswith(LIST_PREFIX):
            list_id = field.removeprefix(LIST_PREFIX)
            if value:
                row["lists"][list_id] = value
            else:
                row["lists"].pop(list_id, None)
            continue
        if field == UNSUBSCRIBED_AT:
            row["unsubscribed"] = 0 if value is None else 1
        if value is None:
            row["fields"].pop(field, None)
        else:
            row["fields"][field] = value


def _load(cursor: Cursor, table: str, ids: set[str]) -> dict[str, dict[str, Any]]:
    marks = ", ".join(["%s"] * len(ids))
    cursor.execute(
        f"SELECT {', '.join(COLUMNS)} FROM {table} WHERE id IN ({marks})",  # noqa: S608
        sorted(ids),
    )
    return {values[0]: read_row(values) for values in cursor.fetchall()}


def read_row(values: Sequence[Any]) -> dict[str, Any]:
    row = dict(zip(COLUMNS, values, strict=True))
    row["fields"] = orjson.loads(row["fields"])
    row["lists"] = orjson.loads(row["lists"])
    return row


def _stored(row: dict[str, Any]) -> tuple[Any, ...]:
    stored = dict(row, fields=json_text(row["fields"]), lists=json_text(row["lists"]))
    return tuple(stored[c] for c in COLUMNS)
