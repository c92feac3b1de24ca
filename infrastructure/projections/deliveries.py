"""The `deliveries` read model, which is also the delivery outbox.

Every `MessageTriggered` enters the outbox exactly once, by the projections'
tracking rule, as a pending row whose body is kept sealed under the
subscriber's key: the same body, value for value, on every attempt. Attempts,
dead letters, retries, cancellations and receipts move its status.

Workers lease due rows by writing `lease_until` (with `FOR UPDATE SKIP
LOCKED` on PostgreSQL, so several workers share the load without waiting for
each other). The lease columns belong to the workers, not to the events: a
rebuilt generation starts without leases, and a receipt check before each
send keeps that from sending a delivered message again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import orjson

from infrastructure.database import Cursor
from infrastructure.projections.base import (
    Projection,
    Registry,
    StoredView,
    Tables,
    json_text,
    utc_text,
)

COLUMNS: Final = (
    "delivery_id",
    "subscriber_id",
    "activity_id",
    "integration_id",
    "submission_id",
    "status",
    "attempts",
    "next_attempt_at",
    "last_error",
    "created_at",
    "updated_at",
)
EVENTS: Final = frozenset(
    {
        "MessageTriggered",
        "DeliveryAttemptFailed",
        "DeliveryDeadLettered",
        "DeliveryRetryRequested",
        "DeliveryCancelled",
        "DeliverySucceeded",
    }
)


class DeliveriesProjection(Projection):
    name: ClassVar[str] = "deliveries"
    tables: ClassVar = {
        "outbox": {
            dialect: [
                "CREATE TABLE IF NOT EXISTS {table} ("
                " delivery_id TEXT PRIMARY KEY, subscriber_id TEXT NOT NULL,"
                " activity_id INTEGER NOT NULL, integration_id TEXT NOT NULL,"
                " submission_id TEXT NOT NULL, status TEXT NOT NULL,"
                " attempts INTEGER NOT NULL, next_attempt_at TEXT NOT NULL,"
                " last_error TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
                " body TEXT, lease_until TEXT)",
                "CREATE INDEX IF NOT EXISTS {table}_due"
                " ON {table} (status, next_attempt_at)",
                "CREATE INDEX IF NOT EXISTS {table}_subscriber"
                " ON {table} (subscriber_id)",
                "CREATE INDEX IF NOT EXISTS {table}_created"
                " ON {table} (created_at, delivery_id)",
            ]
            for dialect in ("sqlite", "postgres")
        }
    }

    def apply(
        self, cursor: Cursor, events: Sequence[StoredView], tables: Tables
    ) -> None:
        table = tables["outbox"]
        for event in events:
            if event.event_type not in EVENTS:
                continue
            state = event.state
            if event.event_type == "MessageTriggered":
                cursor.execute(
                    f"INSERT INTO {table} ({', '.join(COLUMNS)}, body)"  # noqa: S608
                    " VALUES (%s, %s, %s, %s, %s, 'pending', 0, %s, NULL, %s, %s, %s)"
                    " ON CONFLICT (delivery_id) DO NOTHING",
                    (
                        str(state["deliveryId"]),
                        str(event.aggregate_id),
                        state["activityId"],
                        str(state["integrationId"]),
                        str(state["submissionId"]),
                        event.occurred_at,
                        event.occurred_at,
                        event.occurred_at,
                        json_text(_body(event)),
                    ),
                )
                continue
            delivery_id = str(
                state["deliveryId"]
                if event.event_type == "DeliverySucceeded"
                else event.aggregate_id
            )
            assignments, values = _update(event)
            cursor.execute(
                f"UPDATE {table} SET {assignments}, updated_at = %s"  # noqa: S608
                " WHERE delivery_id = %s",
                (*values, event.occurred_at, delivery_id),
            )


def _body(event: StoredView) -> dict[str, Any]:
    """The personal part of the webhook body, still sealed."""
    state = event.state
    recipient = state.get("recipient") or {}
    return {
        "ref": recipient.get("ref"),
        "email": recipient.get("email"),
        "phone": recipient.get("phone"),
        "requestContent": state.get("requestContent"),
    }


def _update(event: StoredView) -> tuple[str, tuple[Any, ...]]:
    state = event.state
    kind = event.event_type
    if kind == "DeliveryAttemptFailed":
        retry_at = state.get("retryAt")
        if retry_at is None:
            return "attempts = %s, last_error = %s", (state["attempt"], state["reason"])
        return (
            "attempts = %s, last_error = %s, next_attempt_at = %s, lease_until = NULL",
            (state["attempt"], state["reason"], utc_text(retry_at)),
        )
    if kind == "DeliveryDeadLettered":
        return "status = 'dead', last_error = %s", (state["reason"],)
    if kind == "DeliveryRetryRequested":
        return (
            "status = 'pending', next_attempt_at = %s, lease_until = NULL",
            (event.occurred_at,),
        )
    if kind == "DeliveryCancelled":
        # Nothing of the person needs to stay: drop the sealed body too.
        return "status = 'cancelled', body = NULL, last_error = %s", (state["reason"],)
    return "status = 'delivered', body = NULL, attempts = %s", (state["attempt"],)


@dataclass(frozen=True)
class Leased:
    """A due delivery a worker now holds, with its sealed body."""

    delivery_id: str
    subscriber_id: str
    activity_id: int
    integration_id: str
    submission_id: str
    attempts: int
    #: The sealed personal part of the body (see `_body`).
    body: dict[str, Any] | None


class SqlOutbox:
    """Leasing due deliveries from the live generation of the outbox."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._database = registry.database

    def lease(self, *, now: str, until: str, limit: int) -> list[Leased]:
        with self._database.transaction() as cursor:
            tables, _ = self._registry.live_tables(cursor, DeliveriesProjection.name)
            table = tables["outbox"]
            lock = (
                " FOR UPDATE SKIP LOCKED"
                if self._database.dialect == "postgres"
                else ""
            )
            cursor.execute(
                f"UPDATE {table} SET lease_until = %s WHERE delivery_id IN ("  # noqa: S608
                f" SELECT delivery_id FROM {table} WHERE status = 'pending'"
                " AND next_attempt_at <= %s"
                " AND (lease_until IS NULL OR lease_until <= %s)"
                f" ORDER BY next_attempt_at LIMIT %s{lock})"
                " RETURNING delivery_id, subscriber_id, activity_id, integration_id,"
                " submission_id, attempts, body",
                (until, now, now, limit),
            )
            rows = cursor.fetchall()
        return [
            Leased(
                delivery_id=row[0],
                subscriber_id=row[1],
                activity_id=int(row[2]),
                integration_id=row[3],
                submission_id=row[4],
                attempts=int(row[5]),
                body=orjson.loads(row[6]) if row[6] is not None else None,
            )
            for row in rows
        ]

    def hold(self, delivery_id: str, *, until: str) -> None:
        """Keep a delivery from being leased until `until` (the projection
        will have recorded its outcome by then)."""
        with self._database.transaction() as cursor:
            tables, _ = self._registry.live_tables(cursor, DeliveriesProjection.name)
            table = tables["outbox"]
            cursor.execute(
                f"UPDATE {table} SET lease_until = %s WHERE delivery_id = %s",  # noqa: S608
                (until, delivery_id),
            )

    def counts(self) -> dict[str, int]:
        with self._database.reading() as cursor:
            tables, _ = self._registry.live_tables(cursor, DeliveriesProjection.name)
            cursor.execute(
                f"SELECT status, count(*) FROM {tables['outbox']} GROUP BY status"  # noqa: S608
            )
            found = {str(status): int(count) for status, count in cursor.fetchall()}
        return {
            s: found.get(s, 0) for s in ("pending", "delivered", "dead", "cancelled")
        }

    def status_of(self, delivery_id: str) -> str | None:
        """The delivery's status; None when the outbox has no such delivery."""
        with self._database.reading() as cursor:
            tables, _ = self._registry.live_tables(cursor, DeliveriesProjection.name)
            cursor.execute(
                f"SELECT status FROM {tables['outbox']} WHERE delivery_id = %s",  # noqa: S608
                (delivery_id,),
            )
            row = cursor.fetchone()
        return None if row is None else str(row[0])

    def of_subscriber(self, subscriber_id: str) -> list[dict[str, Any]]:
        """Pending and dead deliveries of one subscriber (for erasure)."""
        with self._database.reading() as cursor:
            tables, _ = self._registry.live_tables(cursor, DeliveriesProjection.name)
            cursor.execute(
                f"SELECT delivery_id, activity_id, integration_id, status"  # noqa: S608
                f" FROM {tables['outbox']}"
                " WHERE subscriber_id = %s AND status IN ('pending', 'dead')",
                (subscriber_id,),
            )
            return [
                {
                    "delivery_id": row[0],
                    "activity_id": int(row[1]),
                    "integration_id": row[2],
                    "status": row[3],
                }
                for row in cursor.fetchall()
            ]

    def list(
        self,
        *,
        status: str | None,
        activity_id: int | None,
        subscriber_id: str | None,
        after: tuple[str, str] | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], int]:
        with self._database.reading() as cursor:
            tables, position = self._registry.live_tables(
                cursor, DeliveriesProjection.name
            )
            query = f"SELECT {', '.join(COLUMNS)} FROM {tables['outbox']} WHERE 1 = 1"  # noqa: S608
            params: list[Any] = []
            for column, value in (
                ("status", status),
                ("activity_id", activity_id),
                ("subscriber_id", subscriber_id),
            ):
                if value is not None:
                    query += f" AND {column} = %s"
                    params.append(value)
            if after is not None:
                query += (
                    " AND (created_at > %s OR (created_at = %s AND delivery_id > %s))"
                )
                params += [after[0], after[0], after[1]]
            query += " ORDER BY created_at, delivery_id LIMIT %s"
            params.append(limit)
            cursor.execute(query, params)
            rows = [
                dict(zip(COLUMNS, values, strict=True)) for values in cursor.fetchall()
            ]
        return rows, position
