"""Running projections: one holder per projection, a supervisor, and rebuilds.

A `Projector` runs the projections whose lease it holds. Each pass reads one
page of stored events and feeds it to every held projection that has not seen
it yet (live generations in one pass, generations being rebuilt in another,
with bigger pages), each in its own transaction with its tracking position.

Leases make each projection have one holder at a time among all processes:
on PostgreSQL a session advisory lock held on a dedicated connection with TCP
keepalives, so the lock is freed when its holder dies or its network does;
on SQLite an exclusive `flock` on a file per projection. The others wait as
standbys and try again every second.

`Supervisor` runs a projector in a thread and restarts it with backoff when
it fails, for example when the database restarts.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, Protocol

import psycopg
from eventsourcing.persistence import Notification
from psycopg import sql

from infrastructure.database import StoreLocation
from infrastructure.projections.base import Projection, Registry, Step, StoredView

logger = logging.getLogger(__name__)

LIVE_PAGE: Final = 1000
REBUILD_PAGE: Final = 5000
IDLE_WAIT_SECONDS: Final = 0.5
GATHER_SECONDS: Final = 0.02
LEASE_RETRY_SECONDS: Final = 1.0
LEASE_CHECK_SECONDS: Final = 2.0
BACKOFF_FIRST: Final = 0.5
BACKOFF_MAX: Final = 30.0
HEALTHY_SECONDS: Final = 30.0


class Source(Protocol):
    """The stored events, as the store keeps them."""

    def read_stored(self, *, after: int, limit: int) -> Sequence[Notification]: ...

    def head(self) -> int: ...


class Leases(ABC):
    """Who holds which projection among all processes."""

    @abstractmethod
    def try_acquire(self, name: str) -> bool:
        """Take the lease if it is free; True if this process holds it."""

    @abstractmethod
    def check(self) -> None:
        """Raise if the leases may have been lost (the connection died)."""

    @abstractmethod
    def wait_for_events(self, timeout: float) -> None:
        """Sleep until new events may be there, at most `timeout` seconds."""

    @abstractmethod
    def close(self) -> None:
        """Give every lease up."""


class FileLeases(Leases):
    """SQLite: an exclusive lock on one file per projection."""

    def __init__(self, directory: Path, wake: threading.Event) -> None:
        self._directory = directory
        self._wake = wake
        self._files: dict[str, IO[str]] = {}

    def try_acquire(self, name: str) -> bool:
        if name in self._files:
            return True
        handle = (self._directory / f".projection-{name}.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._files[name] = handle
        return True

    def check(self) -> None:
        return None

    def wait_for_events(self, timeout: float) -> None:
        # Writes in this process set the event; other processes' are polled.
        self._wake.wait(timeout)
        self._wake.clear()

    def close(self) -> None:
        for handle in self._files.values():
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
        self._files.clear()


class AdvisoryLeases(Leases):
    """PostgreSQL: session advisory locks on a dedicated connection.

    The same connection LISTENs to the events table's channel (the store
    NOTIFYs on every insert), so a held projection wakes as soon as events
    are committed.
    """

    def __init__(self, location: StoreLocation, channel: str) -> None:
        self._location = location
        self._connection = psycopg.connect(
            location.conninfo,
            autocommit=True,
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
            connect_timeout=5,
        )
        self._connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        self._held: set[str] = set()
        self._checked = time.monotonic()

    def try_acquire(self, name: str) -> bool:
        if name in self._held:
            return True
        key = f"headwater projection {self._location.schema}:{name}"
        row = self._connection.execute(
            "SELECT pg_try_advisory_lock(hashtext(%s))", (key,)
        ).fetchone()
        if row is not None and row[0]:
            self._held.add(name)
            logger.info("holding projection %s", name)
            return True
        return False

    def check(self) -> None:
        if time.monotonic() - self._checked > LEASE_CHECK_SECONDS:
            self._connection.execute("SELECT 1")
            self._checked = time.monotonic()

    def wait_for_events(self, timeout: float) -> None:
        for _ in self._connection.notifies(timeout=timeout, stop_after=1):
            break

    def close(self) -> None:
        self._held.clear()
        self._connection.close()


@dataclass
class _Target:
    projection: Projection
    generation: int
    position: int
    building: bool


class Projector:
    """Runs every projection whose lease this process holds."""

    def __init__(
        self,
        registry: Registry,
        source: Source,
        leases: Leases,
        names: Sequence[str],
        *,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        self._registry = registry
        self._source = source
        self._leases = leases
        self._names = list(names)
        self._on_progress = on_progress
        self._lease_tried = 0.0
        #: Next pages, read while the last ones are applied, by (after,
        #: limit): one for the live projections, one for those being rebuilt.
        #: Catching up, reading and writing overlap.
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="projection-reader")
        self._ahead: dict[tuple[int, int], Future[list[StoredView]]] = {}

    def close(self) -> None:
        """Give up the leases."""
        self._ahead.clear()
        self._reader.shutdown(wait=False, cancel_futures=True)
        self._leases.close()

    def _read(self, after: int, limit: int) -> list[StoredView]:
        return [
            StoredView.of(n) for n in self._source.read_stored(after=after, limit=limit)
        ]

    def _page(self, after: int, limit: int) -> list[StoredView]:
        """The events after `after`; starts reading the page after them.

        A page read ahead is used only if it came back full: positions
        commit in order, so a full page is exactly what a read now would
        give, while a short or empty one may predate later commits.
        """
        ahead = self._ahead.pop((after, limit), None)
        # A page read ahead for another start is of no use any more.
        for stale in [key for key in self._ahead if key[1] == limit]:
            del self._ahead[stale]
        events: list[StoredView] | None = None
        if ahead is not None:
            page = ahead.result()
            events = page if len(page) == limit else None
        if events is None:
            events = self._read(after, limit)
        if len(events) == limit:
            following = (events[-1].position, limit)
            self._ahead[following] = self._reader.submit(self._read, *following)
        return events

    def run(self, stop: threading.Event) -> None:
        """Project until `stop` is set; raises on failure (see `Supervisor`)."""
        held: list[str] = []
        while not stop.is_set():
            self._leases.check()
            if len(held) < len(self._names) and (
                time.monotonic() - self._lease_tried > LEASE_RETRY_SECONDS
            ):
                held = [n for n in self._names if self._leases.try_acquire(n)]
                self._lease_tried = time.monotonic()
            if held and self.step(held):
                # Let a few more events arrive: bigger pages, fewer commits.
                stop.wait(GATHER_SECONDS)
            else:
                self._leases.wait_for_events(
                    IDLE_WAIT_SECONDS if held else LEASE_RETRY_SECONDS
                )

    def step(self, held: Sequence[str]) -> bool:
        """One pass over the held projections; True if anything moved."""
        states = self._registry.states(held)
        for name, state in states.items():
            if state.rebuild_requested and state.building_generation is None:
                self._registry.start_building(name)
                logger.info("rebuilding projection %s from zero", name)
        if any(s.rebuild_requested for s in states.values()):
            states = self._registry.states(held)
        live: list[_Target] = []
        building: list[_Target] = []
        for name, state in states.items():
            projection = self._registry.projections[name]
            live.append(
                _Target(projection, state.live_generation, state.live_position, False)
            )
            if state.building_generation is not None:
                building.append(
                    _Target(
                        projection,
                        state.building_generation,
                        state.building_position or 0,
                        True,
                    )
                )
        head = self._source.head()
        moved = self._feed(live, head, LIVE_PAGE)
        moved = self._feed(building, head, REBUILD_PAGE) or moved
        for target in building:
            live_position = next(
                t.position for t in live if t.projection is target.projection
            )
            if target.position >= live_position:
                self._registry.switch(target.projection.name, target.generation)
                logger.info(
                    "projection %s rebuilt through position %d and switched",
                    target.projection.name,
                    target.position,
                )
                moved = True
        if moved and self._on_progress is not None:
            self._on_progress()
        return moved

    def _feed(self, targets: list[_Target], head: int, page: int) -> bool:
        """Read once from the furthest-behind target; feed each its part, all
        in one transaction."""
        behind = [t for t in targets if t.position < head]
        if not behind:
            return False
        start = min(t.position for t in behind)
        events = self._page(start, page)
        # No events: positions past the last event (rolled-back ids), so
        # catch up to the head read before.
        end = events[-1].position if events else head
        steps = [
            Step(
                target.projection,
                target.generation,
                [e for e in events if e.position > target.position],
                target.position,
                max(end, target.position),
            )
            for target in behind
            if max(end, target.position) > target.position
        ]
        if not steps:
            return False
        self._registry.apply_many(steps)
        for target in behind:
            target.position = max(end, target.position)
        return True


class Task(Protocol):
    """Work a supervisor keeps running: it runs until stopped, or fails."""

    def run(self, stop: threading.Event) -> None: ...

    def close(self) -> None: ...


class Supervisor:
    """Runs a task (a projector, a delivery worker) in a thread, and restarts
    it with backoff when it fails."""

    def __init__(self, make: Callable[[], Task], *, name: str = "projector") -> None:
        self._make = make
        self._name = name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        # In the foreground (`run_in_foreground`) there is no thread to join;
        # joining one that never started would raise inside a signal handler.
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def run_in_foreground(self) -> None:
        self._run()

    def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._stop.is_set():
            started = time.monotonic()
            task: Task | None = None
            try:
                task = self._make()
                task.run(self._stop)
            except Exception as error:  # restart whatever failed
                if time.monotonic() - started > HEALTHY_SECONDS:
                    backoff = BACKOFF_FIRST
                logger.warning(
                    "%s failed (%s: %s); restarting in %.1f s",
                    self._name,
                    type(error).__name__,
                    error,
                    backoff,
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            finally:
                if task is not None:
                    _close_quietly(task)


def _close_quietly(task: Task) -> None:
    try:
        task.close()
    except Exception:  # a connection may be gone already
        logger.debug("closing %s failed", type(task).__name__, exc_info=True)
