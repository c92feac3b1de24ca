"""Each projection applies a page of events and moves its tracking position in
one transaction, from the position it read (compare and set), so a page is
counted exactly once; and it tracks the events it ignores (CONTRACT 3)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import cast

import psycopg
import pytest

from infrastructure.database import Cursor, StoreLocation, open_database
from infrastructure.projections.base import (
    Projection,
    Registry,
    StoredView,
    Tables,
    TrackingConflict,
)
from infrastructure.projections.catalog import NAMES, all_projections
from tests.readside.conftest import (
    OPEN,
    STORES,
    World,
    caught_up,
    dedupe_counts,
    fresh_settings,
    live_rows,
    opened,
    repeats_counted,
    repeats_recorded,
    stored_events,
)


class Breakdown(RuntimeError):
    """Raised by a projection after it has written its rows."""


def breaking(projection: Projection) -> Projection:
    """The same projection, failing after it has written a page's rows."""

    def apply(
        self: Projection, cursor: Cursor, events: Sequence[StoredView], tables: Tables
    ) -> None:
        type(projection).apply(self, cursor, events, tables)
        raise Breakdown("failed after writing")

    kind = type(projection)
    broken = type(f"Broken{kind.__name__}", (kind,), {"apply": apply})
    return cast(Projection, broken())


def rows_of(registry: Registry, name: str) -> dict[str, list[tuple[object, ...]]]:
    return {
        table: rows
        for table, rows in live_rows(registry).items()
        if table.startswith(f"{name}.")
    }


@pytest.fixture(scope="module", params=STORES)
def logged(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """A log with an integration, profiles, an event and a deduplicated
    repeat; no projection runs on it. Shared: tests only read the log."""
    settings = fresh_settings(request.param, tmp_path_factory.mktemp("p"), request)
    with opened(settings, projections=False) as world:
        integration = world.endpoints.open({**OPEN, "dedupePeriodSeconds": 60})
        repeat = {"Idempotency-Key": "signup-1"}
        body = [
            {"profile": {"email": "ann@example.com"}},
            {"event": {"type": "signup"}},
        ]
        world.public.accepted(integration, body, headers=repeat)
        world.public.accepted(integration, body, headers=repeat)
        world.public.accepted(integration, {"profile": {"email": "bob@example.com"}})
        yield world


@pytest.fixture
def events(logged: World) -> list[StoredView]:
    return stored_events(logged.container)


@pytest.fixture
def registry(logged: World, tmp_path: Path) -> Iterator[Registry]:
    """Empty read models of every projection, in a database of their own, at
    position zero."""
    store = logged.container.location
    if store.dialect == "sqlite":
        location = StoreLocation(dialect="sqlite", path=tmp_path / "read-models.db")
    else:
        location = replace(store, schema=f"r_{uuid.uuid4().hex[:12]}")
        with psycopg.connect(store.conninfo, autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA {location.schema}".encode())
    database = open_database(location)
    try:
        prepared = Registry(database, all_projections())
        prepared.prepare()
        yield prepared
    finally:
        database.close()


@pytest.mark.parametrize("name", NAMES)
def test_a_page_applied_again_from_a_stale_position_is_refused_and_changes_nothing(
    registry: Registry, events: list[StoredView], name: str
) -> None:
    projection = registry.projections[name]
    end = events[-1].position
    registry.apply(projection, 1, events, expected_position=0, new_position=end)
    once = rows_of(registry, name)

    with pytest.raises(TrackingConflict):
        registry.apply(projection, 1, events, expected_position=0, new_position=end)

    assert rows_of(registry, name) == once
    assert registry.state(name).live_position == end


def test_a_page_applied_twice_counts_a_duplicate_once(
    registry: Registry, logged: World, events: list[StoredView]
) -> None:
    dedupe = registry.projections["dedupe"]
    end = events[-1].position
    registry.apply(dedupe, 1, events, expected_position=0, new_position=end)

    with pytest.raises(TrackingConflict):
        registry.apply(dedupe, 1, events, expected_position=0, new_position=end)

    assert repeats_counted(registry) == repeats_recorded(logged.container)
    assert list(repeats_counted(registry).values()) == [1]


@pytest.mark.parametrize("name", NAMES)
def test_a_projection_that_fails_after_writing_leaves_neither_rows_nor_position(
    registry: Registry, events: list[StoredView], name: str
) -> None:
    before = rows_of(registry, name)

    with pytest.raises(Breakdown):
        registry.apply(
            breaking(registry.projections[name]),
            1,
            events,
            expected_position=0,
            new_position=events[-1].position,
        )

    assert rows_of(registry, name) == before
    assert registry.state(name).live_position == 0


def test_two_runners_applying_the_same_page_at_once_apply_it_once(
    registry: Registry, logged: World, events: list[StoredView]
) -> None:
    projection = registry.projections["dedupe"]
    end = events[-1].position
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def run() -> None:
        start.wait(timeout=10)
        try:
            registry.apply(projection, 1, events, expected_position=0, new_position=end)
        except TrackingConflict:
            outcomes.append("conflict")
        else:
            outcomes.append("applied")

    runners = [threading.Thread(target=run) for _ in range(2)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join(timeout=60)

    assert sorted(outcomes) == ["applied", "conflict"]
    assert registry.state("dedupe").live_position == end
    assert repeats_counted(registry) == repeats_recorded(logged.container)


def test_every_projection_tracks_the_positions_of_events_it_ignores(
    world: World,
) -> None:
    # Token events concern the audit alone; the other projections skip them.
    for role in ("auditor", "analyst", "integration-manager"):
        world.token_for(role)
    head = world.container.events.head()

    reached = {
        name: world.container.read_side.wait_for(name, head, timeout=10)
        for name in NAMES
    }

    assert reached == dict.fromkeys(NAMES, head)
    filled = {
        table for table, rows in live_rows(world.container.registry).items() if rows
    }
    assert filled == {"audit.entries"}


def test_waiting_for_the_head_returns_when_the_last_events_were_ignored(
    world: World,
) -> None:
    world.endpoints.open()
    head = caught_up(world.container, ["audit"])

    reached = world.container.read_side.wait_for("dedupe", head, timeout=5)

    assert reached == head
    assert dedupe_counts(world.container.registry) == {}
