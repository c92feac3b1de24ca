"""CAPTCHA verification against a fake siteverify server: tokens in the
header or the form, scores, and a verifier that fails or is too slow."""

from __future__ import annotations

import socket
from urllib.parse import urlencode

import pytest
from starlette.testclient import TestClient

from api.bootstrap import Container
from domain.submission import SubmissionRefused
from domain.subscriber import SubscriberRegistered
from infrastructure.captcha import SiteverifyClient
from tests.submissions.conftest import (
    ClientFrom,
    Endpoint,
    MakeEndpoint,
    events_of,
    problem_slug,
)
from tests.support.captcha import FakeVerifier

SECRET = "captcha-secret-0123"
SHOP = "https://shop.example"
ERROR = "https://shop.example/oops"
ANN = [{"profile": {"email": "ann@example.com"}}]
FORM = "application/x-www-form-urlencoded"


def with_token(token: str) -> dict[str, str]:
    return {"X-Recaptcha-Token": token}


@pytest.fixture
def guarded(make_endpoint: MakeEndpoint) -> Endpoint:
    """An endpoint that requires CAPTCHA with the default minimum score."""
    return make_endpoint(
        allowProfileCreation=True,
        requireRecaptcha=True,
        recaptchaSecret=SECRET,
        allowedOrigins=[SHOP],
    )


def test_a_submission_without_a_token_is_a_403_captcha_failed(
    client: TestClient, guarded: Endpoint
) -> None:
    body = ANN

    answer = client.post(guarded.production_url, json=body)

    assert answer.status_code == 403
    assert problem_slug(answer) == "captcha-failed"


def test_a_submission_without_a_token_is_refused_without_asking_the_verifier(
    client: TestClient, guarded: Endpoint, verifier: FakeVerifier
) -> None:
    body = ANN

    client.post(guarded.production_url, json=body)

    assert verifier.requests == []


def test_a_token_the_verifier_fails_is_a_403(
    client: TestClient, guarded: Endpoint
) -> None:
    headers = with_token("fail")

    answer = client.post(guarded.production_url, json=ANN, headers=headers)

    assert answer.status_code == 403
    assert problem_slug(answer) == "captcha-failed"


def test_a_failed_captcha_is_recorded_as_refused_and_applies_nothing(
    client: TestClient, container: Container, guarded: Endpoint
) -> None:
    headers = with_token("fail")

    client.post(guarded.production_url, json=ANN, headers=headers)

    (refused,) = events_of(container, SubmissionRefused)
    assert refused.reason == "captcha-failed"
    assert events_of(container, SubscriberRegistered) == []


def test_a_score_below_the_minimum_is_a_403(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(
        allowProfileCreation=True,
        requireRecaptcha=True,
        recaptchaSecret=SECRET,
        recaptchaMinScore=0.5,
    )

    answer = client.post(
        endpoint.production_url, json=ANN, headers=with_token("score-0.3")
    )

    assert answer.status_code == 403
    assert problem_slug(answer) == "captcha-failed"


def test_a_score_at_or_above_the_minimum_passes(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(
        allowProfileCreation=True,
        requireRecaptcha=True,
        recaptchaSecret=SECRET,
        recaptchaMinScore=0.2,
    )

    answer = client.post(
        endpoint.production_url, json=ANN, headers=with_token("score-0.3")
    )

    assert answer.status_code == 200, answer.text


def test_a_passing_token_in_the_header_is_accepted(
    client: TestClient, guarded: Endpoint
) -> None:
    headers = with_token("pass")

    answer = client.post(guarded.production_url, json=ANN, headers=headers)

    assert answer.status_code == 200, answer.text


def test_a_passing_token_in_the_form_field_is_accepted(
    client: TestClient, guarded: Endpoint
) -> None:
    fields = [("email", "ann@example.com"), ("g-recaptcha-response", "pass")]

    answer = client.post(
        guarded.production_url,
        content=urlencode(fields),
        headers={"Content-Type": FORM},
    )

    assert answer.status_code == 200, answer.text


def test_the_captcha_form_field_is_not_taken_for_a_profile_field(
    client: TestClient, guarded: Endpoint, verifier: FakeVerifier
) -> None:
    fields = [("email", "ann@example.com"), ("g-recaptcha-response", "pass")]

    answer = client.post(
        guarded.production_url,
        content=urlencode(fields),
        headers={"Content-Type": FORM, "Accept": "application/json"},
    )

    assert answer.status_code == 200, answer.text
    assert verifier.requests[-1]["response"] == "pass"


def test_the_verifier_receives_the_secret_the_token_and_the_client_ip(
    client_from: ClientFrom, guarded: Endpoint, verifier: FakeVerifier
) -> None:
    browser = client_from("203.0.113.7")

    browser.post(guarded.production_url, json=ANN, headers=with_token("pass"))

    assert verifier.requests == [
        {"secret": SECRET, "response": "pass", "remoteip": "203.0.113.7"}
    ]


def test_captcha_applies_in_test_mode_too(
    client: TestClient, guarded: Endpoint
) -> None:
    body = ANN

    answer = client.post(guarded.test_url, json=body)

    assert answer.status_code == 403
    assert problem_slug(answer) == "captcha-failed"


def test_captcha_is_checked_before_validation(
    client: TestClient, guarded: Endpoint
) -> None:
    body = [{"profile": {"email": "not-an-email", "nickname": "Annie"}}]

    answer = client.post(guarded.production_url, json=body)

    assert answer.status_code == 403
    assert problem_slug(answer) == "captcha-failed"


def test_an_endpoint_without_captcha_ignores_a_token(
    client: TestClient, endpoint: Endpoint, verifier: FakeVerifier
) -> None:
    headers = with_token("fail")

    answer = client.post(endpoint.production_url, json=ANN, headers=headers)

    assert answer.status_code == 200, answer.text
    assert verifier.requests == []


# -- an unavailable verifier


@pytest.mark.parametrize("token", ["broken", "garbage"])
def test_a_failing_verifier_is_a_503_with_retry_after(
    client: TestClient, guarded: Endpoint, token: str
) -> None:
    headers = with_token(token)

    answer = client.post(guarded.production_url, json=ANN, headers=headers)

    assert answer.status_code == 503
    assert problem_slug(answer) == "captcha-unavailable"
    assert int(answer.headers["retry-after"]) >= 1


@pytest.mark.parametrize("token", ["broken", "garbage"])
def test_a_failing_verifier_writes_nothing(
    client: TestClient, container: Container, guarded: Endpoint, token: str
) -> None:
    head = container.events.head()

    client.post(guarded.production_url, json=ANN, headers=with_token(token))

    assert container.events.head() == head


@pytest.mark.usefixtures("impatient_captcha")
def test_a_verifier_slower_than_the_timeout_is_a_503_and_writes_nothing(
    client: TestClient, container: Container, guarded: Endpoint
) -> None:
    head = container.events.head()

    answer = client.post(guarded.production_url, json=ANN, headers=with_token("slow"))

    assert answer.status_code == 503
    assert problem_slug(answer) == "captcha-unavailable"
    assert int(answer.headers["retry-after"]) >= 1
    assert container.events.head() == head


def test_an_unreachable_verifier_is_a_503(
    client: TestClient, container: Container, guarded: Endpoint
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    container.captcha = SiteverifyClient(f"http://127.0.0.1:{closed_port}/siteverify")

    answer = client.post(guarded.production_url, json=ANN, headers=with_token("pass"))

    assert answer.status_code == 503
    assert problem_slug(answer) == "captcha-unavailable"


def test_a_503_from_the_verifier_carries_cors_headers(
    client: TestClient, guarded: Endpoint
) -> None:
    headers = {**with_token("broken"), "Origin": SHOP}

    answer = client.post(guarded.production_url, json=ANN, headers=headers)

    assert answer.status_code == 503
    assert answer.headers["access-control-allow-origin"] == SHOP


def test_a_form_post_meeting_a_failing_verifier_is_sent_to_the_error_url(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(
        allowProfileCreation=True,
        requireRecaptcha=True,
        recaptchaSecret=SECRET,
        errorRedirectUrl=ERROR,
    )
    fields = [("email", "ann@example.com"), ("g-recaptcha-response", "broken")]

    answer = client.post(
        endpoint.production_url,
        content=urlencode(fields),
        headers={"Content-Type": FORM},
        follow_redirects=False,
    )

    assert answer.status_code == 303
    assert answer.headers["location"] == f"{ERROR}?error=captcha-unavailable"
