"""The hash chain (CONTRACT 3.1, docs/compliance.md): every event is linked
to the one before it, a checkpoint kept elsewhere pins the chain, and
`headwater audit verify` and GET /audit/verify find any row edited or removed
in SQL, naming its position; an erasure leaves the chain intact."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from uuid import UUID

import pytest

from api.bootstrap import Container
from domain.access import Role
from infrastructure import chain
from infrastructure.chain import Checkpoint
from tests.compliance.conftest import (
    ADMIN,
    Command,
    Json,
    Service,
    Submitted,
    events_table,
    signup,
)

Tampering = Callable[[Container], int]


def chained_rows(
    container: Container,
) -> list[tuple[int, UUID, int, str, bytes, bytes | None]]:
    """Every stored event with its link, in log order, straight from SQL."""
    table, position = events_table(container)
    with container.database.reading() as cursor:
        cursor.execute(
            f"SELECT e.{position}, e.originator_id, e.originator_version, e.topic,"
            f" e.state, c.link FROM {table} e"
            f" LEFT JOIN event_chain c ON c.position = e.{position}"
            f" ORDER BY e.{position}"
        )
        rows = cursor.fetchall()
    return [
        (
            int(at),
            UUID(str(originator)),
            int(version),
            str(topic),
            bytes(state),
            None if link is None else bytes(link),
        )
        for at, originator, version, topic, state, link in rows
    ]


def position_of(container: Container, event_type: str) -> int:
    """The position of the first stored event of a type."""
    table, position = events_table(container)
    with container.database.reading() as cursor:
        cursor.execute(
            f"SELECT min({position}) FROM {table} WHERE topic LIKE %s",
            (f"%:{event_type}",),
        )
        return int(cursor.fetchone()[0])


def edit_an_event(container: Container) -> int:
    """Rename the integration in its stored IntegrationCreated event."""
    table, position = events_table(container)
    at = position_of(container, "IntegrationCreated")
    with container.database.transaction() as cursor:
        cursor.execute(
            f"SELECT state FROM {table} WHERE {position} = %s",
            (at,),
        )
        state = bytes(cursor.fetchone()[0])
        forged = state.replace(b'"name":"Signup"', b'"name":"Forged"')
        assert forged != state
        cursor.execute(
            f"UPDATE {table} SET state = %s WHERE {position} = %s",
            (forged, at),
        )
    return at


def edit_a_link(container: Container) -> int:
    """Replace the link of the person's first profile change."""
    at = position_of(container, "ProfileChanged")
    with container.database.transaction() as cursor:
        cursor.execute(
            "UPDATE event_chain SET link = %s WHERE position = %s",
            (hashlib.sha256(b"forged").digest(), at),
        )
    return at


def remove_a_link(container: Container) -> int:
    """Delete the link of the person's first profile change."""
    at = position_of(container, "ProfileChanged")
    with container.database.transaction() as cursor:
        cursor.execute("DELETE FROM event_chain WHERE position = %s", (at,))
    return at


def remove_an_event(container: Container) -> int:
    """Delete the row of the person's first profile change, keeping its link."""
    table, position = events_table(container)
    at = position_of(container, "ProfileChanged")
    with container.database.transaction() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE {position} = %s",
            (at,),
        )
    return at


def cut_the_log(container: Container) -> int:
    """Delete the last event and its link, as a truncated restore would."""
    table, position = events_table(container)
    head = container.events.head()
    with container.database.transaction() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE {position} = %s", (head,))
        cursor.execute("DELETE FROM event_chain WHERE position = %s", (head,))
    return head


def checkpoint(service: Service) -> Json:
    answer = service.admin.get(f"{ADMIN}/audit/checkpoint")
    assert answer.status_code == 200, answer.text
    kept: Json = answer.json()
    return kept


def verification(service: Service) -> Json:
    answer = service.admin.get(f"{ADMIN}/audit/verify")
    assert answer.status_code == 200, answer.text
    result: Json = answer.json()
    return result


# -- the links


def test_every_event_has_a_link_that_recomputes_from_its_stored_row(
    service: Service, person: Submitted
) -> None:
    rows = chained_rows(service.container)

    previous = chain.GENESIS
    for position, originator, version, topic, state, stored in rows:
        expected = chain.link(
            previous,
            position=position,
            originator_id=originator,
            originator_version=version,
            topic=topic,
            state=state,
        )
        assert stored == expected, f"position {position}"
        previous = expected
    assert len(rows) > 10
    assert rows[-1][0] == service.container.events.head()


def test_the_checkpoint_names_the_last_position_and_its_link(
    service: Service, person: Submitted
) -> None:
    kept = checkpoint(service)

    *_, (position, *_, link) = chained_rows(service.container)
    assert link is not None
    assert kept == {"position": position, "hash": link.hex()}


@pytest.mark.parametrize("path", ["/audit/checkpoint", "/audit/verify"])
def test_the_chain_routes_need_the_read_audit_permission(
    service: Service, path: str
) -> None:
    headers = service.headers_of(Role.INTEGRATION_MANAGER)

    answer = service.admin.get(f"{ADMIN}{path}", headers=headers)

    assert answer.status_code == 403, answer.text


# -- verifying over HTTP


def test_the_verify_route_answers_ok_when_the_chain_is_intact(
    service: Service, person: Submitted
) -> None:
    result = verification(service)

    assert result == {
        "ok": True,
        "checkedThrough": service.container.events.head(),
        "firstBadPosition": None,
        "unchained": 0,
        "reason": None,
    }


@pytest.mark.parametrize(
    "tamper",
    [edit_an_event, edit_a_link, remove_a_link, remove_an_event],
    ids=["edited-event", "edited-link", "removed-link", "removed-event"],
)
def test_the_verify_route_answers_the_first_bad_position(
    service: Service, person: Submitted, tamper: Tampering
) -> None:
    positions = [row[0] for row in chained_rows(service.container)]
    position = tamper(service.container)

    result = verification(service)

    assert result["ok"] is False
    assert result["firstBadPosition"] == position
    assert result["checkedThrough"] == max(p for p in positions if p < position)
    assert result["reason"]


def test_the_verify_route_answers_ok_after_an_erasure(
    service: Service, person: Submitted, erasure: Json
) -> None:
    result = verification(service)

    assert result["ok"] is True
    assert result["checkedThrough"] == service.container.events.head()


def test_verifying_fails_when_the_log_was_cut_before_a_kept_checkpoint(
    service: Service, person: Submitted
) -> None:
    kept = checkpoint(service)
    cut_the_log(service.container)

    result = service.container.compliance.chain.verify(
        checkpoint=Checkpoint.parse(f"{kept['hash']}@{kept['position']}")
    )

    assert result.ok is False
    assert result.first_bad_position == kept["position"]


def test_verifying_passes_against_the_checkpoint_of_the_empty_log(
    service: Service, person: Submitted
) -> None:
    genesis = Checkpoint.parse(f"{chain.GENESIS.hex()}@0")

    result = service.container.compliance.chain.verify(checkpoint=genesis)

    assert result.ok is True
    assert result.checked_through == service.container.events.head()


def test_verifying_fails_against_a_checkpoint_at_zero_with_another_hash(
    service: Service, person: Submitted
) -> None:
    wrong = Checkpoint.parse(f"{'f' * 64}@0")

    result = service.container.compliance.chain.verify(checkpoint=wrong)

    assert result.ok is False
    assert result.first_bad_position == 0


# -- verifying on the command line


def test_audit_verify_exits_zero_when_the_chain_is_intact(
    service: Service, person: Submitted, headwater: Command
) -> None:
    head = service.container.events.head()

    result = headwater.run("audit", "verify")

    assert result.returncode == 0, result.stderr
    assert f"through position {head}" in result.stdout


def test_audit_verify_shows_a_progress_bar_on_stderr(
    service: Service, person: Submitted, headwater: Command
) -> None:
    head = service.container.events.head()

    result = headwater.run("audit", "verify")

    assert result.returncode == 0, result.stderr
    assert "[" + "#" * 30 + "]" in result.stderr
    assert "100.0%" in result.stderr
    assert f"{head}/{head} events" in result.stderr


def test_audit_verify_names_the_position_of_an_edited_event(
    service: Service, person: Submitted, headwater: Command
) -> None:
    position = edit_an_event(service.container)

    result = headwater.run("audit", "verify")

    assert result.returncode != 0
    assert f"at position {position}:" in result.stdout


def test_audit_verify_names_the_position_of_an_edited_link(
    service: Service, person: Submitted, headwater: Command
) -> None:
    position = edit_a_link(service.container)

    result = headwater.run("audit", "verify")

    assert result.returncode != 0
    assert f"at position {position}:" in result.stdout


def test_audit_verify_names_the_position_of_a_removed_event(
    service: Service, person: Submitted, headwater: Command
) -> None:
    position = remove_an_event(service.container)

    result = headwater.run("audit", "verify")

    assert result.returncode != 0
    assert f"at position {position}:" in result.stdout


def test_audit_verify_passes_against_a_kept_checkpoint(
    service: Service, person: Submitted, headwater: Command
) -> None:
    kept = checkpoint(service)
    service.subscribe(signup("later.person@example.org", phone=None, ref=None))

    result = headwater.run(
        "audit", "verify", "--checkpoint", f"{kept['hash']}@{kept['position']}"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"matches the checkpoint at {kept['position']}" in result.stdout


def test_audit_verify_fails_against_a_checkpoint_with_another_hash(
    service: Service, person: Submitted, headwater: Command
) -> None:
    kept = checkpoint(service)
    wrong = kept["hash"][:-1] + ("0" if kept["hash"][-1] != "0" else "1")

    result = headwater.run(
        "audit", "verify", "--checkpoint", f"{wrong}@{kept['position']}"
    )

    assert result.returncode != 0
    assert f"at position {kept['position']}:" in result.stdout


def test_an_erasure_leaves_the_chain_verifying_against_a_checkpoint_before_it(
    service: Service, person: Submitted, headwater: Command
) -> None:
    kept = checkpoint(service)
    erased = service.erase(person.subscriber_id)
    assert erased.status_code == 200, erased.text

    result = headwater.run(
        "audit", "verify", "--checkpoint", f"{kept['hash']}@{kept['position']}"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"through position {service.container.events.head()}" in result.stdout
