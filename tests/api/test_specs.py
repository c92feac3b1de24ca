"""The Test and Production OpenAPI spec files of an integration (CONTRACT
1.4), generated from its current configuration."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate
from starlette.testclient import TestClient

INTEGRATIONS = "/admin/v1/integrations"
MODES = ["test", "production"]
#: Every status the public endpoint answers (CONTRACT 2.4).
PUBLIC_STATUSES = {"200", "400", "403", "404", "413", "415", "422", "429", "503"}

Json = dict[str, Any]


def spec(admin: TestClient, integration: Json, mode: str) -> Json:
    answer = admin.get(f"{INTEGRATIONS}/{integration['id']}/openapi/{mode}")
    assert answer.status_code == 200, answer.text
    document: Json = answer.json()
    return document


def save(admin: TestClient, integration: Json, configuration: Json) -> None:
    answer = admin.put(f"{INTEGRATIONS}/{integration['id']}", json=configuration)
    assert answer.status_code == 200, answer.text


def submit_operation(document: Json) -> Json:
    (path_item,) = document["paths"].values()
    operation: Json = path_item["post"]
    return operation


def profile_schema(document: Json) -> Json:
    schema: Json = document["components"]["schemas"]["Profile"]
    return schema


RULES = {
    "firstname": {"required": True, "maxLength": 50},
    "postcode": {"pattern": "^[0-9]{4}$"},
    "dob": {"format": "date"},
    "custom.favouriteColour": {"enum": ["red", "green", "blue"]},
    "custom.age": {"type": "integer", "minimum": 18, "maximum": 120},
}


@pytest.mark.parametrize("mode", MODES)
def test_the_spec_file_of_a_new_integration_is_valid_openapi_3_1(
    admin: TestClient, integration: Json, mode: str
) -> None:
    document = spec(admin, integration, mode)

    validate(document)
    assert document["openapi"].startswith("3.1")


@pytest.mark.parametrize("mode", MODES)
def test_the_spec_file_of_a_fully_configured_integration_is_valid_openapi_3_1(
    admin: TestClient, integration: Json, mode: str
) -> None:
    save(
        admin,
        integration,
        {
            "name": "Shop",
            "identifyBy": "phone",
            "requireRecaptcha": True,
            "recaptchaSecret": "captcha-secret",
            "allowMessages": True,
            "triggerActivityId": 12,
            "honeypotField": "website",
            "fieldValidationRules": RULES,
        },
    )

    document = spec(admin, integration, mode)

    validate(document)


@pytest.mark.parametrize(
    ("mode", "server"),
    [("test", "http://testserver/v5/test"), ("production", "http://testserver/v5")],
)
def test_the_spec_file_names_the_server_of_its_mode(
    admin: TestClient, integration: Json, mode: str, server: str
) -> None:
    document = spec(admin, integration, mode)

    assert document["servers"] == [{"url": server}]


@pytest.mark.parametrize("mode", MODES)
def test_the_spec_file_serves_the_integrations_current_endpoint(
    admin: TestClient, integration: Json, mode: str
) -> None:
    rotated = admin.post(f"{INTEGRATIONS}/{integration['id']}/rotate-endpoint").json()

    document = spec(admin, integration, mode)

    assert list(document["paths"]) == [f"/endpoints/{rotated['endpointId']}"]


@pytest.mark.parametrize("identifier", ["ref", "email", "phone"])
def test_the_identifying_field_is_required_in_the_profile_schema(
    admin: TestClient, integration: Json, identifier: str
) -> None:
    save(admin, integration, {"name": "Shop", "identifyBy": identifier})

    document = spec(admin, integration, "production")

    assert profile_schema(document)["required"] == [identifier]


def test_a_field_the_rules_require_is_required_in_the_profile_schema(
    admin: TestClient, integration: Json
) -> None:
    save(admin, integration, {"name": "Shop", "fieldValidationRules": RULES})

    document = spec(admin, integration, "production")

    assert profile_schema(document)["required"] == ["email", "firstname"]


def test_each_saved_field_rule_appears_in_the_profile_schema(
    admin: TestClient, integration: Json
) -> None:
    save(admin, integration, {"name": "Shop", "fieldValidationRules": RULES})

    properties = profile_schema(spec(admin, integration, "test"))["properties"]

    custom = properties["custom"]["properties"]
    assert properties["firstname"]["maxLength"] == 50
    assert properties["postcode"]["pattern"] == "^[0-9]{4}$"
    assert properties["dob"]["format"] == "date"
    assert custom["favouriteColour"]["enum"] == ["red", "green", "blue"]
    assert custom["age"] == {"type": "integer", "minimum": 18, "maximum": 120}


def test_the_spec_file_follows_the_configuration_saved_last(
    admin: TestClient, integration: Json
) -> None:
    save(admin, integration, {"name": "Shop", "fieldValidationRules": RULES})
    save(admin, integration, {"name": "Shop"})

    properties = profile_schema(spec(admin, integration, "test"))["properties"]

    assert "maxLength" not in properties["firstname"]
    assert properties["custom"]["properties"] == {}


@pytest.mark.parametrize("mode", MODES)
def test_the_captcha_header_is_required_when_captcha_is_required(
    admin: TestClient, integration: Json, mode: str
) -> None:
    save(
        admin,
        integration,
        {"name": "Shop", "requireRecaptcha": True, "recaptchaSecret": "captcha"},
    )

    parameters = submit_operation(spec(admin, integration, mode))["parameters"]

    captcha = [p for p in parameters if p["name"] == "X-Recaptcha-Token"]
    assert len(captcha) == 1
    assert captcha[0]["in"] == "header"
    assert captcha[0]["required"] is True


@pytest.mark.parametrize("mode", MODES)
def test_the_captcha_header_is_absent_when_captcha_is_not_required(
    admin: TestClient, integration: Json, mode: str
) -> None:
    save(admin, integration, {"name": "Shop", "recaptchaSecret": "captcha"})

    parameters = submit_operation(spec(admin, integration, mode))["parameters"]

    assert "X-Recaptcha-Token" not in [p["name"] for p in parameters]


@pytest.mark.parametrize("mode", MODES)
def test_every_status_of_the_public_endpoint_is_documented(
    admin: TestClient, integration: Json, mode: str
) -> None:
    responses = submit_operation(spec(admin, integration, mode))["responses"]

    assert set(responses) >= PUBLIC_STATUSES


def test_the_spec_file_of_an_unknown_integration_is_a_404(admin: TestClient) -> None:
    answer = admin.get(
        f"{INTEGRATIONS}/6a0c0a5e-4a0e-4a37-8f43-2a7f4c2b1d11/openapi/test"
    )

    assert answer.status_code == 404


@pytest.mark.parametrize(
    ("mode", "url_field"), [("test", "testUrl"), ("production", "productionUrl")]
)
def test_the_server_and_path_of_the_spec_file_make_the_endpoint_url(
    admin: TestClient, integration: Json, mode: str, url_field: str
) -> None:
    document = spec(admin, integration, mode)

    (path,) = document["paths"]
    assert document["servers"][0]["url"] + path == integration[url_field]


@pytest.mark.parametrize("mode", MODES)
def test_the_spec_file_never_holds_the_captcha_secret(
    admin: TestClient, integration: Json, mode: str
) -> None:
    save(
        admin,
        integration,
        {"name": "Shop", "requireRecaptcha": True, "recaptchaSecret": "s3cret-9f2b"},
    )

    answer = admin.get(f"{INTEGRATIONS}/{integration['id']}/openapi/{mode}")

    assert "s3cret-9f2b" not in answer.text
