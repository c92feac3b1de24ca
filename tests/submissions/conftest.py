"""Fixtures for the public endpoint tests: endpoints configured through the
admin API, a fake CAPTCHA verifier, and settings a test can vary.

A test varies the settings with the `settings` marker, for example
`@pytest.mark.settings(rate_limit=3)`; every test's settings point the
CAPTCHA client at the fake verifier.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import pytest
from starlette.testclient import TestClient

from api.bootstrap import Container
from api.http.app import create_app
from api.settings import Settings
from domain.access import Role
from domain.model import Actor, DomainEvent
from infrastructure.captcha import SiteverifyClient
from tests.support.captcha import FakeVerifier

INTEGRATION_TYPE = "v5-api-endpoint-unauthenticated"
JSON_PROBLEM = "application/problem+json"

Json = dict[str, Any]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "settings(**updates): settings for the test's application"
    )


@dataclass(frozen=True)
class Endpoint:
    """An integration's public endpoint, as the admin API issued it."""

    integration_id: str
    endpoint_id: str

    @property
    def production_url(self) -> str:
        return f"/v5/endpoints/{self.endpoint_id}"

    @property
    def test_url(self) -> str:
        return f"/v5/test/endpoints/{self.endpoint_id}"


MakeEndpoint = Callable[..., Endpoint]
ClientFrom = Callable[[str], TestClient]


@pytest.fixture(scope="session")
def verifier_server() -> Iterator[FakeVerifier]:
    # One server for the session: stopping one takes up to half a second.
    with FakeVerifier() as fake:
        yield fake


@pytest.fixture
def verifier(verifier_server: FakeVerifier) -> FakeVerifier:
    """A real HTTP server speaking the reCAPTCHA siteverify protocol, with
    no requests received yet."""
    verifier_server.requests.clear()
    verifier_server.slow_seconds = 2.0
    return verifier_server


@pytest.fixture
def settings(
    settings: Settings, verifier: FakeVerifier, request: pytest.FixtureRequest
) -> Settings:
    marker = request.node.get_closest_marker("settings")
    updates = dict(marker.kwargs) if marker else {}
    return settings.model_copy(update={"recaptcha_verify_url": verifier.url, **updates})


@pytest.fixture
def admin_headers(admin_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_token}"}


@pytest.fixture
def make_endpoint(client: TestClient, admin_headers: dict[str, str]) -> MakeEndpoint:
    """Create an integration, save `configuration` and activate it.

    The admin calls carry their token themselves, so the public calls the
    test makes with `client` stay anonymous.
    """

    def make(
        *, save: bool = True, activate: bool = True, **configuration: Any
    ) -> Endpoint:
        created = client.post(
            "/admin/v1/integrations",
            json={"name": "Shop", "type": INTEGRATION_TYPE},
            headers=admin_headers,
        )
        assert created.status_code == 201, created.text
        integration_id = created.json()["id"]
        if save:
            saved = client.put(
                f"/admin/v1/integrations/{integration_id}",
                json={"name": "Shop", **configuration},
                headers=admin_headers,
            )
            assert saved.status_code == 200, saved.text
        if activate:
            activated = client.post(
                f"/admin/v1/integrations/{integration_id}/activate",
                headers=admin_headers,
            )
            assert activated.status_code == 200, activated.text
        return Endpoint(integration_id, created.json()["endpointId"])

    return make


@pytest.fixture
def endpoint(make_endpoint: MakeEndpoint) -> Endpoint:
    """An active endpoint that may create and update profiles and log events."""
    return make_endpoint(
        allowProfileCreation=True, allowProfileUpdates=True, allowEventLogging=True
    )


@pytest.fixture
def client_from(container: Container) -> Iterator[ClientFrom]:
    """Clients of the real application whose connection comes from `peer`."""
    with ExitStack() as stack:

        def open_client(peer: str) -> TestClient:
            test_client = TestClient(
                create_app(container),
                base_url="http://testserver",
                client=(peer, 50000),
            )
            return stack.enter_context(test_client)

        yield open_client


@pytest.fixture
def bearer_for(container: Container) -> Callable[[Role], dict[str, str]]:
    """Authorization headers for a new token of the given role."""

    def headers(role: Role) -> dict[str, str]:
        issued = container.tokens.issue(
            name=f"{role} token", role=role, expires_at=None, actor=Actor.system()
        )
        return {"Authorization": f"Bearer {issued.secret}"}

    return headers


@pytest.fixture
def impatient_captcha(container: Container, verifier: FakeVerifier) -> None:
    """A CAPTCHA client that gives up after half a second, so a slow
    verifier is noticed quickly."""
    container.captcha = SiteverifyClient(
        verifier.url, httpx.AsyncClient(timeout=httpx.Timeout(0.5))
    )


# -- helpers


def problem_slug(response: httpx2.Response) -> str:
    """The slug that ends a problem answer's type URI."""
    assert response.headers["content-type"].startswith(JSON_PROBLEM), response.text
    type_uri: str = response.json()["type"]
    return type_uri.rsplit("/", 1)[-1]


def events_of(container: Container, kind: type[DomainEvent]) -> list[Any]:
    """Every event of one type in the store, in log order."""
    return [
        recorded.event
        for recorded in container.events.read(after=0, limit=1000)
        if isinstance(recorded.event, kind)
    ]
