"""How resources look in JSON answers (the contract's representations)."""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request

from api.http.jsonio import rfc3339
from domain.access import AccessToken
from domain.configuration import Configuration
from domain.integration import (
    EndpointRotated,
    Integration,
    IntegrationCreated,
    IntegrationSaved,
    IntegrationUpdated,
)
from domain.model import DomainEvent

BASE_FIELDS: Final = frozenset(
    {"originatorId", "originatorVersion", "timestamp", "erased", "actor"}
)


def public_base(request: Request) -> str:
    configured: str | None = request.app.state.public_base_url
    return configured or str(request.base_url).rstrip("/")


def endpoint_urls(base: str, endpoint_id: str) -> tuple[str, str]:
    """(production URL, test URL) of an endpoint."""
    return (
        f"{base}/v5/endpoints/{endpoint_id}",
        f"{base}/v5/test/endpoints/{endpoint_id}",
    )


def integration_json(integration: Integration, base: str) -> dict[str, Any]:
    production, test = endpoint_urls(base, integration.endpoint_id)
    configuration = integration.configuration.as_json()
    return {
        "id": str(integration.id),
        "name": integration.name,
        "type": integration.integration_type,
        "status": integration.status.value,
        "saved": integration.saved,
        "version": integration.version,
        "configurationVersion": integration.configuration_version,
        "endpointId": integration.endpoint_id,
        "productionUrl": production,
        "testUrl": test,
        **{k: v for k, v in configuration.items() if k != "name"},
        "recaptchaSecretSet": integration.recaptcha_secret is not None,
        "createdAt": rfc3339(integration.created_on),
        "updatedAt": rfc3339(integration.modified_on),
    }


def integration_row_json(row: dict[str, Any], base: str) -> dict[str, Any]:
    """The representation, from the integrations read model."""
    production, test = endpoint_urls(base, row["endpoint_id"])
    configuration = row["configuration"] or Configuration(name=row["name"]).as_json()
    return {
        "id": row["id"],
        "name": row["name"],
        "type": row["integration_type"],
        "status": row["status"],
        "saved": row["saved"],
        "version": row["version"],
        "configurationVersion": row["configuration_version"],
        "endpointId": row["endpoint_id"],
        "productionUrl": production,
        "testUrl": test,
        **{k: v for k, v in configuration.items() if k != "name"},
        "recaptchaSecretSet": row["secret_set"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def history_entry(event: DomainEvent) -> dict[str, Any]:
    """One lifecycle event; a secret shows only as set, changed or cleared."""
    data = event.model_dump(mode="json", by_alias=True, exclude={"erased"})
    details = {k: v for k, v in data.items() if k not in BASE_FIELDS}
    details.pop("recaptchaSecret", None)
    match event:
        case IntegrationCreated():
            details["type"] = details.pop("integrationType")
        case IntegrationSaved() if event.recaptcha_secret is not None:
            details["recaptchaSecret"] = "set"
        case IntegrationUpdated():
            secret_change = details.pop("secretChange", None)
            if secret_change is not None:
                details["recaptchaSecret"] = secret_change
        case EndpointRotated():
            pass
    return {
        "version": event.originator_version,
        "type": type(event).__name__,
        "occurredAt": rfc3339(event.timestamp),
        "actor": data["actor"]["name"] if "actor" in data else None,
        "data": details,
    }


def token_json(token: AccessToken) -> dict[str, Any]:
    return {
        "id": str(token.id),
        "name": token.name,
        "role": token.role.value,
        "expiresAt": rfc3339(token.expires_at),
        "createdAt": rfc3339(token.created_on),
        "revoked": token.revoked,
    }
