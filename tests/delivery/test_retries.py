"""Retries and dead letters (CONTRACT 3.2, docs/delivery.md): server errors,
timeouts and 429 are retried, the first retry within 10 seconds and never
before `Retry-After`; a refusal is dead at once, and so is a delivery that
used up its attempts. Every attempt is an event in the audit trail, and a
failing receiver delays only its own deliveries."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta
from typing import Final
from uuid import UUID

import httpx
import pytest

from api.bootstrap import Container
from domain.delivery import DeliveryAttemptFailed, DeliveryDeadLettered
from infrastructure.webhook import WebhookChannel
from tests.delivery.conftest import MAX_ATTEMPTS, SECRET, Json, Service
from tests.support.receiver import (
    BROKEN,
    REFUSED,
    UNAVAILABLE,
    Received,
    Receiver,
    Reply,
    slow,
    too_many,
)

ANN: Final = "ann@example.com"
#: The client timeout of the tests that make the receiver too slow.
CLIENT_TIMEOUT: Final = 0.5
#: Longer than the slowest first retry (2 s), so that honouring it shows.
RETRY_AFTER_SECONDS: Final = 3


def use_client_timeout(container: Container, seconds: float) -> None:
    """Give up on the receiver after `seconds` (before the worker starts)."""
    assert container.channel is not None
    container.channel.close()
    container.channel = WebhookChannel(
        container.settings.delivery_webhook_url or "",
        [SECRET],
        client=httpx.Client(timeout=seconds),
    )


def failures_of(service: Service, delivery_id: str) -> list[DeliveryAttemptFailed]:
    return [
        event
        for event in service.events(DeliveryAttemptFailed)
        if event.originator_id == UUID(delivery_id)
    ]


@pytest.mark.usefixtures("started")
def test_the_body_is_the_same_bytes_on_every_attempt(
    service: Service, endpoint: Json, receiver: Receiver
) -> None:
    receiver.fail_times(2)

    triggered = service.trigger(endpoint, ANN, request_content={"a": [1, {"b": 2}]})

    attempts = receiver.wait_for(3, timeout=20)
    assert {r.delivery_id for r in attempts} == {triggered.delivery_id}
    assert len({r.body for r in attempts}) == 1


@pytest.mark.usefixtures("started")
def test_a_delivery_that_failed_once_ends_delivered_after_two_attempts(
    service: Service, endpoint: Json, receiver: Receiver
) -> None:
    receiver.fail_times(1)

    triggered = service.trigger(endpoint, ANN)

    shown = service.wait_for_status(triggered.delivery_id, "delivered")
    assert shown["attempts"] == 2
    assert shown["lastError"] == "HTTP 500"


@pytest.mark.usefixtures("started")
def test_the_first_retry_comes_within_ten_seconds(
    service: Service, endpoint: Json, receiver: Receiver
) -> None:
    receiver.fail_times(1)

    service.trigger(endpoint, ANN)

    first, retry = receiver.wait_for(2, timeout=12)
    assert retry.at - first.at < 10


@pytest.mark.parametrize("failure", [BROKEN, UNAVAILABLE], ids=["500", "503"])
@pytest.mark.usefixtures("started")
def test_a_server_error_is_retried(
    service: Service, endpoint: Json, receiver: Receiver, failure: Reply
) -> None:
    receiver.fail_times(1, failure)

    triggered = service.trigger(endpoint, ANN)

    service.wait_for_status(triggered.delivery_id, "delivered")
    assert len(receiver.of(triggered.delivery_id)) == 2
    (failed,) = failures_of(service, triggered.delivery_id)
    assert failed.status_code == failure.status
    assert failed.retry_at is not None


def test_an_attempt_that_times_out_is_retried(
    container: Container, service: Service, endpoint: Json, receiver: Receiver
) -> None:
    use_client_timeout(container, CLIENT_TIMEOUT)
    container.run_background()
    receiver.then(slow(3))

    triggered = service.trigger(endpoint, ANN)

    service.wait_for_status(triggered.delivery_id, "delivered")
    (failed,) = failures_of(service, triggered.delivery_id)
    assert failed.reason == "timed out"
    assert failed.status_code is None
    assert len(receiver.of(triggered.delivery_id)) == 2


@pytest.mark.usefixtures("started")
def test_a_429_is_retried_no_sooner_than_its_retry_after_seconds(
    service: Service, endpoint: Json, receiver: Receiver
) -> None:
    receiver.then(too_many(str(RETRY_AFTER_SECONDS)))

    service.trigger(endpoint, ANN)

    limited, retry = receiver.wait_for(2, timeout=15)
    assert retry.at - limited.at >= RETRY_AFTER_SECONDS


@pytest.mark.usefixtures("started")
def test_a_429_is_retried_no_sooner_than_its_retry_after_date(
    service: Service, endpoint: Json, receiver: Receiver
) -> None:
    # An HTTP date has whole seconds: one second more keeps three clear.
    moment = datetime.now(UTC) + timedelta(seconds=RETRY_AFTER_SECONDS + 1)
    receiver.then(too_many(email.utils.format_datetime(moment, usegmt=True)))

    service.trigger(endpoint, ANN)

    limited, retry = receiver.wait_for(2, timeout=15)
    assert retry.at - limited.at >= RETRY_AFTER_SECONDS


@pytest.mark.usefixtures("started")
def test_a_400_is_dead_at_once_without_a_retry(
    service: Service, endpoint: Json, receiver: Receiver
) -> None:
    receiver.answer(REFUSED)

    triggered = service.trigger(endpoint, ANN)

    shown = service.wait_for_status(triggered.delivery_id, "dead")
    assert shown["attempts"] == 1
    assert shown["lastError"] == "HTTP 400"
    assert len(receiver.of(triggered.delivery_id)) == 1
    (failed,) = failures_of(service, triggered.delivery_id)
    assert failed.retry_at is None


@pytest.mark.usefixtures("started")
def test_a_delivery_is_dead_after_the_attempt_limit(
    service: Service, endpoint: Json, receiver: Receiver
) -> None:
    receiver.answer(BROKEN)

    triggered = service.trigger(endpoint, ANN)

    shown = service.wait_for_status(triggered.delivery_id, "dead", timeout=30)
    assert shown["attempts"] == MAX_ATTEMPTS
    assert len(receiver.of(triggered.delivery_id)) == MAX_ATTEMPTS
    (dead,) = service.events(DeliveryDeadLettered)
    assert dead.originator_id == UUID(triggered.delivery_id)
    assert dead.attempts == MAX_ATTEMPTS


@pytest.mark.usefixtures("started")
def test_every_failed_attempt_shows_in_the_audit_trail(
    service: Service, endpoint: Json, receiver: Receiver
) -> None:
    receiver.fail_times(2)

    triggered = service.trigger(endpoint, ANN)

    failed = service.audit(
        "DeliveryAttemptFailed", count=2, subject_id=triggered.delivery_id
    )
    succeeded = service.audit(
        "DeliverySucceeded", count=1, subject_id=triggered.delivery_id
    )
    assert [e["details"]["attempt"] for e in failed] == [1, 2]
    assert [e["details"]["attempt"] for e in succeeded] == [3]


@pytest.mark.usefixtures("started")
def test_a_dead_letter_shows_in_the_audit_trail(
    service: Service, endpoint: Json, receiver: Receiver
) -> None:
    receiver.answer(REFUSED)

    triggered = service.trigger(endpoint, ANN)

    (dead,) = service.audit(
        "DeliveryDeadLettered", count=1, subject_id=triggered.delivery_id
    )
    assert dead["subjectType"] == "delivery"
    assert dead["details"]["reason"] == "HTTP 400"


def test_a_receiver_slow_for_one_subscriber_does_not_hold_up_another(
    container: Container, service: Service, endpoint: Json, receiver: Receiver
) -> None:
    given_up_after = 3.0
    use_client_timeout(container, given_up_after)
    container.run_background()
    receiver.decide(
        lambda request: (
            slow(30) if request.json()["email"] == "slow@example.com" else None
        )
    )
    slow_one = service.trigger(endpoint, "slow@example.com")
    (in_flight,) = receiver.wait_for(1)

    quick = [service.trigger(endpoint, f"quick{n}@example.com") for n in range(2)]

    quick_ids = {t.delivery_id for t in quick}

    def is_quick(request: Received) -> bool:
        return request.delivery_id in quick_ids

    arrived = receiver.wait_for(2, where=is_quick, timeout=given_up_after)
    assert in_flight.delivery_id == slow_one.delivery_id
    assert all(r.at < in_flight.at + given_up_after for r in arrived)
    assert failures_of(service, slow_one.delivery_id) == []
