"""Per-subject encryption keys, kept in their own table apart from the events.

Each key is wrapped (AES-GCM) under a key derived from the deployment key, so
a copy of the database alone reveals no personal data. Keys are fetched in
batches and cached in memory; destroying a key deletes its row and evicts it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from cryptography.exceptions import InvalidTag

from infrastructure.crypto import DeploymentKey, open_sealed, seal
from infrastructure.database import Database

logger = logging.getLogger(__name__)

KEY_BYTES: Final = 32
CACHE_SIZE: Final = 50_000
#: A cached key is used for at most this long; a key destroyed by another
#: process is therefore unusable everywhere within this time.
CACHE_SECONDS: Final = 1.0
#: SQLite allows 999 parameters in older builds; stay well below.
FETCH_BATCH: Final = 500

SELECT_KEYS: Final = (
    "SELECT subject_id, wrapped_key FROM subject_keys WHERE subject_id IN ({marks})"
)

TABLE_STATEMENTS: Final = {
    "sqlite": [
        "CREATE TABLE IF NOT EXISTS subject_keys ("
        " subject_id TEXT PRIMARY KEY,"
        " wrapped_key BLOB NOT NULL,"
        " created_at TEXT NOT NULL)"
    ],
    "postgres": [
        "CREATE TABLE IF NOT EXISTS subject_keys ("
        " subject_id TEXT PRIMARY KEY,"
        " wrapped_key BYTEA NOT NULL,"
        " created_at TIMESTAMPTZ NOT NULL)"
    ],
}


@dataclass(frozen=True)
class NewKeys:
    """Wrapped keys waiting to be stored with their subjects' first events."""

    rows: list[tuple[str, bytes, datetime | str]]


class SubjectKeyStore:
    """The `SubjectKeys` port on Headwater's database."""

    def __init__(self, database: Database, deployment_key: DeploymentKey) -> None:
        self._database = database
        self._wrapping_key = deployment_key.derive("subject-key-wrapping")
        self._cache: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, subject_ids: Sequence[str]) -> Mapping[str, bytes]:
        wanted = list(dict.fromkeys(subject_ids))
        found = dict(self.fetch_many(wanted))
        missing = [s for s in wanted if s not in found]
        if not missing:
            return found
        now = _timestamp(self._database.dialect)
        rows = [
            (subject, self._wrap(subject, os.urandom(KEY_BYTES)), now)
            for subject in missing
        ]
        with self._database.transaction() as cursor:
            # Two processes may create the same day's key at once: the first
            # row wins and both read it back, so both encrypt under one key.
            cursor.executemany(
                "INSERT INTO subject_keys (subject_id, wrapped_key, created_at)"
                " VALUES (%s, %s, %s) ON CONFLICT (subject_id) DO NOTHING",
                rows,
            )
        found.update(self._load(missing))
        return found

    def prepare_fresh(self, subject_ids: Sequence[str]) -> NewKeys:
        """Keys for new subjects, usable at once, stored by the transaction
        that records the subjects' first events (`EventStore.record`)."""
        keys = {subject: os.urandom(KEY_BYTES) for subject in subject_ids}
        now = _timestamp(self._database.dialect)
        loaded_at = time.monotonic()
        with self._lock:
            for subject, key in keys.items():
                self._cache[subject] = (key, loaded_at)
        return NewKeys([(s, self._wrap(s, k), now) for s, k in keys.items()])

    def fetch_many(
        self, subject_ids: Sequence[str], *, remember: bool = True
    ) -> Mapping[str, bytes]:
        found: dict[str, bytes] = {}
        missing: list[str] = []
        fresh_since = time.monotonic() - CACHE_SECONDS
        with self._lock:
            for subject in subject_ids:
                cached = self._cache.get(subject)
                if cached is None or cached[1] < fresh_since:
                    missing.append(subject)
                else:
                    found[subject] = cached[0]
        if missing:
            found.update(self._load(list(dict.fromkeys(missing)), remember=remember))
        return found

    def destroy(self, subject_id: str) -> None:
        self.destroy_many([subject_id])

    def destroy_many(self, subject_ids: Sequence[str]) -> int:
        """Destroy several keys; answers how many existed."""
        if not subject_ids:
            return 0
        with self._database.transaction() as cursor:
            cursor.executemany(
                "DELETE FROM subject_keys WHERE subject_id = %s",
                [(subject,) for subject in subject_ids],
            )
            destroyed = cursor.rowcount
        for subject in subject_ids:
            self.forget(subject)
        logger.info("destroyed %d subject keys", len(subject_ids))
        return max(destroyed, 0)

    def subjects(self, prefix: str) -> list[str]:
        """The ids of existing keys that start with `prefix`."""
        with self._database.reading() as cursor:
            cursor.execute(
                "SELECT subject_id FROM subject_keys WHERE subject_id LIKE %s"
                " ORDER BY subject_id",
                (prefix + "%",),
            )
            return [row[0] for row in cursor.fetchall()]

    def forget(self, subject_id: str) -> None:
        """Drop a key from this process's cache (after another process destroyed it)."""
        with self._lock:
            self._cache.pop(subject_id, None)

    def _load(
        self, subject_ids: list[str], *, remember: bool = True
    ) -> dict[str, bytes]:
        loaded: dict[str, bytes] = {}
        with self._database.reading() as cursor:
            for start in range(0, len(subject_ids), FETCH_BATCH):
                chunk = subject_ids[start : start + FETCH_BATCH]
                # Only placeholders are interpolated; the ids are parameters.
                query = SELECT_KEYS.format(marks=", ".join(["%s"] * len(chunk)))
                cursor.execute(query, chunk)
                for subject, wrapped in cursor.fetchall():
                    loaded[subject] = self._unwrap(subject, bytes(wrapped))
        if not remember:
            return loaded
        now = time.monotonic()
        with self._lock:
            for subject, key in loaded.items():
                self._cache[subject] = (key, now)
                self._cache.move_to_end(subject)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return loaded

    def _wrap(self, subject: str, key: bytes) -> bytes:
        return seal(self._wrapping_key, key, context=subject.encode())

    def _unwrap(self, subject: str, wrapped: bytes) -> bytes:
        try:
            return open_sealed(self._wrapping_key, wrapped, context=subject.encode())
        except InvalidTag as error:
            msg = (
                "a subject key cannot be unwrapped: the deployment key "
                "(HEADWATER_SECRET_KEY) differs from the one that created it"
            )
            raise RuntimeError(msg) from error


def _timestamp(dialect: str) -> datetime | str:
    now = datetime.now(UTC)
    return now.isoformat() if dialect == "sqlite" else now
