"""What every projection shares: the events it reads, its tables and its
tracking position.

A projection reads stored events as they are in the store (`StoredView`): the
JSON state with personal values still sealed. Its read model therefore holds
ciphertext under the same keys as the events, and values are opened only
when a query shows them, so destroying a key erases the person from the read
models as well.

Each projection writes its read-model changes and its new tracking position
in one transaction, and the position moves only from the value the runner
read (compare and set). A page applied twice, by a restarted runner or by a
second holder, therefore fails instead of counting twice: exactly once.

Tables carry the generation they belong to (`audit_g2_entries`). A rebuild
fills the next generation beside the live one and switches when it has
caught up; queries always read the live generation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal
from uuid import UUID

import orjson
from eventsourcing.persistence import Notification

from infrastructure.database import Cursor, Database

Dialect = Literal["sqlite", "postgres"]

#: `2026-12-03T12:00:00.123456+00:00`, as orjson writes a UTC datetime.
UTC_STORED_LENGTH: Final = 32
#: Parameters per statement on SQLite, well below its limit.
SQLITE_CHUNK: Final = 900

REGISTRY_STATEMENTS: Final = {
    "sqlite": [
        "CREATE TABLE IF NOT EXISTS projection_state ("
        " name TEXT PRIMARY KEY,"
        " live_generation INTEGER NOT NULL,"
        " building_generation INTEGER,"
        " rebuild_requested INTEGER NOT NULL DEFAULT 0)",
        "CREATE TABLE IF NOT EXISTS projection_tracking ("
        " name TEXT NOT NULL,"
        " generation INTEGER NOT NULL,"
        " position INTEGER NOT NULL,"
        " PRIMARY KEY (name, generation))",
    ],
    "postgres": [
        "CREATE TABLE IF NOT EXISTS projection_state ("
        " name TEXT PRIMARY KEY,"
        " live_generation INTEGER NOT NULL,"
        " building_generation INTEGER,"
        " rebuild_requested INTEGER NOT NULL DEFAULT 0)",
        "CREATE TABLE IF NOT EXISTS projection_tracking ("
        " name TEXT NOT NULL,"
        " generation INTEGER NOT NULL,"
        " position BIGINT NOT NULL,"
        " PRIMARY KEY (name, generation))",
    ],
}


class TrackingConflict(RuntimeError):
    """Another runner moved this projection's position first."""


@dataclass(frozen=True)
class StoredView:
    """One stored event as a projection sees it: personal values sealed."""

    position: int
    event_type: str
    aggregate_id: UUID
    version: int
    occurred_at: str
    state: dict[str, Any]

    @classmethod
    def of(cls, notification: Notification) -> StoredView:
        state = orjson.loads(notification.state)
        return cls(
            position=notification.id,
            event_type=notification.topic.rpartition(":")[2],
            aggregate_id=_uuid(notification.originator_id),
            version=notification.originator_version,
            occurred_at=utc_text(state.get("timestamp")),
            state=state,
        )


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def utc_text(value: Any) -> str:
    """A stored time as fixed-width UTC text, which sorts as time does."""
    if (
        isinstance(value, str)
        and len(value) == UTC_STORED_LENGTH
        and value.endswith("+00:00")
    ):
        # How events store their timestamps (orjson): already UTC, to the
        # microsecond; only the offset is written differently.
        return value[:-6] + "Z"
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def replace_rows(
    cursor: Cursor,
    dialect: Dialect,
    table: str,
    *,
    key: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    delete: Sequence[Any] = (),
) -> None:
    """Upsert many rows by their key (the first column), and delete others:
    one DELETE of every key involved, then one bulk insert."""
    keys = [row[0] for row in rows] + list(delete)
    if not keys:
        return
    if dialect == "postgres":
        cursor.execute(f"DELETE FROM {table} WHERE {key} = ANY(%s)", (keys,))  # noqa: S608
    else:
        for start in range(0, len(keys), SQLITE_CHUNK):
            chunk = keys[start : start + SQLITE_CHUNK]
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"DELETE FROM {table} WHERE {key} IN ({marks})", chunk)  # noqa: S608
    insert_rows(cursor, dialect, table, columns, rows)


def insert_rows(
    cursor: Cursor,
    dialect: Dialect,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Insert many new rows at once: COPY on PostgreSQL, which costs a
    fraction of one INSERT per row; a prepared INSERT loop on SQLite."""
    if not rows:
        return
    names = ", ".join(columns)
    if dialect == "postgres":
        copying: Any = cursor
        with copying.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join(["%s"] * len(columns))
    cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)  # noqa: S608


class Projection(ABC):
    """A read model built from the event log.

    `tables` maps a short table name to its DDL per dialect, written with
    `{table}` where the generation's table name goes.
    """

    name: ClassVar[str]
    tables: ClassVar[Mapping[str, Mapping[Dialect, Sequence[str]]]]

    @abstractmethod
    def apply(
        self, cursor: Cursor, events: Sequence[StoredView], tables: Tables
    ) -> None:
        """Write the read-model changes for `events` (log order)."""


@dataclass(frozen=True)
class Tables:
    """The real names of one generation's tables."""

    projection: str
    generation: int
    dialect: Dialect

    def __getitem__(self, short: str) -> str:
        return f"{self.projection}_g{self.generation}_{short}"


@dataclass(frozen=True)
class Step:
    """Events for one generation of a projection, and where its position goes."""

    projection: Projection
    generation: int
    events: Sequence[StoredView]
    expected_position: int
    new_position: int


@dataclass(frozen=True)
class ProjectionState:
    name: str
    live_generation: int
    building_generation: int | None
    rebuild_requested: bool
    live_position: int
    building_position: int | None


class Registry:
    """Generations and tracking positions of every projection."""

    def __init__(self, database: Database, projections: Sequence[Projection]) -> None:
        self.database = database
        self.dialect: Dialect = database.dialect
        self.projections = {p.name: p for p in projections}

    def prepare(self) -> None:
        """Create the registry and the live tables (idempotent)."""
        with self.database.transaction() as cursor:
            for statement in REGISTRY_STATEMENTS[self.dialect]:
                cursor.execute(statement)
            for name in self.projections:
                cursor.execute(
                    "INSERT INTO projection_state (name, live_generation)"
                    " VALUES (%s, 1) ON CONFLICT (name) DO NOTHING",
                    (name,),
                )
            cursor.execute("SELECT name, live_generation FROM projection_state")
            live = dict(cursor.fetchall())
            for name, projection in self.projections.items():
                self._create_tables(cursor, projection, int(live[name]))

    def _create_tables(
        self, cursor: Cursor, projection: Projection, generation: int
    ) -> None:
        tables = Tables(projection.name, generation, self.dialect)
        for short, statements in projection.tables.items():
            for statement in statements[self.dialect]:
                cursor.execute(statement.format(table=tables[short]))
        cursor.execute(
            "INSERT INTO projection_tracking (name, generation, position)"
            " VALUES (%s, %s, 0) ON CONFLICT (name, generation) DO NOTHING",
            (projection.name, generation),
        )

    def state(self, name: str) -> ProjectionState:
        with self.database.reading() as cursor:
            return self._state(cursor, name)

    def states(self, names: Sequence[str]) -> dict[str, ProjectionState]:
        """Several projections' states in one read."""
        with self.database.reading() as cursor:
            cursor.execute(
                "SELECT name, live_generation, building_generation, rebuild_requested"
                " FROM projection_state"
            )
            rows = {row[0]: row[1:] for row in cursor.fetchall()}
            cursor.execute("SELECT name, generation, position FROM projection_tracking")
            positions = {(n, int(g)): int(p) for n, g, p in cursor.fetchall()}
        found = {}
        for name in names:
            live, building, requested = rows[name]
            found[name] = ProjectionState(
                name=name,
                live_generation=int(live),
                building_generation=None if building is None else int(building),
                rebuild_requested=bool(requested),
                live_position=positions.get((name, int(live)), 0),
                building_position=(
                    None
                    if building is None
                    else positions.get((name, int(building)), 0)
                ),
            )
        return found

    def _state(self, cursor: Cursor, name: str) -> ProjectionState:
        cursor.execute(
            "SELECT live_generation, building_generation, rebuild_requested"
            " FROM projection_state WHERE name = %s",
            (name,),
        )
        live, building, requested = cursor.fetchone()
        cursor.execute(
            "SELECT generation, position FROM projection_tracking WHERE name = %s",
            (name,),
        )
        positions = {int(g): int(p) for g, p in cursor.fetchall()}
        return ProjectionState(
            name=name,
            live_generation=int(live),
            building_generation=None if building is None else int(building),
            rebuild_requested=bool(requested),
            live_position=positions.get(int(live), 0),
            building_position=None
            if building is None
            else positions.get(int(building), 0),
        )

    def live_tables(self, cursor: Cursor, name: str) -> tuple[Tables, int]:
        """The live generation's tables and its position, inside a read."""
        cursor.execute(
            "SELECT s.live_generation, t.position FROM projection_state s"
            " JOIN projection_tracking t"
            " ON t.name = s.name AND t.generation = s.live_generation"
            " WHERE s.name = %s",
            (name,),
        )
        generation, position = cursor.fetchone()
        return Tables(name, int(generation), self.dialect), int(position)

    def request_rebuild(self, name: str) -> None:
        with self.database.transaction() as cursor:
            cursor.execute(
                "UPDATE projection_state SET rebuild_requested = 1 WHERE name = %s",
                (name,),
            )

    def start_building(self, name: str) -> int:
        """Create the next generation's tables; answers its number."""
        projection = self.projections[name]
        with self.database.transaction() as cursor:
            state = self._state(cursor, name)
            if state.building_generation is not None:
                return state.building_generation
            generation = state.live_generation + 1
            self._drop_tables(cursor, projection, generation)
            cursor.execute(
                "DELETE FROM projection_tracking WHERE name = %s AND generation = %s",
                (name, generation),
            )
            self._create_tables(cursor, projection, generation)
            cursor.execute(
                "UPDATE projection_state SET building_generation = %s,"
                " rebuild_requested = 0 WHERE name = %s",
                (generation, name),
            )
            return generation

    def switch(self, name: str, generation: int) -> None:
        """Make a caught-up generation live and drop the old one."""
        projection = self.projections[name]
        with self.database.transaction() as cursor:
            state = self._state(cursor, name)
            old = state.live_generation
            cursor.execute(
                "UPDATE projection_state SET live_generation = %s,"
                " building_generation = NULL WHERE name = %s",
                (generation, name),
            )
            cursor.execute(
                "DELETE FROM projection_tracking WHERE name = %s AND generation = %s",
                (name, old),
            )
            self._drop_tables(cursor, projection, old)

    def _drop_tables(
        self, cursor: Cursor, projection: Projection, generation: int
    ) -> None:
        tables = Tables(projection.name, generation, self.dialect)
        for short in projection.tables:
            cursor.execute(f"DROP TABLE IF EXISTS {tables[short]}")

    def apply(
        self,
        projection: Projection,
        generation: int,
        events: Sequence[StoredView],
        *,
        expected_position: int,
        new_position: int,
    ) -> None:
        """Apply events and move the tracking position, in one transaction."""
        self.apply_many(
            [Step(projection, generation, events, expected_position, new_position)]
        )

    def apply_many(self, steps: Sequence[Step]) -> None:
        """Apply several projections' steps in one transaction.

        Each projection's rows and its tracking position still change
        together; one transaction for all of them saves a commit per
        projection. Read models can be rebuilt, so the commit does not wait
        for the disk: a crash loses rows and positions together.
        """
        with self.database.transaction(durable=False) as cursor:
            for step in steps:
                self._apply(cursor, step)

    def _apply(self, cursor: Cursor, step: Step) -> None:
        projection, generation = step.projection, step.generation
        cursor.execute(
            "UPDATE projection_tracking SET position = %s"
            " WHERE name = %s AND generation = %s AND position = %s",
            (step.new_position, projection.name, generation, step.expected_position),
        )
        if cursor.rowcount != 1:
            msg = (
                f"projection {projection.name} generation {generation} is no "
                f"longer at position {step.expected_position}; another runner moved it"
            )
            raise TrackingConflict(msg)
        if step.events:
            projection.apply(
                cursor, step.events, Tables(projection.name, generation, self.dialect)
            )
