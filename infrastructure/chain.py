"""The hash chain over the event log.

Each event's link is SHA-256 over the previous link and the event's stored
bytes (its position, aggregate id, version, topic and state, where personal
values are ciphertext). The link is written by the recorder in the same
transaction as the event, under the lock that orders every insert, so every
committed event is chained and an erasure (which destroys keys, not events)
never breaks the chain.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

from infrastructure.database import Database

GENESIS: Final = bytes(32)

TABLE_STATEMENTS: Final = {
    "sqlite": [
        "CREATE TABLE IF NOT EXISTS event_chain ("
        " position INTEGER PRIMARY KEY,"
        " link BLOB NOT NULL)"
    ],
    "postgres": [
        "CREATE TABLE IF NOT EXISTS event_chain ("
        " position BIGINT PRIMARY KEY,"
        " link BYTEA NOT NULL)"
    ],
}


def link(
    previous: bytes,
    *,
    position: int,
    originator_id: UUID,
    originator_version: int,
    topic: str,
    state: bytes,
) -> bytes:
    """The link of one event, given the link before it."""
    topic_bytes = topic.encode()
    digest = hashlib.sha256(previous)
    digest.update(struct.pack(">QQ", position, originator_version))
    digest.update(originator_id.bytes)
    digest.update(struct.pack(">I", len(topic_bytes)))
    digest.update(topic_bytes)
    digest.update(state)
    return digest.digest()


@dataclass(frozen=True)
class Verification:
    """The result of checking the chain: where it first breaks, if it does."""

    ok: bool
    checked_through: int
    first_bad_position: int | None
    unchained: int
    reason: str | None = None


@dataclass(frozen=True)
class Checkpoint:
    """A link an auditor keeps elsewhere: the chain's hash at a position."""

    position: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """`HASH@POSITION`, as `headwater audit verify --checkpoint` takes it."""
        digest, separator, position = text.partition("@")
        if not separator or not position.isdigit() or len(digest) != 64:
            msg = f"a checkpoint is HASH@POSITION with a 64-hex hash; got {text[:80]!r}"
            raise ValueError(msg)
        int(digest, 16)
        return cls(position=int(position), hash=digest.lower())

    def __str__(self) -> str:
        return f"{self.hash}@{self.position}"


class ChainVerifier:
    """Recomputes every link from the stored events, in log order.

    It reads the events table and the chain side by side, page by page, so it
    runs in constant memory over any length of log.
    """

    def __init__(
        self, database: Database, events_table: str, position_column: str
    ) -> None:
        self._database = database
        self._events = events_table
        self._position = position_column

    def checkpoint(self) -> Checkpoint:
        with self._database.reading() as cursor:
            cursor.execute(
                "SELECT position, link FROM event_chain ORDER BY position DESC LIMIT 1"
            )
            row = cursor.fetchone()
        if row is None:
            return Checkpoint(position=0, hash=GENESIS.hex())
        return Checkpoint(position=int(row[0]), hash=bytes(row[1]).hex())

    def head(self) -> int:
        with self._database.reading() as cursor:
            cursor.execute(f"SELECT max({self._position}) FROM {self._events}")  # noqa: S608
            row = cursor.fetchone()
        return int(row[0] or 0)

    def verify(
        self,
        *,
        checkpoint: Checkpoint | None = None,
        progress: Callable[[int], None] | None = None,
        page: int = 5000,
    ) -> Verification:
        previous = GENESIS
        last = 0
        checkpoint_seen = checkpoint is None
        if checkpoint is not None and checkpoint.position == 0:
            # Position 0 is the chain's start, where only the genesis hash is.
            checkpoint_seen = checkpoint.hash == GENESIS.hex()
        while True:
            rows = self._page(after=last, limit=page)
            if not rows:
                break
            for (
                position,
                originator,
                version,
                topic,
                state,
                stored_link,
                chained,
            ) in rows:
                if position is None:
                    # A link whose event is gone: the log was cut.
                    return _broken(last, chained, "an event was removed")
                if stored_link is None:
                    return _broken(last, position, "an event has no link")
                expected = link(
                    previous,
                    position=position,
                    originator_id=UUID(str(originator)),
                    originator_version=version,
                    topic=topic,
                    state=bytes(state),
                )
                if expected != bytes(stored_link):
                    return _broken(
                        last, position, "the stored event or its link was changed"
                    )
                if checkpoint is not None and position == checkpoint.position:
                    if expected.hex() != checkpoint.hash:
                        return _broken(
                            last, position, "the chain differs from the checkpoint"
                        )
                    checkpoint_seen = True
                previous = expected
                last = position
            if progress is not None:
                progress(last)
        if not checkpoint_seen:
            return _broken(
                last,
                checkpoint.position if checkpoint else None,
                "the checkpoint is not in the chain",
            )
        return Verification(
            ok=True, checked_through=last, first_bad_position=None, unchained=0
        )

    def _page(self, *, after: int, limit: int) -> list[tuple[Any, ...]]:
        """Events and links after `after`, matched by position from both sides."""
        with self._database.reading() as cursor:
            pos = f"e.{self._position}"
            cursor.execute(
                f"SELECT {pos} AS at, {pos}, e.originator_id, e.originator_version,"  # noqa: S608
                f" e.topic, e.state, c.link, c.position FROM {self._events} e"
                f" LEFT JOIN event_chain c ON c.position = {pos}"
                f" WHERE {pos} > %s"
                " UNION ALL"
                " SELECT c.position AS at,"
                " NULL, NULL, NULL, NULL, NULL, c.link, c.position"
                f" FROM event_chain c LEFT JOIN {self._events} e ON {pos} = c.position"
                f" WHERE c.position > %s AND {pos} IS NULL"
                " ORDER BY at LIMIT %s",
                (after, after, limit),
            )
            rows = cursor.fetchall()
        return [
            (
                None if row[1] is None else int(row[1]),
                row[2],
                row[3],
                row[4],
                row[5],
                None if row[6] is None else bytes(row[6]),
                None if row[7] is None else int(row[7]),
            )
            for row in rows
        ]


def _broken(last: int, position: int | None, reason: str) -> Verification:
    return Verification(
        ok=False,
        checked_through=last,
        first_bad_position=position,
        unchained=0,
        reason=reason,
    )
