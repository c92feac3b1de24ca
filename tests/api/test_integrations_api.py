"""The integrations admin API (CONTRACT 1.1, 1.2 and 1.5), over the real app
and the real store."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from starlette.testclient import TestClient

from api.bootstrap import Container

INTEGRATIONS = "/admin/v1/integrations"
INTEGRATION_TYPE = "v5-api-endpoint-unauthenticated"
SECRET = "captcha-secret-7f3a9c"

Json = dict[str, Any]


def url(integration: Json, action: str = "") -> str:
    return f"{INTEGRATIONS}/{integration['id']}{action}"


def create(admin: TestClient, name: str) -> Json:
    answer = admin.post(INTEGRATIONS, json={"name": name, "type": INTEGRATION_TYPE})
    assert answer.status_code == 201, answer.text
    created: Json = answer.json()
    return created


def save(admin: TestClient, integration: Json, configuration: Json) -> Json:
    answer = admin.put(url(integration), json=configuration)
    assert answer.status_code == 200, answer.text
    saved: Json = answer.json()
    return saved


# Create


def test_creating_an_integration_answers_201_unsaved_and_inactive(
    admin: TestClient,
) -> None:
    answer = admin.post(INTEGRATIONS, json={"name": "Shop", "type": INTEGRATION_TYPE})

    assert answer.status_code == 201
    body = answer.json()
    assert body["name"] == "Shop"
    assert body["type"] == INTEGRATION_TYPE
    assert body["saved"] is False
    assert body["status"] == "inactive"
    assert body["version"] == 1
    assert body["configurationVersion"] is None


def test_a_new_integration_has_an_endpoint_id_and_both_endpoint_urls(
    admin: TestClient,
) -> None:
    body = admin.post(
        INTEGRATIONS, json={"name": "Shop", "type": INTEGRATION_TYPE}
    ).json()

    endpoint_id = body["endpointId"]
    assert len(endpoint_id) >= 22
    assert body["productionUrl"] == f"http://testserver/v5/endpoints/{endpoint_id}"
    assert body["testUrl"] == f"http://testserver/v5/test/endpoints/{endpoint_id}"


def test_two_integrations_get_different_endpoint_ids(admin: TestClient) -> None:
    first = create(admin, "Shop")

    second = create(admin, "Blog")

    assert first["endpointId"] != second["endpointId"]


def test_creating_answers_the_position_of_the_last_event_recorded(
    admin: TestClient, container: Container
) -> None:
    body = admin.post(
        INTEGRATIONS, json={"name": "Shop", "type": INTEGRATION_TYPE}
    ).json()

    assert body["position"] == container.events.head()


def test_creating_an_integration_of_an_unknown_type_is_a_422_naming_type(
    admin: TestClient,
) -> None:
    answer = admin.post(INTEGRATIONS, json={"name": "Shop", "type": "webhook"})

    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in answer.json()["errors"]] == ["type"]


def test_creating_an_integration_of_an_unknown_type_records_nothing(
    admin: TestClient, container: Container
) -> None:
    head = container.events.head()

    admin.post(INTEGRATIONS, json={"name": "Shop", "type": "webhook"})

    assert container.events.head() == head
    assert admin.get(INTEGRATIONS).json()["items"] == []


# List and get


def test_the_list_holds_every_integration_oldest_first(admin: TestClient) -> None:
    shop = create(admin, "Shop")
    blog = create(admin, "Blog")

    answer = admin.get(INTEGRATIONS, params={"minPosition": blog["position"]})

    assert answer.status_code == 200
    assert [i["id"] for i in answer.json()["items"]] == [shop["id"], blog["id"]]
    assert answer.json()["nextCursor"] is None


def test_the_list_shows_each_integration_as_it_is_now(
    admin: TestClient, saved_integration: Json
) -> None:
    activated = admin.post(url(saved_integration, "/activate")).json()

    items = admin.get(
        INTEGRATIONS, params={"minPosition": activated["position"]}
    ).json()["items"]

    assert items == [{k: v for k, v in activated.items() if k != "position"}]


def test_getting_an_integration_answers_it_with_its_version_as_etag(
    admin: TestClient, integration: Json
) -> None:
    answer = admin.get(url(integration))

    assert answer.status_code == 200
    assert answer.headers["etag"] == '"1"'
    assert answer.json() == {k: v for k, v in integration.items() if k != "position"}


def test_getting_an_unknown_integration_is_a_404(admin: TestClient) -> None:
    answer = admin.get(f"{INTEGRATIONS}/6a0c0a5e-4a0e-4a37-8f43-2a7f4c2b1d11")

    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


def test_as_of_its_creation_instant_an_integration_is_as_it_was_created(
    admin: TestClient, integration: Json
) -> None:
    save(admin, integration, {"name": "Renamed shop", "allowEventLogging": True})

    answer = admin.get(url(integration), params={"asOf": integration["createdAt"]})

    assert answer.status_code == 200
    assert answer.json() == {k: v for k, v in integration.items() if k != "position"}
    assert answer.headers["etag"] == '"1"'


def test_as_of_an_instant_between_two_saves_an_integration_has_the_first_one(
    admin: TestClient, integration: Json
) -> None:
    first = save(admin, integration, {"name": "Shop", "dedupePeriodSeconds": 60})
    save(admin, integration, {"name": "Shop", "dedupePeriodSeconds": 300})

    answer = admin.get(url(integration), params={"asOf": first["updatedAt"]})

    assert answer.json()["dedupePeriodSeconds"] == 60
    assert answer.json()["version"] == first["version"]


def test_as_of_an_instant_before_its_creation_an_integration_is_not_found(
    admin: TestClient, integration: Json
) -> None:
    answer = admin.get(url(integration), params={"asOf": "2000-01-01T00:00:00Z"})

    assert answer.status_code == 404


@pytest.mark.parametrize("instant", ["yesterday", "2026-12-03", "2026-12-03T12:00:00"])
def test_an_as_of_that_is_not_an_rfc_3339_time_is_a_400(
    admin: TestClient, integration: Json, instant: str
) -> None:
    answer = admin.get(url(integration), params={"asOf": instant})

    assert answer.status_code == 400
    assert "asOf" in answer.json()["detail"]


def test_an_as_of_with_an_offset_names_the_same_instant_as_utc(
    admin: TestClient, integration: Json
) -> None:
    saved = save(admin, integration, {"name": "Shop"})
    instant = saved["updatedAt"].replace("Z", "+00:00")

    answer = admin.get(url(integration), params={"asOf": instant})

    assert answer.json()["saved"] is True


# Save changes


def test_the_first_save_marks_it_saved_at_that_configuration_version(
    admin: TestClient, integration: Json
) -> None:
    answer = admin.put(
        url(integration), json={"name": "Shop", "detailedResponses": True}
    )

    assert answer.status_code == 200
    body = answer.json()
    assert body["saved"] is True
    assert body["status"] == "inactive"
    assert body["detailedResponses"] is True
    assert body["version"] == 2
    assert body["configurationVersion"] == 2


def test_a_save_renames_the_integration(admin: TestClient, integration: Json) -> None:
    save(admin, integration, {"name": "Summer shop"})

    assert admin.get(url(integration)).json()["name"] == "Summer shop"


def test_a_field_left_out_of_a_save_takes_its_default(
    admin: TestClient, integration: Json
) -> None:
    save(
        admin,
        integration,
        {
            "name": "Shop",
            "identifyBy": "phone",
            "allowProfileCreation": True,
            "dedupePeriodSeconds": 120,
            "allowedOrigins": ["https://shop.example"],
        },
    )

    body = save(admin, integration, {"name": "Shop"})

    assert body["identifyBy"] == "email"
    assert body["allowProfileCreation"] is False
    assert body["dedupePeriodSeconds"] == 0
    assert body["allowedOrigins"] == ["*"]


def test_a_secret_left_out_of_a_save_keeps_its_value(
    admin: TestClient, container: Container, integration: Json
) -> None:
    save(admin, integration, {"name": "Shop", "recaptchaSecret": SECRET})

    body = save(admin, integration, {"name": "Shop", "requireRecaptcha": True})

    assert body["recaptchaSecretSet"] is True
    stored = container.integrations.get(UUID(body["id"])).recaptcha_secret
    assert stored is not None
    assert stored.get_secret_value() == SECRET


def test_a_null_secret_clears_it(
    admin: TestClient, container: Container, integration: Json
) -> None:
    save(admin, integration, {"name": "Shop", "recaptchaSecret": SECRET})

    body = save(admin, integration, {"name": "Shop", "recaptchaSecret": None})

    assert body["recaptchaSecretSet"] is False
    assert container.integrations.get(UUID(body["id"])).recaptcha_secret is None


def test_a_secret_that_is_not_a_string_is_a_422_naming_it(
    admin: TestClient, integration: Json
) -> None:
    answer = admin.put(url(integration), json={"name": "Shop", "recaptchaSecret": 42})

    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == ["recaptchaSecret"]


def test_the_secret_is_never_returned_only_whether_it_is_set(
    admin: TestClient, integration: Json
) -> None:
    saved = save(admin, integration, {"name": "Shop", "recaptchaSecret": SECRET})

    fetched = admin.get(url(integration)).json()
    after_save = {"minPosition": saved["position"]}
    listed = admin.get(INTEGRATIONS, params=after_save).json()["items"][0]

    for body in (saved, fetched, listed):
        assert "recaptchaSecret" not in body
        assert body["recaptchaSecretSet"] is True


def test_the_secret_string_appears_in_no_answer_body(
    admin: TestClient, integration: Json
) -> None:
    save(admin, integration, {"name": "Shop", "recaptchaSecret": SECRET})
    save(admin, integration, {"name": "Shop", "recaptchaSecret": SECRET + "-new"})
    cleared = save(admin, integration, {"name": "Shop", "recaptchaSecret": None})

    bodies = [
        admin.get(url(integration)).text,
        admin.get(INTEGRATIONS, params={"minPosition": cleared["position"]}).text,
        admin.get(url(integration, "/history")).text,
        admin.get(url(integration), params={"asOf": integration["createdAt"]}).text,
    ]

    assert all(SECRET not in body for body in bodies)


def test_a_save_with_the_current_version_in_if_match_succeeds(
    admin: TestClient, saved_integration: Json
) -> None:
    answer = admin.put(
        url(saved_integration),
        json={"name": "Shop", "allowEventLogging": True},
        headers={"If-Match": '"2"'},
    )

    assert answer.status_code == 200
    assert answer.json()["allowEventLogging"] is True
    assert answer.headers["etag"] == '"3"'


def test_a_save_with_another_version_in_if_match_is_a_412_and_saves_nothing(
    admin: TestClient, saved_integration: Json
) -> None:
    answer = admin.put(
        url(saved_integration),
        json={"name": "Shop", "allowEventLogging": True},
        headers={"If-Match": '"1"'},
    )

    assert answer.status_code == 412
    assert answer.headers["content-type"] == "application/problem+json"
    assert admin.get(url(saved_integration)).json()["allowEventLogging"] is False


def test_a_save_that_breaks_several_rules_lists_every_problem_in_one_422(
    admin: TestClient, integration: Json
) -> None:
    answer = admin.put(
        url(integration),
        json={
            "name": "Shop",
            "requireRecaptcha": True,
            "allowMessages": True,
            "dedupePeriodSeconds": 90000,
            "fieldValidationRules": {"postcode": {"pattern": "(["}},
            "favouriteColour": "green",
        },
    )

    assert answer.status_code == 422
    problems = {(e["field"], e["rule"]) for e in answer.json()["errors"]}
    assert problems == {
        ("recaptchaSecret", "required"),
        ("triggerActivityId", "required"),
        ("dedupePeriodSeconds", "maximum"),
        ("fieldValidationRules.postcode.pattern", "valid-regex"),
        ("favouriteColour", "unknown-field"),
    }
    assert all(e["message"] for e in answer.json()["errors"])


def test_a_malformed_secret_is_listed_with_every_other_problem(
    admin: TestClient, integration: Json
) -> None:
    answer = admin.put(
        url(integration),
        json={"name": "", "recaptchaSecret": 42, "allowMessages": True},
    )

    assert answer.status_code == 422
    problems = {(e["field"], e["rule"]) for e in answer.json()["errors"]}
    assert problems == {
        ("recaptchaSecret", "type"),
        ("name", "minLength"),
        ("triggerActivityId", "required"),
    }


def test_a_refused_save_changes_nothing(
    admin: TestClient, container: Container, integration: Json
) -> None:
    head = container.events.head()

    admin.put(url(integration), json={"name": "Shop", "allowMessages": True})

    assert container.events.head() == head
    assert admin.get(url(integration)).json()["saved"] is False


def test_a_save_whose_body_is_not_json_is_a_400(
    admin: TestClient, integration: Json
) -> None:
    answer = admin.put(
        url(integration),
        content=b"{name: Shop",
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code == 400


def test_a_save_whose_body_is_not_declared_json_is_a_415(
    admin: TestClient, integration: Json
) -> None:
    answer = admin.put(
        url(integration),
        content=b'{"name": "Shop"}',
        headers={"Content-Type": "text/plain"},
    )

    assert answer.status_code == 415


def test_saving_an_identical_configuration_records_nothing(
    admin: TestClient, container: Container, integration: Json
) -> None:
    configuration = {"name": "Shop", "allowEventLogging": True}
    saved = save(admin, integration, configuration)
    head = container.events.head()

    answer = admin.put(url(integration), json=configuration)

    assert answer.status_code == 200
    assert answer.json() == {**saved, "position": None}
    assert container.events.head() == head


def test_a_later_save_raises_version_and_configuration_version(
    admin: TestClient, saved_integration: Json
) -> None:
    admin.post(url(saved_integration, "/activate"))

    body = save(admin, saved_integration, {"name": "Shop", "allowEventLogging": True})

    assert body["version"] == 4
    assert body["configurationVersion"] == 4


def test_a_later_save_takes_effect_while_the_integration_is_active(
    admin: TestClient, saved_integration: Json
) -> None:
    admin.post(url(saved_integration, "/activate"))

    body = save(admin, saved_integration, {"name": "Shop", "allowEventLogging": True})

    assert body["status"] == "active"
    assert body["allowEventLogging"] is True


# Lifecycle


def test_activating_an_unsaved_integration_is_a_409_that_says_to_save_first(
    admin: TestClient, integration: Json
) -> None:
    answer = admin.post(url(integration, "/activate"))

    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"
    assert "save" in answer.json()["detail"]
    assert admin.get(url(integration)).json()["status"] == "inactive"


def test_activating_a_saved_integration_makes_it_active(
    admin: TestClient, saved_integration: Json
) -> None:
    answer = admin.post(url(saved_integration, "/activate"))

    assert answer.status_code == 200
    assert answer.json()["status"] == "active"
    assert admin.get(url(saved_integration)).json()["status"] == "active"


def test_activating_an_active_integration_answers_it_unchanged_with_no_position(
    admin: TestClient, container: Container, saved_integration: Json
) -> None:
    activated = admin.post(url(saved_integration, "/activate")).json()
    head = container.events.head()

    answer = admin.post(url(saved_integration, "/activate"))

    assert answer.status_code == 200
    assert answer.json() == {**activated, "position": None}
    assert container.events.head() == head


def test_deactivating_an_active_integration_makes_it_inactive(
    admin: TestClient, saved_integration: Json
) -> None:
    admin.post(url(saved_integration, "/activate"))

    answer = admin.post(url(saved_integration, "/deactivate"))

    assert answer.status_code == 200
    assert answer.json()["status"] == "inactive"
    assert answer.json()["version"] == 4


def test_deactivating_an_inactive_integration_answers_it_unchanged_with_no_position(
    admin: TestClient, container: Container, saved_integration: Json
) -> None:
    admin.post(url(saved_integration, "/activate"))
    deactivated = admin.post(url(saved_integration, "/deactivate")).json()
    head = container.events.head()

    answer = admin.post(url(saved_integration, "/deactivate"))

    assert answer.status_code == 200
    assert answer.json() == {**deactivated, "position": None}
    assert container.events.head() == head


def test_activation_leaves_the_configuration_version_where_it_was_saved(
    admin: TestClient, saved_integration: Json
) -> None:
    body = admin.post(url(saved_integration, "/activate")).json()

    assert body["version"] == 3
    assert body["configurationVersion"] == 2


@pytest.mark.parametrize("action", ["/activate", "/deactivate", "/rotate-endpoint"])
def test_a_lifecycle_step_on_an_unknown_integration_is_a_404(
    admin: TestClient, action: str
) -> None:
    answer = admin.post(f"{INTEGRATIONS}/6a0c0a5e-4a0e-4a37-8f43-2a7f4c2b1d11{action}")

    assert answer.status_code == 404


@pytest.mark.parametrize(
    ("write", "body"),
    [
        ("PUT ", {"name": "Shop", "allowEventLogging": True}),
        ("POST /activate", None),
        ("POST /rotate-endpoint", None),
    ],
)
def test_every_write_answers_the_representation_and_the_last_position(
    admin: TestClient,
    container: Container,
    saved_integration: Json,
    write: str,
    body: Json | None,
) -> None:
    method, action = write.split(" ")

    answer = admin.request(method, url(saved_integration, action), json=body)

    written = answer.json()
    assert answer.status_code == 200
    assert written["position"] == container.events.head()
    assert {k: v for k, v in written.items() if k != "position"} == admin.get(
        url(saved_integration)
    ).json()
    assert answer.headers["etag"] == f'"{written["version"]}"'


def test_version_counts_every_event_the_integration_recorded(
    admin: TestClient, saved_integration: Json
) -> None:
    admin.post(url(saved_integration, "/activate"))
    admin.post(url(saved_integration, "/deactivate"))
    admin.post(url(saved_integration, "/rotate-endpoint"))

    body = admin.get(url(saved_integration)).json()
    history = admin.get(url(saved_integration, "/history")).json()["items"]

    assert body["version"] == 5
    assert len(history) == 5


# Rotate endpoint


def test_rotating_the_endpoint_issues_a_new_endpoint_id_and_urls(
    admin: TestClient, saved_integration: Json
) -> None:
    answer = admin.post(url(saved_integration, "/rotate-endpoint"))

    body = answer.json()
    assert answer.status_code == 200
    assert body["endpointId"] != saved_integration["endpointId"]
    assert body["productionUrl"].endswith(f"/v5/endpoints/{body['endpointId']}")
    assert body["testUrl"].endswith(f"/v5/test/endpoints/{body['endpointId']}")


def test_after_rotation_the_old_endpoint_id_no_longer_resolves(
    admin: TestClient, container: Container, saved_integration: Json
) -> None:
    old = saved_integration["endpointId"]

    admin.post(url(saved_integration, "/rotate-endpoint"))

    assert container.integrations.find_by_endpoint(old) is None


def test_after_rotation_the_new_endpoint_id_resolves_to_the_integration(
    admin: TestClient, container: Container, saved_integration: Json
) -> None:
    rotated = admin.post(url(saved_integration, "/rotate-endpoint")).json()

    found = container.integrations.find_by_endpoint(rotated["endpointId"])

    assert found is not None
    assert str(found.id) == saved_integration["id"]


# History


def test_history_lists_the_lifecycle_events_oldest_first(
    admin: TestClient, saved_integration: Json
) -> None:
    admin.post(url(saved_integration, "/activate"))
    save(admin, saved_integration, {"name": "Shop", "allowEventLogging": True})
    admin.post(url(saved_integration, "/deactivate"))
    admin.post(url(saved_integration, "/rotate-endpoint"))

    answer = admin.get(url(saved_integration, "/history"))

    items = answer.json()["items"]
    assert answer.status_code == 200
    assert [(e["version"], e["type"]) for e in items] == [
        (1, "IntegrationCreated"),
        (2, "IntegrationSaved"),
        (3, "IntegrationActivated"),
        (4, "IntegrationUpdated"),
        (5, "IntegrationDeactivated"),
        (6, "EndpointRotated"),
    ]


def test_history_names_the_actor_and_the_changed_fields(
    admin: TestClient, saved_integration: Json
) -> None:
    save(admin, saved_integration, {"name": "Shop", "allowEventLogging": True})

    items = admin.get(url(saved_integration, "/history")).json()["items"]

    update = items[-1]
    assert update["actor"] == "first admin"
    assert update["data"]["changes"] == {
        "allowEventLogging": {"from": False, "to": True}
    }


def test_history_shows_the_secret_only_as_set_changed_or_cleared(
    admin: TestClient, integration: Json
) -> None:
    save(admin, integration, {"name": "Shop", "recaptchaSecret": SECRET})
    save(admin, integration, {"name": "Shop", "recaptchaSecret": SECRET + "-new"})
    save(admin, integration, {"name": "Shop", "recaptchaSecret": None})
    save(admin, integration, {"name": "Shop", "recaptchaSecret": SECRET})

    items = admin.get(url(integration, "/history")).json()["items"]

    assert [e["data"].get("recaptchaSecret") for e in items] == [
        None,
        "set",
        "changed",
        "cleared",
        "set",
    ]


def test_history_of_an_unknown_integration_is_a_404(admin: TestClient) -> None:
    answer = admin.get(f"{INTEGRATIONS}/6a0c0a5e-4a0e-4a37-8f43-2a7f4c2b1d11/history")

    assert answer.status_code == 404
