"""Fixtures for the intake tests: endpoints set up through the admin API, a
public client that carries no credentials, and ways to submit at once from
many threads and to read back what the store recorded."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID, uuid4

import orjson
import pytest
from starlette.testclient import TestClient

from api.bootstrap import Container, build
from api.http.app import create_app
from api.settings import Settings
from application.ports import EventStore, Recorded
from application.submissions import (
    Answer,
    Command,
    Decider,
    RequestFacts,
    SubmissionWriter,
)
from domain.model import Aggregate, DomainEvent
from domain.submission import Mode
from domain.subscriber import Subscriber
from infrastructure.eventstore import LibraryEventStore
from tests.support.public import Public

INTEGRATIONS = "/admin/v1/integrations"
INTEGRATION_TYPE = "v5-api-endpoint-unauthenticated"
#: An endpoint that may create and update profiles and says what it did.
OPEN: dict[str, Any] = {
    "allowProfileCreation": True,
    "allowProfileUpdates": True,
    "detailedResponses": True,
}

Json = dict[str, Any]
E = TypeVar("E", bound=DomainEvent)
A = TypeVar("A", bound=Aggregate)
T = TypeVar("T")


class Endpoints:
    """Creates, saves and activates integrations through the admin API."""

    def __init__(self, admin: TestClient) -> None:
        self.admin = admin

    def open(self, configuration: Json | None = None, *, active: bool = True) -> Json:
        """A saved integration with `configuration`; active unless told not."""
        created = self.admin.post(
            INTEGRATIONS, json={"name": "Signup", "type": INTEGRATION_TYPE}
        )
        assert created.status_code == 201, created.text
        integration_id = created.json()["id"]
        saved = self.admin.put(
            f"{INTEGRATIONS}/{integration_id}",
            json={"name": "Signup", **(configuration or {})},
        )
        assert saved.status_code == 200, saved.text
        latest = saved
        if active:
            latest = self.admin.post(f"{INTEGRATIONS}/{integration_id}/activate")
            assert latest.status_code == 200, latest.text
        body: Json = latest.json()
        return body


@pytest.fixture
def endpoints(admin: TestClient) -> Endpoints:
    return Endpoints(admin)


@pytest.fixture
def public(container: Container) -> Iterator[Public]:
    """A client of its own: the `admin` fixture signs the shared one in."""
    with TestClient(create_app(container)) as client:
        yield Public(client)


@pytest.fixture
def second_process(settings: Settings) -> Iterator[Container]:
    """Another process on the same store: its own writer, pools and caches."""
    built = build(settings)
    try:
        yield built
    finally:
        built.close()


# -- reading back


def recorded(container: Container, *types: type[DomainEvent]) -> list[Recorded]:
    """Every event in the log (of `types`, if given), decoded and decrypted."""
    return container.events.read(after=0, limit=10_000, types=types)


def events_of(container: Container, kind: type[E]) -> list[E]:
    return [r.event for r in recorded(container, kind) if isinstance(r.event, kind)]


def found(container: Container, aggregate_id: UUID | str, kind: type[A]) -> A:
    """The aggregate as the store has it now; it must exist."""
    aggregate = container.events.find(UUID(str(aggregate_id)), kind)
    assert aggregate is not None, f"no {kind.__name__} {aggregate_id}"
    return aggregate


def subscriber_of(container: Container, answer: Json, index: int = 0) -> Subscriber:
    """The profile a detailed answer's result `index` names."""
    return found(container, answer["results"][index]["subscriberId"], Subscriber)


# -- submitting without HTTP


def command_for(
    container: Container,
    integration: Json,
    body: Any,
    *,
    mode: Mode = "production",
    idempotency_key: str | None = None,
    detailed: bool = True,
    client_ip: str | None = "192.0.2.10",
    received_at: datetime | None = None,
) -> Command:
    """The command the HTTP layer would build for a JSON submission."""
    found_integration = container.intake.endpoint(integration["endpointId"], mode)
    assert found_integration is not None
    facts = RequestFacts(
        endpoint_id=integration["endpointId"],
        mode=mode,
        received_at=received_at or container.clock.now(),
        client_ip=client_ip,
        user_agent="intake-tests",
        idempotency_key=idempotency_key,
        body_digest=container.fingerprints.of(
            "body", orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        ),
        detailed=detailed,
    )
    return container.intake.prepare(found_integration, facts, body)


def decided(writer: SubmissionWriter, command: Command) -> Answer:
    return writer.submit(command).result(timeout=60)


def at_once(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run every call in a thread of its own, all released together."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result(timeout=120) for future in futures]


class InterruptedStore:
    """The real store, with something done just before each batch is recorded.

    It stands for the moment a submission is decided but not yet committed,
    so a test can act while the submission is in flight: queue a repeat, or
    let another process commit first. Reads and writes go to the real store.
    """

    def __init__(
        self,
        store: LibraryEventStore,
        before_record: Callable[[], None],
        *,
        times: int | None = 1,
    ) -> None:
        self._store = store
        self._before_record = before_record
        self._times = times
        self.records = 0

    def record(
        self, *aggregates: Aggregate, new_keys: object = None
    ) -> dict[UUID, int]:
        self.records += 1
        if self._times is None or self.records <= self._times:
            self._before_record()
        return self._store.record(*aggregates, new_keys=new_keys)

    def find(self, aggregate_id: UUID, kind: type[A]) -> A | None:
        return self._store.find(aggregate_id, kind)

    def find_many(self, aggregate_ids: Sequence[UUID]) -> dict[UUID, Aggregate]:
        return self._store.find_many(aggregate_ids)

    def versions(self, aggregate_ids: Sequence[UUID]) -> dict[UUID, int]:
        return self._store.versions(aggregate_ids)

    def find_as_of(self, aggregate_id: UUID, kind: type[A], at: datetime) -> A | None:
        return self._store.find_as_of(aggregate_id, kind, at)

    def history(self, aggregate_id: UUID) -> list[DomainEvent]:
        return self._store.history(aggregate_id)

    def save(self, *aggregates: Aggregate) -> int | None:
        return self._store.save(*aggregates)

    def read(
        self, *, after: int, limit: int, types: Sequence[type[DomainEvent]] = ()
    ) -> list[Recorded]:
        return self._store.read(after=after, limit=limit, types=types)

    def head(self) -> int:
        return self._store.head()


def interrupted_writer(
    container: Container,
    store: EventStore,
    *,
    on_batch: Callable[[int], None] | None = None,
) -> SubmissionWriter:
    """A writer like the container's own, recording through `store`."""
    decider = Decider(
        container.fingerprints,
        container.clock,
        trigger_limit=container.settings.trigger_limit,
    )
    return SubmissionWriter(store, container.keys, decider, on_batch=on_batch)


def another_store(settings: Settings, tmp_path: Path) -> Settings:
    """Settings for a second, empty store of the same kind."""
    if settings.database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path}/other/headwater.db"
    else:
        url = settings.database_url.split("?")[0] + f"?schema=o_{uuid4().hex[:12]}"
    return settings.model_copy(update={"database_url": url})
