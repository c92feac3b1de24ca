"""Access to the admin API (CONTRACT 1.5 and 4): bearer tokens, roles and
problem answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.bootstrap import Container
from tests.api.conftest import MovableClock

TOKENS = "/admin/v1/tokens"
INTEGRATIONS = "/admin/v1/integrations"
INTEGRATION_TYPE = "v5-api-endpoint-unauthenticated"
UNKNOWN_ID = "6a0c0a5e-4a0e-4a37-8f43-2a7f4c2b1d11"

Json = dict[str, Any]
TokenFor = Callable[[str], dict[str, str]]


def issue(admin: TestClient, role: str, **extra: Any) -> Json:
    answer = admin.post(TOKENS, json={"name": f"{role} token", "role": role, **extra})
    assert answer.status_code == 201, answer.text
    issued: Json = answer.json()
    return issued


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Authentication


def test_a_request_without_a_token_is_a_401_with_a_bearer_challenge(
    client: TestClient,
) -> None:
    answer = client.get(INTEGRATIONS)

    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_a_request_with_an_unknown_token_is_a_401_with_a_bearer_challenge(
    client: TestClient, admin_token: str
) -> None:
    answer = client.get(INTEGRATIONS, headers=bearer(admin_token[:-4] + "AAAA"))

    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_a_token_sent_with_another_scheme_is_a_401(
    client: TestClient, admin_token: str
) -> None:
    answer = client.get(INTEGRATIONS, headers={"Authorization": f"Basic {admin_token}"})

    assert answer.status_code == 401


def test_a_token_sent_as_a_cookie_is_a_401(
    client: TestClient, admin_token: str
) -> None:
    client.cookies.set("token", admin_token)

    answer = client.get(INTEGRATIONS)

    assert answer.status_code == 401


def test_a_refused_request_records_nothing(
    client: TestClient, container: Container
) -> None:
    head = container.events.head()

    client.post(INTEGRATIONS, json={"name": "Shop", "type": INTEGRATION_TYPE})

    assert container.events.head() == head


@pytest.mark.parametrize(
    ("role", "request_line", "status"),
    [
        ("", f"GET {INTEGRATIONS}", 401),
        ("analyst", f"POST {INTEGRATIONS}", 403),
        ("admin", f"POST {INTEGRATIONS}", 422),
        ("admin", f"GET {INTEGRATIONS}/{UNKNOWN_ID}", 404),
    ],
)
def test_error_answers_are_problem_details(
    client: TestClient, token_for: TokenFor, role: str, request_line: str, status: int
) -> None:
    headers = token_for(role) if role else {}
    method, path = request_line.split()

    answer = client.request(method, path, headers=headers, json={"type": "nothing"})

    body = answer.json()
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert body["status"] == status
    assert body["type"].startswith("http")
    assert body["title"]
    assert body["detail"]


# Roles


@pytest.fixture
def shop(admin: TestClient) -> Json:
    """A saved integration for the role tests to act on."""
    created: Json = admin.post(
        INTEGRATIONS, json={"name": "Shop", "type": INTEGRATION_TYPE}
    ).json()
    admin.put(f"{INTEGRATIONS}/{created['id']}", json={"name": "Shop"})
    return created


@dataclass(frozen=True)
class Call:
    """One admin route, called with a body that it accepts."""

    method: str
    path: str
    body: Json | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


READS = (
    Call("GET", INTEGRATIONS),
    Call("GET", INTEGRATIONS + "/{id}"),
    Call("GET", INTEGRATIONS + "/{id}/history"),
    Call("GET", INTEGRATIONS + "/{id}/openapi/test"),
    Call("GET", INTEGRATIONS + "/{id}/openapi/production"),
)
WRITES = (
    Call("POST", INTEGRATIONS, {"name": "Blog", "type": INTEGRATION_TYPE}),
    Call("PUT", INTEGRATIONS + "/{id}", {"name": "Shop", "allowEventLogging": True}),
    Call("POST", INTEGRATIONS + "/{id}/activate"),
    Call("POST", INTEGRATIONS + "/{id}/deactivate"),
    Call("POST", INTEGRATIONS + "/{id}/rotate-endpoint"),
)
TOKEN_CALLS = (
    Call("POST", TOKENS, {"name": "robot", "role": "analyst"}),
    Call("GET", TOKENS),
    Call("DELETE", TOKENS + "/{token}"),
)
#: What each role may call (CONTRACT 4); it is refused everything else.
ALLOWED: dict[str, tuple[Call, ...]] = {
    "admin": READS + WRITES + TOKEN_CALLS,
    "integration-manager": READS + WRITES,
    "auditor": READS,
    "analyst": READS,
}


EVERY_CALL = READS + WRITES + TOKEN_CALLS


@pytest.fixture
def call_as(
    client: TestClient, container: Container, token_for: TokenFor, shop: Json
) -> Callable[[str, Call], int]:
    """Make a call with a new token of a role; answer the status code."""

    def status(role: str, call: Call) -> int:
        headers = token_for(role)
        victim = token_for("analyst")["Authorization"].removeprefix("Bearer ")
        victim_id = container.tokens.authenticate(victim).id
        path = call.path.format(id=shop["id"], token=victim_id)
        answer = client.request(call.method, path, headers=headers, json=call.body)
        return answer.status_code

    return status


@pytest.mark.parametrize("role", list(ALLOWED))
def test_each_role_may_make_the_calls_its_permissions_open(
    call_as: Callable[[str, Call], int], role: str
) -> None:
    statuses = {str(call): call_as(role, call) for call in ALLOWED[role]}

    refused = {call: status for call, status in statuses.items() if status >= 300}
    assert refused == {}


@pytest.mark.parametrize("role", [r for r in ALLOWED if r != "admin"])
def test_each_role_is_refused_with_403_the_calls_its_permissions_do_not_open(
    call_as: Callable[[str, Call], int], role: str
) -> None:
    others = [call for call in EVERY_CALL if call not in ALLOWED[role]]

    statuses = {str(call): call_as(role, call) for call in others}

    assert others
    assert set(statuses.values()) == {403}, statuses


def test_a_refused_role_changes_nothing(
    client: TestClient, token_for: TokenFor, shop: Json
) -> None:
    headers = token_for("auditor")

    client.put(f"{INTEGRATIONS}/{shop['id']}", json={"name": "X"}, headers=headers)

    fetched = client.get(f"{INTEGRATIONS}/{shop['id']}", headers=headers).json()
    assert fetched["name"] == "Shop"


def test_a_403_names_the_missing_permission(
    client: TestClient, token_for: TokenFor
) -> None:
    answer = client.get(TOKENS, headers=token_for("integration-manager"))

    assert answer.status_code == 403
    assert "manage-tokens" in answer.json()["detail"]


# Tokens


def test_issuing_a_token_answers_201_with_the_token_and_its_details(
    admin: TestClient, container: Container
) -> None:
    answer = admin.post(TOKENS, json={"name": "reporting", "role": "analyst"})

    body = answer.json()
    assert answer.status_code == 201
    assert set(body) >= {"id", "name", "role", "token", "expiresAt", "createdAt"}
    assert body["name"] == "reporting"
    assert body["role"] == "analyst"
    assert body["token"].startswith("hw_")
    assert body["expiresAt"] is None
    assert body["position"] == container.events.head()


def test_an_issued_token_works_at_once(admin: TestClient) -> None:
    issued = issue(admin, "analyst")

    answer = admin.get(INTEGRATIONS, headers=bearer(issued["token"]))

    assert answer.status_code == 200


def test_an_issued_token_has_the_role_it_was_issued_with(admin: TestClient) -> None:
    issued = issue(admin, "analyst")

    answer = admin.get(TOKENS, headers=bearer(issued["token"]))

    assert answer.status_code == 403


def test_an_expiry_is_answered_in_utc(admin: TestClient) -> None:
    issued = issue(admin, "analyst", expiresAt="2999-01-01T12:00:00+02:00")

    assert issued["expiresAt"].endswith("Z")
    assert datetime.fromisoformat(issued["expiresAt"]) == datetime(
        2999, 1, 1, 10, tzinfo=UTC
    )


def test_the_token_list_shows_every_token_without_its_secret(
    admin: TestClient, admin_token: str
) -> None:
    issued = issue(admin, "auditor")

    answer = admin.get(TOKENS)

    items = answer.json()["items"]
    assert answer.status_code == 200
    assert [(t["name"], t["role"]) for t in items] == [
        ("first admin", "admin"),
        ("auditor token", "auditor"),
    ]
    assert all("token" not in t for t in items)
    assert issued["token"] not in answer.text
    assert admin_token not in answer.text


def test_revoking_a_token_answers_it_revoked_with_a_position(
    admin: TestClient, container: Container
) -> None:
    issued = issue(admin, "analyst")

    answer = admin.delete(f"{TOKENS}/{issued['id']}")

    assert answer.status_code == 200
    assert answer.json()["revoked"] is True
    assert answer.json()["position"] == container.events.head()


def test_a_revoked_token_is_refused_at_once(admin: TestClient) -> None:
    issued = issue(admin, "analyst")

    admin.delete(f"{TOKENS}/{issued['id']}")

    answer = admin.get(INTEGRATIONS, headers=bearer(issued["token"]))
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_the_token_list_shows_a_revoked_token_as_revoked(admin: TestClient) -> None:
    issued = issue(admin, "analyst")

    admin.delete(f"{TOKENS}/{issued['id']}")

    items = admin.get(TOKENS).json()["items"]
    assert {t["id"]: t["revoked"] for t in items}[issued["id"]] is True


def test_revoking_an_unknown_token_is_a_404(admin: TestClient) -> None:
    answer = admin.delete(f"{TOKENS}/{UNKNOWN_ID}")

    assert answer.status_code == 404


def test_an_expiry_in_the_past_is_a_422_naming_expires_at(admin: TestClient) -> None:
    answer = admin.post(
        TOKENS,
        json={"name": "late", "role": "analyst", "expiresAt": "2020-01-01T00:00:00Z"},
    )

    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == ["expiresAt"]


def test_an_unknown_role_is_a_422_naming_role(admin: TestClient) -> None:
    answer = admin.post(TOKENS, json={"name": "root", "role": "superuser"})

    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == ["role"]


def test_a_token_body_that_breaks_several_rules_lists_every_problem(
    admin: TestClient,
) -> None:
    answer = admin.post(
        TOKENS, json={"role": "superuser", "expiresAt": "soon", "scope": "all"}
    )

    fields = {e["field"] for e in answer.json()["errors"]}
    assert answer.status_code == 422
    assert fields == {"name", "role", "expiresAt", "scope"}


def test_an_expiring_token_works_before_its_expiry(
    clocked_admin: TestClient, clock: MovableClock
) -> None:
    expiry = clock.now() + timedelta(hours=1)
    issued = issue(clocked_admin, "analyst", expiresAt=expiry.isoformat())
    clock.advance(timedelta(minutes=59))

    answer = clocked_admin.get(INTEGRATIONS, headers=bearer(issued["token"]))

    assert answer.status_code == 200


def test_an_expiring_token_is_refused_once_its_expiry_has_passed(
    clocked_admin: TestClient, clock: MovableClock
) -> None:
    expiry = clock.now() + timedelta(hours=1)
    issued = issue(clocked_admin, "analyst", expiresAt=expiry.isoformat())
    clock.advance(timedelta(hours=1, seconds=1))

    answer = clocked_admin.get(INTEGRATIONS, headers=bearer(issued["token"]))

    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
