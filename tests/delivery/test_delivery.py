"""Handing a triggered message to the webhook (CONTRACT 3.2): one POST with
the contract's body, soon after the submission; its success is an event, and
the outbox never holds the person's details in clear."""

from __future__ import annotations

import sqlite3
import time
from typing import Any
from uuid import UUID

import psycopg
import pytest

from api.bootstrap import Container
from application.errors import ConcurrencyConflict
from domain.delivery import DeliveryReceipt, DeliverySucceeded
from tests.delivery.conftest import (
    ACTIVITY,
    LEASE_SECONDS,
    Json,
    Service,
)
from tests.support.receiver import Receiver

ANN = "ann@example.com"
PHONE = "+61412345678"
WITHOUT_A_CHANNEL = pytest.mark.parametrize("webhook_url", [None])


def outbox_rows(container: Container, columns: str = "*") -> list[tuple[Any, ...]]:
    """Rows of the outbox table, read with a connection of our own: on SQLite
    from the read-models file beside the store, on PostgreSQL from the
    store's schema."""
    location = container.location
    if location.dialect == "sqlite":
        assert location.path is not None
        file = location.path.with_name(f"{location.path.stem}-readmodels.db")
        assert file.exists(), file
        with sqlite3.connect(file) as connection:
            query = f"SELECT {columns} FROM deliveries_g1_outbox"
            return connection.execute(query).fetchall()
    with psycopg.connect(location.conninfo) as connection:
        query = f"SELECT {columns} FROM {location.schema}.deliveries_g1_outbox"
        return connection.execute(query.encode()).fetchall()


@pytest.mark.usefixtures("started")
def test_an_accepted_submission_is_delivered_with_exactly_the_contract_fields(
    service: Service, endpoint: Json, receiver: Receiver
) -> None:
    triggered = service.trigger(
        endpoint, ANN, request_content={"order": 7}, ref="A-1", phone=PHONE
    )

    (request,) = receiver.wait_for(1)

    assert request.json() == {
        "deliveryId": triggered.delivery_id,
        "activityId": ACTIVITY,
        "subscriberId": triggered.subscriber_id,
        "ref": "A-1",
        "email": ANN,
        "phone": PHONE,
        "requestContent": {"order": 7},
        "submissionId": triggered.submission_id,
        "integrationId": triggered.integration_id,
        "isTest": False,
    }


@pytest.mark.usefixtures("started")
def test_the_first_attempt_arrives_within_five_seconds_of_the_submission(
    service: Service, endpoint: Json, receiver: Receiver
) -> None:
    triggered = service.trigger(endpoint, ANN)

    (request,) = receiver.wait_for(1, timeout=5)

    assert request.at - triggered.submitted_at < 5


@pytest.mark.usefixtures("started")
def test_a_delivery_is_a_json_post_that_names_its_delivery_id(
    service: Service, endpoint: Json, receiver: Receiver
) -> None:
    triggered = service.trigger(endpoint, ANN)

    (request,) = receiver.wait_for(1)

    assert request.method == "POST"
    assert request.path == "/hooks/headwater"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["headwater-delivery-id"] == triggered.delivery_id
    assert request.headers["user-agent"] == "Headwater-Delivery/1"


@pytest.mark.usefixtures("started")
def test_a_delivery_the_receiver_accepts_is_posted_only_once(
    service: Service, endpoint: Json, receiver: Receiver
) -> None:
    triggered = service.trigger(endpoint, ANN)

    service.wait_for_status(triggered.delivery_id, "delivered")
    # Long enough for the lease to expire and the worker to look again.
    time.sleep(LEASE_SECONDS + 1.5)

    assert len(receiver.of(triggered.delivery_id)) == 1


@pytest.mark.usefixtures("started")
def test_a_delivered_message_shows_as_delivered_after_one_attempt(
    service: Service, endpoint: Json
) -> None:
    triggered = service.trigger(endpoint, ANN)

    shown = service.wait_for_status(triggered.delivery_id, "delivered")

    assert shown["attempts"] == 1
    assert shown["lastError"] is None
    assert shown["nextAttemptAt"] is None
    assert shown["subscriberId"] == triggered.subscriber_id
    assert shown["submissionId"] == triggered.submission_id
    assert shown["activityId"] == ACTIVITY


@pytest.mark.usefixtures("started")
def test_a_success_is_recorded_as_one_delivery_succeeded_event(
    service: Service, endpoint: Json
) -> None:
    triggered = service.trigger(endpoint, ANN)

    service.wait_for_status(triggered.delivery_id, "delivered")

    (succeeded,) = service.events(DeliverySucceeded)
    assert succeeded.delivery_id == UUID(triggered.delivery_id)
    assert succeeded.attempt == 1
    assert succeeded.status_code == 200


@pytest.mark.usefixtures("started")
def test_a_success_shows_in_the_audit_trail(service: Service, endpoint: Json) -> None:
    triggered = service.trigger(endpoint, ANN)

    entries = service.audit(
        "DeliverySucceeded", count=1, subject_id=triggered.delivery_id
    )

    assert [e["subjectType"] for e in entries] == ["delivery"]


def test_a_second_receipt_for_one_delivery_is_refused_by_the_store(
    container: Container,
) -> None:
    delivery_id = UUID("96b42d20-e0a8-4403-b576-ae5cad2fd9fa")
    container.events.save(
        DeliveryReceipt.record(delivery_id=delivery_id, attempt=1, status_code=200)
    )
    second = DeliveryReceipt.record(delivery_id=delivery_id, attempt=2, status_code=202)

    with pytest.raises(ConcurrencyConflict):
        container.events.save(second)

    stored = container.events.read(after=0, limit=100, types=[DeliverySucceeded])
    assert [r.event.originator_id for r in stored] == [
        DeliveryReceipt.id_for(delivery_id)
    ]


@WITHOUT_A_CHANNEL
def test_the_outbox_keeps_a_waiting_body_but_never_the_email_in_clear(
    started: Container, service: Service, endpoint: Json
) -> None:
    triggered = service.trigger(
        endpoint, ANN, request_content={"note": "secret-note"}, phone=PHONE
    )

    service.wait_for_status(triggered.delivery_id, "pending")

    ((body,),) = outbox_rows(started, "body")
    assert body is not None
    rows = outbox_rows(started)
    for clear in (ANN, PHONE, "secret-note"):
        assert not any(clear in str(value) for row in rows for value in row)


def test_the_outbox_drops_the_body_of_a_delivered_message(
    started: Container, service: Service, endpoint: Json
) -> None:
    triggered = service.trigger(endpoint, ANN)

    service.wait_for_status(triggered.delivery_id, "delivered")

    assert outbox_rows(started, "body") == [(None,)]
