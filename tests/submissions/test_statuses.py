"""The public endpoint's statuses: accepted answers, malformed and oversized
bodies, content types, unknown endpoints and methods, an unavailable store."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator

import orjson
import psycopg
import pytest
from psycopg import sql
from starlette.testclient import TestClient
from starlette.types import Message

from api.bootstrap import Container
from api.http.app import create_app
from domain.submission import SubmissionTested
from domain.subscriber import SubscriberRegistered
from tests.submissions.conftest import (
    Endpoint,
    MakeEndpoint,
    events_of,
    problem_slug,
)

ANN = {"profile": {"email": "ann@example.com", "firstname": "Ann"}}
SIGNUP = {"event": {"type": "signup", "data": {"page": "/offers"}}}


# -- 200


def test_an_accepted_submission_answers_its_id_position_mode_and_results(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = [ANN, SIGNUP]

    answer = client.post(endpoint.production_url, json=body)

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    payload = answer.json()
    assert set(payload) == {"submissionId", "position", "mode", "duplicate", "results"}
    assert payload["mode"] == "production"
    assert payload["duplicate"] is False
    assert payload["results"] == [
        {"code": 200, "name": "OK", "description": "accepted"},
        {"code": 200, "name": "OK", "description": "accepted"},
    ]


def test_an_accepted_answer_gives_the_position_of_the_submissions_last_event(
    client: TestClient, container: Container, endpoint: Endpoint
) -> None:
    body = [ANN, SIGNUP]

    answer = client.post(endpoint.production_url, json=body)

    assert answer.json()["position"] == container.events.head()


def test_a_single_action_object_is_accepted_with_one_result(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = ANN

    answer = client.post(endpoint.production_url, json=body)

    assert answer.status_code == 200, answer.text
    assert answer.json()["results"] == [
        {"code": 200, "name": "OK", "description": "accepted"}
    ]


def test_an_accepted_production_submission_creates_the_profile(
    client: TestClient, container: Container, endpoint: Endpoint
) -> None:
    body = [ANN]

    client.post(endpoint.production_url, json=body)

    assert len(events_of(container, SubscriberRegistered)) == 1


def test_the_test_url_answers_in_test_mode(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = [ANN, SIGNUP]

    answer = client.post(endpoint.test_url, json=body)

    assert answer.status_code == 200, answer.text
    assert answer.json()["mode"] == "test"
    assert [r["description"] for r in answer.json()["results"]] == [
        "would accept",
        "would accept",
    ]


def test_a_test_submission_is_recorded_as_tested_and_creates_no_profile(
    client: TestClient, container: Container, endpoint: Endpoint
) -> None:
    body = [ANN]

    client.post(endpoint.test_url, json=body)

    assert len(events_of(container, SubmissionTested)) == 1
    assert events_of(container, SubscriberRegistered) == []


# -- 400


def test_a_body_that_is_not_json_is_a_400(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = b'{"profile": {"email": '

    answer = client.post(
        endpoint.production_url,
        content=body,
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"


@pytest.mark.parametrize(
    "body",
    ["hello", 42, None, [], ["profile"], [[ANN]]],
    ids=["string", "number", "null", "empty-list", "list-of-strings", "nested-list"],
)
def test_json_that_is_not_an_action_list_is_a_400(
    client: TestClient, endpoint: Endpoint, body: object
) -> None:
    content = orjson.dumps(body)

    answer = client.post(
        endpoint.production_url,
        content=content,
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"


def test_an_action_with_two_keys_is_a_400(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = [{"profile": {"email": "ann@example.com"}, "event": {"type": "signup"}}]

    answer = client.post(endpoint.production_url, json=body)

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"


def test_an_action_of_an_unknown_kind_is_a_400_naming_it(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = [{"coupon": {"code": "SAVE10"}}]

    answer = client.post(endpoint.production_url, json=body)

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"
    assert "coupon" in answer.json()["detail"]


def test_an_action_whose_content_is_not_an_object_is_a_400(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = [{"profile": "ann@example.com"}]

    answer = client.post(endpoint.production_url, json=body)

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"


def test_an_idempotency_key_longer_than_255_characters_is_a_400(
    client: TestClient, endpoint: Endpoint
) -> None:
    key = "k" * 256

    answer = client.post(
        endpoint.production_url, json=[ANN], headers={"Idempotency-Key": key}
    )

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"


def test_a_malformed_body_is_not_recorded(
    client: TestClient, container: Container, endpoint: Endpoint
) -> None:
    head = container.events.head()

    client.post(endpoint.production_url, json=[{"coupon": {}}])

    assert container.events.head() == head


# -- 413


@pytest.mark.settings(max_body_bytes=2048)
def test_a_body_over_the_configured_limit_is_a_413(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = [{"profile": {"email": "ann@example.com", "extra": "x" * 2100}}]

    answer = client.post(endpoint.production_url, json=body)

    assert answer.status_code == 413
    assert problem_slug(answer) == "body-too-large"


@pytest.mark.settings(max_body_bytes=2048)
def test_a_body_at_the_configured_limit_is_read(
    client: TestClient, endpoint: Endpoint
) -> None:
    prefix = b'{"event": {"type": "signup", "data": {"blob": "'
    suffix = b'"}}}'
    filler = b"x" * (2048 - len(prefix) - len(suffix))

    answer = client.post(
        endpoint.production_url,
        content=prefix + filler + suffix,
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code == 200, answer.text


def test_a_body_over_64_kib_is_a_413_by_default(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = [{"event": {"type": "signup", "data": {"blob": "x" * 65536}}}]

    answer = client.post(endpoint.production_url, json=body)

    assert answer.status_code == 413
    assert problem_slug(answer) == "body-too-large"


def test_a_10_mib_body_sent_in_chunks_without_a_length_is_a_413(
    client: TestClient, container: Container, endpoint: Endpoint
) -> None:
    head = container.events.head()

    def chunks() -> Iterator[bytes]:
        yield b'[{"event": {"type": "signup", "data": {"blob": "'
        for _ in range(160):
            yield b"x" * 65536
        yield b'"}}}]'

    answer = client.post(
        endpoint.production_url,
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code == 413
    assert problem_slug(answer) == "body-too-large"
    assert container.events.head() == head


def test_a_chunked_body_is_refused_before_it_is_all_read(
    container: Container, endpoint: Endpoint
) -> None:
    app = create_app(container)
    chunks_read = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal chunks_read
        chunks_read += 1
        more = chunks_read < 160  # 160 chunks of 64 KiB: 10 MiB
        return {"type": "http.request", "body": b"x" * 65536, "more_body": more}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": endpoint.production_url,
        "raw_path": endpoint.production_url.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("192.0.2.10", 50000),
        "server": ("testserver", 80),
    }

    asyncio.run(app(scope, receive, send))

    assert sent[0]["status"] == 413
    assert chunks_read <= 2


# -- 415


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "application/octet-stream"]
)
def test_a_body_of_another_content_type_is_a_415(
    client: TestClient, endpoint: Endpoint, content_type: str
) -> None:
    body = b'[{"profile": {"email": "ann@example.com"}}]'

    answer = client.post(
        endpoint.production_url, content=body, headers={"Content-Type": content_type}
    )

    assert answer.status_code == 415
    assert problem_slug(answer) == "unsupported-media-type"


def test_a_body_without_a_content_type_is_a_415(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = b'[{"profile": {"email": "ann@example.com"}}]'

    answer = client.post(endpoint.production_url, content=body)

    assert answer.status_code == 415
    assert problem_slug(answer) == "unsupported-media-type"


def test_json_with_a_charset_parameter_is_accepted(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = b'[{"profile": {"email": "ann@example.com"}}]'

    answer = client.post(
        endpoint.production_url,
        content=body,
        headers={"Content-Type": "application/json; charset=utf-8"},
    )

    assert answer.status_code == 200, answer.text


# -- 404


def test_an_unknown_endpoint_is_a_404(client: TestClient) -> None:
    url = "/v5/endpoints/" + "A" * 32

    answer = client.post(url, json=[ANN])

    assert answer.status_code == 404
    assert problem_slug(answer) == "not-found"


def test_an_inactive_integration_on_production_answers_like_an_unknown_endpoint(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    inactive = make_endpoint(activate=False, allowProfileCreation=True)
    unknown = client.post("/v5/endpoints/" + "A" * 32, json=[ANN])

    answer = client.post(inactive.production_url, json=[ANN])

    assert answer.status_code == 404
    assert answer.headers["content-type"] == unknown.headers["content-type"]
    assert answer.content == unknown.content


def test_a_deactivated_integration_on_production_is_a_404(
    client: TestClient, endpoint: Endpoint, admin_headers: dict[str, str]
) -> None:
    client.post(
        f"/admin/v1/integrations/{endpoint.integration_id}/deactivate",
        headers=admin_headers,
    )

    answer = client.post(endpoint.production_url, json=[ANN])

    assert answer.status_code == 404
    assert problem_slug(answer) == "not-found"


def test_the_test_url_works_for_a_saved_inactive_integration(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    inactive = make_endpoint(activate=False, allowProfileCreation=True)

    answer = client.post(inactive.test_url, json=[ANN])

    assert answer.status_code == 200, answer.text
    assert answer.json()["mode"] == "test"


def test_the_test_url_of_a_never_saved_integration_is_a_404(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    unsaved = make_endpoint(save=False, activate=False)

    answer = client.post(unsaved.test_url, json=[ANN])

    assert answer.status_code == 404
    assert problem_slug(answer) == "not-found"


def test_the_old_url_of_a_rotated_endpoint_is_a_404(
    client: TestClient, endpoint: Endpoint, admin_headers: dict[str, str]
) -> None:
    client.post(
        f"/admin/v1/integrations/{endpoint.integration_id}/rotate-endpoint",
        headers=admin_headers,
    )

    answer = client.post(endpoint.production_url, json=[ANN])

    assert answer.status_code == 404


def test_the_body_is_checked_before_the_endpoint_so_bad_json_anywhere_is_a_400(
    client: TestClient,
) -> None:
    url = "/v5/endpoints/" + "A" * 32

    answer = client.post(
        url, content=b"not json", headers={"Content-Type": "application/json"}
    )

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"


def test_the_content_type_is_checked_before_the_endpoint(client: TestClient) -> None:
    url = "/v5/endpoints/" + "A" * 32

    answer = client.post(url, content=b"hello", headers={"Content-Type": "text/plain"})

    assert answer.status_code == 415


def test_a_request_to_an_unknown_endpoint_is_not_recorded(
    client: TestClient, container: Container
) -> None:
    head = container.events.head()

    client.post("/v5/endpoints/" + "A" * 32, json=[ANN])

    assert container.events.head() == head


# -- 405


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_methods_other_than_post_and_options_are_a_405(
    client: TestClient, endpoint: Endpoint, method: str
) -> None:
    url = endpoint.production_url

    answer = client.request(method, url)

    assert answer.status_code == 405
    assert problem_slug(answer) == "method-not-allowed"


def test_a_405_names_post_and_options_as_allowed(
    client: TestClient, endpoint: Endpoint
) -> None:
    url = endpoint.production_url

    answer = client.get(url)

    allowed = {method.strip() for method in answer.headers["allow"].split(",")}
    assert allowed == {"POST", "OPTIONS"}


def test_get_on_the_test_url_is_a_405(client: TestClient, endpoint: Endpoint) -> None:
    url = endpoint.test_url

    answer = client.get(url)

    assert answer.status_code == 405


# -- 503


def take_table_away(container: Container, table: str) -> None:
    """Rename a store table behind the application's back, as a store that
    lost it would answer."""
    location = container.location
    if location.dialect == "sqlite":
        assert location.path is not None
        with sqlite3.connect(location.path) as connection:
            connection.execute(f"ALTER TABLE {table} RENAME TO {table}_gone")
        return
    with psycopg.connect(
        host=location.host,
        port=location.port,
        dbname=location.dbname,
        user=location.user,
        autocommit=True,
    ) as connection:
        connection.execute(
            sql.SQL("ALTER TABLE {}.{} RENAME TO {}").format(
                sql.Identifier(location.schema),
                sql.Identifier(table),
                sql.Identifier(f"{table}_gone"),
            )
        )


@pytest.fixture
def unreadable_store(container: Container, endpoint: Endpoint) -> None:
    """A store whose events cannot be read, once the endpoint was made."""
    events = "stored_events" if container.location.dialect == "sqlite" else None
    take_table_away(container, events or "headwater_events")


@pytest.fixture
def unwritable_store(container: Container, endpoint: Endpoint) -> None:
    """A store that can read the endpoint's integration but record nothing:
    every write also writes the hash chain."""
    take_table_away(container, "event_chain")


@pytest.mark.usefixtures("unreadable_store")
def test_a_store_that_cannot_be_read_is_a_503_with_retry_after(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = [ANN]

    answer = client.post(endpoint.production_url, json=body)

    assert answer.status_code == 503
    assert problem_slug(answer) == "store-unavailable"
    assert int(answer.headers["retry-after"]) >= 1


@pytest.mark.usefixtures("unwritable_store")
def test_a_store_that_cannot_record_is_a_503_with_retry_after(
    client: TestClient, endpoint: Endpoint
) -> None:
    body = [ANN]

    answer = client.post(endpoint.production_url, json=body)

    assert answer.status_code == 503
    assert problem_slug(answer) == "store-unavailable"
    assert int(answer.headers["retry-after"]) >= 1


@pytest.mark.usefixtures("unwritable_store")
def test_a_503_from_the_store_carries_cors_headers(
    client: TestClient, endpoint: Endpoint
) -> None:
    headers = {"Origin": "https://shop.example"}

    answer = client.post(endpoint.production_url, json=[ANN], headers=headers)

    assert answer.status_code == 503
    assert answer.headers["access-control-allow-origin"] == "*"


def test_a_form_post_the_store_cannot_record_is_sent_to_the_error_url(
    client: TestClient, container: Container, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(
        allowProfileCreation=True, errorRedirectUrl="https://shop.example/oops"
    )
    take_table_away(container, "event_chain")

    answer = client.post(
        endpoint.production_url,
        content="email=ann%40example.com",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )

    assert answer.status_code == 303
    assert answer.headers["location"] == (
        "https://shop.example/oops?error=store-unavailable"
    )
