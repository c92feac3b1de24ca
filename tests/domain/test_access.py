"""Access tokens and roles: what each role may do and when a token works."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from domain.access import (
    AccessToken,
    FirstAdmin,
    FirstAdminIssued,
    Permission,
    Role,
    TokenIssued,
    TokenRevoked,
)
from domain.errors import InvalidInput
from domain.model import Actor

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
ADMIN = Actor(kind="token", name="admin", id="token-0")

EVERYONE = {
    Permission.READ_INTEGRATIONS,
    Permission.READ_STATUS,
    Permission.READ_DEDUPE,
}

#: Section 4 of the contract, row by row.
CONTRACT_TABLE = {
    Role.ADMIN: {
        Permission.MANAGE_TOKENS,
        Permission.REBUILD,
        Permission.ERASE,
        Permission.RETRY_DELIVERIES,
        Permission.WRITE_INTEGRATIONS,
        *EVERYONE,
        Permission.READ_SUBSCRIBERS,
        Permission.READ_AUDIT,
        Permission.READ_DELIVERIES,
        Permission.READ_EVENTS,
    },
    Role.INTEGRATION_MANAGER: {Permission.WRITE_INTEGRATIONS, *EVERYONE},
    Role.AUDITOR: {
        *EVERYONE,
        Permission.READ_SUBSCRIBERS,
        Permission.READ_AUDIT,
        Permission.READ_DELIVERIES,
        Permission.READ_EVENTS,
    },
    Role.ANALYST: {*EVERYONE, Permission.READ_SUBSCRIBERS, Permission.READ_EVENTS},
}


def issued(
    role: Role = Role.AUDITOR,
    *,
    name: str = "reporting",
    expires_at: datetime | None = None,
) -> AccessToken:
    return AccessToken.issue(
        id=uuid4(),
        name=name,
        role=role,
        secret_digest="digest",
        expires_at=expires_at,
        now=NOW,
        actor=ADMIN,
    )


def test_the_contract_table_names_every_permission_and_role() -> None:
    assert set(CONTRACT_TABLE) == set(Role)
    assert set().union(*CONTRACT_TABLE.values()) == set(Permission)


@pytest.mark.parametrize("role", list(Role))
def test_a_role_has_exactly_the_permissions_of_the_contract(role: Role) -> None:
    token = issued(role)

    assert token.permissions == CONTRACT_TABLE[role]


def test_issuing_a_token_records_one_event_with_its_role_and_expiry() -> None:
    expiry = NOW + timedelta(days=30)

    token = issued(Role.ANALYST, expires_at=expiry)

    [event] = token.collect_events()
    assert isinstance(event, TokenIssued)
    assert event.role is Role.ANALYST
    assert event.expires_at == expiry
    assert event.actor == ADMIN


def test_a_token_without_expiry_is_usable_at_any_time() -> None:
    token = issued(expires_at=None)

    assert token.is_usable(NOW)
    assert token.is_usable(NOW + timedelta(days=3650))


def test_a_token_is_usable_until_the_instant_it_expires() -> None:
    expiry = NOW + timedelta(hours=1)

    token = issued(expires_at=expiry)

    assert token.is_usable(expiry - timedelta(microseconds=1))
    assert not token.is_usable(expiry)
    assert not token.is_usable(expiry + timedelta(days=1))


def test_a_revoked_token_is_not_usable() -> None:
    token = issued()

    token.revoke(actor=ADMIN)

    assert not token.is_usable(NOW)
    assert [type(event) for event in token.collect_events()] == [
        TokenIssued,
        TokenRevoked,
    ]


def test_revoking_a_revoked_token_records_nothing() -> None:
    token = issued()
    token.revoke(actor=ADMIN)
    token.collect_events()

    token.revoke(actor=ADMIN)

    assert token.collect_events() == []
    assert token.version == 2


@pytest.mark.parametrize("name", ["", "x" * 101])
def test_a_token_name_of_bad_length_is_invalid_input(name: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        issued(name=name)

    assert [(p.field, p.rule) for p in refused.value.problems] == [("name", "length")]


@pytest.mark.parametrize("expires_at", [NOW, NOW - timedelta(seconds=1)])
def test_an_expiry_that_is_not_in_the_future_is_invalid_input(
    expires_at: datetime,
) -> None:
    with pytest.raises(InvalidInput) as refused:
        issued(expires_at=expires_at)

    assert [(p.field, p.rule) for p in refused.value.problems] == [
        ("expiresAt", "future")
    ]


def test_a_bad_name_and_a_past_expiry_are_reported_together() -> None:
    with pytest.raises(InvalidInput) as refused:
        issued(name="", expires_at=NOW - timedelta(days=1))

    assert {p.field for p in refused.value.problems} == {"name", "expiresAt"}


def test_a_token_acts_under_its_own_name_and_id() -> None:
    token = issued(name="nightly export")

    actor = token.as_actor()

    assert actor == Actor(kind="token", name="nightly export", id=str(token.id))


def test_the_first_admin_marker_always_has_the_same_id() -> None:
    first = FirstAdmin.record(token_id=uuid4())
    second = FirstAdmin.record(token_id=uuid4())

    assert first.id == second.id == FirstAdmin.ID
    assert first.token_id != second.token_id


def test_recording_the_first_admin_records_one_event_at_version_one() -> None:
    token_id = uuid4()

    marker = FirstAdmin.record(token_id=token_id)

    [event] = marker.collect_events()
    assert isinstance(event, FirstAdminIssued)
    assert event.originator_version == 1
    assert event.token_id == token_id
