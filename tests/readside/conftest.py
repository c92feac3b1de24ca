"""Fixtures for the read-side tests: endpoints set up through the admin API,
a public client with a known address and user agent, `headwater projector`
processes a test can kill, and ways to read back what the projections hold.

Tests that only read a scenario share one store per module and store kind
(`opened`); tests that change what they observe get a store of their own.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, TypeVar

import psycopg
import pytest
from starlette.testclient import TestClient

from api.bootstrap import Container, build
from api.http.app import create_app
from api.settings import Settings
from domain.access import Role
from domain.model import Actor
from domain.submission import SubmissionDeduplicated
from infrastructure.eventstore import APPLICATION_NAME
from infrastructure.projections.base import Registry, StoredView
from infrastructure.projections.catalog import NAMES
from infrastructure.projections.runner import (
    AdvisoryLeases,
    FileLeases,
    Leases,
    Projector,
    Source,
    Supervisor,
)
from tests.conftest import TEST_SECRET_KEY
from tests.support.public import Public
from tests.support.server import environment, headwater_command

STORES: Final = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
INTEGRATIONS: Final = "/admin/v1/integrations"
INTEGRATION_TYPE: Final = "v5-api-endpoint-unauthenticated"
#: Where public submissions come from, as the audit should show it.
CLIENT_IP: Final = "192.0.2.44"
USER_AGENT: Final = "readside-tests/1.0"
#: An endpoint that may create and update profiles and log events, and says
#: what it did.
OPEN: Final[dict[str, Any]] = {
    "allowProfileCreation": True,
    "allowProfileUpdates": True,
    "allowEventLogging": True,
    "detailedResponses": True,
}
CATCH_UP_SECONDS: Final = 30.0

T = TypeVar("T")

Json = dict[str, Any]
TokenFor = Callable[[str], dict[str, str]]


class Endpoints:
    """Creates, saves, activates and changes integrations through the admin API."""

    def __init__(self, admin: TestClient) -> None:
        self.admin = admin

    def open(
        self,
        configuration: Json | None = None,
        *,
        name: str = "Signup",
        active: bool = True,
    ) -> Json:
        """A saved integration with `configuration`; active unless told not."""
        created = self.admin.post(
            INTEGRATIONS, json={"name": name, "type": INTEGRATION_TYPE}
        )
        assert created.status_code == 201, created.text
        integration = self.save(created.json(), {"name": name, **(configuration or {})})
        if active:
            integration = self.lifecycle(integration, "activate")
        return integration

    def save(self, integration: Json, configuration: Json) -> Json:
        answer = self.admin.put(
            f"{INTEGRATIONS}/{integration['id']}", json=configuration
        )
        assert answer.status_code == 200, answer.text
        saved: Json = answer.json()
        return saved

    def lifecycle(self, integration: Json, step: str) -> Json:
        """`activate`, `deactivate` or `rotate-endpoint`."""
        answer = self.admin.post(f"{INTEGRATIONS}/{integration['id']}/{step}")
        assert answer.status_code == 200, answer.text
        changed: Json = answer.json()
        return changed


def public_client(container: Container) -> TestClient:
    return TestClient(
        create_app(container),
        client=(CLIENT_IP, 50000),
        headers={"User-Agent": USER_AGENT},
    )


def tokens_for(container: Container) -> TokenFor:
    """Authorization headers for a new token of a role, named `<role> token`."""

    def headers(role: str) -> dict[str, str]:
        issued = container.tokens.issue(
            name=f"{role} token", role=Role(role), expires_at=None, actor=Actor.system()
        )
        return {"Authorization": f"Bearer {issued.secret}"}

    return headers


@dataclass
class World:
    """A store with an admin client, a public client and the container."""

    container: Container
    admin: TestClient
    public: Public
    endpoints: Endpoints
    token_for: TokenFor
    #: Anything a scenario wants to remember for its tests.
    facts: Json = field(default_factory=dict)


@contextmanager
def opened(settings: Settings, *, projections: bool = True) -> Iterator[World]:
    """A world on a fresh store, with its projections running in a background
    thread of this process unless `projections` is false."""
    container = build(settings)
    try:
        issued = container.tokens.issue_first_admin()
        assert issued is not None
        with (
            TestClient(create_app(container)) as admin,
            public_client(container) as public,
        ):
            admin.headers["Authorization"] = f"Bearer {issued.secret}"
            if projections:
                container.run_projections()
            yield World(
                container,
                admin,
                Public(public),
                Endpoints(admin),
                tokens_for(container),
            )
    finally:
        wake_to_stop(container)
        container.close()


def wake_to_stop(container: Container) -> None:
    """Ask the container's background projectors to stop, and wake them from
    their idle wait so that they stop now rather than within a second."""
    for supervisor in container.supervisors:
        supervisor.stop(timeout=0)
    container.recorded.set()
    if container.location.dialect == "postgres":
        with psycopg.connect(container.location.conninfo, autocommit=True) as wake:
            wake.execute(f"NOTIFY {APPLICATION_NAME.lower()}_events".encode())


def fresh_settings(kind: str, folder: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings for a new, empty store of one kind under `folder`."""
    if kind == "sqlite":
        url = f"sqlite:///{folder}/var/headwater.db"
    else:
        database: str = request.getfixturevalue("postgres_database")
        url = f"{database}?schema=t_{uuid.uuid4().hex[:12]}"
    return Settings(database_url=url, secret_key=TEST_SECRET_KEY, home=folder)


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    """A fresh store whose projections run in this process."""
    with opened(settings) as running:
        yield running


@pytest.fixture
def still(settings: Settings) -> Iterator[World]:
    """A fresh store where no projection runs unless the test runs it."""
    with opened(settings, projections=False) as quiet:
        yield quiet


def leases_for(container: Container) -> Leases:
    """Leases of a new projector on the container's store, as `serve` and
    `headwater projector` take them."""
    location = container.location
    if location.dialect == "postgres":
        return AdvisoryLeases(location, channel=f"{APPLICATION_NAME.lower()}_events")
    assert location.path is not None
    return FileLeases(location.path.parent, container.recorded)


def supervise(container: Container, source: Source) -> Supervisor:
    """Run every projection under a supervisor, reading events from `source`
    (the store, or a stand-in around it); stopped with the container."""
    supervisor = Supervisor(
        lambda: Projector(container.registry, source, leases_for(container), NAMES)
    )
    container.supervisors.append(supervisor)
    supervisor.start()
    return supervisor


# -- reading back


def caught_up(
    container: Container,
    names: Sequence[str] = NAMES,
    *,
    timeout: float = CATCH_UP_SECONDS,
) -> int:
    """Wait until every projection in `names` has applied the head; the head."""
    head = container.events.head()
    for name in names:
        container.read_side.wait_for(name, head, timeout=timeout)
    return head


def eventually(read: Callable[[], T], done: Callable[[T], bool]) -> T:
    """Read until `done` holds of the value read; fail after a while."""
    deadline = time.monotonic() + CATCH_UP_SECONDS
    while True:
        value = read()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"still {value!r}"
        time.sleep(0.05)


def stored_events(container: Container) -> list[StoredView]:
    """Every stored event, as projections see them (personal values sealed)."""
    events: list[StoredView] = []
    while True:
        after = events[-1].position if events else 0
        page = container.events.read_stored(after=after, limit=1000)
        if not page:
            return events
        events += [StoredView.of(n) for n in page]


def live_rows(registry: Registry) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every live read-model table, by `projection.table`."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with registry.database.reading() as cursor:
        for name, projection in registry.projections.items():
            tables, _ = registry.live_tables(cursor, name)
            for short in projection.tables:
                cursor.execute(f"SELECT * FROM {tables[short]} ORDER BY 1")
                rows[f"{name}.{short}"] = [tuple(row) for row in cursor.fetchall()]
    return rows


def dedupe_counts(registry: Registry) -> dict[str, int]:
    """Each dedupe window in the live read model and its duplicates count."""
    with registry.database.reading() as cursor:
        tables, _ = registry.live_tables(cursor, "dedupe")
        cursor.execute(f"SELECT window_id, duplicates FROM {tables['windows']}")
        return {str(window): int(count) for window, count in cursor.fetchall()}


def repeats_counted(registry: Registry) -> dict[str, int]:
    """Each dedupe window in the live read model that counted repeats."""
    return {window: count for window, count in dedupe_counts(registry).items() if count}


def repeats_recorded(container: Container) -> dict[str, int]:
    """Each dedupe window and the repeats the events say it turned away."""
    recorded = container.events.read(
        after=0, limit=100_000, types=[SubmissionDeduplicated]
    )
    return dict(
        Counter(
            str(r.event.dedupe_window_id)
            for r in recorded
            if isinstance(r.event, SubmissionDeduplicated)
        )
    )


# -- projector processes


@dataclass
class ProjectorProcess:
    """A running `headwater projector` and the file its stderr goes to."""

    process: subprocess.Popen[bytes]
    log: Path
    _stderr: IO[bytes]

    def kill(self) -> None:
        """SIGKILL: no clean-up, no released transaction, no goodbye."""
        self.process.kill()
        self.process.wait(timeout=10)
        self._stderr.close()

    def stop(self) -> int:
        """SIGTERM, and the exit code once it has stopped."""
        self.process.terminate()
        code = self.process.wait(timeout=20)
        self._stderr.close()
        return code

    @property
    def stderr(self) -> str:
        return self.log.read_text()


class Projectors:
    """Starts `headwater projector` processes on a store; kills leftovers."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self._settings = settings
        self._folder = folder
        self._started: list[ProjectorProcess] = []

    def start(self) -> ProjectorProcess:
        log = self._folder / f"projector-{len(self._started)}.log"
        stderr = log.open("wb")
        process = subprocess.Popen(
            [*headwater_command(), "projector"],
            cwd=self._settings.home,
            env=environment(
                {
                    "HEADWATER_DATABASE_URL": self._settings.database_url,
                    "HEADWATER_SECRET_KEY": TEST_SECRET_KEY,
                }
            ),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        started = ProjectorProcess(process, log, stderr)
        self._started.append(started)
        return started

    def close(self) -> None:
        for started in self._started:
            if started.process.poll() is None:
                started.kill()


@pytest.fixture
def projectors(settings: Settings, tmp_path: Path) -> Iterator[Projectors]:
    running = Projectors(settings, tmp_path)
    try:
        yield running
    finally:
        running.close()
