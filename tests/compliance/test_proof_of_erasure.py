"""Proof of erasure (docs/compliance.md, "What a data-protection officer can
show an auditor"): after a person is erased, their email, phone and names
appear nowhere in the store in clear, in any table, and on SQLite in no byte
of either database file or its write-ahead log; nor does their key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from api.settings import Settings
from tests.compliance.conftest import (
    CONSENT,
    EMAIL,
    FIRSTNAME,
    LASTNAME,
    PAGE,
    PHONE,
    PHONE_E164,
    RECEIPT,
    REF,
    Service,
    Submitted,
    erase_and_wait,
    every_row,
    raw_files,
    running,
    signup,
    store_files,
    wrapped_key,
)

#: The person's values in every form they were sent or stored in.
CLEAR: tuple[str, ...] = (
    EMAIL,
    EMAIL.lower(),
    EMAIL.split("@")[0],
    PHONE,
    PHONE_E164,
    PHONE_E164.removeprefix("+"),
    "020 7946 0958",
    FIRSTNAME,
    LASTNAME,
    "Quarrendon-Vale",
    REF,
    CONSENT,
    PAGE,
    RECEIPT,
)


@dataclass(frozen=True)
class Erased:
    service: Service
    person: Submitted
    #: The person's key as `subject_keys` held it before the erasure.
    wrapped_key: bytes


@pytest.fixture(scope="module")
def erased(shared_settings: Settings) -> Iterator[Erased]:
    """One store of each kind where the person, after a second submission
    that changed their name, was erased once every projection had applied
    everything; the tests that take it only read."""
    with running(shared_settings) as service:
        person = service.subscribe()
        service.subscribe(signup(lastname="Quarrendon-Vale"))
        wrapped = wrapped_key(service.container, person.key_id)
        assert wrapped is not None
        erase_and_wait(service, person)
        yield Erased(service, person, wrapped)


def in_clear(haystack: bytes, needles: tuple[str, ...]) -> list[str]:
    """The needles found in the haystack, whatever their case."""
    lowered = haystack.lower()
    return [needle for needle in needles if needle.lower().encode() in lowered]


#: The raw-file scans run on SQLite only: PostgreSQL's files are the
#: server's, not Headwater's; there its tables are scanned (above).
ON_SQLITE_SHARED = pytest.mark.parametrize("shared_settings", ["sqlite"], indirect=True)
ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_the_scan_covers_events_chain_keys_read_models_and_tracking(
    erased: Erased,
) -> None:
    tables = every_row(erased.service.container)

    names = set(tables)
    assert {"event_chain", "subject_keys"} <= names
    assert names & {"stored_events", "headwater_events"}
    assert any("profiles" in name for name in names)
    assert any("audit" in name for name in names)
    assert any("outbox" in name for name in names)
    assert any("tracking" in name for name in names)
    assert len(names) >= 10
    everything = b"".join(tables.values())
    assert erased.person.subscriber_id.encode() in everything
    # The person's sealed values are still there, as ciphertext.
    assert f"{erased.person.key_id}:".encode() in everything


def test_no_table_holds_the_persons_values_in_clear(erased: Erased) -> None:
    tables = every_row(erased.service.container)

    found = {name: in_clear(rows, CLEAR) for name, rows in tables.items()}
    assert {name: hits for name, hits in found.items() if hits} == {}


def test_no_table_holds_the_destroyed_key(erased: Erased) -> None:
    container = erased.service.container

    tables = every_row(container)

    holding = [name for name, rows in tables.items() if erased.wrapped_key in rows]
    assert holding == []
    assert wrapped_key(container, erased.person.key_id) is None


@ON_SQLITE_SHARED
def test_no_database_file_or_wal_holds_the_persons_values_in_clear(
    erased: Erased,
) -> None:
    raw = raw_files(erased.service.container)

    assert erased.person.subscriber_id.encode() in raw  # the scan sees the events
    assert in_clear(raw, CLEAR) == []


@ON_SQLITE
def test_no_database_file_or_wal_holds_the_destroyed_key(
    service: Service, person: Submitted
) -> None:
    wrapped = wrapped_key(service.container, person.key_id)
    assert wrapped is not None
    assert wrapped in raw_files(service.container)  # the scan can find it

    answer = service.erase(person.subscriber_id)

    assert answer.status_code == 200, answer.text
    holding = [
        path.name
        for path in store_files(service.container)
        if path.exists() and wrapped in path.read_bytes()
    ]
    assert holding == []


@ON_SQLITE_SHARED
def test_the_stores_connections_overwrite_deleted_content(erased: Erased) -> None:
    container = erased.service.container

    settings = []
    for database in (container.database, container.read_models_database):
        with database.reading() as cursor:
            cursor.execute("PRAGMA secure_delete")
            settings.append(cursor.fetchone()[0])

    assert settings == [1, 1]
