"""HTML form posts (urlencoded and multipart), their redirects and pages;
CORS preflight and headers; the server's own origin check."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

import httpx2
import pytest
from starlette.testclient import TestClient

from api.bootstrap import Container
from domain.submission import SubmissionRefused
from domain.subscriber import ConsentRecorded, ProfileChanged
from tests.submissions.conftest import (
    Endpoint,
    MakeEndpoint,
    events_of,
    problem_slug,
)

FORM = "application/x-www-form-urlencoded"
SHOP = "https://shop.example"
SUCCESS = "https://shop.example/thanks"
ERROR = "https://shop.example/oops"
ANN = {"profile": {"email": "ann@example.com"}}
ANN_FORM = [("email", "ann@example.com")]
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def post_form(
    client: TestClient,
    url: str,
    pairs: list[tuple[str, str]],
    headers: Mapping[str, str] | None = None,
) -> httpx2.Response:
    """A urlencoded post of `pairs`, in order, as a browser's form sends it."""
    return client.post(
        url,
        content=urlencode(pairs),
        headers={"Content-Type": FORM, **(headers or {})},
        follow_redirects=False,
    )


def post_multipart(
    client: TestClient, url: str, pairs: list[tuple[str, str]]
) -> httpx2.Response:
    """A multipart/form-data post of text fields."""
    boundary = "headwater-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        f"{value}\r\n"
        for name, value in pairs
    ]
    body = "".join(parts) + f"--{boundary}--\r\n"
    return client.post(
        url,
        content=body.encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


def changes_of(container: Container) -> dict[str, object]:
    """Every field the store's profile changes set, with its new value."""
    changed: dict[str, object] = {}
    for event in events_of(container, ProfileChanged):
        changed |= {name: change.after for name, change in event.changes.items()}
    return changed


@pytest.fixture
def redirecting(make_endpoint: MakeEndpoint) -> Endpoint:
    """An endpoint that sends form posts on to the shop's pages."""
    return make_endpoint(
        allowProfileCreation=True,
        successRedirectUrl=SUCCESS,
        errorRedirectUrl=ERROR,
    )


@pytest.fixture
def guarded(make_endpoint: MakeEndpoint) -> Endpoint:
    """An endpoint that accepts submissions from the shop's origin only."""
    return make_endpoint(
        allowProfileCreation=True, allowedOrigins=[SHOP, "http://localhost:8080"]
    )


# -- forms


def test_an_urlencoded_form_is_one_profile_action(
    client: TestClient, container: Container, endpoint: Endpoint
) -> None:
    pairs = [
        ("email", "ann@example.com"),
        ("firstname", "Ann"),
        ("custom.favouriteColour", "green"),
    ]

    answer = post_form(client, endpoint.production_url, pairs)

    assert answer.status_code == 200, answer.text
    assert len(answer.json()["results"]) == 1
    changed = changes_of(container)
    assert changed["email"] == "ann@example.com"
    assert changed["firstname"] == "Ann"
    assert changed["custom.favouriteColour"] == "green"


def test_a_multipart_form_is_one_profile_action(
    client: TestClient, container: Container, endpoint: Endpoint
) -> None:
    pairs = [
        ("email", "ann@example.com"),
        ("lastname", "Lee"),
        ("custom.favouriteColour", "blue"),
    ]

    answer = post_multipart(client, endpoint.production_url, pairs)

    assert answer.status_code == 200, answer.text
    assert len(answer.json()["results"]) == 1
    changed = changes_of(container)
    assert changed["lastname"] == "Lee"
    assert changed["custom.favouriteColour"] == "blue"


def test_form_lists_may_be_repeated_or_comma_separated(
    client: TestClient, container: Container, endpoint: Endpoint
) -> None:
    pairs = [*ANN_FORM, ("lists", "7"), ("lists", "8, 9")]

    answer = post_form(client, endpoint.production_url, pairs)

    assert answer.status_code == 200, answer.text
    subscribed = {name for name in changes_of(container) if name.startswith("lists.")}
    assert subscribed == {"lists.7", "lists.8", "lists.9"}


def test_empty_parts_of_comma_separated_form_lists_are_ignored(
    client: TestClient, container: Container, endpoint: Endpoint
) -> None:
    pairs = [*ANN_FORM, ("lists", "7,,8,")]

    answer = post_form(client, endpoint.production_url, pairs)

    assert answer.status_code == 200, answer.text
    subscribed = {name for name in changes_of(container) if name.startswith("lists.")}
    assert subscribed == {"lists.7", "lists.8"}


def test_empty_form_fields_are_ignored(
    client: TestClient, container: Container, endpoint: Endpoint
) -> None:
    pairs = [*ANN_FORM, ("lastname", ""), ("custom.favouriteColour", "")]

    answer = post_form(client, endpoint.production_url, pairs)

    assert answer.status_code == 200, answer.text
    changed = changes_of(container)
    assert "lastname" not in changed
    assert "custom.favouriteColour" not in changed


def test_a_form_list_id_that_is_not_a_number_is_a_422(
    client: TestClient, endpoint: Endpoint
) -> None:
    pairs = [*ANN_FORM, ("lists", "weekly")]

    answer = post_form(client, endpoint.production_url, pairs)

    assert answer.status_code == 422
    assert problem_slug(answer) == "validation-failed"


def test_form_consent_fields_record_consent(
    client: TestClient, container: Container, endpoint: Endpoint
) -> None:
    pairs = [
        *ANN_FORM,
        ("consent.text", "I agree to receive emails"),
        ("consent.given", "on"),
    ]

    post_form(client, endpoint.production_url, pairs)

    (consent,) = events_of(container, ConsentRecorded)
    assert consent.text == "I agree to receive emails"
    assert consent.given is True


def test_a_multipart_form_with_a_file_is_a_415(
    client: TestClient, endpoint: Endpoint
) -> None:
    files = {"photo": ("ann.png", b"\x89PNG", "image/png")}

    answer = client.post(
        endpoint.production_url, data={"email": "ann@example.com"}, files=files
    )

    assert answer.status_code == 415
    assert problem_slug(answer) == "unsupported-media-type"


def test_an_accepted_form_post_is_redirected_to_the_success_url(
    client: TestClient, redirecting: Endpoint
) -> None:
    pairs = ANN_FORM

    answer = post_form(client, redirecting.production_url, pairs)

    assert answer.status_code == 303
    assert answer.headers["location"] == SUCCESS


def test_a_refused_form_post_is_redirected_to_the_error_url_with_the_slug(
    client: TestClient, redirecting: Endpoint
) -> None:
    pairs = [("firstname", "Ann")]

    answer = post_form(client, redirecting.production_url, pairs)

    assert answer.status_code == 303
    assert answer.headers["location"] == f"{ERROR}?error=validation-failed"


def test_the_error_url_keeps_its_own_query(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(errorRedirectUrl=f"{ERROR}?lang=en")

    answer = post_form(client, endpoint.production_url, [("firstname", "Ann")])

    assert answer.status_code == 303
    assert answer.headers["location"] == f"{ERROR}?lang=en&error=validation-failed"


def test_a_form_post_from_another_origin_is_redirected_with_origin_not_allowed(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(allowedOrigins=[SHOP], errorRedirectUrl=ERROR)

    answer = post_form(
        client,
        endpoint.production_url,
        ANN_FORM,
        headers={"Origin": "https://evil.example"},
    )

    assert answer.status_code == 303
    assert answer.headers["location"] == f"{ERROR}?error=origin-not-allowed"


def test_a_json_post_is_answered_in_json_even_with_redirects_configured(
    client: TestClient, redirecting: Endpoint
) -> None:
    body = [ANN]

    answer = client.post(redirecting.production_url, json=body)

    assert answer.status_code == 200
    assert answer.json()["results"][0]["description"] == "accepted"


def test_a_browser_form_post_without_redirects_gets_a_short_html_page(
    client: TestClient, endpoint: Endpoint
) -> None:
    pairs = ANN_FORM

    answer = post_form(client, endpoint.production_url, pairs, headers=BROWSER)

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "<h1>" in answer.text


def test_a_refused_browser_form_post_gets_an_html_page_with_the_status(
    client: TestClient, endpoint: Endpoint
) -> None:
    pairs = [("firstname", "Ann")]

    answer = post_form(client, endpoint.production_url, pairs, headers=BROWSER)

    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("text/html")


def test_a_form_post_not_asking_for_html_gets_a_json_answer(
    client: TestClient, endpoint: Endpoint
) -> None:
    pairs = ANN_FORM

    answer = post_form(client, endpoint.production_url, pairs)

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["mode"] == "production"


def test_a_refused_form_post_not_asking_for_html_gets_problem_details(
    client: TestClient, endpoint: Endpoint
) -> None:
    pairs = [("firstname", "Ann")]

    answer = post_form(client, endpoint.production_url, pairs)

    assert answer.status_code == 422
    assert problem_slug(answer) == "validation-failed"


# -- CORS


def preflight(client: TestClient, url: str, origin: str = SHOP) -> httpx2.Response:
    return client.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-recaptcha-token",
        },
    )


def listed(header: str) -> set[str]:
    return {part.strip().lower() for part in header.split(",")}


def test_a_preflight_from_an_allowed_origin_names_that_origin(
    client: TestClient, guarded: Endpoint
) -> None:
    url = guarded.production_url

    answer = preflight(client, url)

    assert answer.status_code in (200, 204)
    assert answer.headers["access-control-allow-origin"] == SHOP
    assert "POST" in answer.headers["access-control-allow-methods"]


def test_a_preflight_allows_the_content_type_captcha_and_idempotency_headers(
    client: TestClient, guarded: Endpoint
) -> None:
    url = guarded.production_url

    answer = preflight(client, url)

    assert listed(answer.headers["access-control-allow-headers"]) >= {
        "content-type",
        "x-recaptcha-token",
        "idempotency-key",
    }


def test_a_preflight_exposes_the_replay_and_retry_headers(
    client: TestClient, guarded: Endpoint
) -> None:
    url = guarded.production_url

    answer = preflight(client, url)

    assert listed(answer.headers["access-control-expose-headers"]) >= {
        "idempotent-replayed",
        "retry-after",
    }


def test_a_preflight_to_an_endpoint_open_to_all_origins_allows_any(
    client: TestClient, endpoint: Endpoint
) -> None:
    url = endpoint.production_url

    answer = preflight(client, url, origin="https://anywhere.example")

    assert answer.headers["access-control-allow-origin"] == "*"


def test_a_preflight_from_another_origin_allows_nothing(
    client: TestClient, guarded: Endpoint
) -> None:
    url = guarded.production_url

    answer = preflight(client, url, origin="https://evil.example")

    assert "access-control-allow-origin" not in answer.headers


def test_a_preflight_to_an_unknown_endpoint_is_a_404(client: TestClient) -> None:
    url = "/v5/endpoints/" + "A" * 32

    answer = preflight(client, url)

    assert answer.status_code == 404


def test_a_preflight_to_the_test_url_of_an_inactive_integration_is_answered(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    inactive = make_endpoint(activate=False, allowedOrigins=[SHOP])

    answer = preflight(client, inactive.test_url)

    assert answer.headers["access-control-allow-origin"] == SHOP


def test_a_post_from_an_allowed_origin_carries_cors_headers(
    client: TestClient, guarded: Endpoint
) -> None:
    body = [ANN]

    answer = client.post(guarded.production_url, json=body, headers={"Origin": SHOP})

    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == SHOP
    assert listed(answer.headers["access-control-expose-headers"]) >= {
        "idempotent-replayed",
        "retry-after",
    }
    assert "origin" in listed(answer.headers["vary"])


def test_a_refused_post_from_an_allowed_origin_carries_cors_headers(
    client: TestClient, guarded: Endpoint
) -> None:
    body = [{"profile": {"firstname": "Ann"}}]

    answer = client.post(guarded.production_url, json=body, headers={"Origin": SHOP})

    assert answer.status_code == 422
    assert answer.headers["access-control-allow-origin"] == SHOP


def test_a_post_to_an_endpoint_open_to_all_origins_allows_any_origin(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = [ANN]

    answer = client.post(
        endpoint.production_url,
        json=body,
        headers={"Origin": "https://anywhere.example"},
    )

    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"


# -- the origin check


def test_a_post_whose_origin_is_not_allowed_is_a_403(
    client: TestClient, guarded: Endpoint
) -> None:
    headers = {"Origin": "https://evil.example"}

    answer = client.post(guarded.production_url, json=[ANN], headers=headers)

    assert answer.status_code == 403
    assert problem_slug(answer) == "origin-not-allowed"


def test_a_post_whose_referer_names_another_origin_is_a_403(
    client: TestClient, guarded: Endpoint
) -> None:
    headers = {"Referer": "https://evil.example/landing?page=1"}

    answer = client.post(guarded.production_url, json=[ANN], headers=headers)

    assert answer.status_code == 403
    assert problem_slug(answer) == "origin-not-allowed"


def test_a_post_whose_referer_is_on_an_allowed_origin_passes(
    client: TestClient, guarded: Endpoint
) -> None:
    headers = {"Referer": "https://shop.example/signup"}

    answer = client.post(guarded.production_url, json=[ANN], headers=headers)

    assert answer.status_code == 200, answer.text


def test_a_post_from_an_allowed_origin_with_a_port_passes(
    client: TestClient, guarded: Endpoint
) -> None:
    headers = {"Origin": "http://localhost:8080"}

    answer = client.post(guarded.production_url, json=[ANN], headers=headers)

    assert answer.status_code == 200, answer.text


def test_the_same_host_on_another_port_is_another_origin(
    client: TestClient, guarded: Endpoint
) -> None:
    headers = {"Origin": "http://localhost:9090"}

    answer = client.post(guarded.production_url, json=[ANN], headers=headers)

    assert answer.status_code == 403


def test_a_post_without_origin_or_referer_passes_the_origin_check(
    client: TestClient, guarded: Endpoint
) -> None:
    body = [ANN]

    answer = client.post(guarded.production_url, json=body)

    assert answer.status_code == 200, answer.text


def test_the_origin_header_is_checked_before_the_referer(
    client: TestClient, guarded: Endpoint
) -> None:
    headers = {"Origin": "https://evil.example", "Referer": "https://shop.example/"}

    answer = client.post(guarded.production_url, json=[ANN], headers=headers)

    assert answer.status_code == 403


def test_an_opaque_null_origin_is_not_allowed(
    client: TestClient, guarded: Endpoint
) -> None:
    headers = {"Origin": "null"}

    answer = client.post(guarded.production_url, json=[ANN], headers=headers)

    assert answer.status_code == 403
    assert problem_slug(answer) == "origin-not-allowed"


def test_an_endpoint_open_to_all_origins_accepts_any_origin(
    client: TestClient, endpoint: Endpoint
) -> None:
    headers = {"Origin": "https://anywhere.example"}

    answer = client.post(endpoint.production_url, json=[ANN], headers=headers)

    assert answer.status_code == 200, answer.text


def test_a_refused_origin_is_recorded_and_nothing_is_applied(
    client: TestClient, container: Container, guarded: Endpoint
) -> None:
    headers = {"Origin": "https://evil.example"}

    client.post(guarded.production_url, json=[ANN], headers=headers)

    (refused,) = events_of(container, SubmissionRefused)
    assert refused.reason == "origin-not-allowed"
    assert events_of(container, ProfileChanged) == []


def test_the_origin_is_checked_in_test_mode_too(
    client: TestClient, guarded: Endpoint
) -> None:
    headers = {"Origin": "https://evil.example"}

    answer = client.post(guarded.test_url, json=[ANN], headers=headers)

    assert answer.status_code == 403
    assert problem_slug(answer) == "origin-not-allowed"
