"""The right of access (CONTRACT 3, docs/compliance.md): the export answers
everything stored about a person, decrypted, and nothing once erased."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from uuid import uuid4

import pytest

from api.settings import Settings
from domain.access import Role
from tests.compliance.conftest import (
    ADMIN,
    CLIENT_IP,
    CONSENT,
    EMAIL,
    FIRSTNAME,
    LASTNAME,
    PAGE,
    PHONE_E164,
    RECEIPT,
    REF,
    USER_AGENT,
    Json,
    Service,
    Submitted,
    running,
    signup,
)

OTHER = "Bartholomew.Ynys@example.org"


@dataclass(frozen=True)
class Exported:
    """The export of the person, with another person in the same store."""

    service: Service
    person: Submitted
    document: Json
    raw: bytes


@pytest.fixture(scope="module")
def exported(shared_settings: Settings) -> Iterator[Exported]:
    """One store of each kind and its export of the person; the tests that
    take it only read."""
    with running(shared_settings) as service:
        person = service.subscribe()
        service.subscribe(signup(OTHER, phone=None, ref=None, lastname="Ynys"))
        answer = service.admin.get(f"{ADMIN}/subscribers/{person.subscriber_id}/export")
        assert answer.status_code == 200, answer.text
        yield Exported(service, person, answer.json(), answer.content)


def export_of(service: Service, person: Submitted) -> Json:
    """The export as an admin gets it now."""
    answer = service.admin.get(f"{ADMIN}/subscribers/{person.subscriber_id}/export")
    assert answer.status_code == 200, answer.text
    document: Json = answer.json()
    return document


def test_the_export_holds_the_profile_decrypted(exported: Exported) -> None:
    profile = exported.document["profile"]

    assert exported.document["subscriberId"] == exported.person.subscriber_id
    assert profile["id"] == exported.person.subscriber_id
    assert (profile["email"], profile["phone"], profile["ref"]) == (
        EMAIL.lower(),
        PHONE_E164,
        REF,
    )
    assert (profile["firstname"], profile["lastname"]) == (FIRSTNAME, LASTNAME)


def test_the_export_holds_every_event_of_the_profile(
    service: Service, person: Submitted
) -> None:
    update = [{"profile": {"email": EMAIL, "lastname": "Quarrendon-Vale"}}]
    service.subscribe(update)

    document = export_of(service, person)

    assert [(e["type"], e["version"]) for e in document["events"]] == [
        ("SubscriberRegistered", 1),
        ("ProfileChanged", 2),
        ("ConsentRecorded", 3),
        ("MessageTriggered", 4),
        ("ProfileChanged", 5),
        ("MessageTriggered", 6),
    ]
    last = document["events"][4]["changes"]
    assert last == {"lastname": {"from": LASTNAME, "to": "Quarrendon-Vale"}}


def test_the_export_holds_the_consent_with_its_text_and_client_ip(
    exported: Exported,
) -> None:
    events = exported.document["events"]

    (consent,) = [e for e in events if e["type"] == "ConsentRecorded"]
    assert (consent["text"], consent["given"], consent["clientIp"]) == (
        CONSENT,
        True,
        CLIENT_IP,
    )


def test_the_export_holds_the_messages_triggered_for_the_person(
    exported: Exported,
) -> None:
    events = exported.document["events"]

    (message,) = [e for e in events if e["type"] == "MessageTriggered"]
    assert message["requestContent"] == {"note": RECEIPT}
    assert message["recipient"]["email"] == EMAIL.lower()


def test_the_export_holds_the_data_of_events_logged_for_the_person(
    exported: Exported,
) -> None:
    entries = exported.document["auditEntries"]

    (logged,) = [e for e in entries if e["action"] == "EventLogged"]
    assert logged["details"]["eventType"] == "signup"
    assert logged["details"]["data"] == {"page": PAGE}


def test_the_export_holds_audit_entries_with_the_request_ip_and_user_agent(
    exported: Exported,
) -> None:
    entries = exported.document["auditEntries"]

    assert {e["action"] for e in entries} >= {
        "SubscriberRegistered",
        "ProfileChanged",
        "ConsentRecorded",
        "MessageTriggered",
        "EventLogged",
    }
    for entry in entries:
        assert entry["subjectId"] == exported.person.subscriber_id
        assert entry["submissionId"] == exported.person.submission_id
        assert entry["occurredAt"]
        assert entry["request"] == {"clientIp": CLIENT_IP, "userAgent": USER_AGENT}


def test_the_export_holds_the_persons_deliveries(exported: Exported) -> None:
    (listed,) = exported.service.deliveries(exported.person.subscriber_id)

    (delivery,) = exported.document["deliveries"]

    assert delivery["id"] == listed["id"]
    assert delivery["status"] == "pending"
    assert delivery["subscriberId"] == exported.person.subscriber_id
    assert delivery["submissionId"] == exported.person.submission_id


def test_the_export_holds_nothing_of_another_person(exported: Exported) -> None:
    raw = exported.raw.lower()

    assert b"bartholomew" not in raw
    assert b"ynys" not in raw


def test_the_export_of_an_erased_person_answers_410(
    service: Service, person: Submitted, erasure: Json
) -> None:
    answer = service.admin.get(f"{ADMIN}/subscribers/{person.subscriber_id}/export")

    assert answer.status_code == 410, answer.text
    assert EMAIL.lower().encode() not in answer.content.lower()


def test_an_integration_manager_may_not_export(exported: Exported) -> None:
    service, person = exported.service, exported.person
    headers = service.headers_of(Role.INTEGRATION_MANAGER)

    answer = service.admin.get(
        f"{ADMIN}/subscribers/{person.subscriber_id}/export", headers=headers
    )

    assert answer.status_code == 403, answer.text
    assert EMAIL.lower().encode() not in answer.content.lower()


def test_the_export_of_an_unknown_subscriber_answers_404(exported: Exported) -> None:
    answer = exported.service.admin.get(f"{ADMIN}/subscribers/{uuid4()}/export")

    assert answer.status_code == 404, answer.text
