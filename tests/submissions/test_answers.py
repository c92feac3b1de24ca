"""What the answers say: plain or detailed results, test-mode wording,
replays inside the dedupe window, and the honeypot."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import pytest
from starlette.testclient import TestClient

from api.bootstrap import Container
from domain.access import Role
from domain.submission import (
    EventLogged,
    SubmissionAccepted,
    SubmissionDeduplicated,
    SubmissionRefused,
)
from domain.subscriber import ProfileChanged, SubscriberRegistered
from tests.submissions.conftest import (
    Endpoint,
    Json,
    MakeEndpoint,
    events_of,
    problem_slug,
)

ACTIVITY = 42
ANN = {"profile": {"email": "ann@example.com", "firstname": "Ann"}}
ANN_RENAMED = {"profile": {"email": "ann@example.com", "firstname": "Annie"}}
SIGNUP = {"event": {"type": "signup", "data": {"page": "/offers"}}}
MESSAGE = {"message": {"activityId": ACTIVITY}}
OPEN = {
    "allowProfileCreation": True,
    "allowProfileUpdates": True,
    "allowEventLogging": True,
    "allowMessages": True,
    "triggerActivityId": ACTIVITY,
}
FORM = "application/x-www-form-urlencoded"
BearerFor = Callable[[Role], dict[str, str]]


def without_ids(answer: Json) -> Json:
    """An answer without what differs between any two submissions."""
    return {k: v for k, v in answer.items() if k not in ("submissionId", "position")}


def descriptions(answer: Json) -> list[str]:
    return [result["description"] for result in answer["results"]]


@pytest.fixture
def detailed(make_endpoint: MakeEndpoint) -> Endpoint:
    """An endpoint that may do everything and says what it did."""
    return make_endpoint(detailedResponses=True, **OPEN)


@pytest.fixture
def plain(make_endpoint: MakeEndpoint) -> Endpoint:
    """An endpoint that may do everything and reveals nothing."""
    return make_endpoint(**OPEN)


# -- detailed answers


def test_a_detailed_answer_says_profile_created_with_the_subscriber_id(
    client: TestClient, container: Container, detailed: Endpoint
) -> None:
    body = [ANN]

    answer = client.post(detailed.production_url, json=body)

    (result,) = answer.json()["results"]
    (registered,) = events_of(container, SubscriberRegistered)
    assert result == {
        "code": 200,
        "name": "OK",
        "description": "profile created",
        "subscriberId": str(registered.originator_id),
    }


def test_a_detailed_answer_says_profile_updated_for_the_same_subscriber(
    client: TestClient, detailed: Endpoint
) -> None:
    created = client.post(detailed.production_url, json=[ANN]).json()

    answer = client.post(detailed.production_url, json=[ANN_RENAMED]).json()

    assert descriptions(answer) == ["profile updated"]
    assert answer["results"][0]["subscriberId"] == created["results"][0]["subscriberId"]


def test_a_detailed_answer_says_profile_unchanged_when_nothing_changed(
    client: TestClient, detailed: Endpoint
) -> None:
    client.post(detailed.production_url, json=[ANN])

    answer = client.post(detailed.production_url, json=[ANN]).json()

    assert descriptions(answer) == ["profile unchanged"]


def test_a_detailed_answer_says_event_logged(
    client: TestClient, detailed: Endpoint
) -> None:
    body = [ANN, SIGNUP]

    answer = client.post(detailed.production_url, json=body).json()

    assert descriptions(answer) == ["profile created", "event logged"]


def test_a_detailed_answer_says_message_triggered(
    client: TestClient, detailed: Endpoint
) -> None:
    body = [ANN, MESSAGE]

    answer = client.post(detailed.production_url, json=body).json()

    assert descriptions(answer) == ["profile created", "message triggered"]


def test_a_detailed_answer_says_message_suppressed_for_an_unsubscribed_profile(
    client: TestClient, detailed: Endpoint
) -> None:
    leaving = {"profile": {"email": "ann@example.com", "unsubscribedTimestamp": True}}

    answer = client.post(detailed.production_url, json=[leaving, MESSAGE]).json()

    assert descriptions(answer) == ["profile created", "message suppressed"]


def test_a_detailed_answer_refuses_a_creation_the_flags_forbid_with_a_403(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(detailedResponses=True, allowProfileUpdates=True)

    answer = client.post(endpoint.production_url, json=[ANN])

    assert answer.status_code == 403
    assert problem_slug(answer) == "action-not-permitted"
    (error,) = answer.json()["errors"]
    assert error["action"] == 0
    assert error["rule"] == "allowProfileCreation"


def test_a_detailed_refusal_of_a_creation_applies_nothing(
    client: TestClient, container: Container, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(detailedResponses=True, allowEventLogging=True)

    client.post(endpoint.production_url, json=[ANN, SIGNUP])

    assert events_of(container, SubscriberRegistered) == []
    assert events_of(container, EventLogged) == []
    (refused,) = events_of(container, SubmissionRefused)
    assert refused.reason == "action-not-permitted"


def test_a_detailed_answer_refuses_an_update_the_flags_forbid_with_a_403(
    client: TestClient, make_endpoint: MakeEndpoint, plain: Endpoint
) -> None:
    client.post(plain.production_url, json=[ANN])
    endpoint = make_endpoint(detailedResponses=True, allowProfileCreation=True)

    answer = client.post(endpoint.production_url, json=[ANN_RENAMED])

    assert answer.status_code == 403
    assert problem_slug(answer) == "action-not-permitted"
    assert answer.json()["errors"][0]["rule"] == "allowProfileUpdates"


def test_an_admin_token_gets_detailed_answers_from_a_plain_endpoint(
    client: TestClient, plain: Endpoint, admin_headers: dict[str, str]
) -> None:
    body = [ANN, SIGNUP]

    answer = client.post(plain.production_url, json=body, headers=admin_headers)

    assert descriptions(answer.json()) == ["profile created", "event logged"]
    assert "subscriberId" in answer.json()["results"][0]


def test_an_admin_token_makes_a_flag_refused_profile_action_a_403(
    client: TestClient, make_endpoint: MakeEndpoint, admin_headers: dict[str, str]
) -> None:
    endpoint = make_endpoint(allowProfileUpdates=True)

    answer = client.post(endpoint.production_url, json=[ANN], headers=admin_headers)

    assert answer.status_code == 403
    assert problem_slug(answer) == "action-not-permitted"


def test_a_token_that_may_not_read_subscribers_gets_plain_answers(
    client: TestClient, plain: Endpoint, bearer_for: BearerFor
) -> None:
    headers = bearer_for(Role.INTEGRATION_MANAGER)

    answer = client.post(plain.production_url, json=[ANN], headers=headers)

    assert descriptions(answer.json()) == ["accepted"]


def test_an_unknown_token_gets_a_plain_answer_not_a_401(
    client: TestClient, plain: Endpoint
) -> None:
    headers = {"Authorization": "Bearer hw_not-a-real-token"}

    answer = client.post(plain.production_url, json=[ANN], headers=headers)

    assert answer.status_code == 200
    assert descriptions(answer.json()) == ["accepted"]


def test_detailed_test_mode_descriptions_start_with_would(
    client: TestClient, detailed: Endpoint
) -> None:
    body = [ANN, SIGNUP, MESSAGE]

    answer = client.post(detailed.test_url, json=body).json()

    assert answer["mode"] == "test"
    assert all(d.startswith("would ") for d in descriptions(answer))
    assert descriptions(answer) == [
        "would create profile",
        "would log event",
        "would trigger message",
    ]


def test_a_detailed_test_mode_update_says_would_update_profile(
    client: TestClient, detailed: Endpoint
) -> None:
    client.post(detailed.production_url, json=[ANN])

    answer = client.post(detailed.test_url, json=[ANN_RENAMED]).json()

    assert descriptions(answer) == ["would update profile"]


def test_a_test_mode_creation_names_no_subscriber(
    client: TestClient, detailed: Endpoint
) -> None:
    body = [ANN]

    answer = client.post(detailed.test_url, json=body).json()

    assert "subscriberId" not in answer["results"][0]


# -- plain answers


def test_a_creation_the_flags_refuse_is_answered_exactly_like_an_applied_one(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    creating = make_endpoint(allowProfileCreation=True)
    refusing = make_endpoint(allowProfileUpdates=True)
    applied = client.post(creating.production_url, json=[ANN])

    refused = client.post(refusing.production_url, json=[ANN])

    assert refused.status_code == applied.status_code == 200
    assert without_ids(refused.json()) == without_ids(applied.json())
    assert refused.headers.keys() == applied.headers.keys()


def test_a_creation_the_flags_refuse_is_recorded_as_refused_and_not_applied(
    client: TestClient, container: Container, make_endpoint: MakeEndpoint
) -> None:
    refusing = make_endpoint(allowProfileUpdates=True)

    client.post(refusing.production_url, json=[ANN])

    assert events_of(container, SubscriberRegistered) == []
    (accepted,) = events_of(container, SubmissionAccepted)
    (result,) = accepted.results
    assert result.outcome == "refused"
    assert result.refused == "allowProfileCreation"


def test_an_update_the_flags_refuse_is_answered_exactly_like_an_applied_one(
    client: TestClient, make_endpoint: MakeEndpoint, plain: Endpoint
) -> None:
    client.post(plain.production_url, json=[ANN])
    refusing = make_endpoint(allowProfileCreation=True)
    applied = client.post(plain.production_url, json=[ANN_RENAMED])

    refused = client.post(
        refusing.production_url,
        json=[{"profile": {"email": "ann@example.com", "firstname": "Anna"}}],
    )

    assert refused.status_code == applied.status_code == 200
    assert without_ids(refused.json()) == without_ids(applied.json())


def test_an_update_the_flags_refuse_changes_nothing(
    client: TestClient,
    container: Container,
    make_endpoint: MakeEndpoint,
    plain: Endpoint,
) -> None:
    client.post(plain.production_url, json=[ANN])
    refusing = make_endpoint(allowProfileCreation=True)

    client.post(refusing.production_url, json=[ANN_RENAMED])

    firstnames = [
        event.changes["firstname"].after
        for event in events_of(container, ProfileChanged)
        if "firstname" in event.changes
    ]
    assert firstnames == ["Ann"]


def test_a_plain_answer_says_accepted_for_every_kind_of_action(
    client: TestClient, plain: Endpoint
) -> None:
    body = [ANN, SIGNUP, MESSAGE]

    answer = client.post(plain.production_url, json=body).json()

    assert (
        answer["results"]
        == [{"code": 200, "name": "OK", "description": "accepted"}] * 3
    )


def test_a_plain_test_mode_answer_says_would_accept(
    client: TestClient, plain: Endpoint
) -> None:
    body = [ANN, SIGNUP]

    answer = client.post(plain.test_url, json=body).json()

    assert descriptions(answer) == ["would accept", "would accept"]


# -- the dedupe window


@pytest.fixture
def deduplicating(make_endpoint: MakeEndpoint) -> Endpoint:
    return make_endpoint(dedupePeriodSeconds=3600, **OPEN)


def test_a_repeat_inside_the_window_replays_the_first_answer(
    client: TestClient, deduplicating: Endpoint
) -> None:
    first = client.post(deduplicating.production_url, json=[ANN, SIGNUP])

    repeat = client.post(deduplicating.production_url, json=[ANN, SIGNUP])

    assert repeat.status_code == 200
    assert repeat.headers["idempotent-replayed"] == "true"
    assert repeat.json()["duplicate"] is True
    assert repeat.json()["submissionId"] == first.json()["submissionId"]
    assert repeat.json()["results"] == first.json()["results"]
    assert repeat.json()["position"] > first.json()["position"]


def test_identical_concurrent_requests_inside_the_window_apply_once(
    client: TestClient, container: Container, deduplicating: Endpoint
) -> None:
    url = deduplicating.production_url

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(
            pool.map(lambda _: client.post(url, json=[ANN, SIGNUP]), range(6))
        )

    assert sorted(a.json()["duplicate"] for a in answers) == [False] + [True] * 5
    assert len({a.json()["submissionId"] for a in answers}) == 1
    assert len(events_of(container, EventLogged)) == 1


def test_a_first_answer_is_not_marked_replayed(
    client: TestClient, deduplicating: Endpoint
) -> None:
    body = [ANN]

    first = client.post(deduplicating.production_url, json=body)

    assert "idempotent-replayed" not in first.headers
    assert first.json()["duplicate"] is False


def test_a_repeat_inside_the_window_applies_nothing_and_is_recorded(
    client: TestClient, container: Container, deduplicating: Endpoint
) -> None:
    client.post(deduplicating.production_url, json=[ANN, SIGNUP])

    client.post(deduplicating.production_url, json=[ANN, SIGNUP])

    assert len(events_of(container, EventLogged)) == 1
    assert len(events_of(container, SubmissionDeduplicated)) == 1


def test_a_replay_repeats_the_first_detailed_results_not_a_new_decision(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(dedupePeriodSeconds=3600, detailedResponses=True, **OPEN)
    client.post(endpoint.production_url, json=[ANN])

    repeat = client.post(endpoint.production_url, json=[ANN])

    assert descriptions(repeat.json()) == ["profile created"]


def test_the_same_idempotency_key_with_the_same_body_is_replayed(
    client: TestClient, deduplicating: Endpoint
) -> None:
    headers = {"Idempotency-Key": "order-1234"}
    first = client.post(deduplicating.production_url, json=[ANN], headers=headers)

    repeat = client.post(deduplicating.production_url, json=[ANN], headers=headers)

    assert repeat.headers["idempotent-replayed"] == "true"
    assert repeat.json()["submissionId"] == first.json()["submissionId"]


def test_an_idempotency_key_reused_with_another_body_is_a_422(
    client: TestClient, deduplicating: Endpoint
) -> None:
    headers = {"Idempotency-Key": "order-1234"}
    client.post(deduplicating.production_url, json=[ANN], headers=headers)

    answer = client.post(
        deduplicating.production_url, json=[ANN_RENAMED], headers=headers
    )

    assert answer.status_code == 422
    assert problem_slug(answer) == "idempotency-key-reused"


def test_the_same_body_under_another_idempotency_key_is_applied_again(
    client: TestClient, container: Container, deduplicating: Endpoint
) -> None:
    url = deduplicating.production_url
    client.post(url, json=[ANN, SIGNUP], headers={"Idempotency-Key": "a"})

    again = client.post(url, json=[ANN, SIGNUP], headers={"Idempotency-Key": "b"})

    assert again.json()["duplicate"] is False
    assert len(events_of(container, EventLogged)) == 2


def test_without_a_dedupe_window_a_repeat_is_applied_again_whatever_the_headers(
    client: TestClient, container: Container, plain: Endpoint
) -> None:
    headers = {"Idempotency-Key": "order-1234"}
    client.post(plain.production_url, json=[ANN, SIGNUP], headers=headers)

    again = client.post(plain.production_url, json=[ANN, SIGNUP], headers=headers)

    assert again.status_code == 200
    assert "idempotent-replayed" not in again.headers
    assert again.json()["duplicate"] is False
    assert len(events_of(container, EventLogged)) == 2


def test_test_mode_and_production_have_separate_windows(
    client: TestClient, deduplicating: Endpoint
) -> None:
    client.post(deduplicating.test_url, json=[ANN])

    production = client.post(deduplicating.production_url, json=[ANN])

    assert production.json()["duplicate"] is False
    assert "idempotent-replayed" not in production.headers


def test_a_test_mode_repeat_is_replayed_from_the_test_window(
    client: TestClient, deduplicating: Endpoint
) -> None:
    first = client.post(deduplicating.test_url, json=[ANN])

    repeat = client.post(deduplicating.test_url, json=[ANN])

    assert repeat.headers["idempotent-replayed"] == "true"
    assert repeat.json()["mode"] == "test"
    assert repeat.json()["submissionId"] == first.json()["submissionId"]


def test_a_repeat_after_the_window_closed_is_applied_again(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(dedupePeriodSeconds=1, **OPEN)
    client.post(endpoint.production_url, json=[ANN, SIGNUP])
    time.sleep(1.1)

    again = client.post(endpoint.production_url, json=[ANN, SIGNUP])

    assert again.json()["duplicate"] is False
    assert "idempotent-replayed" not in again.headers


# -- the honeypot


@pytest.fixture
def honeypotted(make_endpoint: MakeEndpoint) -> Endpoint:
    return make_endpoint(honeypotField="website", **OPEN)


def bot(**extra: Any) -> list[Json]:
    """A bot's submission: Ann's profile with the honeypot filled."""
    return [{"profile": {**ANN["profile"], "website": "https://spam.example", **extra}}]


def test_a_filled_honeypot_is_answered_like_an_accepted_submission(
    client: TestClient, honeypotted: Endpoint, plain: Endpoint
) -> None:
    accepted = client.post(plain.production_url, json=[ANN])

    answer = client.post(honeypotted.production_url, json=bot())

    assert answer.status_code == 200
    assert "submissionId" in answer.json()
    assert uuid.UUID(answer.json()["submissionId"])
    assert without_ids(answer.json()) == without_ids(accepted.json())


def test_a_filled_honeypot_applies_nothing(
    client: TestClient, container: Container, honeypotted: Endpoint
) -> None:
    body = bot()

    client.post(honeypotted.production_url, json=body)

    assert events_of(container, SubscriberRegistered) == []
    assert events_of(container, SubmissionAccepted) == []


def test_a_filled_honeypot_is_recorded_as_refused_for_the_honeypot(
    client: TestClient, container: Container, honeypotted: Endpoint
) -> None:
    body = bot()

    client.post(honeypotted.production_url, json=body)

    (refused,) = events_of(container, SubmissionRefused)
    assert refused.reason == "honeypot"


def test_a_filled_honeypot_in_a_form_is_answered_as_accepted_and_applies_nothing(
    client: TestClient, container: Container, honeypotted: Endpoint
) -> None:
    fields = [("email", "ann@example.com"), ("website", "https://spam.example")]

    answer = client.post(
        honeypotted.production_url,
        content=urlencode(fields),
        headers={"Content-Type": FORM},
    )

    assert answer.status_code == 200
    assert descriptions(answer.json()) == ["accepted"]
    assert events_of(container, SubscriberRegistered) == []


def test_a_filled_honeypot_is_answered_as_accepted_even_when_the_rules_break(
    client: TestClient, honeypotted: Endpoint
) -> None:
    body = bot(email="not-an-email", nickname="Spammy")

    answer = client.post(honeypotted.production_url, json=body)

    assert answer.status_code == 200
    assert descriptions(answer.json()) == ["accepted"]


def test_a_filled_honeypot_is_answered_as_accepted_without_a_captcha_token(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(
        honeypotField="website",
        requireRecaptcha=True,
        recaptchaSecret="captcha-secret",
        **OPEN,
    )

    answer = client.post(endpoint.production_url, json=bot())

    assert answer.status_code == 200
    assert descriptions(answer.json()) == ["accepted"]


def test_a_filled_honeypot_in_a_form_is_sent_to_the_success_url(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(
        honeypotField="website",
        successRedirectUrl="https://shop.example/thanks",
        **OPEN,
    )
    fields = [("email", "ann@example.com"), ("website", "https://spam.example")]

    answer = client.post(
        endpoint.production_url,
        content=urlencode(fields),
        headers={"Content-Type": FORM},
        follow_redirects=False,
    )

    assert answer.status_code == 303
    assert answer.headers["location"] == "https://shop.example/thanks"


def test_an_empty_honeypot_is_ignored_and_the_submission_applied(
    client: TestClient, container: Container, honeypotted: Endpoint
) -> None:
    body = [{"profile": {**ANN["profile"], "website": ""}}]

    answer = client.post(honeypotted.production_url, json=body)

    assert answer.status_code == 200, answer.text
    assert len(events_of(container, SubscriberRegistered)) == 1


def test_a_filled_honeypot_in_test_mode_says_would_accept(
    client: TestClient, honeypotted: Endpoint
) -> None:
    body = bot()

    answer = client.post(honeypotted.test_url, json=body)

    assert answer.json()["mode"] == "test"
    assert descriptions(answer.json()) == ["would accept"]
