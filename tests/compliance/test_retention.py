"""Retention of request metadata (CONTRACT 3.1, docs/compliance.md): client
IPs and user agents are sealed under a key per UTC day, and a day's key is
destroyed once the day is older than HEADWATER_REQUEST_METADATA_DAYS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time

import pytest

from api.bootstrap import Container, build
from api.settings import Settings
from domain.submission import SubmissionAccepted
from infrastructure.sealing import day_key_id
from tests.compliance.conftest import (
    CLIENT_IP,
    USER_AGENT,
    Json,
    MovableClock,
    Service,
    Submitted,
    marked_erased,
)

DAYS = 90


def day_of(service: Service, person: Submitted) -> date:
    """The UTC day whose key seals the submission's request metadata: the
    real day of the event, whatever the service's clock says."""
    (accepted,) = [
        r.event
        for r in service.container.events.read(
            after=0, limit=1000, types=[SubmissionAccepted]
        )
        if str(r.event.originator_id) == person.submission_id
    ]
    return accepted.timestamp.astimezone(UTC).date()


def noon(day: date) -> datetime:
    return datetime.combine(day, clock_time(12), tzinfo=UTC)


def submission_line(service: Service, person: Submitted) -> Json:
    (line,) = [
        line
        for line in service.event_log("SubmissionAccepted")
        if line["aggregateId"] == person.submission_id
    ]
    return line


def request_in_event_log(service: Service, person: Submitted) -> Json:
    request: Json = submission_line(service, person)["data"]["request"]
    return request


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"request_metadata_days": DAYS})


def test_request_metadata_of_the_current_day_still_reads_after_retention_runs(
    service: Service, person: Submitted
) -> None:
    destroyed = service.container.compliance.enforce_retention()

    assert destroyed == 0
    assert request_in_event_log(service, person) == {
        "clientIp": CLIENT_IP,
        "userAgent": USER_AGENT,
    }


def test_request_metadata_on_the_last_day_of_the_period_still_reads(
    service: Service, person: Submitted, clock: MovableClock
) -> None:
    clock.move_to(noon(day_of(service, person) + timedelta(days=DAYS)))

    destroyed = service.container.compliance.enforce_retention()

    assert destroyed == 0
    assert request_in_event_log(service, person) == {
        "clientIp": CLIENT_IP,
        "userAgent": USER_AGENT,
    }


def test_request_metadata_older_than_the_period_reads_as_null_in_the_event_log(
    service: Service, person: Submitted, clock: MovableClock
) -> None:
    clock.move_to(noon(day_of(service, person) + timedelta(days=DAYS + 1)))

    destroyed = service.container.compliance.enforce_retention()

    assert destroyed == 1
    line = submission_line(service, person)
    assert line["data"]["request"] == {"clientIp": None, "userAgent": None}
    assert marked_erased(line)


def test_request_metadata_older_than_the_period_reads_as_null_in_the_audit_trail(
    service: Service, person: Submitted, clock: MovableClock
) -> None:
    clock.move_to(noon(day_of(service, person) + timedelta(days=DAYS + 1)))

    service.container.compliance.enforce_retention()

    entries = [
        *service.audit(subjectId=person.submission_id),
        *service.audit(subjectId=person.subscriber_id),
    ]
    assert {e["action"] for e in entries} >= {"SubmissionAccepted", "ProfileChanged"}
    for entry in entries:
        assert entry["request"] == {"clientIp": None, "userAgent": None}
        assert entry["erased"] is True


def test_the_submission_and_the_profile_remain_after_their_metadata_expired(
    service: Service, person: Submitted, clock: MovableClock
) -> None:
    clock.move_to(noon(day_of(service, person) + timedelta(days=DAYS + 1)))

    service.container.compliance.enforce_retention()

    line = submission_line(service, person)
    results = line["data"]["results"]
    assert [r["outcome"] for r in results] == ["created", "logged", "triggered"]
    (changed,) = [
        e
        for e in service.audit(subjectId=person.subscriber_id)
        if e["action"] == "ProfileChanged"
    ]
    assert changed["changes"]["lastname"]["to"] == "Quarrendon"


def test_retention_destroys_only_the_day_keys_older_than_the_period(
    service: Service, clock: MovableClock
) -> None:
    keys = service.container.keys
    today = date(2031, 5, 20)
    clock.move_to(noon(today))
    cutoff = today - timedelta(days=DAYS)
    expired = [day_key_id(noon(cutoff - timedelta(days=n))) for n in (1, 400)]
    kept = [day_key_id(noon(d)) for d in (cutoff, today - timedelta(days=1), today)]
    subscriber = "0" * 31 + "1"
    keys.create([*expired, *kept, subscriber])

    destroyed = service.container.compliance.enforce_retention()

    assert destroyed == len(expired)
    remaining = keys.subjects("")
    assert [k for k in expired if k in remaining] == []
    assert [k for k in [*kept, subscriber] if k not in remaining] == []


@pytest.fixture
def started_later(
    settings: Settings, service: Service, person: Submitted
) -> Iterator[Container]:
    """The service started again, with its clock past the person's day."""
    later = MovableClock()
    later.move_to(noon(day_of(service, person) + timedelta(days=DAYS + 1)))
    built = build(settings, clock=later)
    try:
        built.run_background()
        yield built
    finally:
        built.close()


def test_start_destroys_the_keys_of_expired_request_metadata(
    started_later: Container, service: Service, person: Submitted
) -> None:
    day = day_key_id(noon(day_of(service, person)))

    deadline = time.monotonic() + 10
    while day in started_later.keys.subjects("day-") and time.monotonic() < deadline:
        time.sleep(0.05)

    assert day not in started_later.keys.subjects("day-")
