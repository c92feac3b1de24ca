"""Request deduplication (CONTRACT 2.4): inside the window, identical requests
apply once, concurrent or not, and every repeat gets the first answer."""

from __future__ import annotations

import time
from concurrent.futures import Future
from functools import partial
from uuid import UUID

from api.bootstrap import Container
from application.submissions import Answer
from domain.submission import (
    SubmissionAccepted,
    SubmissionDeduplicated,
    SubmissionTested,
)
from domain.subscriber import SubscriberRegistered
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
)
from tests.support.public import Public

DEDUPE: Json = {**OPEN, "dedupePeriodSeconds": 60}
ANN = {"profile": {"email": "ann@example.com", "firstname": "Ann"}}


def test_twenty_concurrent_identical_requests_apply_once(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(DEDUPE)

    at_once([partial(public.submit, integration, ANN) for _ in range(20)])

    assert len(events_of(container, SubmissionAccepted)) == 1
    assert len(events_of(container, SubmissionDeduplicated)) == 19
    assert len(events_of(container, SubscriberRegistered)) == 1


def test_twenty_concurrent_identical_requests_all_answer_the_first_submission(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(DEDUPE)

    answers = at_once([partial(public.submit, integration, ANN) for _ in range(20)])

    (accepted,) = events_of(container, SubmissionAccepted)
    assert {a.json()["submissionId"] for a in answers} == {str(accepted.originator_id)}
    assert sorted(a.json()["duplicate"] for a in answers) == [False] + [True] * 19


def test_a_repeat_gets_the_first_answer_marked_as_a_replay(
    endpoints: Endpoints, public: Public
) -> None:
    integration = endpoints.open(DEDUPE)
    first = public.submit(integration, ANN)

    repeat = public.submit(integration, ANN)

    assert repeat.status_code == 200
    assert repeat.headers["Idempotent-Replayed"] == "true"
    assert repeat.json()["duplicate"] is True
    assert repeat.json()["submissionId"] == first.json()["submissionId"]
    assert repeat.json()["results"] == first.json()["results"]


def test_a_repeat_answers_the_position_of_its_own_record(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(DEDUPE)
    public.submit(integration, ANN)

    repeat = public.accepted(integration, ANN)

    (deduplicated,) = container.events.read(
        after=0, limit=10_000, types=[SubmissionDeduplicated]
    )
    assert repeat["position"] == deduplicated.position


def test_a_repeat_records_which_submission_it_repeats(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(DEDUPE)
    first = public.accepted(integration, ANN)

    public.accepted(integration, ANN)

    (deduplicated,) = events_of(container, SubmissionDeduplicated)
    assert deduplicated.original_submission_id == UUID(first["submissionId"])


def test_repeats_do_not_extend_the_window_beyond_the_last_accepted_request(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open({**OPEN, "dedupePeriodSeconds": 2})
    first = public.accepted(integration, ANN)
    time.sleep(1.0)
    inside = public.accepted(integration, ANN)
    time.sleep(1.5)

    after = public.accepted(integration, ANN)

    assert inside["duplicate"] is True
    assert after["duplicate"] is False
    assert after["submissionId"] != first["submissionId"]
    assert len(events_of(container, SubmissionAccepted)) == 2


def test_a_repeat_arriving_while_the_first_is_in_flight_gets_the_replay(
    endpoints: Endpoints, container: Container
) -> None:
    integration = endpoints.open(DEDUPE)
    repeats: list[Future[Answer]] = []

    def queue_a_repeat() -> None:
        repeats.append(writer.submit(command_for(container, integration, ANN)))

    writer = interrupted_writer(
        container, InterruptedStore(container.events, queue_a_repeat)
    )
    try:
        first = decided(writer, command_for(container, integration, ANN))

        repeat = repeats[0].result(timeout=60)
    finally:
        writer.close()

    assert repeat.duplicate is True
    assert repeat.submission_id == first.submission_id
    assert len(events_of(container, SubscriberRegistered)) == 1


def test_reusing_an_idempotency_key_with_another_body_is_refused_with_422(
    endpoints: Endpoints, public: Public
) -> None:
    integration = endpoints.open(DEDUPE)
    key = {"Idempotency-Key": "order-1234"}
    public.submit(integration, ANN, headers=key)

    reused = public.submit(
        integration, {"profile": {"email": "ann@example.com"}}, headers=key
    )

    assert reused.status_code == 422
    assert reused.json()["type"].endswith("idempotency-key-reused")


def test_the_same_idempotency_key_and_body_is_a_repeat(
    endpoints: Endpoints, public: Public
) -> None:
    integration = endpoints.open(DEDUPE)
    key = {"Idempotency-Key": "order-1234"}
    first = public.submit(integration, ANN, headers=key)

    repeat = public.submit(integration, ANN, headers=key)

    assert repeat.json()["duplicate"] is True
    assert repeat.json()["submissionId"] == first.json()["submissionId"]


def test_different_bodies_without_a_key_are_not_repeats(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(DEDUPE)
    public.accepted(integration, ANN)

    other = public.accepted(integration, {"profile": {"email": "bo@example.com"}})

    assert other["duplicate"] is False
    assert len(events_of(container, SubmissionAccepted)) == 2


def test_with_a_period_of_zero_nothing_is_deduplicated_whatever_the_headers(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open({**OPEN, "dedupePeriodSeconds": 0})
    key = {"Idempotency-Key": "order-1234"}
    public.submit(integration, ANN, headers=key)

    repeat = public.accepted(integration, ANN)

    assert repeat["duplicate"] is False
    assert len(events_of(container, SubmissionAccepted)) == 2
    assert events_of(container, SubmissionDeduplicated) == []


def test_test_and_production_have_separate_windows(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(DEDUPE)
    public.accepted(integration, ANN, test=True)

    production = public.accepted(integration, ANN)

    assert production["duplicate"] is False
    assert len(events_of(container, SubmissionTested)) == 1
    assert len(events_of(container, SubmissionAccepted)) == 1
