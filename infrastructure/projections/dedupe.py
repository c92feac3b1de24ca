"""The `dedupe` read model: one entry per dedupe key and mode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final

from infrastructure.database import Cursor
from infrastructure.projections.base import Projection, StoredView, Tables

COLUMNS: Final = (
    "window_id",
    "integration_id",
    "mode",
    "key_digest",
    "first_accepted_at",
    "last_accepted_at",
    "duplicates",
    "submission_id",
)


class DedupeProjection(Projection):
    name: ClassVar[str] = "dedupe"
    tables: ClassVar = {
        "windows": {
            dialect: [
                "CREATE TABLE IF NOT EXISTS {table} ("
                " window_id TEXT PRIMARY KEY, integration_id TEXT NOT NULL,"
                " mode TEXT NOT NULL, key_digest TEXT NOT NULL,"
                " first_accepted_at TEXT NOT NULL, last_accepted_at TEXT NOT NULL,"
                " duplicates INTEGER NOT NULL, submission_id TEXT NOT NULL)",
                "CREATE INDEX IF NOT EXISTS {table}_integration"
                " ON {table} (integration_id, key_digest)",
            ]
            for dialect in ("sqlite", "postgres")
        }
    }

    def apply(
        self, cursor: Cursor, events: Sequence[StoredView], tables: Tables
    ) -> None:
        table = tables["windows"]
        for event in events:
            state = event.state
            if event.event_type == "DedupeWindowOpened":
                cursor.execute(
                    f"INSERT INTO {table} ({', '.join(COLUMNS)})"  # noqa: S608
                    " VALUES (%s, %s, %s, %s, %s, %s, 0, %s)"
                    " ON CONFLICT (window_id) DO NOTHING",
                    _opened(event),
                )
            elif event.event_type == "DedupeWindowReopened":
                cursor.execute(
                    f"UPDATE {table} SET last_accepted_at = %s, submission_id = %s"  # noqa: S608
                    " WHERE window_id = %s",
                    (
                        event.occurred_at,
                        str(state["submissionId"]),
                        str(event.aggregate_id),
                    ),
                )
            elif event.event_type == "SubmissionDeduplicated":
                cursor.execute(
                    f"UPDATE {table} SET duplicates = duplicates + 1"  # noqa: S608
                    " WHERE window_id = %s",
                    (str(state["dedupeWindowId"]),),
                )


def _opened(event: StoredView) -> tuple[Any, ...]:
    state = event.state
    return (
        str(event.aggregate_id),
        str(state["integrationId"]),
        state["mode"],
        state["keyDigest"],
        event.occurred_at,
        event.occurred_at,
        str(state["submissionId"]),
    )
