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
from typing import Final
from uuid import UUID

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
