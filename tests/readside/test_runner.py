"""Running projections (CONTRACT 3 and 5): exactly once and resumable after a
`headwater projector` is killed; one holder per projection, with a standby
that takes over; a supervisor that restarts a failed projector with backoff,
also after PostgreSQL has terminated every connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Final, TypeVar

import psycopg
import pytest
from eventsourcing.persistence import Notification

from api.bootstrap import Container
from application.errors import StoreUnavailable
from domain.subscriber import SubscriberRegistered
from infrastructure.eventstore import LibraryEventStore
from infrastructure.projections import runner
from infrastructure.projections.catalog import NAMES
from infrastructure.projections.runner import BACKOFF_FIRST
from tests.readside.conftest import (
    OPEN,
    Json,
    Projectors,
    World,
    caught_up,
    eventually,
    fresh_settings,
    leases_for,
    live_rows,
    opened,
    repeats_counted,
    repeats_recorded,
    stored_events,
    supervise,
)

T = TypeVar("T")
STREAMING: Final[Json] = {**OPEN, "dedupePeriodSeconds": 60}


def audit_position(container: Container) -> int:
    return container.registry.state("audit").live_position


def subscriber_ids(container: Container) -> set[str]:
    recorded = container.events.read(
        after=0, limit=100_000, types=[SubscriberRegistered]
    )
    return {str(r.event.originator_id) for r in recorded}


def profile_ids(container: Container) -> set[str]:
    return {
        str(row[0]) for row in live_rows(container.registry)["subscribers.profiles"]
    }


def audit_positions(container: Container) -> list[int]:
    return [int(row[0]) for row in live_rows(container.registry)["audit.entries"]]


class Stream:
    """Submissions written one after another in a thread until stopped; each
    body is sent twice under one Idempotency-Key, so half are repeats."""

    def __init__(self, world: World, integration: Json) -> None:
        self._world = world
        self._integration = integration
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)
        self.sent = 0

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _write(self) -> None:
        while not self._stop.is_set():
            number = self.sent // 2
            self._world.public.accepted(
                self._integration,
                [
                    {"profile": {"email": f"p{number}@example.com"}},
                    {"event": {"type": "order", "data": {"n": number}}},
                ],
                headers={"Idempotency-Key": f"order-{number}"},
            )
            self.sent += 1


def assert_exactly_once(container: Container) -> None:
    assert audit_positions(container) == [e.position for e in stored_events(container)]
    assert profile_ids(container) == subscriber_ids(container)
    assert repeats_counted(container.registry) == repeats_recorded(container)


# -- killed and resumed


def test_a_projector_killed_mid_stream_resumes_without_duplicates_or_gaps(
    still: World, projectors: Projectors
) -> None:
    integration = still.endpoints.open(STREAMING)
    with Stream(still, integration) as stream:
        holder = projectors.start()
        reached = eventually(lambda: audit_position(still.container), bool)

        holder.kill()
        sent_at_kill = stream.sent
        eventually(lambda: stream.sent, lambda sent: sent > sent_at_kill + 4)
        projectors.start()
        eventually(lambda: audit_position(still.container), lambda p: p > reached)

    caught_up(still.container)
    assert_exactly_once(still.container)
    assert stream.sent > 10


# -- holders and standbys


def test_a_standby_cannot_take_a_projection_while_its_holder_lives(
    world: World,
) -> None:
    # The holder runs in this process's background thread; the standby's
    # leases are its own, as another process's would be.
    world.endpoints.open()
    caught_up(world.container)
    leases = leases_for(world.container)

    try:
        taken = [name for name in NAMES if leases.try_acquire(name)]
    finally:
        leases.close()

    assert taken == []


def test_a_standby_takes_over_and_catches_up_when_the_holder_is_killed(
    still: World, projectors: Projectors
) -> None:
    integration = still.endpoints.open(STREAMING)
    holder = projectors.start()
    still.public.accepted(integration, {"profile": {"email": "ann@example.com"}})
    caught_up(still.container)
    still.container.run_projections()

    holder.kill()
    for number in range(5):
        still.public.accepted(
            integration, {"profile": {"email": f"after-{number}@example.com"}}
        )

    caught_up(still.container)
    assert_exactly_once(still.container)
    assert len(profile_ids(still.container)) == 6


def test_the_projector_exits_cleanly_on_sigterm(
    still: World, projectors: Projectors
) -> None:
    running = projectors.start()
    still.endpoints.open()
    caught_up(still.container)

    code = running.stop()

    assert code == 0
    assert "projector failed" not in running.stderr
    assert "Traceback" not in running.stderr


# -- the supervisor


class FailingSource:
    """The real store, whose first reads fail as if the database were down;
    it notes when each read was attempted."""

    def __init__(self, store: LibraryEventStore, *, failures: int) -> None:
        self._store = store
        self._failures = failures
        self.attempts: list[float] = []

    def read_stored(self, *, after: int, limit: int) -> Sequence[Notification]:
        self.attempts.append(time.monotonic())
        if len(self.attempts) <= self._failures:
            raise StoreUnavailable("the store went away (a test's doing)")
        return self._store.read_stored(after=after, limit=limit)

    def head(self) -> int:
        return self._store.head()


def test_the_supervisor_restarts_a_failed_projector_which_then_catches_up(
    still: World,
) -> None:
    still.endpoints.open()
    source = FailingSource(still.container.events, failures=1)

    supervise(still.container, source)

    head = caught_up(still.container)
    assert len(source.attempts) >= 2
    assert audit_position(still.container) == head


def test_the_supervisor_waits_longer_after_each_failure(still: World) -> None:
    still.endpoints.open()
    source = FailingSource(still.container.events, failures=2)

    supervise(still.container, source)

    caught_up(still.container)
    first, second, third = source.attempts[:3]
    assert second - first >= BACKOFF_FIRST
    assert third - second >= 2 * BACKOFF_FIRST


@pytest.fixture
def on_postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """A world on a PostgreSQL store, projections running in this process."""
    with opened(fresh_settings("postgres", tmp_path, request)) as world:
        yield world


def retried(call: Callable[[], T]) -> T:
    """`call`, again while the store answers unavailable: a client's retry
    after the database dropped its connections."""
    for _ in range(20):
        try:
            return call()
        except StoreUnavailable:
            time.sleep(0.2)
    return call()


def submitted(world: World, integration: Json, email: str) -> Json:
    for _ in range(20):
        answer = world.public.submit(integration, {"profile": {"email": email}})
        if answer.status_code != 503:
            break
        time.sleep(0.2)
    assert answer.status_code == 200, answer.text
    accepted: Json = answer.json()
    return accepted


@pytest.mark.postgres
def test_projections_survive_postgres_terminating_every_connection(
    on_postgres: World,
) -> None:
    container = on_postgres.container
    integration = on_postgres.endpoints.open(OPEN)
    submitted(on_postgres, integration, "before@example.com")
    caught_up(container)
    location = container.location

    with psycopg.connect(location.conninfo, autocommit=True) as killer:
        terminated = killer.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    written = [
        submitted(on_postgres, integration, f"after-{n}@example.com") for n in range(3)
    ]

    head = max(answer["position"] for answer in written)
    reached = [retried(partial(container.read_side.wait_for, n, head)) for n in NAMES]
    assert len(terminated) >= 2
    assert min(reached) >= head
    assert retried(lambda: profile_ids(container)) == retried(
        lambda: subscriber_ids(container)
    )


# -- reading ahead


def test_a_page_read_ahead_before_later_commits_skips_none_of_them(
    still: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catching up, the projector reads the next page while it applies the
    last. Here that read comes back empty (the log ends on a full page);
    the events committed after it must still be applied, none skipped."""
    container = still.container
    integration = still.endpoints.open(OPEN)
    for number in range(3):
        still.public.accepted(integration, [{"profile": {"email": f"a{number}@x.org"}}])
    head = container.events.head()
    # A page is exactly the log so far: the page after it is read ahead, empty.
    monkeypatch.setattr(runner, "LIVE_PAGE", head)
    projector = runner.Projector(
        container.registry, container.events, leases_for(container), NAMES
    )
    try:
        assert projector.step(NAMES)
        assert audit_position(container) == head

        for number in range(3):
            still.public.accepted(
                integration, [{"profile": {"email": f"b{number}@x.org"}}]
            )
        while projector.step(NAMES):
            pass
    finally:
        projector.close()

    assert audit_position(container) == container.events.head()
    assert_exactly_once(container)


def test_pages_read_ahead_apply_every_event_once_and_in_order(
    still: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = still.container
    integration = still.endpoints.open(OPEN)
    for number in range(12):
        still.public.accepted(integration, [{"profile": {"email": f"c{number}@x.org"}}])
    # Small pages, so catching up takes several, each read ahead.
    monkeypatch.setattr(runner, "LIVE_PAGE", 5)
    projector = runner.Projector(
        container.registry, container.events, leases_for(container), NAMES
    )
    try:
        steps = 0
        while projector.step(NAMES):
            steps += 1
    finally:
        projector.close()

    assert steps >= container.events.head() // 5
    assert_exactly_once(container)
