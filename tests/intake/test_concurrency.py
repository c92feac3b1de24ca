"""Concurrent submissions (CONTRACT 2.3 and 2.4), in one process and across
two that share one store: a new identifying value makes exactly one profile,
a lost race is decided again on fresh state, and a submission is all or
nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from typing import Any
from uuid import UUID

import httpx2
import pytest
from starlette.testclient import TestClient

from api.bootstrap import Container
from api.http.app import create_app
from application.errors import StoreUnavailable
from application.submissions import Answer
from domain.identity import IdentityClaimed
from domain.submission import (
    DedupeWindowOpened,
    DedupeWindowReopened,
    SubmissionAccepted,
    SubmissionDeduplicated,
)
from domain.subscriber import (
    Caused,
    ConsentRecorded,
    ProfileChanged,
    SubscriberRegistered,
)
from tests.intake.conftest import (
    OPEN,
    Endpoints,
    InterruptedStore,
    Json,
    at_once,
    command_for,
    decided,
    events_of,
    interrupted_writer,
    recorded,
    subscriber_of,
)
from tests.support.public import Public

ANN = "ann@example.com"
DEDUPE: Json = {**OPEN, "dedupePeriodSeconds": 60}


@pytest.fixture
def second_public(second_process: Container) -> Iterator[Public]:
    """A web form posting to the second process."""
    with TestClient(create_app(second_process)) as client:
        yield Public(client)


def profile(**fields: Any) -> Json:
    return {"profile": fields}


def named_subscribers(answers: list[httpx2.Response]) -> set[str]:
    return {answer.json()["results"][0]["subscriberId"] for answer in answers}


def positions_of_submission(container: Container, submission_id: UUID) -> list[int]:
    """Positions of every event a submission recorded, on any aggregate."""
    positions = []
    for item in recorded(container):
        event = item.event
        if (
            event.originator_id == submission_id
            or (isinstance(event, Caused) and event.submission_id == submission_id)
            or (
                isinstance(event, DedupeWindowOpened | DedupeWindowReopened)
                and event.submission_id == submission_id
            )
        ):
            positions.append(item.position)
    return positions


# -- one process


def test_twenty_concurrent_submissions_with_one_new_email_create_one_profile(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(OPEN)
    bodies = [profile(email=ANN, firstname=f"Ann {n}") for n in range(20)]

    answers = at_once([partial(public.submit, integration, b) for b in bodies])

    assert [a.status_code for a in answers] == [200] * 20
    assert len(events_of(container, SubscriberRegistered)) == 1
    assert len(events_of(container, IdentityClaimed)) == 1
    assert len(named_subscribers(answers)) == 1


# -- two processes on one store


def test_across_two_processes_twenty_identical_requests_apply_once(
    endpoints: Endpoints,
    public: Public,
    second_public: Public,
    container: Container,
) -> None:
    integration = endpoints.open(DEDUPE)
    body = profile(email=ANN, firstname="Ann")
    clients = [public, second_public] * 10

    answers = at_once([partial(c.submit, integration, body) for c in clients])

    assert [a.status_code for a in answers] == [200] * 20
    assert len(events_of(container, SubmissionAccepted)) == 1
    assert len(events_of(container, SubmissionDeduplicated)) == 19
    assert len({a.json()["submissionId"] for a in answers}) == 1


def test_across_two_processes_twenty_submissions_with_one_new_email_make_one_profile(
    endpoints: Endpoints,
    public: Public,
    second_public: Public,
    container: Container,
) -> None:
    integration = endpoints.open(OPEN)
    clients = [public, second_public] * 10
    bodies = [profile(email=ANN, firstname=f"Ann {n}") for n in range(20)]

    answers = at_once(
        [
            partial(c.submit, integration, b)
            for c, b in zip(clients, bodies, strict=True)
        ]
    )

    assert [a.status_code for a in answers] == [200] * 20
    assert len(events_of(container, SubscriberRegistered)) == 1
    assert len(events_of(container, IdentityClaimed)) == 1
    assert len(named_subscribers(answers)) == 1


def test_a_batch_that_loses_a_race_is_split_and_each_command_decided_again(
    endpoints: Endpoints, container: Container, second_process: Container
) -> None:
    integration = endpoints.open(DEDUPE)
    contested = profile(email=ANN)
    entered, release = threading.Event(), threading.Event()
    winner: list[Answer] = []
    batches: list[int] = []

    def before_record() -> None:
        if store.records == 1:
            entered.set()
            release.wait(timeout=30)
        else:
            # The other process commits the same request first.
            command = command_for(second_process, integration, contested)
            winner.append(decided(second_process.writer, command))

    store = InterruptedStore(container.events, before_record, times=2)
    writer = interrupted_writer(container, store, on_batch=batches.append)
    try:
        writer.submit(command_for(container, integration, profile(email="cy@x.org")))
        assert entered.wait(timeout=30)
        lost = writer.submit(command_for(container, integration, contested))
        other = writer.submit(
            command_for(container, integration, profile(email="bo@x.org"))
        )
        release.set()

        lost_answer, other_answer = lost.result(timeout=60), other.result(timeout=60)
    finally:
        writer.close()

    assert batches == [1, 2]
    assert lost_answer.duplicate is True
    assert lost_answer.submission_id == winner[0].submission_id
    assert other_answer.duplicate is False
    assert other_answer.results[0].outcome == "created"
    assert len(events_of(container, SubscriberRegistered)) == 3


def test_a_submission_that_loses_the_race_for_a_new_email_updates_the_winner(
    endpoints: Endpoints, container: Container, second_process: Container
) -> None:
    integration = endpoints.open(OPEN)
    winner: list[Answer] = []

    def other_process_registers_ann() -> None:
        command = command_for(second_process, integration, profile(email=ANN))
        winner.append(decided(second_process.writer, command))

    store = InterruptedStore(container.events, other_process_registers_ann)
    writer = interrupted_writer(container, store)
    try:
        answer = decided(
            writer,
            command_for(container, integration, profile(email=ANN, firstname="Al")),
        )
    finally:
        writer.close()

    assert answer.results[0].outcome == "updated"
    assert answer.results[0].subscriber_id == winner[0].results[0].subscriber_id
    assert len(events_of(container, SubscriberRegistered)) == 1
    assert len(events_of(container, IdentityClaimed)) == 1


# -- all or nothing


def test_a_submission_whose_commit_keeps_failing_records_nothing(
    endpoints: Endpoints, container: Container, second_process: Container
) -> None:
    integration = endpoints.open({**OPEN, "allowEventLogging": True})
    decided(
        second_process.writer,
        command_for(second_process, integration, profile(email=ANN)),
    )

    def other_process_changes_ann() -> None:
        body = profile(email=ANN, firstname=f"Bo {store.records}")
        decided(second_process.writer, command_for(second_process, integration, body))

    store = InterruptedStore(container.events, other_process_changes_ann, times=None)
    writer = interrupted_writer(container, store)
    command = command_for(
        container,
        integration,
        [
            profile(email=ANN, firstname="Al", consent={"text": "Yes", "given": True}),
            {"event": {"type": "signup", "data": {"page": "/offers"}}},
        ],
    )
    try:
        with pytest.raises(StoreUnavailable):
            decided(writer, command)
    finally:
        writer.close()

    assert positions_of_submission(container, command.submission_id) == []
    assert events_of(container, ConsentRecorded) == []
    names = [
        change.changes["firstname"].after
        for change in events_of(container, ProfileChanged)
        if "firstname" in change.changes
    ]
    assert "Al" not in names


def test_a_refused_detailed_submission_changes_no_profile(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    creator = endpoints.open({"allowProfileCreation": True})
    public.accepted(creator, profile(email=ANN, firstname="Ann"))
    integration = endpoints.open(
        {"allowProfileUpdates": True, "detailedResponses": True}
    )
    head = container.events.head()

    answer = public.submit(
        integration,
        [profile(email=ANN, firstname="Anna"), profile(email="bo@example.com")],
    )

    assert answer.status_code == 403
    after = container.events.read(after=head, limit=100)
    assert [type(item.event).__name__ for item in after] == ["SubmissionRefused"]


def test_the_answer_position_covers_every_event_the_submission_recorded(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(
        {
            **DEDUPE,
            "allowEventLogging": True,
            "allowMessages": True,
            "triggerActivityId": 42,
        }
    )

    answer = public.accepted(
        integration,
        [
            profile(email=ANN, consent={"text": "Yes", "given": True}),
            {"event": {"type": "signup", "data": {"page": "/offers"}}},
            {"message": {"activityId": 42}},
        ],
    )

    positions = positions_of_submission(container, UUID(answer["submissionId"]))
    assert len(positions) >= 7
    assert max(positions) <= answer["position"]


def test_every_answer_of_a_concurrent_batch_covers_its_own_events(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open({**OPEN, "allowEventLogging": True})
    bodies = [
        [profile(email=ANN, custom={"n": n}), {"event": {"type": f"visit-{n}"}}]
        for n in range(10)
    ]

    answers = at_once([partial(public.accepted, integration, b) for b in bodies])

    for answer in answers:
        positions = positions_of_submission(container, UUID(answer["submissionId"]))
        assert positions
        assert max(positions) <= answer["position"]


def test_after_concurrent_updates_the_profile_holds_the_last_recorded_values(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(OPEN)
    public.accepted(integration, profile(email=ANN))
    bodies = [profile(email=ANN, custom={"n": n}) for n in range(10)]

    answers = at_once([partial(public.accepted, integration, b) for b in bodies])

    last = max(range(10), key=lambda n: answers[n]["position"])
    assert subscriber_of(container, answers[last]).values["custom.n"] == last
