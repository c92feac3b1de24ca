"""Preparing the store: idempotent, and safe when several processes start at
once on a fresh SQLite file or a fresh PostgreSQL schema.

`database_url` names a store that does not exist yet; each test prepares it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.bootstrap import Container
from domain.integration import INTEGRATION_TYPE, Integration, new_endpoint_id
from domain.model import Actor
from infrastructure.database import Database, StoreLocation, open_database
from infrastructure.schema import SCHEMA_VERSION, prepare_store

PROCESSES = 4

#: Waits until the parent says "go" on stdin, so that every process has
#: finished importing and they all prepare the store at the same moment.
PREPARE_IN_A_CHILD = """
import sys
from pathlib import Path
from infrastructure.database import StoreLocation
from infrastructure.schema import prepare_store

location = StoreLocation.parse(sys.argv[1], base=Path(sys.argv[2]))
print("ready", flush=True)
sys.stdin.readline()
prepare_store(location)
"""


@pytest.fixture
def location(database_url: str, tmp_path: Path) -> StoreLocation:
    return StoreLocation.parse(database_url, base=tmp_path)


@pytest.fixture
def database(location: StoreLocation) -> Iterator[Database]:
    opened = open_database(location)
    try:
        yield opened
    finally:
        opened.close()


def table_names(database: Database, location: StoreLocation) -> set[str]:
    with database.reading() as cursor:
        if database.dialect == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            cursor.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = %s",
                (location.schema,),
            )
        return {str(row[0]) for row in cursor.fetchall()}


def recorded_versions(database: Database) -> list[int]:
    with database.reading() as cursor:
        cursor.execute("SELECT version FROM headwater_schema")
        return [int(row[0]) for row in cursor.fetchall()]


def expected_tables(database: Database) -> set[str]:
    events = "stored_events" if database.dialect == "sqlite" else "headwater_events"
    return {events, "event_chain", "subject_keys", "headwater_schema"}


def test_preparing_a_fresh_store_creates_every_table(
    location: StoreLocation, database: Database
) -> None:
    prepare_store(location)

    assert expected_tables(database) <= table_names(database, location)
    assert recorded_versions(database) == [SCHEMA_VERSION]


def test_preparing_a_prepared_store_again_changes_nothing(
    location: StoreLocation, database: Database
) -> None:
    prepare_store(location)
    tables = table_names(database, location)

    prepare_store(location)
    prepare_store(location)

    assert table_names(database, location) == tables
    assert recorded_versions(database) == [SCHEMA_VERSION]


def test_preparing_a_store_in_use_keeps_its_events_and_keys(
    container: Container,
) -> None:
    integration = Integration.create(
        name="Shop",
        integration_type=INTEGRATION_TYPE,
        endpoint_id=new_endpoint_id(),
        actor=Actor.system(),
    )
    position = container.events.save(integration)
    key = container.keys.create(["subject-a"])

    prepare_store(container.location)

    assert container.events.head() == position
    assert container.keys.fetch_many(["subject-a"]) == key


def test_processes_preparing_a_fresh_store_at_once_leave_one_schema(
    database_url: str,
    tmp_path: Path,
    location: StoreLocation,
    database: Database,
) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER")}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", PREPARE_IN_A_CHILD, database_url, str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for _ in range(PROCESSES)
    ]
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"

    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    outcomes = [child.communicate(timeout=60) for child in children]

    failures = [
        stderr
        for child, (_, stderr) in zip(children, outcomes, strict=True)
        if child.returncode != 0
    ]
    assert failures == []
    assert expected_tables(database) <= table_names(database, location)
    assert recorded_versions(database) == [SCHEMA_VERSION]
