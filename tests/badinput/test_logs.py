"""No log line holds a request body, a token or a query string.

Every record the service writes while serving requests that carry
distinctive values is captured, at debug level, and searched for them. The
test client's own records (it logs the URLs it calls) are left out: they are
the caller's, not the service's.
"""

from __future__ import annotations

import logging

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from api.bootstrap import Container
from api.http.app import create_app
from api.server import hypercorn_config
from tests.badinput.conftest import Json

BODY_VALUE = "zebra-quartz-7731"
QUERY_VALUE = "heron-basalt-2093"
CAPTCHA_SECRET = "osprey-gneiss-5518"
CLIENT_LOGGERS = ("httpx", "httpcore")


def service_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Each record the service wrote: its message and any traceback."""
    return [
        record.getMessage() + (record.exc_text or "")
        for record in caplog.records
        if not record.name.startswith(CLIENT_LOGGERS)
    ]


def test_no_log_line_holds_a_body_value_a_token_or_a_query_string(
    client: TestClient,
    admin_token: str,
    admin_headers: dict[str, str],
    integration: Json,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint = f"/v5/endpoints/{integration['endpointId']}"
    profile = {"email": f"{BODY_VALUE}@example.com", "firstname": BODY_VALUE}
    anyone = {"Authorization": f"Bearer hw_{BODY_VALUE}"}

    client.post(endpoint, json={"profile": profile})
    client.post(endpoint, json={"profile": {**profile, "postcode": BODY_VALUE}})
    client.post(
        endpoint, content=f'{{"profile": "{BODY_VALUE}"'.encode(), headers=anyone
    )
    client.post(endpoint, data={"email": "ann@example.com", "firstname": BODY_VALUE})
    client.post(f"{endpoint}?{QUERY_VALUE}=1", json={"profile": profile})
    client.get(f"/admin/v1/audit?cursor={QUERY_VALUE}", headers=admin_headers)
    client.get(f"/admin/v1/subscribers?email={QUERY_VALUE}", headers=admin_headers)
    client.get(f"/admin/v1/events?type={QUERY_VALUE}", headers=admin_headers)
    client.put(
        f"/admin/v1/integrations/{integration['id']}",
        json={"name": "Shop", "recaptchaSecret": CAPTCHA_SECRET},
        headers=admin_headers,
    )
    issued = client.post(
        "/admin/v1/tokens",
        json={"name": BODY_VALUE, "role": "auditor"},
        headers=admin_headers,
    )
    client.get("/admin/v1/integrations", headers=anyone)
    client.get("/metrics", headers=admin_headers)

    lines = service_lines(caplog)
    assert any("answered" in line for line in lines), "nothing was captured"
    secrets = [
        BODY_VALUE,
        QUERY_VALUE,
        CAPTCHA_SECRET,
        admin_token,
        issued.json()["token"],
        integration["endpointId"],
    ]
    assert [s for s in secrets if any(s in line for line in lines)] == []


def test_an_unexpected_error_is_logged_with_the_route_not_the_path_or_query(
    container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(request: Request) -> Response:
        raise RuntimeError("a bug")

    app = create_app(container, extra_routes=[Route("/broken/{thing}", broken)])
    with TestClient(app, raise_server_exceptions=False) as client:
        caplog.set_level(logging.DEBUG)

        answer = client.get(f"/broken/{BODY_VALUE}?q={QUERY_VALUE}")

    lines = service_lines(caplog)
    assert answer.status_code == 500
    assert any("/broken/{thing}" in line for line in lines)
    assert not any(BODY_VALUE in line or QUERY_VALUE in line for line in lines)


def test_the_server_writes_no_access_log() -> None:
    # An access log line holds the whole request line, query string and all.
    config = hypercorn_config("127.0.0.1", 8000, workers=1)

    assert config.accesslog is None
