"""Erasures survive a restore from backup (CONTRACT 3.1, docs/compliance.md):
a restored key table brings erased keys back, and start destroys them again
before anything reads them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from api.bootstrap import Container, build
from api.settings import Settings
from domain.subscriber import ProfileChanged
from infrastructure.keys import SubjectKeyStore
from tests.compliance.conftest import (
    ADMIN,
    Service,
    Submitted,
    marked_erased,
    signup,
)
from tests.conftest import TEST_SECRET_KEY
from tests.support.server import start_server

Row = tuple[Any, ...]


def backup_of_keys(container: Container) -> list[Row]:
    """Every row of `subject_keys`, as a backup holds it."""
    with container.database.reading() as cursor:
        cursor.execute("SELECT subject_id, wrapped_key, created_at FROM subject_keys")
        return [tuple(row) for row in cursor.fetchall()]


def restore_keys(container: Container, rows: list[Row]) -> None:
    """Put the key table back as the backup had it."""
    with container.database.transaction() as cursor:
        cursor.execute("DELETE FROM subject_keys")
        cursor.executemany(
            "INSERT INTO subject_keys (subject_id, wrapped_key, created_at)"
            " VALUES (%s, %s, %s)",
            rows,
        )


def key_in_store(container: Container, person: Submitted) -> bool:
    """Whether a process that never cached the key finds it."""
    fresh = SubjectKeyStore(container.database, container.deployment_key)
    return bool(fresh.fetch_many([person.key_id]))


@pytest.fixture
def restored(service: Service, person: Submitted) -> Submitted:
    """The person, erased after a backup of the keys that is then restored."""
    backup = backup_of_keys(service.container)
    answer = service.erase(person.subscriber_id)
    assert answer.status_code == 200, answer.text
    service.caught_up(answer.json()["position"])
    restore_keys(service.container, backup)
    return person


@pytest.fixture
def restarted(settings: Settings, restored: Submitted) -> Iterator[Container]:
    """The service started again on the restored store, as `serve` starts."""
    built = build(settings)
    try:
        built.run_background()
        yield built
    finally:
        built.close()


def test_a_restored_backup_brings_an_erased_key_back(
    service: Service, restored: Submitted
) -> None:
    found = key_in_store(service.container, restored)

    assert found


def test_destroying_erased_keys_destroys_a_restored_key_again(
    service: Service, restored: Submitted
) -> None:
    destroyed = service.container.compliance.destroy_erased_keys()

    assert destroyed == 1
    assert not key_in_store(service.container, restored)


def test_the_persons_values_read_as_erased_after_the_keys_are_destroyed_again(
    service: Service, restored: Submitted
) -> None:
    service.container.compliance.destroy_erased_keys()

    answer = service.admin.get(f"{ADMIN}/subscribers/{restored.subscriber_id}/history")

    assert answer.status_code == 200, answer.text
    changed = next(e for e in answer.json()["items"] if e["type"] == "ProfileChanged")
    assert changed["data"]["changes"]["email"] == {"from": None, "to": None}
    assert marked_erased(changed)


def test_start_destroys_a_restored_key_again(
    restarted: Container, restored: Submitted
) -> None:
    found = key_in_store(restarted, restored)

    assert not found


def test_after_start_the_persons_values_read_as_erased(
    restarted: Container, restored: Submitted
) -> None:
    history = restarted.events.history(UUID(restored.subscriber_id))

    (changed,) = [e for e in history if isinstance(e, ProfileChanged)]
    assert changed.erased
    assert {c.after for c in changed.changes.values()} == {None}


def test_serving_without_projections_destroys_a_restored_key_at_start(
    service: Service, restored: Submitted, settings: Settings, tmp_path: Path
) -> None:
    env = {
        "HEADWATER_DATABASE_URL": settings.database_url,
        "HEADWATER_SECRET_KEY": TEST_SECRET_KEY,
    }

    server = start_server(tmp_path, env, arguments=("--no-projections",))
    try:
        found = key_in_store(service.container, restored)
    finally:
        server.stop()

    assert not found


def test_destroying_erased_keys_keeps_the_keys_of_everyone_else(
    service: Service, restored: Submitted
) -> None:
    other = service.subscribe(signup("kept.person@example.org", phone=None, ref=None))

    service.container.compliance.destroy_erased_keys()

    assert key_in_store(service.container, other)


def test_destroying_erased_keys_answers_how_many_it_destroyed(
    service: Service, person: Submitted
) -> None:
    other = service.subscribe(signup("second.erased@example.org", phone=None, ref=None))
    backup = backup_of_keys(service.container)
    for subscriber in (person, other):
        assert service.erase(subscriber.subscriber_id).status_code == 200
    restore_keys(service.container, backup)

    destroyed = service.container.compliance.destroy_erased_keys()

    assert destroyed == 2
    assert service.container.compliance.destroy_erased_keys() == 0
