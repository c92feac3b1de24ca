"""Crashes and several workers (docs/delivery.md, "Crashes"): a `headwater
serve` killed in the middle of a send makes the delivery again, with the
same id, once its lease expires; several workers on one PostgreSQL store
share the deliveries, and none is recorded delivered twice."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from api.bootstrap import Container, build
from api.http.app import create_app
from api.settings import Settings
from domain.delivery import DeliverySucceeded
from infrastructure.webhook import WebhookChannel
from tests.conftest import TEST_SECRET_KEY
from tests.delivery.conftest import (
    DELIVERIES,
    INTEGRATION_TYPE,
    INTEGRATIONS,
    LEASE_SECONDS,
    MAX_ATTEMPTS,
    MESSAGES,
    PATIENCE,
    SECRET,
    Json,
    Service,
    Triggered,
    eventually,
    shut_down,
)
from tests.support.receiver import Received, Receiver, slow
from tests.support.server import LiveServer, start_server

#: Deliveries shared by the workers; more than one worker sends at once.
SHARED: Final = 12
WORKERS: Final = ("a", "b")


# -- a killed server


def serve(tmp_path: Path, database_url: str, receiver: Receiver) -> LiveServer:
    return start_server(
        tmp_path,
        {
            "HEADWATER_DATABASE_URL": database_url,
            "HEADWATER_SECRET_KEY": TEST_SECRET_KEY,
            "HEADWATER_DELIVERY_WEBHOOK_URL": receiver.url,
            "HEADWATER_DELIVERY_SIGNING_SECRET": SECRET,
            "HEADWATER_DELIVERY_LEASE_SECONDS": str(LEASE_SECONDS),
        },
    )


def open_endpoint(http: httpx.Client) -> Json:
    created = http.post(INTEGRATIONS, json={"name": "Signup", "type": INTEGRATION_TYPE})
    assert created.status_code == 201, created.text
    integration_id = created.json()["id"]
    saved = http.put(
        f"{INTEGRATIONS}/{integration_id}", json={"name": "Signup", **MESSAGES}
    )
    assert saved.status_code == 200, saved.text
    activated = http.post(f"{INTEGRATIONS}/{integration_id}/activate")
    assert activated.status_code == 200, activated.text
    integration: Json = activated.json()
    return integration


def status_over_http(http: httpx.Client, delivery_id: str) -> str | None:
    items = http.get(DELIVERIES, params={"limit": 500}).json()["items"]
    return next((d["status"] for d in items if d["id"] == delivery_id), None)


def kill(server: LiveServer) -> None:
    """SIGKILL: no shutdown, no chance to finish or give anything back."""
    server.process.kill()
    server.process.wait(timeout=30)
    server.stop()


def test_a_send_cut_off_by_a_killed_server_is_made_again_and_ends_delivered(
    tmp_path: Path, database_url: str, receiver: Receiver
) -> None:
    receiver.then(slow(60))
    first = serve(tmp_path, database_url, receiver)
    try:
        token = first.admin_token
        assert token is not None, first.output
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=first.base_url, headers=auth) as http:
            endpoint = open_endpoint(http)
            submitted = http.post(
                f"/v5/endpoints/{endpoint['endpointId']}",
                json={"profile": {"email": "ann@example.com"}},
            )
            assert submitted.status_code == 200, submitted.text
        (cut_off,) = receiver.wait_for(1)
    finally:
        kill(first)

    restarted = serve(tmp_path, database_url, receiver)
    try:
        with httpx.Client(base_url=restarted.base_url, headers=auth) as http:
            (again,) = receiver.wait_for(
                1, where=lambda r: r is not cut_off, timeout=PATIENCE
            )
            eventually(
                lambda: (
                    status_over_http(http, cut_off.delivery_id) == "delivered" or None
                ),
                timeout=PATIENCE,
                what="the delivery to be delivered",
            )
    finally:
        restarted.stop()

    assert again.delivery_id == cut_off.delivery_id
    assert again.body == cut_off.body


# -- several workers on one PostgreSQL store


@dataclass
class Shared:
    """What several workers did with deliveries they shared."""

    triggered: list[Triggered]
    received: list[Received]
    service: Service

    def worker_of(self, request: Received) -> str:
        return parse_qs(urlsplit(request.path).query)["worker"][0]


@pytest.fixture
def postgres_settings(
    postgres_database: str, tmp_path: Path, receiver: Receiver
) -> Settings:
    return Settings(
        database_url=f"{postgres_database}?schema=w_{uuid.uuid4().hex[:12]}",
        secret_key=TEST_SECRET_KEY,
        home=tmp_path,
        delivery_webhook_url=receiver.url,
        delivery_signing_secret=SECRET,
        delivery_lease_seconds=LEASE_SECONDS,
        delivery_max_attempts=MAX_ATTEMPTS,
    )


@pytest.fixture
def workers(postgres_settings: Settings) -> Iterator[list[Container]]:
    """Two processes' services on one store, each with its own worker whose
    requests say which worker sent them."""
    built = [build(postgres_settings) for _ in WORKERS]
    try:
        for name, container in zip(WORKERS, built, strict=True):
            assert container.channel is not None
            container.channel.close()
            container.channel = WebhookChannel(
                f"{postgres_settings.delivery_webhook_url}?worker={name}", [SECRET]
            )
        yield built
    finally:
        for container in built:
            shut_down(container)


@pytest.fixture
def shared(workers: list[Container], receiver: Receiver) -> Iterator[Shared]:
    """SHARED deliveries made by the workers, each taking a second to answer."""
    receiver.answer(slow(1.0))
    for container in workers:
        container.run_background()
    first = workers[0]
    issued = first.tokens.issue_first_admin()
    assert issued is not None
    with TestClient(create_app(first)) as admin:
        admin.headers["Authorization"] = f"Bearer {issued.secret}"
        service = Service(first, admin)
        endpoint = service.open_endpoint()
        triggered = [
            service.trigger(endpoint, f"p{n}@example.com") for n in range(SHARED)
        ]
        for each in triggered:
            service.wait_for_status(each.delivery_id, "delivered", timeout=30)
        yield Shared(triggered, receiver.received, service)


@pytest.mark.postgres
def test_several_workers_on_one_store_share_the_deliveries(shared: Shared) -> None:
    senders = Counter(shared.worker_of(request) for request in shared.received)

    assert set(senders) == set(WORKERS), senders


@pytest.mark.postgres
def test_several_workers_on_one_store_record_each_delivery_delivered_once(
    shared: Shared,
) -> None:
    successes = Counter(
        str(event.delivery_id) for event in shared.service.events(DeliverySucceeded)
    )

    assert successes == Counter(t.delivery_id for t in shared.triggered)


@pytest.mark.postgres
def test_several_live_workers_never_send_one_delivery_twice(shared: Shared) -> None:
    sent = Counter(request.delivery_id for request in shared.received)

    assert sent == Counter(t.delivery_id for t in shared.triggered)
