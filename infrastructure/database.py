"""Connections to the SQLite or PostgreSQL database that holds everything.

The event store uses the `eventsourcing` library's own connections; the rest
of Headwater (keys, the event chain, read models) uses `Database`, which
speaks one SQL style to both: `%s` placeholders and tuple rows.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from application.errors import StoreUnavailable

logger = logging.getLogger(__name__)

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0
#: How long a pool keeps trying, in the background, to replace a connection
#: it lost. psycopg_pool's default (five minutes, the delay doubling each
#: time) can leave a pool empty for as long as the outage lasted after the
#: database is back; giving up soon lets the next checkout connect at once.
RECONNECT_SECONDS = 2.0


@dataclass(frozen=True)
class StoreLocation:
    """Where the store lives, parsed from `HEADWATER_DATABASE_URL`."""

    dialect: Literal["sqlite", "postgres"]
    path: Path | None = None
    host: str = "127.0.0.1"
    port: int = 5432
    dbname: str = "postgres"
    user: str = "postgres"
    password: str = field(default="", repr=False)
    schema: str = "public"

    @classmethod
    def parse(cls, url: str, *, base: Path) -> StoreLocation:
        """`sqlite:///relative/file.db`, `sqlite:////absolute/file.db`, or
        `postgresql://user:password@host:port/dbname?schema=name`."""
        parts = urlsplit(url)
        if parts.scheme == "sqlite":
            relative = unquote(parts.path).removeprefix("/")
            if not relative:
                msg = f"the SQLite URL {url!r} names no file; use sqlite:///var/headwater.db"
                raise ValueError(msg)
            return cls(dialect="sqlite", path=(base / relative).resolve())
        if parts.scheme in ("postgres", "postgresql"):
            query = parse_qs(parts.query)
            schema = query.pop("schema", ["public"])[0]
            if query:
                msg = f"unknown database URL parameters: {', '.join(sorted(query))}"
                raise ValueError(msg)
            if not SCHEMA_NAME.match(schema):
                msg = f"schema {schema!r} must be a lower-case SQL identifier"
                raise ValueError(msg)
            return cls(
                dialect="postgres",
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 5432,
                dbname=unquote(parts.path.removeprefix("/")) or "postgres",
                user=unquote(parts.username or "postgres"),
                password=unquote(parts.password or ""),
                schema=schema,
            )
        msg = f"unsupported URL scheme {parts.scheme!r}; use sqlite or postgresql"
        raise ValueError(msg)

    @property
    def conninfo(self) -> str:
        """A libpq connection string (PostgreSQL only)."""
        return psycopg.conninfo.make_conninfo(
            host=self.host,
            port=str(self.port),
            dbname=self.dbname,
            user=self.user,
            password=self.password or None,
            application_name="headwater",
        )

    @property
    def read_models(self) -> StoreLocation:
        """Where the read models live: beside the events on PostgreSQL, in a
        file of their own on SQLite (so projections never wait for the one
        writer of the events file)."""
        if self.dialect == "postgres" or self.path is None:
            return self
        return StoreLocation(
            dialect="sqlite",
            path=self.path.with_name(f"{self.path.stem}-readmodels.db"),
        )

    def describe(self) -> str:
        """Where the store is, without any password."""
        if self.dialect == "sqlite":
            return f"SQLite at {self.path}"
        return f"PostgreSQL {self.host}:{self.port}/{self.dbname} schema {self.schema}"


class Cursor(Protocol):
    """The part of a DB-API cursor Headwater uses."""

    def execute(self, query: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, query: str, params: Sequence[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...

    @property
    def rowcount(self) -> int: ...


class Database(ABC):
    """A connection source with transactions, for Headwater's own tables."""

    dialect: Literal["sqlite", "postgres"]

    @abstractmethod
    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[Cursor]:
        """A write transaction, committed when the block ends without error.

        `durable=False` lets the commit return before it is flushed to disk:
        for data that can be rebuilt (read models), never for the store.
        """

    @abstractmethod
    @contextmanager
    def reading(self) -> Iterator[Cursor]:
        """A consistent read-only view."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def compact(self) -> None:
        """Make deleted content unrecoverable from the database's own files
        as far as the database allows (after destroying keys)."""


class _SQLiteCursor:
    """Translates `%s` placeholders to SQLite's `?`."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def execute(self, query: str, params: Sequence[Any] = ()) -> Any:
        return self._cursor.execute(query.replace("%s", "?"), params)

    def executemany(self, query: str, params: Sequence[Sequence[Any]]) -> Any:
        return self._cursor.executemany(query.replace("%s", "?"), params)

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


def open_sqlite(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode with Headwater's settings.

    WAL lets readers run beside the one writer; FULL synchronous makes a
    commit durable before a 2xx is sent; secure_delete overwrites deleted
    content, so a destroyed key does not linger in free pages.
    """
    connection = sqlite3.connect(
        path,
        timeout=SQLITE_BUSY_TIMEOUT_SECONDS,
        isolation_level=None,
        check_same_thread=False,
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA secure_delete=ON")
    return connection


class SQLiteDatabase(Database):
    """One connection per thread to a database file."""

    dialect: Literal["sqlite", "postgres"] = "sqlite"

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self.path = path
        self._synchronous = synchronous
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = open_sqlite(self.path)
            connection.execute(f"PRAGMA synchronous={self._synchronous}")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[Cursor]:  # noqa: ARG002
        # IMMEDIATE takes the write lock at the start, so a transaction that
        # reads before it writes cannot fail half-way on a lock upgrade.
        # (`durable` is set per database file: see `synchronous`.)
        with self._begin("BEGIN IMMEDIATE") as cursor:
            yield cursor

    @contextmanager
    def reading(self) -> Iterator[Cursor]:
        with self._begin("BEGIN") as cursor:
            yield cursor

    @contextmanager
    def _begin(self, statement: str) -> Iterator[Cursor]:
        connection = self._connection()
        try:
            connection.execute(statement)
        except sqlite3.OperationalError as error:
            raise StoreUnavailable(f"the SQLite store is busy: {error}") from error
        try:
            yield _SQLiteCursor(connection.cursor())
        except BaseException:
            connection.rollback()
            raise
        try:
            connection.commit()
        except sqlite3.OperationalError as error:
            connection.rollback()
            raise StoreUnavailable(f"the SQLite store is busy: {error}") from error

    def compact(self) -> None:
        # secure_delete already overwrote the deleted rows in the database
        # file; the WAL still holds the old pages until it is checkpointed.
        connection = self._connection()
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()


class PostgresDatabase(Database):
    """A psycopg connection pool whose sessions use the store's schema."""

    dialect: Literal["sqlite", "postgres"] = "postgres"

    def __init__(self, location: StoreLocation, *, max_size: int = 10) -> None:
        self.location = location
        schema = location.schema

        def configure(connection: psycopg.Connection[Any]) -> None:
            connection.autocommit = True
            connection.execute(
                sql.SQL("SET search_path TO {}").format(sql.Identifier(schema))
            )

        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            location.conninfo,
            min_size=1,
            max_size=max_size,
            configure=configure,
            open=False,
            name="headwater",
            timeout=10,
            reconnect_timeout=RECONNECT_SECONDS,
        )
        self._opened = False
        self._open_lock = threading.Lock()

    def _open(self) -> None:
        if not self._opened:
            with self._open_lock:
                if not self._opened:
                    self.pool.open(wait=False)
                    self._opened = True

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[Cursor]:
        self._open()
        try:
            with ExitStack() as stack:
                cursor = self._begin(stack).cursor()
                if not durable:
                    cursor.execute("SET LOCAL synchronous_commit = off")
                yield cursor
        except (psycopg.OperationalError, psycopg.errors.AdminShutdown) as error:
            raise StoreUnavailable(f"PostgreSQL is unavailable: {error}") from error
        except psycopg.errors.LockNotAvailable as error:
            raise StoreUnavailable(f"PostgreSQL is busy: {error}") from error

    def _begin(self, stack: ExitStack) -> psycopg.Connection[Any]:
        """A pooled connection with a transaction begun; `stack` ends both.

        A database restart kills every pooled connection, and the pool learns
        it only when one is used. If BEGIN fails, nothing has run yet: the
        pool drops every dead connection it holds and the transaction begins
        on another. That check costs a round trip per idle connection, paid
        after such a failure only, never at an ordinary checkout.
        """
        for last in (False, True):
            attempt = ExitStack()
            connection = attempt.enter_context(self.pool.connection())
            try:
                attempt.enter_context(connection.transaction())
            except psycopg.OperationalError as error:
                attempt.__exit__(type(error), error, error.__traceback__)
                if last:
                    raise
                logger.warning("a pooled connection was lost (%s); retrying", error)
                self.pool.check()
                continue
            stack.push(attempt)
            return connection
        raise AssertionError("unreachable: the last attempt returns or raises")

    @contextmanager
    def reading(self) -> Iterator[Cursor]:
        with self.transaction() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield cursor

    def compact(self) -> None:
        # Dead row versions of deleted keys stay in the heap until vacuumed.
        self._open()
        with self.pool.connection() as connection:
            connection.execute("VACUUM subject_keys")

    def close(self) -> None:
        if self._opened:
            self.pool.close()
            self._opened = False


def open_database(location: StoreLocation, *, rebuildable: bool = False) -> Database:
    """A database; `rebuildable` ones (read models) may trade durability for
    speed: a crash can lose their last commits, which are then replayed."""
    if location.dialect == "sqlite":
        assert location.path is not None
        return SQLiteDatabase(
            location.path, synchronous="NORMAL" if rebuildable else "FULL"
        )
    return PostgresDatabase(location)
