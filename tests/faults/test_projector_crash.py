"""A separate `headwater projector` killed with SIGKILL under load, then
started again (CONTRACT 3: projections are exactly-once, resumable after a
crash, and rebuildable from position zero)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infrastructure.database import PostgresDatabase, StoreLocation
from infrastructure.projections.base import Registry
from infrastructure.projections.catalog import all_projections
from tests.faults.conftest import Admin, Deployment, Headwater, Json, eventually
from tests.faults.ledger import LOAD_CONFIGURATION, Load

PROJECTION_SECONDS = 30.0
REBUILD_SECONDS = 60.0

Rows = dict[str, list[tuple[Any, ...]]]


def live_rows(database_url: str) -> Rows:
    """Every row of every live read-model table, by projection and table."""
    database = PostgresDatabase(StoreLocation.parse(database_url, base=Path.cwd()))
    registry = Registry(database, all_projections())
    rows: Rows = {}
    try:
        with database.reading() as cursor:
            for name, projection in registry.projections.items():
                tables, _ = registry.live_tables(cursor, name)
                for short in projection.tables:
                    cursor.execute(f"SELECT * FROM {tables[short]}")
                    rows[f"{name} {short}"] = sorted(cursor.fetchall(), key=repr)
    finally:
        database.close()
    return rows


def differences(caught_up: Rows, from_zero: Rows) -> dict[str, Json]:
    """For each table that differs: how many rows only one side has, and a
    few of them."""
    found = {}
    for table in sorted(set(caught_up) | set(from_zero)):
        old, new = set(caught_up.get(table, [])), set(from_zero.get(table, []))
        if old != new:
            found[table] = {
                "onlyCaughtUp": len(old - new),
                "onlyFromZero": len(new - old),
                "samples": sorted(old ^ new, key=repr)[:4],
            }
    return found


def rebuilt(admin: Admin, before: list[Json]) -> bool:
    """Every projection has switched to a newer generation and caught up."""
    generations = {s["name"]: s["generation"] for s in before}
    return admin.caught_up() and all(
        s["generation"] > generations[s["name"]] for s in admin.projections()
    )


def test_after_a_killed_projector_catches_up_the_read_models_match_a_rebuild_from_zero(
    deployment: Deployment, admin_of: Callable[[Headwater, str], Admin]
) -> None:
    server = deployment.serve("--no-projections")
    projector = deployment.projector()
    assert server.admin_token is not None
    assert server.base_url is not None
    admin = admin_of(server, server.admin_token)
    integration = admin.open_integration(LOAD_CONFIGURATION)

    with Load([server.base_url], integration["endpointId"]) as load:
        load.wait_for(150, since=0, within=30)
        projector.kill()
        killed_at = time.monotonic()
        load.wait_for(50, since=killed_at, within=30)
        fell_behind = eventually(
            lambda: all(s["lag"] > 0 for s in admin.projections()), within=10
        )
        deployment.projector()
        load.wait_for(100, since=killed_at, within=30)
    admin.wait_until_caught_up(within=PROJECTION_SECONDS)
    caught_up = live_rows(deployment.database_url)
    before = admin.projections()
    for state in before:
        answer = admin.client.post(f"/admin/v1/projections/{state['name']}/rebuild")
        assert answer.status_code == 200, answer.text
    switched = eventually(lambda: rebuilt(admin, before), within=REBUILD_SECONDS)
    from_zero = live_rows(deployment.database_url)

    assert fell_behind, (
        "the projections did not fall behind while the projector was dead"
    )
    assert switched, f"the rebuilds did not finish: {admin.projections()}"
    assert sum(len(rows) for rows in caught_up.values()) > 0
    assert differences(caught_up, from_zero) == {}
