"""The `integrations` read model: one row per integration."""

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
)

EVENTS: Final = frozenset(
    {
        "IntegrationCreated",
        "IntegrationSaved",
        "IntegrationUpdated",
        "IntegrationActivated",
        "IntegrationDeactivated",
        "EndpointRotated",
    }
)
COLUMNS: Final = (
    "id",
    "name",
    "integration_type",
    "status",
    "saved",
    "version",
    "configuration_version",
    "endpoint_id",
    "configuration",
    "secret_set",
    "created_at",
    "updated_at",
)


class IntegrationsProjection(Projection):
    name: ClassVar[str] = "integrations"
    tables: ClassVar = {
        "rows": {
            "sqlite": [
                "CREATE TABLE IF NOT EXISTS {table} ("
                " id TEXT PRIMARY KEY, name TEXT NOT NULL,"
                " integration_type TEXT NOT NULL, status TEXT NOT NULL,"
                " saved INTEGER NOT NULL, version INTEGER NOT NULL,"
                " configuration_version INTEGER, endpoint_id TEXT NOT NULL,"
                " configuration TEXT, secret_set INTEGER NOT NULL,"
                " created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
            ],
            "postgres": [
                "CREATE TABLE IF NOT EXISTS {table} ("
                " id TEXT PRIMARY KEY, name TEXT NOT NULL,"
                " integration_type TEXT NOT NULL, status TEXT NOT NULL,"
                " saved INTEGER NOT NULL, version INTEGER NOT NULL,"
                " configuration_version INTEGER, endpoint_id TEXT NOT NULL,"
                " configuration TEXT, secret_set INTEGER NOT NULL,"
                " created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
            ],
        }
    }

    def apply(
        self, cursor: Cursor, events: Sequence[StoredView], tables: Tables
    ) -> None:
        relevant = [e for e in events if e.event_type in EVENTS]
        if not relevant:
            return
        rows = _load(cursor, tables["rows"], {str(e.aggregate_id) for e in relevant})
        for event in relevant:
            key = str(event.aggregate_id)
            row = rows.get(key)
            if event.event_type == "IntegrationCreated":
                row = _created(event)
            elif row is None:
                continue
            else:
                _evolve(row, event)
            row["version"] = event.version
            row["updated_at"] = event.occurred_at
            rows[key] = row
        marks = ", ".join(["%s"] * len(COLUMNS))
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "id")
        cursor.executemany(
            f"INSERT INTO {tables['rows']} ({', '.join(COLUMNS)}) VALUES ({marks})"  # noqa: S608
            f" ON CONFLICT (id) DO UPDATE SET {updates}",
            [tuple(_stored(row)[c] for c in COLUMNS) for row in rows.values()],
        )


def _created(event: StoredView) -> dict[str, Any]:
    state = event.state
    return {
        "id": str(event.aggregate_id),
        "name": state["name"],
        "integration_type": state["integrationType"],
        "status": "inactive",
        "saved": False,
        "configuration_version": None,
        "endpoint_id": state["endpointId"],
        "configuration": None,
        "secret_set": False,
        "created_at": event.occurred_at,
    }


def _evolve(row: dict[str, Any], event: StoredView) -> None:
    state = event.state
    kind = event.event_type
    if kind == "IntegrationSaved":
        row["saved"] = True
        row["configuration"] = state["configuration"]
        row["name"] = state["configuration"]["name"]
        row["secret_set"] = state.get("recaptchaSecret") is not None
        row["configuration_version"] = event.version
    elif kind == "IntegrationUpdated":
        configuration = dict(row["configuration"] or {})
        for field, change in state["changes"].items():
            configuration[field] = change["to"]
        row["configuration"] = configuration
        row["name"] = configuration.get("name", row["name"])
        if state.get("secretChange") == "cleared":
            row["secret_set"] = False
        elif state.get("secretChange") is not None:
            row["secret_set"] = True
        row["configuration_version"] = event.version
    elif kind == "IntegrationActivated":
        row["status"] = "active"
    elif kind == "IntegrationDeactivated":
        row["status"] = "inactive"
    elif kind == "EndpointRotated":
        row["endpoint_id"] = state["endpointId"]


def _load(cursor: Cursor, table: str, ids: set[str]) -> dict[str, dict[str, Any]]:
    marks = ", ".join(["%s"] * len(ids))
    cursor.execute(
        f"SELECT {', '.join(COLUMNS)} FROM {table} WHERE id IN ({marks})",  # noqa: S608
        sorted(ids),
    )
    rows = {}
    for values in cursor.fetchall():
        row = dict(zip(COLUMNS, values, strict=True))
        row["saved"] = bool(row["saved"])
        row["secret_set"] = bool(row["secret_set"])
        if row["configuration"] is not None:
            row["configuration"] = orjson.loads(row["configuration"])
        rows[row["id"]] = row
    return rows


def _stored(row: dict[str, Any]) -> dict[str, Any]:
    stored = dict(row)
    stored["saved"] = int(row["saved"])
    stored["secret_set"] = int(row["secret_set"])
    if row["configuration"] is not None:
        stored["configuration"] = json_text(row["configuration"])
    return stored


def read_row(values: Sequence[Any]) -> dict[str, Any]:
    """A stored row as a dict, for queries."""
    row = dict(zip(COLUMNS, values, strict=True))
    row["saved"] = bool(row["saved"])
    row["secret_set"] = bool(row["secret_set"])
    row["configuration"] = (
        orjson.loads(row["configuration"]) if row["configuration"] is not None else None
    )
    return row
