"""Erasure over the admin API (CONTRACT 3.1, docs/compliance.md): the key is
destroyed, the identifiers are released, every event stays and reads as
erased, and the person's deliveries are cancelled."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID, uuid4

import orjson
import pytest

from api.bootstrap import Container, build
from api.settings import Settings
from domain.access import Role
from domain.identity import IdentityClaimed, IdentityReleased
from domain.subscriber import ProfileChanged, SubscriberErased
from infrastructure.keys import CACHE_SECONDS, SubjectKeyStore
from tests.compliance.conftest import (
    ADMIN,
    CONSENT,
    EMAIL,
    FIRSTNAME,
    LASTNAME,
    PHONE,
    PHONE_E164,
    RECEIPT,
    REF,
    Json,
    Service,
    Submitted,
    World,
    erase_and_wait,
    events_table,
    marked_erased,
    running,
    signup,
    table_names,
)
from tests.support.receiver import REFUSED, Receiver

PERSONAL = (EMAIL, PHONE, PHONE_E164, REF, FIRSTNAME, LASTNAME, CONSENT, RECEIPT)


@pytest.fixture(scope="module")
def erased(shared_settings: Settings) -> Iterator[World]:
    """One store of each kind where the person was erased; the tests that
    take it only read."""
    with running(shared_settings) as service:
        person = service.subscribe()
        yield World(service, person, erase_and_wait(service, person))


def test_erasure_answers_the_id_erased_and_a_position(
    service: Service, person: Submitted
) -> None:
    answer = service.erase(person.subscriber_id)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert sorted(body) == ["erased", "id", "position"]
    assert (body["id"], body["erased"]) == (person.subscriber_id, True)
    assert isinstance(body["position"], int)
    assert body["position"] > person.position


def test_erasure_destroys_the_subscribers_key(
    service: Service, person: Submitted
) -> None:
    keys = service.container.keys
    assert keys.fetch_many([person.key_id])  # the person had a key

    service.erase(person.subscriber_id)

    assert keys.fetch_many([person.key_id]) == {}


def test_no_other_process_finds_the_destroyed_key(erased: World) -> None:
    container = erased.service.container
    elsewhere = SubjectKeyStore(container.database, container.deployment_key)

    found = elsewhere.fetch_many([erased.person.key_id])

    assert found == {}


@pytest.fixture
def elsewhere(settings: Settings) -> Iterator[Container]:
    """Another process on the same store, with a key cache of its own."""
    built = build(settings)
    try:
        yield built
    finally:
        built.close()


def test_another_process_cannot_open_the_persons_values_a_second_later(
    service: Service, person: Submitted, elsewhere: Container
) -> None:
    subscriber = UUID(person.subscriber_id)
    assert not elsewhere.events.history(subscriber)[1].erased  # the key is cached

    service.erase(person.subscriber_id)
    time.sleep(CACHE_SECONDS + 0.1)

    history = elsewhere.events.history(subscriber)
    (changed,) = [e for e in history if isinstance(e, ProfileChanged)]
    assert changed.erased
    assert {change.after for change in changed.changes.values()} == {None}


def test_erasure_releases_every_identifying_value_the_person_held(
    erased: World,
) -> None:
    store = erased.service.container.events

    claimed = store.read(after=0, limit=1000, types=[IdentityClaimed])
    released = store.read(after=0, limit=1000, types=[IdentityReleased])

    held = {
        r.event.originator_id
        for r in claimed
        if isinstance(r.event, IdentityClaimed)
        and str(r.event.subscriber_id) == erased.person.subscriber_id
    }
    assert len(held) == 3  # email, phone and ref
    assert {r.event.originator_id for r in released} == held


def test_the_erasure_event_holds_the_actor_and_reason_and_no_personal_data(
    erased: World,
) -> None:
    table, _ = events_table(erased.service.container)

    with erased.service.container.database.reading() as cursor:
        cursor.execute(
            f"SELECT state FROM {table} WHERE topic LIKE %s",
            ("%SubscriberErased",),
        )
        (stored,) = [bytes(row[0]) for row in cursor.fetchall()]

    state = orjson.loads(stored)
    assert sorted(state) == ["actor", "reason", "timestamp"]
    assert state["actor"]["name"] == "first admin"
    assert state["reason"] == "request by the person, by email of 2026-11-30"
    lowered = stored.lower()
    assert [v for v in PERSONAL if v.lower().encode() in lowered] == []


def test_an_erased_subscriber_answers_410(erased: World) -> None:
    answer = erased.service.admin.get(
        f"{ADMIN}/subscribers/{erased.person.subscriber_id}",
        params={"minPosition": erased.erasure["position"]},
    )

    assert answer.status_code == 410, answer.text


@pytest.mark.parametrize(
    ("identifier", "value"), [("email", EMAIL), ("phone", PHONE), ("ref", REF)]
)
def test_a_search_by_an_erased_identifier_finds_no_one(
    erased: World, identifier: str, value: str
) -> None:
    answer = erased.service.admin.get(
        f"{ADMIN}/subscribers",
        params={identifier: value, "minPosition": erased.erasure["position"]},
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["items"] == []


def test_the_profile_list_no_longer_shows_the_erased_person(
    service: Service, person: Submitted
) -> None:
    other = service.subscribe(signup("someone.else@example.org", phone=None, ref=None))
    erased = service.erase(person.subscriber_id).json()

    answer = service.admin.get(
        f"{ADMIN}/subscribers", params={"minPosition": erased["position"]}
    )

    assert answer.status_code == 200, answer.text
    assert [p["id"] for p in answer.json()["items"]] == [other.subscriber_id]


def test_a_later_submission_with_the_same_email_makes_a_new_profile(
    service: Service, person: Submitted, erasure: Json
) -> None:
    answer = service.submit([{"profile": {"email": EMAIL}}])

    (result,) = answer["results"]
    assert result["description"] == "profile created"
    assert result["subscriberId"] != person.subscriber_id
    profile = service.admin.get(
        f"{ADMIN}/subscribers",
        params={"email": EMAIL, "minPosition": answer["position"]},
    ).json()["items"]
    assert [(p["id"], p["email"]) for p in profile] == [
        (result["subscriberId"], EMAIL.lower())
    ]


def test_the_event_log_gives_the_persons_profile_values_as_null_marked_erased(
    erased: World,
) -> None:
    lines = erased.service.event_log(
        "ProfileChanged", "ConsentRecorded", "MessageTriggered"
    )

    mine = [
        line for line in lines if line["aggregateId"] == erased.person.subscriber_id
    ]
    assert [line["type"] for line in mine] == [
        "ProfileChanged",
        "ConsentRecorded",
        "MessageTriggered",
    ]
    changed, consent, message = (line["data"] for line in mine)
    assert sorted(changed["changes"]) == [
        "email",
        "firstname",
        "lastname",
        "phone",
        "ref",
    ]
    assert all(c == {"from": None, "to": None} for c in changed["changes"].values())
    assert (consent["text"], consent["given"]) == (None, True)
    assert message["recipient"] == {"ref": None, "email": None, "phone": None}
    assert message["requestContent"] == {"note": None}
    assert all(marked_erased(line) for line in mine)


def test_the_event_log_gives_the_data_of_events_logged_for_the_person_as_null(
    erased: World,
) -> None:
    lines = erased.service.event_log("EventLogged")

    (logged,) = [
        line
        for line in lines
        if line["data"]["subscriberId"] == erased.person.subscriber_id
    ]
    assert logged["data"]["eventType"] == "signup"
    assert logged["data"]["data"] == {"page": None}
    assert marked_erased(logged)


def test_the_history_gives_the_persons_values_as_null_marked_erased(
    erased: World,
) -> None:
    answer = erased.service.admin.get(
        f"{ADMIN}/subscribers/{erased.person.subscriber_id}/history"
    )

    assert answer.status_code == 200, answer.text
    entries = {entry["type"]: entry for entry in answer.json()["items"]}
    changed = entries["ProfileChanged"]
    assert changed["data"]["changes"]["email"] == {"from": None, "to": None}
    assert changed["data"]["changes"]["lastname"] == {"from": None, "to": None}
    assert entries["ConsentRecorded"]["data"]["text"] is None
    assert marked_erased(changed)
    assert marked_erased(entries["ConsentRecorded"])
    assert "SubscriberErased" in entries


def test_time_travel_to_before_the_erasure_gives_null_values_marked_erased(
    erased: World,
) -> None:
    (changed,) = erased.service.container.events.history(
        UUID(erased.person.subscriber_id)
    )[1:2]

    answer = erased.service.admin.get(
        f"{ADMIN}/subscribers/{erased.person.subscriber_id}",
        params={"asOf": changed.timestamp.isoformat()},
    )

    assert answer.status_code == 200, answer.text
    profile = answer.json()
    assert (profile["email"], profile["firstname"], profile["phone"]) == (
        None,
        None,
        None,
    )
    assert profile.get("erased") is True


def test_time_travel_to_after_the_erasure_answers_410(erased: World) -> None:
    now = datetime.now(UTC)

    answer = erased.service.admin.get(
        f"{ADMIN}/subscribers/{erased.person.subscriber_id}",
        params={"asOf": now.isoformat()},
    )

    assert answer.status_code == 410, answer.text


def test_the_audit_trail_keeps_every_entry_with_the_values_null(
    service: Service, person: Submitted
) -> None:
    before = service.audit(subjectId=person.subscriber_id)

    erased = service.erase(person.subscriber_id).json()

    after = service.audit(
        subjectId=person.subscriber_id, minPosition=erased["position"]
    )
    assert [e["action"] for e in after] == [
        *(e["action"] for e in before),
        "SubscriberErased",
    ]
    for was, now in zip(before, after, strict=False):
        assert (now["position"], now["occurredAt"], now["actor"]) == (
            was["position"],
            was["occurredAt"],
            was["actor"],
        )
        assert sorted(now["changes"]) == sorted(was["changes"])
    (changed,) = [e for e in after if e["action"] == "ProfileChanged"]
    assert sorted(changed["changes"]) == [
        "email",
        "firstname",
        "lastname",
        "phone",
        "ref",
    ]
    assert all(c == {"from": None, "to": None} for c in changed["changes"].values())
    assert changed["erased"] is True


def test_the_audit_trail_records_who_erased_the_person_and_why(erased: World) -> None:
    entries = erased.service.audit(
        subjectId=erased.person.subscriber_id, action="SubscriberErased"
    )

    (entry,) = entries
    assert entry["actor"] == "first admin"
    assert entry["details"] == {
        "reason": "request by the person, by email of 2026-11-30"
    }


@pytest.mark.parametrize(
    "role", [Role.INTEGRATION_MANAGER, Role.AUDITOR, Role.ANALYST], ids=str
)
def test_only_an_admin_may_erase(
    service: Service, person: Submitted, role: Role
) -> None:
    answer = service.erase(person.subscriber_id, headers=service.headers_of(role))

    assert answer.status_code == 403, answer.text
    assert service.container.keys.fetch_many([person.key_id])


def test_erasing_twice_is_harmless(
    service: Service, person: Submitted, erasure: Json
) -> None:
    answer = service.erase(person.subscriber_id)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "id": person.subscriber_id,
        "erased": True,
        "position": None,
    }
    erasures = service.container.events.read(
        after=0, limit=1000, types=[SubscriberErased]
    )
    assert len(erasures) == 1


def test_erasing_an_unknown_subscriber_answers_404(service: Service) -> None:
    answer = service.erase(str(uuid4()))

    assert answer.status_code == 404, answer.text


def test_an_erasure_without_a_reason_is_refused(
    service: Service, person: Submitted
) -> None:
    answer = service.admin.post(
        f"{ADMIN}/subscribers/{person.subscriber_id}/erase", json={"reason": " "}
    )

    assert answer.status_code == 422, answer.text
    assert service.container.keys.fetch_many([person.key_id])


def test_erasure_leaves_another_persons_profile_readable(
    service: Service, person: Submitted
) -> None:
    other = service.subscribe(
        signup("Another.Person@example.org", phone=None, ref=None, lastname="Other")
    )

    erased = service.erase(person.subscriber_id).json()

    answer = service.admin.get(
        f"{ADMIN}/subscribers/{other.subscriber_id}",
        params={"minPosition": erased["position"]},
    )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["email"], answer.json()["lastname"]) == (
        "another.person@example.org",
        "Other",
    )


def test_erasure_cancels_the_persons_pending_deliveries(
    service: Service, person: Submitted
) -> None:
    (pending,) = service.deliveries(person.subscriber_id)
    assert pending["status"] == "pending"

    erased = service.erase(person.subscriber_id).json()

    shown = service.deliveries(person.subscriber_id, minPosition=erased["position"])
    assert [(d["id"], d["status"]) for d in shown] == [(pending["id"], "cancelled")]


def outbox_bodies(service: Service, person: Submitted) -> list[object]:
    """The sealed bodies the outbox holds for the person's deliveries."""
    database = service.container.read_models_database
    (outbox,) = [
        name
        for name in table_names(database, service.container.location.schema)
        if name.endswith("_outbox")
    ]
    with database.reading() as cursor:
        cursor.execute(
            f"SELECT body FROM {outbox} WHERE subscriber_id = %s",
            (person.subscriber_id,),
        )
        return [row[0] for row in cursor.fetchall()]


def test_erasure_drops_the_sealed_bodies_of_the_persons_deliveries(
    service: Service, person: Submitted
) -> None:
    (body,) = outbox_bodies(service, person)
    assert body is not None

    erased = service.erase(person.subscriber_id).json()
    service.caught_up(erased["position"])

    assert outbox_bodies(service, person) == [None]


class TestDeadLetters:
    """With a webhook that refuses every delivery, deliveries die at once."""

    @pytest.fixture
    def receiver(self) -> Iterator[Receiver]:
        with Receiver() as receiving:
            receiving.answer(REFUSED)
            yield receiving

    @pytest.fixture
    def settings(self, settings: Settings, receiver: Receiver) -> Settings:
        return settings.model_copy(
            update={
                "delivery_webhook_url": receiver.url,
                "delivery_signing_secret": "whsec-compliance-tests-0123456789",
                "delivery_max_attempts": 1,
            }
        )

    def test_erasure_cancels_the_persons_dead_lettered_deliveries(
        self, service: Service, person: Submitted
    ) -> None:
        service.container.run_deliveries()
        dead = dead_letter_of(service, person)

        erased = service.erase(person.subscriber_id).json()

        shown = service.deliveries(person.subscriber_id, minPosition=erased["position"])
        assert [(d["id"], d["status"]) for d in shown] == [(dead["id"], "cancelled")]


def dead_letter_of(service: Service, person: Submitted) -> Json:
    """The person's delivery, once the worker has dead-lettered it."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        (delivery,) = service.deliveries(person.subscriber_id)
        if delivery["status"] == "dead":
            return delivery
        time.sleep(0.05)
    msg = f"the delivery of {person.subscriber_id} was never dead-lettered"
    raise AssertionError(msg)
