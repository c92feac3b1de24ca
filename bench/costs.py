"""What personal-data sealing and the hash chain cost, on ingest and rebuild.

    python -m bench.costs --events 20000

Both are the product and cannot be switched off in the service, so this
measures them where they run, A against B on the same events in one run:

- sealing on ingest: encoding events to their stored form with the real
  sealer, against a sealer that stores values as they are;
- sealing on rebuild: decoding stored events back (key fetch included,
  batched per page as projections do), sealed against unsealed copies;
- the chain on ingest: inserting the same events in PostgreSQL
  transactions of one group commit's size, with the chain (read the last
  link, hash, insert the links) against the same insert without it;
- the chain on rebuild: none; projections read only the events table and
  never the chain's links, so there is nothing to time.

The events come from the real write path (a fill like the rebuild
benchmark's). Results go to bench/results/costs-postgres.json.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from eventsourcing.persistence import StoredEvent
from psycopg.sql import SQL, Identifier

from api.bootstrap import build
from api.settings import Settings
from bench.common import SECRET_KEY, fresh_store, machine, save
from bench.rebuild import PAGE, active_integration, fill
from domain.model import DomainEvent
from infrastructure.eventstore import PydanticMapper, RecoveringPostgresRecorder
from infrastructure.sealing import FieldSealer

#: Events per insert transaction: about one group commit at 16 connections.
BATCH = 24
#: Events whose keys the writer loads at once (a batch of submissions).
WRITE_BATCH = 256
ROUNDS = 5


class OpenSealer(FieldSealer):
    """Stores sensitive values as they are: the B side of the sealing cost."""

    def __init__(self) -> None:
        """Needs no keys: it never seals nor opens anything."""

    def seal(self, event: DomainEvent, state: dict[str, Any]) -> None:
        return None

    def key_ids(self, event_type: type[DomainEvent], state: dict[str, Any]) -> set[str]:
        return set()

    def open(
        self,
        event_type: type[DomainEvent],
        state: dict[str, Any],
        keys: dict[str, bytes],
    ) -> None:
        return None


class UnchainedRecorder(RecoveringPostgresRecorder):
    """The same insert transaction without the chain: the B side."""

    def __init__(self, datastore: Any, *, events_table_name: str) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        # What the chained opening sends, except the read of the last link.
        self._open_unchained = SQL("; ").join(
            [
                SQL("BEGIN"),
                *self.lock_table_statements,
                SQL("NOTIFY {0}").format(Identifier(self.channel_name)),
            ]
        )

    def _open_and_read_last_link(self, cursor: Any) -> bytes:
        cursor.execute(self._open_unchained)
        return b""

    def _insert_links(self, cursor: Any, links: list[tuple[int, bytes]]) -> None:
        return None


def best_of(rounds: int, run: Callable[[], float]) -> float:
    """The fastest of several timed runs (seconds): the least disturbed one."""
    return min(run() for _ in range(rounds))


def timed(action: Callable[[], object]) -> float:
    """Seconds of this process's CPU: the machine's other load stays out."""
    started = time.process_time()
    action()
    return time.process_time() - started


def waited(action: Callable[[], object]) -> float:
    """Seconds on the clock: for work that waits on the database."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def pages(stored: Sequence[StoredEvent]) -> list[Sequence[StoredEvent]]:
    return [stored[i : i + PAGE] for i in range(0, len(stored), PAGE)]


def renamed(stored: Sequence[StoredEvent]) -> list[StoredEvent]:
    """The same events under fresh aggregate ids, so they can go in again."""
    ids: dict[Any, uuid.UUID] = {}
    return [
        StoredEvent(
            originator_id=ids.setdefault(e.originator_id, uuid.uuid4()),
            originator_version=e.originator_version,
            topic=e.topic,
            state=e.state,
        )
        for e in stored
    ]


def measure(events: int) -> dict[str, Any]:
    with fresh_store("postgres") as (url, folder):
        settings = Settings(database_url=url, secret_key=SECRET_KEY, home=folder)
        container = build(settings)
        try:
            fill(container, active_integration(container), events)
            application = container.events.application
            recorder = application.recorder
            sealed_mapper = application.mapper
            assert isinstance(sealed_mapper, PydanticMapper)
            open_mapper = PydanticMapper(
                sealed_mapper.transcoder,
                OpenSealer(),
            )
            stored: list[StoredEvent] = []
            after = 0
            while page := recorder.select_notifications(
                start=after, limit=PAGE, inclusive_of_start=False
            ):
                stored += page
                after = page[-1].id
            domain_events = [
                e for p in pages(stored) for e in sealed_mapper.to_domain_events(p)
            ]
            unsealed = [open_mapper.to_stored_event(e) for e in domain_events]

            def decode(mapper: PydanticMapper, rows: list[StoredEvent]) -> float:
                return timed(lambda: [mapper.to_domain_events(p) for p in pages(rows)])

            def encode(mapper: PydanticMapper) -> float:
                # As the writer does: each batch's keys in one lookup first.
                def run() -> None:
                    for start in range(0, count, WRITE_BATCH):
                        chunk = slice(start, start + WRITE_BATCH)
                        if mapper is sealed_mapper:
                            container.sealer.prefetch(
                                key
                                for event, row in zip(
                                    domain_events[chunk], stored[chunk], strict=True
                                )
                                for key in container.sealer.key_ids(
                                    type(event), orjson.loads(row.state)
                                )
                            )
                        for event in domain_events[chunk]:
                            mapper.to_stored_event(event)

                return timed(run)

            count = len(stored)
            seal_write = best_of(ROUNDS, lambda: encode(sealed_mapper))
            open_write = best_of(ROUNDS, lambda: encode(open_mapper))
            seal_read = best_of(ROUNDS, lambda: decode(sealed_mapper, stored))
            open_read = best_of(ROUNDS, lambda: decode(open_mapper, unsealed))

            chained = recorder
            assert isinstance(chained, RecoveringPostgresRecorder)
            unchained = UnchainedRecorder(
                chained.datastore, events_table_name=chained.events_table_name
            )
            sample = unsealed[: min(count, 6000)]

            def insert(target: RecoveringPostgresRecorder) -> float:
                rows = renamed(sample)
                batches = [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]
                return waited(lambda: [target.insert_events(b) for b in batches])

            # Interleaved, so a disturbance hits both sides alike.
            with_chain, without_chain = float("inf"), float("inf")
            for _ in range(ROUNDS):
                with_chain = min(with_chain, insert(chained))
                without_chain = min(without_chain, insert(unchained))
        finally:
            container.close()

    def micro(seconds: float, n: int) -> float:
        return seconds / n * 1e6

    return {
        "events": count,
        "insert_sample": len(sample),
        "insert_batch": BATCH,
        "sealing_on_ingest_us_per_event": {
            "sealed": micro(seal_write, count),
            "open": micro(open_write, count),
        },
        "sealing_on_rebuild_us_per_event": {
            "sealed": micro(seal_read, count),
            "open": micro(open_read, count),
        },
        "chain_on_ingest_us_per_event": {
            "chained": micro(with_chain, len(sample)),
            "unchained": micro(without_chain, len(sample)),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    arguments = parser.parse_args()
    threading.current_thread().name = "bench"
    result = measure(arguments.events)
    path = save(
        "costs-postgres",
        {
            "machine": machine(),
            "command": f"python -m bench.costs --events {arguments.events}",
            "results": result,
        },
    )
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
