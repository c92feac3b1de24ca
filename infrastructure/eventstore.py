"""The event store: the `eventsourcing` library with a mapper of our own.

- `OrjsonTranscoder` turns event state into JSON bytes and back.
- `PydanticMapper` dumps a pydantic event to its stored state, seals its
  sensitive fields (see `infrastructure.sealing`) and validates it back.
- `ChainedSQLiteRecorder` and `ChainedPostgresRecorder` write each event's
  hash-chain link in the transaction that inserts it.
- `RecoveringPostgresRecorder` is the one PostgreSQL stores use: it reports
  a database that is down after one wait for a connection rather than ten,
  and gets over a restart by dropping the pool's dead connections.
- `LibraryEventStore` is the application's `EventStore` port.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar, cast
from uuid import UUID

import orjson
import psycopg
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    Mapper,
    Notification,
    OperationalError,
    PersistenceError,
    StoredEvent,
    Transcoder,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import Environment, get_topic, resolve_topic
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier
from psycopg_pool import PoolTimeout

from application.errors import ConcurrencyConflict, StoreUnavailable
from application.ports import Recorded
from domain.model import Aggregate, DomainEvent
from infrastructure import chain
from infrastructure.database import RECONNECT_SECONDS, StoreLocation
from infrastructure.sealing import FieldSealer

logger = logging.getLogger(__name__)

A = TypeVar("A", bound=Aggregate)
T = TypeVar("T")

#: Fields the library keeps in its own columns, and the read-only erased mark.
INSERT_KEYS_SQLITE: Final = (
    "INSERT INTO subject_keys (subject_id, wrapped_key, created_at) VALUES (?, ?, ?)"
)
#: Aggregate ids per query when loading many (SQLite limits parameters).
MANY_CHUNK: Final = 500
NOT_STORED: Final = {"originator_id", "originator_version", "erased"}
APPLICATION_NAME: Final = "Headwater"


class OrjsonTranscoder(Transcoder):
    """JSON bytes via orjson, which knows datetimes, UUIDs and enums."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


class PydanticMapper(Mapper[UUID]):
    """Maps pydantic domain events to stored events, sealing sensitive fields."""

    def __init__(self, transcoder: Transcoder, sealer: FieldSealer) -> None:
        super().__init__(transcoder=transcoder)
        self.sealer = sealer

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        event = cast(DomainEvent, domain_event)
        state = event.model_dump(by_alias=True, exclude=NOT_STORED)
        self.sealer.seal(event, state)
        return StoredEvent(
            originator_id=event.originator_id,
            originator_version=event.originator_version,
            topic=get_topic(type(event)),
            state=self.transcoder.encode(state),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return self.to_domain_events([stored_event])[0]

    def to_domain_events(
        self, stored_events: Sequence[StoredEvent]
    ) -> list[DomainEvent]:
        """Decode many events, fetching every key they need in one batch."""
        decoded: list[tuple[type[DomainEvent], StoredEvent, dict[str, Any]]] = []
        key_ids: set[str] = set()
        for stored in stored_events:
            event_type: type[DomainEvent] = resolve_topic(stored.topic)
            state = self.transcoder.decode(stored.state)
            key_ids |= self.sealer.key_ids(event_type, state)
            decoded.append((event_type, stored, state))
        keys = self.sealer.prefetch(key_ids) if key_ids else {}
        events = []
        for event_type, stored, state in decoded:
            self.sealer.open(event_type, state, keys)
            state["originatorId"] = stored.originator_id
            state["originatorVersion"] = stored.originator_version
            events.append(event_type.model_validate(state))
        return events


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    """SQLite recorder that chains each event in its insert transaction."""

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            *chain.TABLE_STATEMENTS["sqlite"],
        ]

    def select_events_of(self, originator_ids: Sequence[UUID]) -> list[StoredEvent]:
        """Every event of several aggregates, in one query."""
        found: list[StoredEvent] = []
        with self.datastore.transaction(commit=False) as cursor:
            for start in range(0, len(originator_ids), MANY_CHUNK):
                chunk = [i.hex for i in originator_ids[start : start + MANY_CHUNK]]
                marks = ",".join("?" * len(chunk))
                cursor.execute(
                    f"SELECT * FROM {self.events_table_name}"  # noqa: S608
                    f" WHERE originator_id IN ({marks})"
                    " ORDER BY originator_id, originator_version",
                    chunk,
                )
                found += [
                    StoredEvent(
                        originator_id=UUID(row["originator_id"]),
                        originator_version=row["originator_version"],
                        topic=row["topic"],
                        state=row["state"],
                    )
                    for row in cursor.fetchall()
                ]
        return found

    def select_versions(self, originator_ids: Sequence[UUID]) -> dict[UUID, int]:
        found: dict[UUID, int] = {}
        with self.datastore.transaction(commit=False) as cursor:
            for start in range(0, len(originator_ids), MANY_CHUNK):
                chunk = [i.hex for i in originator_ids[start : start + MANY_CHUNK]]
                marks = ",".join("?" * len(chunk))
                cursor.execute(
                    f"SELECT originator_id, max(originator_version) AS version"  # noqa: S608
                    f" FROM {self.events_table_name}"
                    f" WHERE originator_id IN ({marks}) GROUP BY originator_id",
                    chunk,
                )
                found |= {
                    UUID(r["originator_id"]): r["version"] for r in cursor.fetchall()
                }
        return found

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        with self.datastore.get_connection(commit=True) as connection:
            cursor = connection.cursor()
            try:
                # IMMEDIATE: take SQLite's single write lock before reading the
                # last link, so no other writer can slip in between.
                cursor.execute("BEGIN IMMEDIATE")
                positions = self._insert_events(cursor, stored_events)
                keys = kwargs.get("new_keys")
                if keys is not None and keys.rows:
                    cursor.sqlite_cursor.executemany(INSERT_KEYS_SQLITE, keys.rows)
                assert positions is not None
                cursor.execute(
                    "SELECT link FROM event_chain ORDER BY position DESC LIMIT 1"
                )
                row = cursor.fetchone()
                links = _links(
                    row[0] if row else chain.GENESIS, stored_events, positions
                )
                cursor.sqlite_cursor.executemany(
                    "INSERT INTO event_chain (position, link) VALUES (?, ?)", links
                )
                connection.commit()
            except sqlite3.IntegrityError as error:
                connection.rollback()
                raise IntegrityError(error) from error
            except sqlite3.OperationalError as error:
                connection.rollback()
                raise OperationalError(error) from error
            except BaseException:
                connection.rollback()
                raise
            finally:
                cursor.sqlite_cursor.close()
        return positions


class ChainedPostgresRecorder(PostgresApplicationRecorder):
    """PostgreSQL recorder that chains each event in its insert transaction.

    Rows go in as arrays in binary format (`%b`): bytea values are sent as
    they are instead of being escaped byte by byte.

    Inserts take `LOCK TABLE ... IN EXCLUSIVE MODE` first, as the library's
    do, so the last link read here cannot change before the transaction
    commits.
    """

    def __init__(
        self, datastore: Any, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        self.sql_create_statements.append(
            SQL(
                chain.TABLE_STATEMENTS["postgres"][0].replace(
                    "event_chain", "{schema}.event_chain"
                )
            ).format(schema=schema)
        )
        self._open_insert = SQL("; ").join(
            [
                SQL("BEGIN"),
                *self.lock_table_statements,
                SQL("NOTIFY {channel}").format(channel=Identifier(self.channel_name)),
                SQL(
                    "SELECT link FROM {schema}.event_chain"
                    " ORDER BY position DESC LIMIT 1"
                ).format(schema=schema),
            ]
        )
        self._insert_chain_links = SQL(
            "INSERT INTO {schema}.event_chain (position, link)"
            " SELECT * FROM unnest(%b::bigint[], %b::bytea[])"
        ).format(schema=schema)
        self._insert_arrays = SQL(
            "INSERT INTO {schema}.{table}"
            " (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[])"
            " RETURNING notification_id"
        ).format(schema=schema, table=Identifier(self.events_table_name))
        self._insert_keys = SQL(
            "INSERT INTO {schema}.subject_keys (subject_id, wrapped_key, created_at)"
            " SELECT * FROM unnest(%b::text[], %b::bytea[], %b::timestamptz[])"
        ).format(schema=schema)
        self._select_after = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state"
            " FROM {schema}.{table} WHERE notification_id > %s"
            " ORDER BY notification_id LIMIT %s"
        ).format(schema=schema, table=Identifier(self.events_table_name))
        self._select_versions = SQL(
            "SELECT originator_id, max(originator_version) AS version"
            " FROM {schema}.{table} WHERE originator_id = ANY(%b)"
            " GROUP BY originator_id"
        ).format(schema=schema, table=Identifier(self.events_table_name))
        self._select_events_of = SQL(
            "SELECT originator_id, originator_version, topic, state"
            " FROM {schema}.{table} WHERE originator_id = ANY(%b)"
            " ORDER BY originator_id, originator_version"
        ).format(schema=schema, table=Identifier(self.events_table_name))

    def select_events_of(self, originator_ids: Sequence[UUID]) -> list[StoredEvent]:
        """Every event of several aggregates, in one query."""
        with (
            self.datastore.get_connection() as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(
                self._select_events_of,
                (list(originator_ids),),
                prepare=True,
                binary=True,
            )
            return [
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in cursor.fetchall()
            ]

    def select_after(self, after: int, limit: int) -> list[Notification]:
        """A page of the log, as `select_notifications` answers it, read in
        binary tuples (projections and rebuilds read the whole log)."""
        with (
            self.datastore.get_connection() as connection,
            connection.cursor(row_factory=tuple_row) as cursor,
        ):
            cursor.execute(
                self._select_after, (after, limit), prepare=True, binary=True
            )
            return [
                Notification(
                    id=row[0],
                    originator_id=row[1],
                    originator_version=row[2],
                    topic=row[3],
                    state=row[4],
                )
                for row in cursor.fetchall()
            ]

    def select_versions(self, originator_ids: Sequence[UUID]) -> dict[UUID, int]:
        with (
            self.datastore.get_connection() as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(
                self._select_versions,
                (list(originator_ids),),
                prepare=True,
                binary=True,
            )
            return {row["originator_id"]: row["version"] for row in cursor.fetchall()}

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Insert events, their keys and their chain links in one transaction.

        The library sends its insert in pipeline mode, whose bookkeeping cost
        more client time than the round trips it saves here. This sends the
        opening statements as one simple query (no parameters) and each row
        set as one statement: four round trips, five with new keys.
        """
        if not stored_events:
            return []
        with (
            self.datastore.get_connection() as connection,
            connection.cursor() as cursor,
        ):
            try:
                positions = self._insert_in_transaction(
                    cursor, stored_events, kwargs.get("new_keys")
                )
            except BaseException:
                with contextlib.suppress(psycopg.Error):
                    cursor.execute("ROLLBACK")
                raise
        return positions

    def _insert_in_transaction(
        self, cursor: Any, stored_events: Sequence[StoredEvent], keys: Any
    ) -> list[int]:
        # The pool's connections are in autocommit mode: the transaction is
        # ours to open and close. The exclusive lock serialises inserts, so
        # positions commit in order and the last link cannot change under us.
        previous = self._open_and_read_last_link(cursor)
        if keys is not None and keys.rows:
            subjects, wrapped, created = zip(*keys.rows, strict=True)
            cursor.execute(
                self._insert_keys,
                (list(subjects), list(wrapped), list(created)),
                binary=True,
            )
        cursor.execute(
            self._insert_arrays,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
            prepare=True,
            binary=True,
        )
        positions = [row["notification_id"] for row in cursor.fetchall()]
        self._insert_links(cursor, _links(previous, stored_events, positions))
        cursor.execute("COMMIT")
        return positions

    def _open_and_read_last_link(self, cursor: Any) -> bytes:
        cursor.execute(self._open_insert)
        while cursor.nextset():
            pass
        row = cursor.fetchone()
        return bytes(row["link"]) if row else chain.GENESIS

    def _insert_links(self, cursor: Any, links: list[tuple[int, bytes]]) -> None:
        cursor.execute(
            self._insert_chain_links,
            ([p for p, _ in links], [link for _, link in links]),
            prepare=True,
        )


class RecoveringPostgresRecorder(ChainedPostgresRecorder):
    """The chained recorder, answering a lost database its own way.

    The library retries each read and write ten times on any operational
    error, and each try may wait the pool's whole timeout for a connection:
    with the database down, a request waited nearly a minute before it could
    answer 503. Here a call runs once. If it failed on a connection that
    died in the pool (the database restarted since), the pool drops every
    dead connection it holds and the call runs once more; if the pool could
    not connect at all, the database is down and the error goes up at once.
    Checking the pool costs a round trip per idle connection, after such a
    failure only.
    """

    def __init__(
        self, datastore: Any, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        # The library builds the pool; see RECONNECT_SECONDS for why.
        self.datastore.pool.reconnect_timeout = RECONNECT_SECONDS

    def _recovering(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return call(*args, **kwargs)
        except (OperationalError, InterfaceError) as error:
            if isinstance(error.__cause__, PoolTimeout):
                raise
            logger.warning("a pooled connection was lost (%s); retrying", error)
            self.datastore.pool.check()
            return call(*args, **kwargs)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        return self._recovering(super().insert_events, stored_events, **kwargs)

    def select_events(self, *args: Any, **kwargs: Any) -> Sequence[StoredEvent]:
        select = _unretried(PostgresApplicationRecorder.select_events)
        return self._recovering(select, self, *args, **kwargs)

    def select_notifications(self, *args: Any, **kwargs: Any) -> Sequence[Notification]:
        select = _unretried(PostgresApplicationRecorder.select_notifications)
        return self._recovering(select, self, *args, **kwargs)

    def max_notification_id(self) -> int | None:
        select: Callable[..., int | None] = _unretried(
            PostgresApplicationRecorder.max_notification_id
        )
        return self._recovering(select, self)

    def select_events_of(self, originator_ids: Sequence[UUID]) -> list[StoredEvent]:
        return self._recovering(super().select_events_of, originator_ids)


def _unretried(method: Callable[..., T]) -> Callable[..., T]:
    """A library method without the retry decorator it was defined with."""
    undecorated: Callable[..., T] = getattr(method, "__wrapped__", method)
    return undecorated


def _links(
    previous: bytes, stored_events: Sequence[StoredEvent], positions: Sequence[int]
) -> list[tuple[int, bytes]]:
    links = []
    for stored, position in zip(stored_events, positions, strict=True):
        previous = chain.link(
            previous,
            position=position,
            originator_id=UUID(str(stored.originator_id)),
            originator_version=stored.originator_version,
            topic=stored.topic,
            state=stored.state,
        )
        links.append((position, previous))
    return links


class EventStoreApplication(Application[UUID]):
    """The library application that owns the events table."""

    name = APPLICATION_NAME

    def __init__(
        self,
        env: dict[str, str],
        *,
        sealer: FieldSealer,
        on_recorded: Callable[[int], None] | None = None,
    ) -> None:
        self._sealer = sealer
        self._on_recorded = on_recorded
        super().__init__(env)

    def construct_env(self, name: str, env: Any = None) -> Environment:
        # Only what the composition root passes: the process environment
        # must not reconfigure the store behind the settings' back.
        return Environment(name, dict(env or {}))

    def construct_mapper(self) -> Mapper[UUID]:
        return PydanticMapper(OrjsonTranscoder(), self._sealer)

    def _notify(self, recordings: list[Any]) -> None:
        self.recorded(recordings)

    def recorded(self, recordings: list[Any]) -> None:
        """Tell this process that events were recorded (wakes projections)."""
        if self._on_recorded is not None and recordings:
            self._on_recorded(recordings[-1].notification.id)


def library_environment(
    location: StoreLocation, *, create_tables: bool
) -> dict[str, str]:
    """The `eventsourcing` settings for a store location."""
    env = {"CREATE_TABLE": "y" if create_tables else "n"}
    if location.dialect == "sqlite":
        env |= {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(location.path),
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": get_topic(ChainedSQLiteRecorder),
        }
    else:
        env |= {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": location.dbname,
            "POSTGRES_HOST": location.host,
            "POSTGRES_PORT": str(location.port),
            "POSTGRES_USER": location.user,
            "POSTGRES_PASSWORD": location.password,
            "POSTGRES_SCHEMA": location.schema,
            "POSTGRES_POOL_SIZE": "4",
            "POSTGRES_MAX_OVERFLOW": "12",
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_LOCK_TIMEOUT": "10",
            "APPLICATION_RECORDER_TOPIC": get_topic(RecoveringPostgresRecorder),
        }
    return env


class LibraryEventStore:
    """The application's `EventStore` port on `EventStoreApplication`."""

    def __init__(self, application: EventStoreApplication) -> None:
        self.application = application
        self.mapper = cast(PydanticMapper, application.mapper)

    def find(self, aggregate_id: UUID, kind: type[A]) -> A | None:
        with _translated_errors():
            try:
                aggregate: object = self.application.repository.get(aggregate_id)
            except AggregateNotFoundError:
                return None
        return aggregate if isinstance(aggregate, kind) else None

    def _put(self, aggregates: Sequence[Aggregate], **kwargs: Any) -> list[Any]:
        """What `Application.save` does for our aggregates, without its
        runtime protocol checks (costly per aggregate) or snapshots."""
        events = [
            event for aggregate in aggregates for event in aggregate.collect_events()
        ]
        if not events:
            return []
        with _translated_errors():
            recordings = self.application.events.put(events, **kwargs)
        self.application.recorded(recordings)
        return recordings

    def versions(self, aggregate_ids: Sequence[UUID]) -> dict[UUID, int]:
        """The current version of each aggregate that exists, in one query."""
        if not aggregate_ids:
            return {}
        recorder = cast(
            ChainedSQLiteRecorder | ChainedPostgresRecorder, self.application.recorder
        )
        with _translated_errors():
            return recorder.select_versions(list(dict.fromkeys(aggregate_ids)))

    def find_many(self, aggregate_ids: Sequence[UUID]) -> dict[UUID, Aggregate]:
        """Several aggregates in one query, with one batch of key lookups."""
        if not aggregate_ids:
            return {}
        recorder = cast(
            ChainedSQLiteRecorder | ChainedPostgresRecorder, self.application.recorder
        )
        with _translated_errors():
            stored = recorder.select_events_of(list(dict.fromkeys(aggregate_ids)))
            events = self.mapper.to_domain_events(stored)
        found: dict[UUID, Any] = {}
        for event in events:
            found[event.originator_id] = event.mutate(found.get(event.originator_id))
        return found

    def find_as_of(self, aggregate_id: UUID, kind: type[A], at: datetime) -> A | None:
        aggregate: Any = None
        for event in self.history(aggregate_id):
            if event.timestamp > at:
                break
            aggregate = event.mutate(aggregate)
        return aggregate if isinstance(aggregate, kind) else None

    def history(self, aggregate_id: UUID) -> list[DomainEvent]:
        with _translated_errors():
            stored = self.application.recorder.select_events(aggregate_id)
            return self.mapper.to_domain_events(stored)

    def save(self, *aggregates: Aggregate) -> int | None:
        recordings = self._put(aggregates)
        return recordings[-1].notification.id if recordings else None

    def record(
        self, *aggregates: Aggregate, new_keys: object = None
    ) -> dict[UUID, int]:
        recordings = self._put(aggregates, new_keys=new_keys)
        # Later recordings of an aggregate overwrite earlier ones: its last event.
        return {
            cast(UUID, r.notification.originator_id): r.notification.id
            for r in recordings
        }

    def read(
        self,
        *,
        after: int,
        limit: int,
        types: Sequence[type[DomainEvent]] = (),
    ) -> list[Recorded]:
        with _translated_errors():
            notifications: Sequence[Notification] = (
                self.application.recorder.select_notifications(
                    start=after,
                    limit=limit,
                    topics=[get_topic(t) for t in types],
                    inclusive_of_start=False,
                )
            )
            events = self.mapper.to_domain_events(notifications)
        return [
            Recorded(position=n.id, event=e)
            for n, e in zip(notifications, events, strict=True)
        ]

    def read_stored(self, *, after: int, limit: int) -> Sequence[Notification]:
        """Raw notifications (stored bytes), for the chain and for exports."""
        recorder = self.application.recorder
        with _translated_errors():
            if isinstance(recorder, ChainedPostgresRecorder):
                return recorder.select_after(after, limit)
            return recorder.select_notifications(
                start=after, limit=limit, inclusive_of_start=False
            )

    def head(self) -> int:
        with _translated_errors():
            return self.application.recorder.max_notification_id() or 0

    def close(self) -> None:
        self.application.close()


class _translated_errors:  # noqa: N801 - used as a context manager
    """Turn the library's persistence errors into the application's."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: object, error: BaseException | None, trace: object
    ) -> None:
        if isinstance(error, IntegrityError):
            raise ConcurrencyConflict(str(error)) from error
        if isinstance(error, OperationalError | InterfaceError):
            msg = f"the event store is unavailable: {error}"
            raise StoreUnavailable(msg) from error
        if isinstance(error, PersistenceError):
            raise StoreUnavailable(f"the event store failed: {error}") from error
