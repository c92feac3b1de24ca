"""422 `validation-failed` with every broken rule, too many actions, and
403 `action-not-permitted` for actions the configuration forbids."""

from __future__ import annotations

import httpx2
import pytest
from starlette.testclient import TestClient

from api.bootstrap import Container
from domain.submission import SubmissionRefused
from domain.subscriber import SubscriberRegistered
from tests.submissions.conftest import (
    Endpoint,
    Json,
    MakeEndpoint,
    events_of,
    problem_slug,
)

ACTIVITY = 42
ANN = {"profile": {"email": "ann@example.com"}}
SIGNUP = {"event": {"type": "signup"}}


def errors_of(answer: httpx2.Response) -> list[Json]:
    assert answer.status_code == 422, answer.text
    assert problem_slug(answer) == "validation-failed"
    errors: list[Json] = answer.json()["errors"]
    return errors


def broken(errors: list[Json]) -> set[tuple[int, str, str]]:
    """(action, field, rule) of every error."""
    return {(e["action"], e["field"], e["rule"]) for e in errors}


@pytest.fixture
def ruled(make_endpoint: MakeEndpoint) -> Endpoint:
    """An endpoint with field validation rules, custom fields included."""
    return make_endpoint(
        allowProfileCreation=True,
        allowProfileUpdates=True,
        defaultPhoneRegion="AU",
        fieldValidationRules={
            "firstname": {"required": True, "maxLength": 5},
            "postcode": {"pattern": "^[0-9]{4}$"},
            "custom.favouriteColour": {"enum": ["red", "green", "blue"]},
        },
    )


def test_every_error_has_an_action_index_a_field_a_rule_and_a_message(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = [ANN, {"profile": {"email": "bad"}}]

    answer = client.post(endpoint.production_url, json=body)

    (error,) = errors_of(answer)
    assert set(error) == {"action", "field", "rule", "message"}
    assert error["action"] == 1
    assert error["field"] == "email"
    assert isinstance(error["message"], str)
    assert error["message"]


def test_a_422_lists_every_broken_rule_across_actions(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = [
        {"profile": {"email": "ann@example.com", "nickname": "Annie"}},
        {"profile": {"firstname": "Bob"}},
        {"profile": {"email": "not-an-email"}},
        {"profile": {"email": "cy@example.com", "phone": "12"}},
    ]

    answer = client.post(endpoint.production_url, json=body)

    assert broken(errors_of(answer)) == {
        (0, "nickname", "unknown-field"),
        (1, "email", "required"),
        (2, "email", "format"),
        (3, "phone", "format"),
    }


def test_an_unknown_profile_field_is_named(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = [{"profile": {"email": "ann@example.com", "nickname": "Annie"}}]

    answer = client.post(endpoint.production_url, json=body)

    assert broken(errors_of(answer)) == {(0, "nickname", "unknown-field")}


def test_a_missing_identifying_field_is_required(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(identifyBy="ref", allowProfileCreation=True)

    answer = client.post(endpoint.production_url, json=[ANN])

    assert broken(errors_of(answer)) == {(0, "ref", "required")}


def test_a_malformed_email_breaks_the_format_rule(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = [{"profile": {"email": "ann@@example"}}]

    answer = client.post(endpoint.production_url, json=body)

    assert broken(errors_of(answer)) == {(0, "email", "format")}


def test_a_phone_that_is_not_a_number_breaks_the_format_rule(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = [{"profile": {"email": "ann@example.com", "phone": "call me maybe"}}]

    answer = client.post(endpoint.production_url, json=body)

    assert broken(errors_of(answer)) == {(0, "phone", "format")}


def test_a_configured_required_field_is_enforced(
    client: TestClient, ruled: Endpoint
) -> None:
    body = [ANN]

    answer = client.post(ruled.production_url, json=body)

    assert broken(errors_of(answer)) == {(0, "firstname", "required")}


def test_configured_length_and_pattern_rules_are_enforced(
    client: TestClient, ruled: Endpoint
) -> None:
    body = [
        {
            "profile": {
                "email": "ann@example.com",
                "firstname": "Annabelle",
                "postcode": "20A0",
            }
        }
    ]

    answer = client.post(ruled.production_url, json=body)

    assert broken(errors_of(answer)) == {
        (0, "firstname", "maxLength"),
        (0, "postcode", "pattern"),
    }


def test_a_custom_field_rule_is_enforced(client: TestClient, ruled: Endpoint) -> None:
    body = [
        {
            "profile": {
                "email": "ann@example.com",
                "firstname": "Ann",
                "custom": {"favouriteColour": "mauve"},
            }
        }
    ]

    answer = client.post(ruled.production_url, json=body)

    assert broken(errors_of(answer)) == {(0, "custom.favouriteColour", "enum")}


def test_a_profile_that_keeps_the_configured_rules_is_accepted(
    client: TestClient, ruled: Endpoint
) -> None:
    body = [
        {
            "profile": {
                "email": "ann@example.com",
                "firstname": "Ann",
                "postcode": "2000",
                "phone": "0412 345 678",
                "custom": {"favouriteColour": "green"},
            }
        }
    ]

    answer = client.post(ruled.production_url, json=body)

    assert answer.status_code == 200, answer.text


def test_a_broken_event_action_is_named_by_its_index(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = [ANN, {"event": {"type": "", "colour": "red"}}]

    answer = client.post(endpoint.production_url, json=body)

    assert broken(errors_of(answer)) == {
        (1, "type", "type"),
        (1, "colour", "unknown-field"),
    }


def test_a_validation_failure_is_recorded_as_refused_and_applies_nothing(
    client: TestClient, container: Container, endpoint: Endpoint
) -> None:
    body = [ANN, {"profile": {"email": "bad"}}]

    client.post(endpoint.production_url, json=body)

    (refused,) = events_of(container, SubmissionRefused)
    assert refused.reason == "validation-failed"
    assert events_of(container, SubscriberRegistered) == []


def test_validation_runs_in_test_mode_too(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = [{"profile": {"email": "bad"}}]

    answer = client.post(endpoint.test_url, json=body)

    assert broken(errors_of(answer)) == {(0, "email", "format")}


def test_fifty_actions_are_accepted(client: TestClient, endpoint: Endpoint) -> None:
    body = [ANN] + [SIGNUP] * 49

    answer = client.post(endpoint.production_url, json=body)

    assert answer.status_code == 200, answer.text
    assert len(answer.json()["results"]) == 50


def test_fifty_one_actions_are_a_422(client: TestClient, endpoint: Endpoint) -> None:
    body = [ANN] + [SIGNUP] * 50

    answer = client.post(endpoint.production_url, json=body)

    assert answer.status_code == 422
    assert problem_slug(answer) == "validation-failed"


# -- 403 action-not-permitted


def not_permitted(answer: httpx2.Response) -> list[Json]:
    assert answer.status_code == 403, answer.text
    assert problem_slug(answer) == "action-not-permitted"
    errors: list[Json] = answer.json()["errors"]
    return errors


def test_an_event_without_event_logging_is_not_permitted(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(allowProfileCreation=True)

    answer = client.post(endpoint.production_url, json=[ANN, SIGNUP])

    (error,) = not_permitted(answer)
    assert error["action"] == 1
    assert error["rule"] == "allowEventLogging"


def test_a_message_without_messages_allowed_is_not_permitted(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(allowProfileCreation=True)
    body = [ANN, {"message": {"activityId": ACTIVITY}}]

    answer = client.post(endpoint.production_url, json=body)

    (error,) = not_permitted(answer)
    assert error["action"] == 1
    assert error["rule"] == "allowMessages"


def test_a_message_for_another_activity_is_not_permitted(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(
        allowProfileCreation=True, allowMessages=True, triggerActivityId=ACTIVITY
    )
    body = [ANN, {"message": {"activityId": ACTIVITY + 1}}]

    answer = client.post(endpoint.production_url, json=body)

    (error,) = not_permitted(answer)
    assert error["action"] == 1
    assert error["field"] == "activityId"


def test_an_action_not_permitted_is_refused_in_test_mode_too(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(allowProfileCreation=True)

    answer = client.post(endpoint.test_url, json=[ANN, SIGNUP])

    not_permitted(answer)


def test_a_forbidden_action_applies_nothing_and_is_recorded_as_refused(
    client: TestClient, container: Container, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(allowProfileCreation=True)

    client.post(endpoint.production_url, json=[ANN, SIGNUP])

    assert events_of(container, SubscriberRegistered) == []
    (refused,) = events_of(container, SubmissionRefused)
    assert refused.reason == "action-not-permitted"


def test_validation_is_checked_before_permissions(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(allowProfileCreation=True)
    body = [{"profile": {"email": "bad"}}, SIGNUP]

    answer = client.post(endpoint.production_url, json=body)

    assert broken(errors_of(answer)) == {(0, "email", "format")}
