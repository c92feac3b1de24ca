"""Liveness and readiness (CONTRACT 5)."""

from __future__ import annotations

from starlette.testclient import TestClient

from api.bootstrap import Container


def test_healthz_answers_200_without_a_token(client: TestClient) -> None:
    answer = client.get("/healthz")

    assert answer.status_code == 200


def test_readyz_answers_200_when_the_store_is_reachable(client: TestClient) -> None:
    answer = client.get("/readyz")

    assert answer.status_code == 200
    assert answer.json()["store"] == "ok"


def test_readyz_reports_the_position_of_the_last_event(
    admin: TestClient, container: Container
) -> None:
    admin.post(
        "/admin/v1/integrations",
        json={"name": "Shop", "type": "v5-api-endpoint-unauthenticated"},
    )

    answer = admin.get("/readyz")

    assert answer.json()["headPosition"] == container.events.head()
    assert answer.json()["headPosition"] > 0
