"""Creating the store's tables, once, however many processes start at once.

Every `headwater` subcommand calls `prepare_store` first. It is idempotent:
after the first run it only reads the recorded schema version. The creating
run holds an exclusive lock (a PostgreSQL advisory lock, or a lock file next
to the SQLite database), so workers never race to create tables.
"""

from __future__ import annotations

import fcntl
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import psycopg
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment
from psycopg import sql

from infrastructure import keys
from infrastructure.database import StoreLocation, open_database, open_sqlite
from infrastructure.eventstore import APPLICATION_NAME, library_environment
from infrastructure.projections.base import Registry
from infrastructure.projections.catalog import all_projections

logger = logging.getLogger(__name__)

#: Raise when a table is added or changed, so that existing stores upgrade.
SCHEMA_VERSION: Final = 3
ADVISORY_LOCK_NAME: Final = "headwater schema"

#: Headwater's own tables, beside the library's events table.
TABLE_STATEMENTS: Final = [keys.TABLE_STATEMENTS]

VERSION_STATEMENT: Final = (
    "CREATE TABLE IF NOT EXISTS headwater_schema (version INTEGER NOT NULL)"
)


def prepare_store(location: StoreLocation) -> None:
    """Create whatever the store lacks; safe to call from many processes."""
    if location.dialect == "sqlite":
        _prepare_sqlite(location)
    else:
        _prepare_postgres(location)


def _prepare_sqlite(location: StoreLocation) -> None:
    assert location.path is not None
    location.path.parent.mkdir(parents=True, exist_ok=True)
    with _lock_file(location) as _:
        connection = open_sqlite(location.path)
        try:
            if _sqlite_version(connection) == SCHEMA_VERSION:
                return
            _create_library_tables(location)
            connection.execute("BEGIN IMMEDIATE")
            for statements in TABLE_STATEMENTS:
                for statement in statements["sqlite"]:
                    connection.execute(statement)
            _prepare_read_models(location)
            for statement in RECORD_VERSION:
                connection.execute(statement)
            connection.commit()
            logger.info("prepared the store: %s", location.describe())
        finally:
            connection.close()


@contextmanager
def _lock_file(location: StoreLocation) -> Iterator[None]:
    assert location.path is not None
    path = location.path.with_name(f".{location.path.name}.schema-lock")
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prepare_postgres(location: StoreLocation) -> None:
    with psycopg.connect(location.conninfo, autocommit=True) as connection:
        connection.execute(
            sql.SQL("SET search_path TO {}").format(sql.Identifier(location.schema))
        )
        if _postgres_version(connection, location.schema) == SCHEMA_VERSION:
            return
        lock = f"{ADVISORY_LOCK_NAME}:{location.schema}"
        connection.execute("SELECT pg_advisory_lock(hashtext(%s))", (lock,))
        try:
            if _postgres_version(connection, location.schema) == SCHEMA_VERSION:
                return
            connection.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(location.schema)
                )
            )
            _create_library_tables(location)
            _prepare_read_models(location)
            with connection.transaction():
                for statements in TABLE_STATEMENTS:
                    for statement in statements["postgres"]:
                        connection.execute(statement.encode())
                for statement in RECORD_VERSION:
                    connection.execute(statement.encode())
            logger.info("prepared the store: %s", location.describe())
        finally:
            connection.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock,))


def _prepare_read_models(location: StoreLocation) -> None:
    database = open_database(location.read_models)
    try:
        Registry(database, all_projections()).prepare()
    finally:
        database.close()


def _create_library_tables(location: StoreLocation) -> None:
    env = Environment(
        APPLICATION_NAME, library_environment(location, create_tables=True)
    )
    factory = InfrastructureFactory.construct(env)
    try:
        factory.application_recorder()
    finally:
        factory.close()


def _sqlite_version(connection: sqlite3.Connection) -> int | None:
    """The recorded schema version, or None for a new store."""
    exists = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'headwater_schema'"
    ).fetchone()
    if exists is None:
        return None
    row = connection.execute("SELECT max(version) FROM headwater_schema").fetchone()
    return None if row is None else int(row[0]) if row[0] is not None else None


def _postgres_version(connection: psycopg.Connection[Any], schema: str) -> int | None:
    row = connection.execute(
        "SELECT to_regclass(%s)", (f"{schema}.headwater_schema",)
    ).fetchone()
    if row is None or row[0] is None:
        return None
    version = connection.execute("SELECT max(version) FROM headwater_schema").fetchone()
    return None if version is None or version[0] is None else int(version[0])


RECORD_VERSION: Final = (
    VERSION_STATEMENT,
    "DELETE FROM headwater_schema",
    f"INSERT INTO headwater_schema (version) VALUES ({SCHEMA_VERSION})",  # noqa: S608
)
