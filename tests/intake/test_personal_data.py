"""Personal data at rest (CONTRACT 2.6): after real submissions, no personal
value, client IP or user agent is anywhere in the raw store in clear, and the
values used for lookups and dedupe are kept only as keyed hashes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.bootstrap import Container, build
from api.http.app import create_app
from api.settings import Settings
from domain.identity import IdentityClaimed
from domain.submission import DedupeWindowOpened, SubmissionAccepted
from tests.intake.conftest import (
    OPEN,
    Endpoints,
    Json,
    another_store,
    events_of,
)
from tests.support.public import Public

ACTIVITY = 42
CLIENT_IP = "198.51.100.23"
USER_AGENT = "HeadwaterProbe/9.9 (personal-data-scan)"
IDEMPOTENCY_KEY = "idem-key-zx81-4471"
EMAIL = "Quentin.Zebulon@Example.org"
PHONE = "+44 20 7946 0321"
PHONE_E164 = "+442079460321"
#: Every personal value sent, as sent and as normalised.
PERSONAL = (
    EMAIL,
    EMAIL.lower(),
    "Zebulonia",
    "Quarrington",
    PHONE,
    PHONE_E164,
    PHONE_E164.removeprefix("+"),
    "1987-06-05",
    "14 Wattle Grove Lane",
    "ultramarine-7734",
    "/offers-page-9931",
    "Quokka newsletter consent 5521",
    "order-receipt-4410",
    "crm-zx-88123",
)
REQUEST = (CLIENT_IP, USER_AGENT, IDEMPOTENCY_KEY)
CONFIGURATION: Json = {
    **OPEN,
    "identifyBy": "email",
    "allowEventLogging": True,
    "allowMessages": True,
    "triggerActivityId": ACTIVITY,
    "dedupePeriodSeconds": 600,
    "importSourceName": "scan-source",
}
SUBMISSION = [
    {
        "profile": {
            "email": EMAIL,
            "ref": "crm-zx-88123",
            "firstname": "Zebulonia",
            "lastname": "Quarrington",
            "phone": PHONE,
            "dob": "1987-06-05",
            "address": "14 Wattle Grove Lane",
            "custom": {"favouriteColour": "ultramarine-7734"},
            "consent": {"text": "Quokka newsletter consent 5521", "given": True},
            "lists": [{"listId": 7, "subscribedTimestamp": True}],
        }
    },
    {"event": {"type": "signup", "data": {"page": "/offers-page-9931"}}},
    {
        "message": {
            "activityId": ACTIVITY,
            "requestContent": {"receipt": "order-receipt-4410"},
        }
    },
]
HEADERS = {"User-Agent": USER_AGENT, "Idempotency-Key": IDEMPOTENCY_KEY}


@pytest.fixture
def visitor(container: Container) -> Iterator[Public]:
    """A browser at a distinctive address, with a distinctive user agent."""
    with TestClient(create_app(container), client=(CLIENT_IP, 41000)) as client:
        yield Public(client)


@pytest.fixture
def submitted(endpoints: Endpoints, visitor: Public) -> Json:
    """An integration after an accepted, a repeated, a refused and a test
    submission, each carrying every kind of personal value."""
    integration = endpoints.open(CONFIGURATION)
    for test in (False, False, True):
        answer = visitor.submit(integration, SUBMISSION, test=test, headers=HEADERS)
        assert answer.status_code == 200, answer.text
    refused = [*SUBMISSION, {"profile": {"email": "not an email", "x": EMAIL}}]
    answer = visitor.submit(integration, refused, headers={"User-Agent": USER_AGENT})
    assert answer.status_code == 422, answer.text
    return integration


def table_dump(container: Container) -> bytes:
    """Every row of every table of the store, as bytes."""
    if container.database.dialect == "sqlite":
        listing = "SELECT name FROM sqlite_master WHERE type = 'table'"
        parameters: tuple[str, ...] = ()
    else:
        listing = (
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
        )
        parameters = (container.location.schema,)
    dump = bytearray()
    with container.database.reading() as cursor:
        cursor.execute(listing, parameters)
        tables = [row[0] for row in cursor.fetchall()]
        assert tables
        for table in tables:
            cursor.execute(f'SELECT * FROM "{table}"')
            for row in cursor.fetchall():
                for value in row:
                    dump += _as_bytes(value) + b"\n"
    return bytes(dump)


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


def raw_store(container: Container) -> bytes:
    """Everything the store holds: every table's rows, and for SQLite also the
    database file and its write-ahead log, byte for byte."""
    raw = table_dump(container)
    path = container.location.path
    if container.database.dialect == "sqlite" and path is not None:
        wal = path.with_name(path.name + "-wal")
        assert wal.exists()
        raw += path.read_bytes() + wal.read_bytes()
    return raw


def in_clear(haystack: bytes, needles: tuple[str, ...]) -> list[str]:
    lowered = haystack.lower()
    return [n for n in needles if n.lower().encode() in lowered]


def unkeyed_digests(values: tuple[str, ...]) -> tuple[str, ...]:
    """Plain hashes, which anyone could compute from a guessed value."""
    digests = []
    for value in values:
        for form in (value, value.lower(), f"email:{value.lower()}"):
            for algorithm in ("md5", "sha1", "sha256"):
                digests.append(hashlib.new(algorithm, form.encode()).hexdigest())
    return tuple(digests)


def test_the_store_holds_no_personal_value_in_clear(
    submitted: Json, container: Container
) -> None:
    raw = raw_store(container)

    assert submitted["endpointId"].encode() in raw  # the scan sees the events
    assert in_clear(raw, PERSONAL) == []


def test_the_store_holds_no_client_ip_user_agent_or_idempotency_key_in_clear(
    submitted: Json, container: Container
) -> None:
    raw = raw_store(container)

    assert b"scan-source" in raw  # the scan sees the profile events
    assert in_clear(raw, REQUEST) == []


def test_the_store_holds_no_unkeyed_hash_of_a_personal_value(
    submitted: Json, container: Container
) -> None:
    raw = raw_store(container)

    assert in_clear(raw, unkeyed_digests(PERSONAL + REQUEST)) == []


# -- keyed hashes: the same value hashes differently under another key


def same_submission_elsewhere(
    settings: Settings, tmp_path: Path, *, secret_key: str
) -> Container:
    """The same submission, in a second store under `secret_key`."""
    other = another_store(settings, tmp_path).model_copy(
        update={"secret_key": secret_key}
    )
    elsewhere = build(other)
    with TestClient(create_app(elsewhere), client=(CLIENT_IP, 41000)) as client:
        issued = elsewhere.tokens.issue_first_admin()
        assert issued is not None
        client.headers["Authorization"] = f"Bearer {issued.secret}"
        integration = Endpoints(client).open(CONFIGURATION)
        del client.headers["Authorization"]
        answer = Public(client).submit(integration, SUBMISSION, headers=HEADERS)
        assert answer.status_code == 200, answer.text
    return elsewhere


@pytest.fixture
def elsewhere(settings: Settings, tmp_path: Path) -> Iterator[Container]:
    built = same_submission_elsewhere(
        settings, tmp_path, secret_key="another-deployment-key-abcdefghij0123456789"
    )
    try:
        yield built
    finally:
        built.close()


def test_identifying_values_are_looked_up_under_the_deployment_key(
    submitted: Json, container: Container, elsewhere: Container
) -> None:
    here = {e.originator_id for e in events_of(container, IdentityClaimed)}

    there = {e.originator_id for e in events_of(elsewhere, IdentityClaimed)}

    assert len(here) == len(there) == 3
    assert here.isdisjoint(there)


def test_dedupe_keys_are_kept_under_the_deployment_key(
    submitted: Json, container: Container, elsewhere: Container
) -> None:
    (here,) = events_of(container, DedupeWindowOpened)[:1]

    (there,) = events_of(elsewhere, DedupeWindowOpened)

    assert here.key_digest != there.key_digest
    assert here.originator_id != there.originator_id


def test_body_and_idempotency_key_digests_are_kept_under_the_deployment_key(
    submitted: Json, container: Container, elsewhere: Container
) -> None:
    here = events_of(container, SubmissionAccepted)[0]

    (there,) = events_of(elsewhere, SubmissionAccepted)

    assert here.body_digest != there.body_digest
    assert here.idempotency_key_digest is not None
    assert here.idempotency_key_digest != there.idempotency_key_digest
