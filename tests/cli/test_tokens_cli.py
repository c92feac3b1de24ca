"""`headwater tokens create|list|revoke` (CONTRACT 4 and 5), against the store
and against a running server."""

from __future__ import annotations

import re

import httpx

from domain.access import Role
from tests.cli.conftest import Store
from tests.support.server import LiveServer

TOKEN = re.compile(r"^hw_[A-Za-z0-9_-]{40,}$")
INTEGRATIONS = "/admin/v1/integrations"


def created_token(store: Store, name: str, role: str = "analyst") -> str:
    result = store.run("tokens", "create", "--name", name, "--role", role)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_tokens_create_prints_only_the_token_on_one_line(store: Store) -> None:
    result = store.run("tokens", "create", "--name", "ci", "--role", "auditor")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert len(lines) == 2
    assert lines[1] == ""
    assert TOKEN.match(lines[0])


def test_tokens_create_refuses_an_expiry_in_the_past_and_prints_nothing(
    store: Store,
) -> None:
    result = store.run(
        "tokens",
        "create",
        *("--name", "late", "--role", "analyst"),
        *("--expires-at", "2020-01-01T00:00:00Z"),
    )

    assert result.returncode != 0
    assert result.stdout == ""
    assert "expiresAt" in result.stderr


def test_tokens_list_shows_a_created_token_without_its_secret(store: Store) -> None:
    secret = created_token(store, "nightly export", role="auditor")

    result = store.run("tokens", "list")

    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if "nightly export" in line]
    assert "auditor" in line
    assert "active" in line
    assert secret not in result.stdout
    assert secret.removeprefix("hw_") not in result.stdout


def test_tokens_list_shows_a_revoked_token_as_revoked(store: Store) -> None:
    issued = store.issue("old robot", Role.ANALYST)
    store.run("tokens", "revoke", str(issued.token.id))

    result = store.run("tokens", "list")

    (line,) = [line for line in result.stdout.splitlines() if "old robot" in line]
    assert "revoked" in line.split()


def test_tokens_revoke_of_an_unknown_id_fails_with_a_message(store: Store) -> None:
    result = store.run("tokens", "revoke", "6a0c0a5e-4a0e-4a37-8f43-2a7f4c2b1d11")

    assert result.returncode != 0
    assert "6a0c0a5e-4a0e-4a37-8f43-2a7f4c2b1d11" in result.stderr


def test_a_token_created_on_the_command_line_works_at_once_on_a_running_server(
    served_store: tuple[Store, LiveServer],
) -> None:
    store, server = served_store
    secret = created_token(store, "dashboard")

    answer = httpx.get(server.base_url + INTEGRATIONS, headers=bearer(secret))

    assert answer.status_code == 200


def test_a_token_revoked_on_the_command_line_is_refused_at_once_by_a_running_server(
    served_store: tuple[Store, LiveServer],
) -> None:
    store, server = served_store
    issued = store.issue("leaked", Role.ANALYST)
    before = httpx.get(server.base_url + INTEGRATIONS, headers=bearer(issued.secret))

    result = store.run("tokens", "revoke", str(issued.token.id))

    after = httpx.get(server.base_url + INTEGRATIONS, headers=bearer(issued.secret))
    assert result.returncode == 0, result.stderr
    assert before.status_code == 200
    assert after.status_code == 401
