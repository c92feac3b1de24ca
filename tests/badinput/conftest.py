"""Fixtures for the malformed-input tests: SQLite only (how a request is read
does not depend on the store), an active endpoint, and helpers that read a
problem answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

INTEGRATION_TYPE = "v5-api-endpoint-unauthenticated"
PROBLEM_TYPE = "application/problem+json"
RULES = {
    "firstname": {"required": True, "maxLength": 50},
    "postcode": {"pattern": "^[0-9]{4}$"},
    "custom.favouriteColour": {"enum": ["red", "green", "blue"]},
}

Json = dict[str, Any]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A fresh SQLite store: the inputs here are refused before any store
    would tell the difference."""
    return f"sqlite:///{tmp_path}/var/headwater.db"


@pytest.fixture
def admin_headers(admin_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_token}"}


@pytest.fixture
def integration(client: TestClient, admin_headers: dict[str, str]) -> Json:
    """An active integration that creates and updates profiles and logs
    events, with a few field rules and plain answers."""
    created = client.post(
        "/admin/v1/integrations",
        json={"name": "Shop", "type": INTEGRATION_TYPE},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    integration_id = created.json()["id"]
    saved = client.put(
        f"/admin/v1/integrations/{integration_id}",
        json={
            "name": "Shop",
            "allowProfileCreation": True,
            "allowProfileUpdates": True,
            "allowEventLogging": True,
            "fieldValidationRules": RULES,
        },
        headers=admin_headers,
    )
    assert saved.status_code == 200, saved.text
    activated = client.post(
        f"/admin/v1/integrations/{integration_id}/activate", headers=admin_headers
    )
    assert activated.status_code == 200, activated.text
    body: Json = activated.json()
    return body


@pytest.fixture
def endpoint(integration: Json) -> str:
    """The integration's production path."""
    return f"/v5/endpoints/{integration['endpointId']}"


def problem_slug(response: httpx2.Response) -> str:
    """The slug that ends a problem answer's type URI."""
    assert response.headers["content-type"].startswith(PROBLEM_TYPE), response.text
    type_uri: str = response.json()["type"]
    return type_uri.rsplit("/", 1)[-1]
