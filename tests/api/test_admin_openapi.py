"""The admin API's own OpenAPI document, and answers checked against it."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.routing import Route
from starlette.testclient import TestClient

PREFIX = "/admin/v1"
DOCUMENT = f"{PREFIX}/openapi.json"
INTEGRATIONS = f"{PREFIX}/integrations"
INTEGRATION_TYPE = "v5-api-endpoint-unauthenticated"
DOCUMENT_URI = "urn:headwater:admin-openapi"

Json = dict[str, Any]


@pytest.fixture
def document(client: TestClient) -> Json:
    answer = client.get(DOCUMENT)
    assert answer.status_code == 200, answer.text
    served: Json = answer.json()
    return served


def assert_conforms(
    document: Json, method: str, path: str, answer: httpx2.Response
) -> None:
    """The answer matches the schema the document gives for its status and
    media type, and holds no field the schema leaves undocumented."""
    operation = document["paths"][path][method.lower()]
    documented = operation["responses"][str(answer.status_code)]
    media_type = answer.headers["content-type"].split(";")[0]
    schema = documented["content"][media_type]["schema"]
    registry: Registry[Any] = Registry().with_resource(
        DOCUMENT_URI, Resource.from_contents(document, DRAFT202012)
    )
    validator = Draft202012Validator(
        {"$ref": DOCUMENT_URI + "#" + schema["$ref"].removeprefix("#")},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )

    errors = [error.message for error in validator.iter_errors(answer.json())]

    assert errors == []
    named = schema["$ref"].rsplit("/", 1)[-1]
    properties = document["components"]["schemas"][named].get("properties", {})
    assert set(answer.json()) <= set(properties)


def create(admin: TestClient) -> httpx2.Response:
    return admin.post(INTEGRATIONS, json={"name": "Shop", "type": INTEGRATION_TYPE})


def test_the_admin_document_is_valid_openapi_3_1(document: Json) -> None:
    validate(document)

    assert document["openapi"].startswith("3.1")


def test_the_admin_document_is_served_without_a_token(client: TestClient) -> None:
    answer = client.get(DOCUMENT)

    assert answer.status_code == 200


def test_the_admin_document_describes_every_admin_route(
    client: TestClient, document: Json
) -> None:
    served = {
        (method.lower(), route.path.removeprefix(PREFIX))
        for route in client.app.routes  # type: ignore[attr-defined]
        if isinstance(route, Route)
        and route.path.startswith(PREFIX)
        and route.path != DOCUMENT
        for method in route.methods or ()
        if method != "HEAD"
    }

    documented = {
        (method, path) for path, item in document["paths"].items() for method in item
    }

    assert served == documented


def test_the_admin_document_names_the_bearer_scheme(document: Json) -> None:
    schemes = document["components"]["securitySchemes"]

    assert schemes == {"bearer": {"type": "http", "scheme": "bearer"}}
    assert document["security"] == [{"bearer": []}]


def test_a_create_answer_conforms_to_its_documented_schema(
    admin: TestClient, document: Json
) -> None:
    answer = create(admin)

    assert answer.status_code == 201
    assert_conforms(document, "POST", "/integrations", answer)


def test_a_get_answer_conforms_to_its_documented_schema(
    admin: TestClient, document: Json
) -> None:
    created = create(admin).json()
    admin.put(
        f"{INTEGRATIONS}/{created['id']}",
        json={
            "name": "Shop",
            "allowedOrigins": ["https://shop.example"],
            "defaultPhoneRegion": "NZ",
            "successRedirectUrl": "https://shop.example/thanks",
            "fieldValidationRules": {"firstname": {"maxLength": 50}},
        },
    )

    answer = admin.get(f"{INTEGRATIONS}/{created['id']}")

    assert answer.status_code == 200
    assert_conforms(document, "GET", "/integrations/{integration_id}", answer)


def test_a_save_answer_conforms_to_its_documented_schema(
    admin: TestClient, document: Json
) -> None:
    created = create(admin).json()

    answer = admin.put(
        f"{INTEGRATIONS}/{created['id']}",
        json={"name": "Shop", "recaptchaSecret": "captcha", "requireRecaptcha": True},
    )

    assert answer.status_code == 200
    assert_conforms(document, "PUT", "/integrations/{integration_id}", answer)


def test_a_list_answer_conforms_to_its_documented_schema(
    admin: TestClient, document: Json
) -> None:
    create(admin)
    last = create(admin)

    answer = admin.get(INTEGRATIONS, params={"minPosition": last.json()["position"]})

    assert answer.status_code == 200
    assert_conforms(document, "GET", "/integrations", answer)


def test_a_history_answer_conforms_to_its_documented_schema(
    admin: TestClient, document: Json
) -> None:
    created = create(admin).json()
    admin.put(f"{INTEGRATIONS}/{created['id']}", json={"name": "Shop"})

    answer = admin.get(f"{INTEGRATIONS}/{created['id']}/history")

    assert answer.status_code == 200
    assert_conforms(document, "GET", "/integrations/{integration_id}/history", answer)


def test_a_token_issue_answer_conforms_to_its_documented_schema(
    admin: TestClient, document: Json
) -> None:
    answer = admin.post(
        f"{PREFIX}/tokens",
        json={"name": "ci", "role": "auditor", "expiresAt": "2999-01-01T00:00:00Z"},
    )

    assert answer.status_code == 201
    assert_conforms(document, "POST", "/tokens", answer)


def test_a_token_list_answer_conforms_to_its_documented_schema(
    admin: TestClient, document: Json
) -> None:
    admin.post(f"{PREFIX}/tokens", json={"name": "ci", "role": "auditor"})

    answer = admin.get(f"{PREFIX}/tokens")

    assert answer.status_code == 200
    assert_conforms(document, "GET", "/tokens", answer)


def test_a_token_revoke_answer_conforms_to_its_documented_schema(
    admin: TestClient, document: Json
) -> None:
    issued = admin.post(f"{PREFIX}/tokens", json={"name": "ci", "role": "auditor"})

    answer = admin.delete(f"{PREFIX}/tokens/{issued.json()['id']}")

    assert answer.status_code == 200
    assert_conforms(document, "DELETE", "/tokens/{token_id}", answer)


def test_a_422_problem_conforms_to_its_documented_schema(
    admin: TestClient, document: Json
) -> None:
    created = create(admin).json()

    answer = admin.put(
        f"{INTEGRATIONS}/{created['id']}",
        json={"name": "", "allowMessages": True, "colour": "red"},
    )

    assert answer.status_code == 422
    assert_conforms(document, "PUT", "/integrations/{integration_id}", answer)


def test_a_401_problem_conforms_to_its_documented_schema(
    client: TestClient, document: Json
) -> None:
    answer = client.get(INTEGRATIONS)

    assert answer.status_code == 401
    assert_conforms(document, "GET", "/integrations", answer)
