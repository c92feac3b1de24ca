"""A catalogue of malformed inputs, each with the answer it must get.

docs/reliability.md lists the same inputs in a table. Most go through the
real ASGI application; those whose behaviour needs a socket (header limits,
raw paths, a body the server stops reading) go to a real `headwater serve`,
and those that need a client slower than any test should wait for go to
the application with its deadline shortened.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from starlette.types import Message

from api.bootstrap import Container
from api.http import jsonio
from api.http.app import create_app
from tests.badinput.conftest import Json, problem_slug
from tests.conftest import TEST_SECRET_KEY
from tests.support.server import LiveServer, start_server

ANN: Json = {"profile": {"email": "ann@example.com", "firstname": "Ann"}}
JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}
MIB = 1024 * 1024
SOCKET_SECONDS = 5.0


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def with_event_data(data: Any) -> bytes:
    return orjson.dumps([ANN, {"event": {"type": "signup", "data": data}}])


def with_list_id(literal: bytes) -> bytes:
    return (
        b'{"profile": {"email": "ann@example.com", "firstname": "Ann", '
        b'"lists": [{"listId": ' + literal + b"}]}}"
    )


def with_activity_id(literal: bytes) -> bytes:
    return b'[{"event": {"type": "signup", "activityId": ' + literal + b"}}]"


def with_custom_value(literal: bytes) -> bytes:
    return (
        b'{"profile": {"email": "ann@example.com", "firstname": "Ann", '
        b'"custom": {"score": ' + literal + b"}}}"
    )


# -- invalid UTF-8


def test_invalid_utf8_in_a_json_body_is_a_400(
    client: TestClient, endpoint: str
) -> None:
    body = b'{"profile": {"email": "ann@example.com", "firstname": "An\xff"}}'

    answer = client.post(endpoint, content=body, headers=JSON)

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"


def test_invalid_utf8_in_a_form_body_is_a_400(
    client: TestClient, endpoint: str
) -> None:
    answer = client.post(
        endpoint, content=b"email=ann%40example.com&firstname=An\xff", headers=FORM
    )

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"


def test_a_percent_escape_that_is_not_utf8_in_a_form_is_a_400(
    client: TestClient, endpoint: str
) -> None:
    answer = client.post(
        endpoint, content=b"email=ann%40example.com&firstname=An%FF", headers=FORM
    )

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"


def test_invalid_utf8_in_a_multipart_form_is_a_400(
    client: TestClient, endpoint: str
) -> None:
    body = (
        b"--b\r\nContent-Disposition: form-data; name=email\r\n\r\n"
        b"ann@example.com\r\n"
        b"--b\r\nContent-Disposition: form-data; name=firstname\r\n\r\n"
        b"An\xff\r\n--b--\r\n"
    )

    answer = client.post(
        endpoint,
        content=body,
        headers={"content-type": "multipart/form-data; boundary=b"},
    )

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"


def test_invalid_utf8_in_an_admin_body_is_a_400(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    answer = client.post(
        "/admin/v1/integrations",
        content=b'{"name": "Sh\xffp", "type": "v5-api-endpoint-unauthenticated"}',
        headers={**admin_headers, **JSON},
    )

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"


# -- deep nesting


def test_ten_thousand_nested_arrays_are_a_400(
    client: TestClient, endpoint: str
) -> None:
    answer = client.post(endpoint, content=nested(10_000), headers=JSON)

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"


def test_nesting_within_orjson_but_past_the_recursion_limit_is_a_400(
    client: TestClient, endpoint: str
) -> None:
    # orjson takes 1,024 levels; reading the body again for duplicate keys
    # would hit Python's recursion limit first.
    body = b'{"profile": {"email": "a@example.com", "custom": ' + nested(1_020) + b"}}"

    answer = client.post(endpoint, content=body, headers=JSON)

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"


def test_event_data_nested_past_the_limit_is_a_422_naming_data(
    client: TestClient, endpoint: str
) -> None:
    data: Any = "deep"
    for _ in range(20):
        data = {"level": data}

    answer = client.post(endpoint, content=with_event_data(data), headers=JSON)

    assert answer.status_code == 422
    assert problem_slug(answer) == "validation-failed"
    assert answer.json()["errors"] == [
        {
            "action": 1,
            "field": "data",
            "rule": "maxDepth",
            "message": "nests deeper than 8 levels",
        }
    ]


def test_ten_thousand_nested_arrays_in_an_admin_body_are_a_400(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    body = b'{"name": "Shop", "type": ' + nested(10_000) + b"}"

    answer = client.post(
        "/admin/v1/integrations", content=body, headers={**admin_headers, **JSON}
    )

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"


# -- huge numbers


@pytest.mark.parametrize(
    ("literal", "status", "slug"),
    [
        (b"1e400", 400, "malformed-request"),
        (b"18446744073709551616", 422, "validation-failed"),
        (b"-18446744073709551616", 422, "validation-failed"),
        (b"9007199254740993", 422, "validation-failed"),
        (b"0", 422, "validation-failed"),
        (b"1" * 5_000, 400, "malformed-request"),
    ],
    ids=["1e400", "2**64", "-2**64", "2**53+1", "zero", "5000 digits"],
)
def test_a_list_id_out_of_range_is_refused(
    client: TestClient, endpoint: str, literal: bytes, status: int, slug: str
) -> None:
    answer = client.post(endpoint, content=with_list_id(literal), headers=JSON)

    assert answer.status_code == status
    assert problem_slug(answer) == slug


@pytest.mark.parametrize(
    "literal", [b"-18446744073709551616", b"18446744073709551616", b"-1", b"true"]
)
def test_an_activity_id_out_of_range_is_a_422_naming_it(
    client: TestClient, endpoint: str, literal: bytes
) -> None:
    answer = client.post(endpoint, content=with_activity_id(literal), headers=JSON)

    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == ["activityId"]


def test_a_whole_number_written_with_a_zero_fraction_is_a_list_id(
    client: TestClient, endpoint: str
) -> None:
    answer = client.post(endpoint, content=with_list_id(b"7.0"), headers=JSON)

    assert answer.status_code == 200


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"nan"])
def test_a_number_that_json_has_no_literal_for_is_a_400(
    client: TestClient, endpoint: str, literal: bytes
) -> None:
    answer = client.post(endpoint, content=with_custom_value(literal), headers=JSON)

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"


# -- duplicate keys


@pytest.mark.parametrize(
    "body",
    [
        b'{"profile": {"email": "ann@example.com", "email": "bob@example.com", '
        b'"firstname": "Ann"}}',
        b'[{"profile": {"email": "ann@example.com", "firstname": "Ann", '
        b'"custom": {"tier": "gold", "tier": "free"}}}]',
        b'{"profile": {"email": "ann@example.com", "firstname": "Ann"}, '
        b'"profile": {"email": "bob@example.com", "firstname": "Bob"}}',
        b'[{"event": {"type": "a", "data": {"x": [{"k": 1, "k": 2}]}}}]',
    ],
    ids=["profile field", "custom field", "action key", "deep in event data"],
)
def test_a_key_twice_in_one_object_is_a_400(
    client: TestClient, endpoint: str, body: bytes
) -> None:
    answer = client.post(endpoint, content=body, headers=JSON)

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"
    assert "twice" in answer.json()["detail"]


def test_the_same_key_in_two_objects_is_not_a_duplicate(
    client: TestClient, endpoint: str
) -> None:
    body = [ANN, {"profile": {"email": "bob@example.com", "firstname": "Bob"}}]

    answer = client.post(endpoint, json=body)

    assert answer.status_code == 200


def test_a_key_twice_in_an_admin_body_is_a_400(
    client: TestClient, admin_headers: dict[str, str], integration: Json
) -> None:
    body = b'{"name": "Shop", "recaptchaSecret": "one", "recaptchaSecret": "two"}'

    answer = client.put(
        f"/admin/v1/integrations/{integration['id']}",
        content=body,
        headers={**admin_headers, **JSON},
    )

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"


def test_a_captcha_secret_beyond_ascii_can_be_saved_and_kept(
    client: TestClient, admin_headers: dict[str, str], integration: Json
) -> None:
    url = f"/admin/v1/integrations/{integration['id']}"
    client.put(
        url, json={"name": "Shop", "recaptchaSecret": "sécret"}, headers=admin_headers
    )

    # Keeping the secret compares it with itself, which once failed as a 500.
    answer = client.put(url, json={"name": "Shop again"}, headers=admin_headers)

    assert answer.status_code == 200
    assert answer.json()["recaptchaSecretSet"] is True


# -- size and time


def test_a_ten_mib_body_is_a_413(client: TestClient, endpoint: str) -> None:
    answer = client.post(endpoint, content=b" " * (10 * MIB), headers=JSON)

    assert answer.status_code == 413
    assert problem_slug(answer) == "body-too-large"


def test_a_ten_mib_body_without_a_length_is_refused_after_the_limit(
    container: Container, integration: Json
) -> None:
    app = create_app(container)
    chunks = [b" " * MIB] * 10

    status, headers, read = asyncio.run(
        post_streamed(app, f"/v5/endpoints/{integration['endpointId']}", chunks)
    )

    assert status == 413
    assert headers.get("connection") == "close"
    assert read == 1


def test_a_body_that_stops_arriving_is_a_408(
    container: Container, integration: Json, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonio, "BODY_CHUNK_SECONDS", 0.2)
    app = create_app(container)

    status, headers, read = asyncio.run(
        post_streamed(
            app, f"/v5/endpoints/{integration['endpointId']}", [b"[{"], stall=True
        )
    )

    assert status == 408
    assert headers.get("connection") == "close"
    assert read == 1


def test_a_body_that_trickles_past_the_total_deadline_is_a_408(
    container: Container, integration: Json, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonio, "BODY_TOTAL_SECONDS", 0.3)
    app = create_app(container)
    chunks = [b" "] * 1_000

    status, _, read = asyncio.run(
        post_streamed(
            app, f"/v5/endpoints/{integration['endpointId']}", chunks, pause=0.02
        )
    )

    assert status == 408
    assert read < len(chunks)


def test_an_admin_body_that_stops_arriving_is_a_408_problem(
    container: Container, admin_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonio, "BODY_CHUNK_SECONDS", 0.2)
    app = create_app(container)

    status, headers, _ = asyncio.run(
        post_streamed(
            app,
            "/admin/v1/integrations",
            [b'{"name": '],
            stall=True,
            extra_headers=[(b"authorization", f"Bearer {admin_token}".encode())],
        )
    )

    assert status == 408
    assert headers["content-type"] == "application/problem+json"


async def post_streamed(
    app: Starlette,
    path: str,
    chunks: list[bytes],
    *,
    pause: float = 0.0,
    stall: bool = False,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, dict[str, str], int]:
    """POST `chunks` as a body of unknown length straight to the ASGI app;
    with `stall`, the client then sends nothing more, ever.

    Answers the status, the headers, and how many chunks the app read.
    """
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            *(extra_headers or []),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    read = 0
    answer: list[Message] = []

    async def receive() -> Message:
        nonlocal read
        if read == len(chunks):
            await asyncio.Event().wait()  # a client that never finishes
        await asyncio.sleep(pause)
        read += 1
        more = stall or read < len(chunks)
        return {"type": "http.request", "body": chunks[read - 1], "more_body": more}

    async def send(message: Message) -> None:
        answer.append(message)

    await app(scope, receive, send)
    start = answer[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, read


# -- content types


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/xml",
        None,
        "application/json; charset=iso-8859-1",
        "application/json; charset=utf-16",
        "application/x-www-form-urlencoded; charset=latin-1",
    ],
)
def test_a_body_that_is_not_json_or_a_form_in_utf8_is_a_415(
    client: TestClient, endpoint: str, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}

    answer = client.post(endpoint, content=orjson.dumps(ANN), headers=headers)

    assert answer.status_code == 415
    assert problem_slug(answer) == "unsupported-media-type"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        'application/json; charset="UTF-8"',
        "APPLICATION/JSON",
    ],
)
def test_json_that_says_it_is_utf8_is_read(
    client: TestClient, endpoint: str, content_type: str
) -> None:
    answer = client.post(
        endpoint, content=orjson.dumps(ANN), headers={"content-type": content_type}
    )

    assert answer.status_code == 200


@pytest.mark.parametrize(
    "content_type", ["text/plain", None, "application/json; charset=iso-8859-1"]
)
def test_an_admin_body_that_is_not_json_in_utf8_is_a_415(
    client: TestClient, admin_headers: dict[str, str], content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}

    answer = client.post(
        "/admin/v1/integrations",
        content=b'{"name": "Shop", "type": "v5-api-endpoint-unauthenticated"}',
        headers={**admin_headers, **headers},
    )

    assert answer.status_code == 415
    assert problem_slug(answer) == "unsupported-media-type"


# -- headers


@pytest.mark.parametrize("key", ["k" * 256, ""])
def test_an_idempotency_key_of_the_wrong_length_is_a_400(
    client: TestClient, endpoint: str, key: str
) -> None:
    answer = client.post(endpoint, json=ANN, headers={"idempotency-key": key})

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"


def test_an_idempotency_key_of_255_characters_is_taken(
    client: TestClient, endpoint: str
) -> None:
    answer = client.post(endpoint, json=ANN, headers={"idempotency-key": "k" * 255})

    assert answer.status_code == 200


def test_a_ten_kib_bearer_token_is_a_401(client: TestClient) -> None:
    answer = client.get(
        "/admin/v1/integrations", headers={"Authorization": "Bearer " + "x" * 10240}
    )

    assert answer.status_code == 401
    assert problem_slug(answer) == "unauthenticated"


# -- paths


@pytest.mark.parametrize(
    "path",
    [
        "/v5/endpoints/..%2F..%2Fadmin",
        "/v5/endpoints/%2e%2e",
        "/v5/endpoints/" + "a" * 10_000,
        "/v5/endpoints/%00",
        "/v5/endpoints/abc%00def",
        "/v5/test/endpoints/..%2F..%2Fadmin%2Fv1%2Ftokens",
    ],
    ids=["traversal", "dot-dot", "10000 characters", "NUL", "inner NUL", "test mode"],
)
def test_an_odd_endpoint_id_is_a_404_problem(client: TestClient, path: str) -> None:
    answer = client.post(path, json=ANN)

    assert answer.status_code == 404
    assert problem_slug(answer) == "not-found"


@pytest.mark.parametrize(
    "path",
    [
        "/admin/v1/integrations/not-a-uuid",
        "/admin/v1/integrations/%00",
        "/admin/v1/integrations/..%2Ftokens",
        "/admin/v1/integrations/" + "1" * 10_000,
        "/admin/v1/subscribers/not-a-uuid",
        "/admin/v1/subscribers/%00/history",
    ],
    ids=["not a UUID", "NUL", "traversal", "10000 digits", "subscriber", "NUL history"],
)
def test_an_odd_admin_id_is_a_404_problem(
    client: TestClient, admin_headers: dict[str, str], path: str
) -> None:
    answer = client.get(path, headers=admin_headers)

    assert answer.status_code == 404
    assert problem_slug(answer) == "not-found"


def test_another_method_on_an_endpoint_is_a_405_naming_both_methods(
    client: TestClient, endpoint: str
) -> None:
    answer = client.get(endpoint)

    assert answer.status_code == 405
    assert problem_slug(answer) == "method-not-allowed"
    assert answer.headers["allow"] == "OPTIONS, POST"


def test_a_405_names_every_method_of_an_admin_path(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    answer = client.delete("/admin/v1/integrations", headers=admin_headers)

    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, HEAD, POST"


# -- admin query strings


@pytest.mark.parametrize(
    "query",
    [
        "/subscribers?limit=-1",
        "/subscribers?limit=abc",
        "/subscribers?limit=0",
        "/subscribers?limit=501",
        "/subscribers?limit=%C2%B2",
        "/subscribers?cursor=garbage",
        "/subscribers?minPosition=-5",
        "/subscribers?minPosition=%C2%B2",
        "/subscribers?minPosition=99999999999999999999",
        "/integrations?minPosition=abc",
        "/audit?cursor=garbage",
        "/audit?from=",
        "/audit?to=yesterday",
        "/audit?from=0001-01-01T00:00:00%2B23:59",
        "/audit?to=9999-12-31T23:59:59-23:59",
        "/audit?order=sideways",
        "/events?after=-1",
        "/events?after=99999999999999999999",
        "/events?after=%C2%B2",
        "/events?limit=abc",
        "/events?type=NoSuchEvent",
        "/deliveries?activityId=18446744073709551616",
        "/deliveries?status=lost",
        "/deliveries?cursor=garbage",
    ],
)
def test_a_bad_query_on_an_admin_read_is_a_400(
    client: TestClient, admin_headers: dict[str, str], query: str
) -> None:
    answer = client.get("/admin/v1" + query, headers=admin_headers)

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"


@pytest.mark.parametrize(
    "as_of", ["garbage", "", "2026-12-03T12:00:00", "0001-01-01T00:00:00%2B23:59"]
)
def test_a_bad_as_of_is_a_400(
    client: TestClient, admin_headers: dict[str, str], integration: Json, as_of: str
) -> None:
    answer = client.get(
        f"/admin/v1/integrations/{integration['id']}?asOf={as_of}",
        headers=admin_headers,
    )

    assert answer.status_code == 400
    assert problem_slug(answer) == "malformed-request"


# -- forms


def test_a_list_id_of_unicode_digits_in_a_form_is_a_422(
    client: TestClient, endpoint: str
) -> None:
    answer = client.post(
        endpoint,
        content=b"email=ann%40example.com&firstname=Ann&lists=%C2%B2",
        headers=FORM,
    )

    assert answer.status_code == 422
    assert problem_slug(answer) == "validation-failed"


def test_a_custom_field_name_ending_in_a_newline_is_a_422(
    client: TestClient, endpoint: str
) -> None:
    body = {"profile": {**ANN["profile"], "custom": {"tier\n": "gold"}}}

    answer = client.post(endpoint, json=body)

    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == ["custom.tier\n"]


# -- over a real socket


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder: Path = tmp_path_factory.mktemp("live")
    server = start_server(
        folder,
        {
            "HEADWATER_DATABASE_URL": f"sqlite:///{folder}/var/headwater.db",
            "HEADWATER_SECRET_KEY": TEST_SECRET_KEY,
        },
    )
    try:
        yield server
    finally:
        server.stop()


def exchange(server: LiveServer, request: bytes, *, then: bytes = b"") -> bytes:
    """Send raw bytes, then read until the server closes or goes quiet."""
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=SOCKET_SECONDS) as sock:
        sock.sendall(request)
        if then:
            # The server may stop reading, and reset, before all is sent.
            with contextlib.suppress(OSError):
                sock.sendall(then)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return received


def test_a_100_kib_header_is_a_431_and_the_connection_closes(live: LiveServer) -> None:
    request = (
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 102_400 + b"\r\n\r\n"
    )

    received = exchange(live, request)

    status_line, _, rest = received.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 431")
    assert b"connection: close" in rest.lower()


@pytest.mark.parametrize(
    "path",
    [
        b"/admin/v1/integrations/../tokens",
        b"/admin/v1/integrations/%2e%2e/tokens",
        b"/v5/endpoints/../../admin/v1/tokens",
    ],
)
def test_a_raw_dot_dot_path_is_a_404_not_another_route(
    live: LiveServer, path: bytes
) -> None:
    token = (live.admin_token or "").encode()
    request = (
        b"GET "
        + path
        + b" HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer "
        + token
        + b"\r\nConnection: close\r\n\r\n"
    )

    received = exchange(live, request)

    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404")
    assert orjson.loads(body)["type"].endswith("/problems/not-found")


def test_a_declared_ten_mib_body_is_a_413_before_it_is_sent(live: LiveServer) -> None:
    request = (
        b"POST /v5/endpoints/anything HTTP/1.1\r\nHost: a\r\n"
        b"Content-Type: application/json\r\nContent-Length: 10485760\r\n\r\n"
    )

    received = exchange(live, request)

    assert received.startswith(b"HTTP/1.1 413")


def test_a_chunked_body_is_a_413_once_it_passes_the_limit(live: LiveServer) -> None:
    request = (
        b"POST /v5/endpoints/anything HTTP/1.1\r\nHost: a\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"10000\r\n" + b" " * 65536 + b"\r\n"

    received = exchange(live, request, then=chunk * 2)

    assert received.startswith(b"HTTP/1.1 413")
