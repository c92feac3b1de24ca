"""Watching and steering deliveries (CONTRACT 3.2, 4, 5): the listing and its
filters, who may list and retry, retrying a dead letter, and a service
without a channel, which keeps its deliveries pending and says so."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Final

import pytest
from starlette.testclient import TestClient

from api.bootstrap import build
from api.settings import Settings, SettingsError
from domain.access import Role
from domain.delivery import DeliveryRetryRequested
from tests.delivery.conftest import (
    ACTIVITY,
    DELIVERIES,
    MESSAGES,
    SECRET,
    Json,
    Service,
    Triggered,
    shut_down,
)
from tests.support.receiver import OK, REFUSED, Receiver, slow
from tests.support.server import environment, free_port, headwater_command

ANN: Final = "ann@example.com"
BO: Final = "bo@example.com"
DEAD: Final = "dead@example.com"
UNKNOWN: Final = "4a3c2b1d-0000-4000-8000-000000000001"
WEBHOOK: Final = "https://mail.example.com/hooks/headwater"
#: A service without a channel: parametrizing the fixture overrides it.
WITHOUT_A_CHANNEL: Final = pytest.mark.parametrize("webhook_url", [None])


def ids(page: Json) -> list[str]:
    return [item["id"] for item in page["items"]]


def dead_letter(service: Service, endpoint: Json, receiver: Receiver) -> Triggered:
    """A delivery the receiver refused, now dead."""
    receiver.answer(REFUSED)
    triggered = service.trigger(endpoint, DEAD)
    service.wait_for_status(triggered.delivery_id, "dead")
    return triggered


def retry(admin: TestClient, delivery_id: str) -> Json:
    answer = admin.post(f"{DELIVERIES}/{delivery_id}/retry")
    assert answer.status_code == 200, answer.text
    retried: Json = answer.json()
    return retried


# -- the listing


@pytest.mark.usefixtures("started")
def test_the_listing_filters_by_status(
    service: Service, endpoint: Json, receiver: Receiver
) -> None:
    receiver.decide(lambda r: REFUSED if r.json()["email"] == DEAD else None)
    delivered = service.trigger(endpoint, ANN)
    dead = service.trigger(endpoint, DEAD)
    service.wait_for_status(delivered.delivery_id, "delivered")
    service.wait_for_status(dead.delivery_id, "dead")

    by_status = {s: ids(service.listing(status=s)) for s in ("dead", "delivered")}

    assert by_status == {
        "dead": [dead.delivery_id],
        "delivered": [delivered.delivery_id],
    }


@WITHOUT_A_CHANNEL
@pytest.mark.usefixtures("started")
def test_the_listing_filters_by_activity(service: Service, endpoint: Json) -> None:
    other = service.open_endpoint({**MESSAGES, "triggerActivityId": ACTIVITY + 1})
    service.trigger(endpoint, ANN)
    wanted = service.trigger(other, BO)
    service.wait_for_status(wanted.delivery_id, "pending")

    page = service.listing(activityId=ACTIVITY + 1)

    assert ids(page) == [wanted.delivery_id]
    assert page["items"][0]["activityId"] == ACTIVITY + 1


@WITHOUT_A_CHANNEL
@pytest.mark.usefixtures("started")
def test_the_listing_filters_by_subscriber(service: Service, endpoint: Json) -> None:
    wanted = service.trigger(endpoint, ANN)
    other = service.trigger(endpoint, BO)
    service.wait_for_status(other.delivery_id, "pending")

    page = service.listing(subscriberId=wanted.subscriber_id)

    assert ids(page) == [wanted.delivery_id]


@WITHOUT_A_CHANNEL
@pytest.mark.usefixtures("started")
def test_the_listing_pages_oldest_first_with_a_cursor(
    service: Service, endpoint: Json
) -> None:
    triggered = [service.trigger(endpoint, f"p{n}@example.com") for n in range(3)]
    service.wait_for_status(triggered[-1].delivery_id, "pending")

    first = service.listing(limit=2)
    second = service.listing(limit=2, cursor=first["nextCursor"])

    assert ids(first) + ids(second) == [t.delivery_id for t in triggered]
    assert len(ids(first)) == 2
    assert second["nextCursor"] is None


def test_an_unknown_status_filter_is_refused_with_400(admin: TestClient) -> None:
    answer = admin.get(DELIVERIES, params={"status": "lost"})

    assert answer.status_code == 400
    assert "pending" in answer.json()["detail"]


# -- who may


def test_an_auditor_may_list_deliveries(service: Service, client: TestClient) -> None:
    headers = service.headers_of(Role.AUDITOR)

    answer = client.get(DELIVERIES, headers=headers)

    assert answer.status_code == 200, answer.text


def test_an_integration_manager_may_not_list_deliveries(
    service: Service, client: TestClient
) -> None:
    headers = service.headers_of(Role.INTEGRATION_MANAGER)

    answer = client.get(DELIVERIES, headers=headers)

    assert answer.status_code == 403


@pytest.mark.parametrize(
    "role", [Role.AUDITOR, Role.INTEGRATION_MANAGER, Role.ANALYST], ids=str
)
@pytest.mark.usefixtures("started")
def test_only_an_admin_may_retry_a_delivery(
    service: Service, endpoint: Json, receiver: Receiver, client: TestClient, role: Role
) -> None:
    dead = dead_letter(service, endpoint, receiver)
    headers = service.headers_of(role)

    answer = client.post(f"{DELIVERIES}/{dead.delivery_id}/retry", headers=headers)

    assert answer.status_code == 403
    assert service.events(DeliveryRetryRequested) == []


# -- retrying a dead letter


@pytest.mark.usefixtures("started")
def test_retrying_a_dead_letter_makes_it_pending(
    service: Service, endpoint: Json, receiver: Receiver, admin: TestClient
) -> None:
    dead = dead_letter(service, endpoint, receiver)
    # The attempt the retry causes stays in flight while we look.
    receiver.answer(slow(1))

    retried = retry(admin, dead.delivery_id)

    assert retried["status"] == "pending"
    shown = service.listing(minPosition=retried["position"])["items"]
    assert [(d["id"], d["status"]) for d in shown] == [(dead.delivery_id, "pending")]
    (requested,) = service.events(DeliveryRetryRequested)
    assert requested.actor.kind == "token"


@pytest.mark.usefixtures("started")
def test_a_retried_dead_letter_is_delivered_once_the_receiver_recovers(
    service: Service, endpoint: Json, receiver: Receiver, admin: TestClient
) -> None:
    dead = dead_letter(service, endpoint, receiver)
    receiver.answer(OK)

    retry(admin, dead.delivery_id)

    service.wait_for_status(dead.delivery_id, "delivered")
    refused, accepted = receiver.of(dead.delivery_id)
    assert accepted.body == refused.body


@pytest.mark.usefixtures("started")
def test_retrying_a_delivered_delivery_is_a_conflict(
    service: Service, endpoint: Json, admin: TestClient
) -> None:
    triggered = service.trigger(endpoint, ANN)
    service.wait_for_status(triggered.delivery_id, "delivered")

    answer = admin.post(f"{DELIVERIES}/{triggered.delivery_id}/retry")

    assert answer.status_code == 409, answer.text
    assert service.events(DeliveryRetryRequested) == []


@WITHOUT_A_CHANNEL
@pytest.mark.usefixtures("started")
def test_retrying_a_pending_delivery_is_a_conflict(
    service: Service, endpoint: Json, admin: TestClient
) -> None:
    triggered = service.trigger(endpoint, ANN)
    service.wait_for_status(triggered.delivery_id, "pending")

    answer = admin.post(f"{DELIVERIES}/{triggered.delivery_id}/retry")

    assert answer.status_code == 409, answer.text


def test_retrying_an_unknown_delivery_is_not_found(admin: TestClient) -> None:
    answer = admin.post(f"{DELIVERIES}/{UNKNOWN}/retry")

    assert answer.status_code == 404, answer.text


# -- readiness, and a service without a channel


@WITHOUT_A_CHANNEL
@pytest.mark.usefixtures("started")
def test_without_a_channel_readyz_shows_no_channel_and_the_pending_count(
    service: Service, endpoint: Json, client: TestClient
) -> None:
    triggered = [service.trigger(endpoint, email) for email in (ANN, BO)]
    service.wait_for_status(triggered[-1].delivery_id, "pending")

    ready = client.get("/readyz")

    assert ready.status_code == 200
    assert ready.json()["deliveries"] == {"channel": "none", "pending": 2, "dead": 0}


@WITHOUT_A_CHANNEL
@pytest.mark.usefixtures("started")
def test_without_a_channel_a_delivery_stays_pending(
    service: Service, endpoint: Json
) -> None:
    triggered = service.trigger(endpoint, ANN)
    waiting = service.wait_for_status(triggered.delivery_id, "pending")

    # Longer than a worker would take to send it and record the outcome.
    time.sleep(2)

    assert service.delivery(triggered.delivery_id) == waiting
    assert waiting["attempts"] == 0


@WITHOUT_A_CHANNEL
@pytest.mark.usefixtures("started")
def test_a_waiting_delivery_is_sent_once_a_channel_is_configured(
    service: Service, endpoint: Json, settings: Settings, receiver: Receiver
) -> None:
    triggered = service.trigger(endpoint, ANN)
    service.wait_for_status(triggered.delivery_id, "pending")
    configured = settings.model_copy(
        update={"delivery_webhook_url": receiver.url, "delivery_signing_secret": SECRET}
    )

    restarted = build(configured)
    try:
        restarted.run_background()
        (request,) = receiver.wait_for(1)
    finally:
        shut_down(restarted)

    assert request.delivery_id == triggered.delivery_id


@pytest.mark.usefixtures("started")
def test_readyz_shows_the_webhook_channel_and_the_dead_count(
    service: Service, endpoint: Json, receiver: Receiver, client: TestClient
) -> None:
    dead_letter(service, endpoint, receiver)

    ready = client.get("/readyz")

    assert ready.json()["deliveries"] == {"channel": "webhook", "pending": 0, "dead": 1}


def test_settings_refuse_a_webhook_url_without_a_signing_secret(
    tmp_path: Path,
) -> None:
    environ = {"HEADWATER_DELIVERY_WEBHOOK_URL": WEBHOOK}

    with pytest.raises(SettingsError, match="HEADWATER_DELIVERY_SIGNING_SECRET"):
        Settings.from_environment(environ, home=tmp_path)


def test_settings_refuse_a_signing_secret_that_holds_no_secret(
    tmp_path: Path,
) -> None:
    environ = {
        "HEADWATER_DELIVERY_WEBHOOK_URL": WEBHOOK,
        "HEADWATER_DELIVERY_SIGNING_SECRET": " , ",
    }

    with pytest.raises(SettingsError, match="HEADWATER_DELIVERY_SIGNING_SECRET"):
        Settings.from_environment(environ, home=tmp_path)


@pytest.mark.parametrize(
    "secret", [{}, {"HEADWATER_DELIVERY_SIGNING_SECRET": " , "}], ids=["unset", "blank"]
)
def test_serve_refuses_to_start_with_a_webhook_url_but_no_signing_secret(
    tmp_path: Path, secret: dict[str, str]
) -> None:
    env = environment({"HEADWATER_DELIVERY_WEBHOOK_URL": WEBHOOK, **secret})

    finished = subprocess.run(
        [*headwater_command(), "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode != 0
    assert "HEADWATER_DELIVERY_SIGNING_SECRET" in finished.stderr
