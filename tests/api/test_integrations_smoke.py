"""A first walk through the integration lifecycle over the admin API."""

from __future__ import annotations

from starlette.testclient import TestClient

INTEGRATION_TYPE = "v5-api-endpoint-unauthenticated"


def test_an_integration_activates_only_after_it_was_saved(admin: TestClient) -> None:
    created = admin.post(
        "/admin/v1/integrations", json={"name": "Shop", "type": INTEGRATION_TYPE}
    ).json()

    refused = admin.post(f"/admin/v1/integrations/{created['id']}/activate")
    admin.put(f"/admin/v1/integrations/{created['id']}", json={"name": "Shop"})
    activated = admin.post(f"/admin/v1/integrations/{created['id']}/activate")

    assert refused.status_code == 409
    assert activated.status_code == 200
    assert activated.json()["status"] == "active"
    assert activated.json()["version"] == 3
