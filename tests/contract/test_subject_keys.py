"""The `SubjectKeys` port, run against every adapter: SQLite and PostgreSQL.

`container.keys` is the store under test. A second `SubjectKeyStore` on the
same database stands in for another process: it shares no cache with the
first, so what it sees is what the database holds.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import pytest

from api.bootstrap import Container
from infrastructure.crypto import DeploymentKey
from infrastructure.keys import SubjectKeyStore


def another_process(container: Container) -> SubjectKeyStore:
    """A key store with a cache of its own, as another process has."""
    return SubjectKeyStore(container.database, container.deployment_key)


def wrapped_key_at_rest(container: Container, subject_id: str) -> bytes:
    with container.database.reading() as cursor:
        cursor.execute(
            "SELECT wrapped_key FROM subject_keys WHERE subject_id = %s", (subject_id,)
        )
        [row] = cursor.fetchall()
    return bytes(row[0])


def test_creating_a_key_returns_a_256_bit_key(container: Container) -> None:
    keys = container.keys.create(["subject-a"])

    assert set(keys) == {"subject-a"}
    assert len(keys["subject-a"]) == 32


def test_creating_a_key_again_returns_the_same_key(container: Container) -> None:
    first = container.keys.create(["subject-a"])

    second = container.keys.create(["subject-a"])

    assert second == first


def test_another_process_creating_an_existing_key_gets_the_same_key(
    container: Container,
) -> None:
    first = container.keys.create(["subject-a"])

    second = another_process(container).create(["subject-a"])

    assert second == first


def test_creating_keys_for_several_subjects_gives_each_a_key_of_its_own(
    container: Container,
) -> None:
    existing = container.keys.create(["subject-b"])

    keys = container.keys.create(["subject-a", "subject-b", "subject-c", "subject-a"])

    assert set(keys) == {"subject-a", "subject-b", "subject-c"}
    assert keys["subject-b"] == existing["subject-b"]
    assert len(set(keys.values())) == 3


def test_fetch_many_returns_only_the_keys_that_exist(container: Container) -> None:
    created = container.keys.create(["subject-a", "subject-c"])

    fetched = another_process(container).fetch_many(
        ["subject-a", "subject-b", "subject-c"]
    )

    assert fetched == created


def test_fetch_many_of_no_subjects_is_empty(container: Container) -> None:
    fetched = container.keys.fetch_many([])

    assert fetched == {}


def test_a_destroyed_key_is_gone(container: Container) -> None:
    container.keys.create(["subject-a", "subject-b"])

    container.keys.destroy("subject-a")

    assert set(container.keys.fetch_many(["subject-a", "subject-b"])) == {"subject-b"}


def test_a_destroyed_key_is_gone_for_another_process(container: Container) -> None:
    container.keys.create(["subject-a"])

    container.keys.destroy("subject-a")

    assert another_process(container).fetch_many(["subject-a"]) == {}


def test_a_key_read_without_remembering_it_is_read_again_next_time(
    container: Container,
) -> None:
    created = container.keys.create(["subject-a"])
    reader = another_process(container)

    assert reader.fetch_many(["subject-a"], remember=False) == created
    container.keys.destroy("subject-a")

    assert reader.fetch_many(["subject-a"]) == {}


def test_a_remembered_key_is_served_from_the_cache_for_a_moment(
    container: Container,
) -> None:
    created = container.keys.create(["subject-a"])
    reader = another_process(container)

    assert reader.fetch_many(["subject-a"]) == created
    container.keys.destroy("subject-a")

    # Within CACHE_SECONDS the reader still has it: what `remember` saves.
    assert reader.fetch_many(["subject-a"]) == created


def test_a_key_created_after_destruction_is_a_new_key(container: Container) -> None:
    old = container.keys.create(["subject-a"])["subject-a"]
    container.keys.destroy("subject-a")

    new = container.keys.create(["subject-a"])["subject-a"]

    assert new != old


def test_keys_are_kept_wrapped_at_rest(container: Container) -> None:
    key = container.keys.create(["subject-a"])["subject-a"]

    wrapped = wrapped_key_at_rest(container, "subject-a")

    assert wrapped != key
    assert key not in wrapped
    assert len(wrapped) > len(key)


def test_a_key_cannot_be_read_under_another_deployment_key(
    container: Container,
) -> None:
    container.keys.create(["subject-a"])
    other_deployment = DeploymentKey("another-deployment-key-0123456789abcdef")
    stranger = SubjectKeyStore(container.database, other_deployment)

    with pytest.raises(RuntimeError, match="HEADWATER_SECRET_KEY"):
        stranger.fetch_many(["subject-a"])


def test_two_threads_creating_one_key_at_once_end_with_one_key(
    container: Container,
) -> None:
    workers = 2
    stores = [another_process(container) for _ in range(workers)]
    start = threading.Barrier(workers)

    def create(store: SubjectKeyStore) -> Mapping[str, bytes]:
        start.wait()
        return store.create(["day-2026-12-03"])

    with ThreadPoolExecutor(workers) as pool:
        seen = list(pool.map(create, stores))

    kept = another_process(container).fetch_many(["day-2026-12-03"])
    assert seen[0] == seen[1] == kept
    assert len(kept) == 1
