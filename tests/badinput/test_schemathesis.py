"""Schemathesis against a real `headwater serve`: the admin API's own OpenAPI
document, and the Production spec file of an active integration.

Each operation gets a short budget here (`HEADWATER_FUZZ_EXAMPLES`, 8 by
default, the same examples on every run); `make fuzz` runs the same tests
with hundreds of examples and a random seed. Valid and invalid requests are
generated from each document, and every answer is checked against it: never
a server error, a documented status, a documented content type, a body that
fits its schema, and data the document calls invalid refused. What is left
out, and why, is listed in docs/reliability.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.specs.openapi.schemas import OpenApiSchema

from api.http.app import ADMIN_ROUTES
from tests.conftest import TEST_SECRET_KEY
from tests.support.server import LiveServer, start_server

#: Examples per operation; `make fuzz` raises it.
FUZZ_EXAMPLES = int(os.environ.get("HEADWATER_FUZZ_EXAMPLES", "8"))
#: "random" (as `make fuzz` sets) draws new examples on each run.
FUZZ_SEED = os.environ.get("HEADWATER_FUZZ_SEED", "fixed")
INTEGRATION_TYPE = "v5-api-endpoint-unauthenticated"
RULES = {
    "firstname": {"required": True, "maxLength": 50},
    "postcode": {"pattern": "^[0-9]{4}$"},
    "custom.favouriteColour": {"enum": ["red", "green", "blue"]},
}
#: The refusals a document may give data it calls invalid: those
#: Schemathesis expects, and a failed If-Match (412) or a body too large
#: (413); never a 5xx.
REFUSALS = [
    "400",
    "401",
    "403",
    "404",
    "405",
    "406",
    "409",
    "412",
    "413",
    "415",
    "422",
    "428",
    "429",
]
#: What a submission its spec file calls valid may get: anything but a
#: refusal of its envelope (400, 408, 413, 415). A 422 stays possible: no
#: schema says which phone numbers exist, or how deep event data nests.
SUBMISSION_ACCEPTANCE = ["2xx", "3xx", "403", "404", "422", "429"]
#: `minPosition` is capped to this: a position past the head makes the read
#: wait five seconds for its (documented) 503, which would spend the budget.
HEAD_ROOM = 1
#: Revoking a token could revoke the very token the fuzzing runs with;
#: tests/api/test_tokens_api.py covers it.
LEFT_OUT = frozenset({"revokeToken"})

Json = dict[str, Any]
Operation = APIOperation[Any, Any, Any, Any]
GeneratedCase = Case[Any]


@dataclass(frozen=True)
class Service:
    """The running service, an admin token, and what exists in it."""

    server: LiveServer
    token: str
    #: The active integration whose Production spec file is fuzzed.
    integration: Json
    #: Values for path parameters that name something that exists, so that
    #: the admin fuzzing reaches past the 404.
    known: Mapping[str, str]

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    server = start_server(
        folder,
        {
            "HEADWATER_DATABASE_URL": f"sqlite:///{folder}/var/headwater.db",
            "HEADWATER_SECRET_KEY": TEST_SECRET_KEY,
            "HEADWATER_RATE_LIMIT": "0",
        },
    )
    try:
        token = server.admin_token
        assert token is not None, server.output
        with httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}
        ) as admin:
            integration = _active_integration(admin, "Fuzzed")
            # Another one, for the admin fuzzing to save, deactivate and rotate.
            other = _active_integration(admin, "Fuzzed by the admin API")
            known = {
                "integration_id": other["id"],
                "subscriber_id": _subscriber(admin, other),
            }
        yield Service(server, token, integration, known)
    finally:
        server.stop()


def _active_integration(admin: httpx.Client, name: str) -> Json:
    """An integration that creates and updates profiles and logs events, with
    a few field rules and plain (not detailed) answers."""
    created = admin.post(
        "/admin/v1/integrations", json={"name": name, "type": INTEGRATION_TYPE}
    )
    assert created.status_code == 201, created.text
    integration_id = created.json()["id"]
    saved = admin.put(
        f"/admin/v1/integrations/{integration_id}",
        json={
            "name": name,
            "allowProfileCreation": True,
            "allowProfileUpdates": True,
            "allowEventLogging": True,
            "detailedResponses": False,
            "fieldValidationRules": RULES,
        },
    )
    assert saved.status_code == 200, saved.text
    activated = admin.post(f"/admin/v1/integrations/{integration_id}/activate")
    assert activated.status_code == 200, activated.text
    integration: Json = activated.json()
    return integration


def _subscriber(admin: httpx.Client, integration: Json) -> str:
    """A new profile's id; the admin token makes the answer say it."""
    answer = admin.post(
        f"/v5/endpoints/{integration['endpointId']}",
        json={"profile": {"email": "ann@example.com", "firstname": "Ann"}},
    )
    assert answer.status_code == 200, answer.text
    subscriber_id: str = answer.json()["results"][0]["subscriberId"]
    return subscriber_id


def _config(
    *, base_url: str, checks: dict[str, Any], token: str | None = None
) -> schemathesis.Config:
    # As the document's security scheme, so that Schemathesis also checks
    # that the same call without it, or with a made-up token, is a 401.
    auth = {"auth": {"openapi": {"bearer": {"bearer": token}}}} if token else {}
    return schemathesis.Config.from_dict(
        {"base-url": base_url, "checks": checks, **auth}
    )


@pytest.fixture(scope="module")
def admin_document(service: Service) -> OpenApiSchema:
    """The admin document as served, with the admin token on every call."""
    config = _config(
        base_url=f"{service.server.base_url}/admin/v1",
        token=service.token,
        checks={
            # Opaque cursors, event type names, a future expiresAt, an
            # origin: no schema says which strings the service will take.
            "positive_data_acceptance": {"enabled": False},
            "negative_data_rejection": {"expected-statuses": REFUSALS},
        },
    )
    return schemathesis.openapi.from_url(
        f"{service.server.base_url}/admin/v1/openapi.json", config=config
    )


@pytest.fixture(scope="module")
def production_spec(service: Service) -> OpenApiSchema:
    """The integration's Production spec file, as the admin API serves it."""
    answer = httpx.get(
        f"{service.server.base_url}/admin/v1/integrations/"
        f"{service.integration['id']}/openapi/production",
        headers=service.admin_headers,
    )
    assert answer.status_code == 200, answer.text
    config = _config(
        base_url=f"{service.server.base_url}/v5",
        checks={
            "positive_data_acceptance": {"expected-statuses": SUBMISSION_ACCEPTANCE},
            "negative_data_rejection": {"expected-statuses": REFUSALS},
        },
    )
    return schemathesis.openapi.from_dict(answer.json(), config=config)


@pytest.mark.parametrize(
    "operation_id",
    [
        route.operation_id
        for route in ADMIN_ROUTES
        if route.operation_id not in LEFT_OUT
    ],
)
def test_the_admin_api_answers_as_its_document_says(
    admin_document: OpenApiSchema, service: Service, operation_id: str
) -> None:
    operation = admin_document.find_operation_by_id(operation_id)

    _fuzz(operation, known=service.known, prepare=_cap_min_position)


@pytest.mark.parametrize("operation_id", ["submit", "preflight"])
def test_the_production_endpoint_answers_as_its_spec_file_says(
    production_spec: OpenApiSchema, operation_id: str
) -> None:
    operation = production_spec.find_operation_by_id(operation_id)

    _fuzz(operation)


def _fuzz(
    operation: Operation,
    *,
    known: Mapping[str, str] | None = None,
    prepare: Callable[[GeneratedCase], None] | None = None,
) -> None:
    """Valid and invalid requests for one operation, each answer checked."""
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    names = {parameter.name for parameter in operation.path_parameters}
    existing = {name: value for name, value in (known or {}).items() if name in names}
    if existing:
        strategies.append(
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=existing)
        )

    @given(case=st.one_of(strategies))
    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=FUZZ_SEED != "random",
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def request_and_check(case: GeneratedCase) -> None:
        if prepare is not None:
            prepare(case)
        case.call_and_validate()

    request_and_check()


def _cap_min_position(case: GeneratedCase) -> None:
    query = case.query or {}
    value = query.get("minPosition")
    if isinstance(value, int) and not isinstance(value, bool) and value > HEAD_ROOM:
        query["minPosition"] = HEAD_ROOM
