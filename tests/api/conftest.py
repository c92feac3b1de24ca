"""Fixtures for the admin API tests: integrations in known states, tokens of
each role, and a clock that a test can move."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.bootstrap import Container, build
from api.http.app import create_app
from api.settings import Settings
from domain.access import Role
from domain.model import Actor

INTEGRATION_TYPE = "v5-api-endpoint-unauthenticated"

Json = dict[str, Any]
TokenFor = Callable[[str], dict[str, str]]


class MovableClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, by: timedelta) -> None:
        self.current += by


@pytest.fixture
def integration(admin: TestClient) -> Json:
    """The answer to creating an integration named Shop."""
    answer = admin.post(
        "/admin/v1/integrations", json={"name": "Shop", "type": INTEGRATION_TYPE}
    )
    assert answer.status_code == 201, answer.text
    created: Json = answer.json()
    return created


@pytest.fixture
def saved_integration(admin: TestClient, integration: Json) -> Json:
    """The answer to the first save of the Shop integration."""
    answer = admin.put(
        f"/admin/v1/integrations/{integration['id']}", json={"name": "Shop"}
    )
    assert answer.status_code == 200, answer.text
    saved: Json = answer.json()
    return saved


@pytest.fixture
def token_for(container: Container) -> TokenFor:
    """Authorization headers for a new token of the given role."""

    def headers(role: str) -> dict[str, str]:
        issued = container.tokens.issue(
            name=f"{role} token",
            role=Role(role),
            expires_at=None,
            actor=Actor.system(),
        )
        return {"Authorization": f"Bearer {issued.secret}"}

    return headers


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(datetime.now(UTC))


@pytest.fixture
def clocked_admin(settings: Settings, clock: MovableClock) -> Iterator[TestClient]:
    """An admin client over an app whose clock the test moves."""
    built = build(settings, clock=clock)
    try:
        issued = built.tokens.issue_first_admin()
        assert issued is not None
        with TestClient(create_app(built)) as test_client:
            test_client.headers["Authorization"] = f"Bearer {issued.secret}"
            yield test_client
    finally:
        built.close()
