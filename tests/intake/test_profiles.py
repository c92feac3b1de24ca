"""Profile actions (CONTRACT 2.3 and 2.4): matching, field changes, lists and
unsubscribes, consent, who holds an identifying value, and the permission
flags that depend on whether a profile exists."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from starlette.testclient import TestClient

from api.bootstrap import Container, build
from api.http.app import create_app
from api.settings import Settings
from domain.identity import IdentityClaimed
from domain.submission import SubmissionAccepted, SubmissionRefused
from domain.subscriber import (
    ConsentRecorded,
    ProfileChanged,
    ReversalRefused,
    Subscriber,
    SubscriberRegistered,
)
from tests.intake.conftest import (
    OPEN,
    Endpoints,
    Json,
    another_store,
    command_for,
    decided,
    events_of,
    found,
    subscriber_of,
)
from tests.support.public import Public

ANN = "ann@example.com"


def profile(**fields: object) -> Json:
    return {"profile": fields}


# -- matching


def test_a_new_email_creates_a_profile_with_the_fields_given(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(OPEN)

    answer = public.accepted(integration, profile(email=ANN, firstname="Ann"))

    assert answer["results"][0]["description"] == "profile created"
    assert subscriber_of(container, answer).values == {
        "email": ANN,
        "firstname": "Ann",
    }


def test_a_known_email_updates_the_profile_that_holds_it(
    endpoints: Endpoints, public: Public
) -> None:
    integration = endpoints.open(OPEN)
    first = public.accepted(integration, profile(email=ANN, firstname="Ann"))

    second = public.accepted(integration, profile(email=ANN, lastname="Lee"))

    assert second["results"][0]["description"] == "profile updated"
    assert second["results"][0]["subscriberId"] == first["results"][0]["subscriberId"]


def test_an_email_finds_its_profile_whatever_its_case(
    endpoints: Endpoints, public: Public
) -> None:
    integration = endpoints.open(OPEN)
    first = public.accepted(integration, profile(email="Ann@Example.COM"))

    second = public.accepted(integration, profile(email="aNN@eXAMPLE.com"))

    assert second["results"][0]["subscriberId"] == first["results"][0]["subscriberId"]


def test_identifying_by_ref_finds_the_profile_with_that_ref(
    endpoints: Endpoints, public: Public
) -> None:
    integration = endpoints.open({**OPEN, "identifyBy": "ref"})
    first = public.accepted(integration, profile(ref="crm-1", email=ANN))

    second = public.accepted(integration, profile(ref="crm-1", firstname="Ann"))

    assert second["results"][0]["description"] == "profile updated"
    assert second["results"][0]["subscriberId"] == first["results"][0]["subscriberId"]


def test_identifying_by_phone_finds_the_profile_whatever_the_phone_format(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(
        {**OPEN, "identifyBy": "phone", "defaultPhoneRegion": "GB"}
    )
    first = public.accepted(integration, profile(phone="+44 20 7946 0958"))

    second = public.accepted(integration, profile(phone="020 7946 0958"))

    assert second["results"][0]["subscriberId"] == first["results"][0]["subscriberId"]
    assert subscriber_of(container, second).values["phone"] == "+442079460958"


def test_a_submission_without_the_identifying_field_is_refused_with_422(
    endpoints: Endpoints, public: Public
) -> None:
    integration = endpoints.open({**OPEN, "identifyBy": "ref"})

    answer = public.submit(integration, profile(email=ANN))

    assert answer.status_code == 422
    assert [(e["action"], e["field"], e["rule"]) for e in answer.json()["errors"]] == [
        (0, "ref", "required")
    ]


# -- fields


def test_an_absent_field_is_left_unchanged(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(OPEN)
    public.accepted(integration, profile(email=ANN, firstname="Ann", lastname="Lee"))

    answer = public.accepted(integration, profile(email=ANN, lastname="Long"))

    values = subscriber_of(container, answer).values
    assert values["firstname"] == "Ann"
    assert values["lastname"] == "Long"


def test_null_clears_a_field(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(OPEN)
    public.accepted(integration, profile(email=ANN, firstname="Ann", lastname="Lee"))

    answer = public.accepted(integration, profile(email=ANN, lastname=None))

    assert subscriber_of(container, answer).values == {
        "email": ANN,
        "firstname": "Ann",
    }


def test_custom_fields_are_set_and_null_clears_one(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(OPEN)
    public.accepted(
        integration, profile(email=ANN, custom={"colour": "green", "size": 9})
    )

    answer = public.accepted(
        integration, profile(email=ANN, custom={"colour": None, "vip": True})
    )

    values = subscriber_of(container, answer).values
    assert {k: v for k, v in values.items() if k.startswith("custom.")} == {
        "custom.size": 9,
        "custom.vip": True,
    }


def test_submitting_the_same_values_again_leaves_the_profile_unchanged(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(OPEN)
    public.accepted(integration, profile(email=ANN, firstname="Ann"))

    answer = public.accepted(integration, profile(email=ANN, firstname="Ann"))

    assert answer["results"][0]["description"] == "profile unchanged"
    assert len(events_of(container, ProfileChanged)) == 1


# -- lists and unsubscribes


def test_a_list_subscription_is_recorded_with_its_time(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(OPEN)

    answer = public.accepted(
        integration,
        profile(
            email=ANN,
            lists=[{"listId": 7, "subscribedTimestamp": "2026-01-02T03:04:05+01:00"}],
        ),
    )

    assert subscriber_of(container, answer).lists == {
        7: {"subscribedAt": "2026-01-02T02:04:05Z"}
    }


def test_a_list_unsubscribe_is_recorded_on_that_list_only(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(OPEN)
    subscribe = [{"listId": n, "subscribedTimestamp": True} for n in (7, 8)]
    public.accepted(integration, profile(email=ANN, lists=subscribe))

    answer = public.accepted(
        integration,
        profile(email=ANN, lists=[{"listId": 7, "unsubscribedTimestamp": True}]),
    )

    lists = subscriber_of(container, answer).lists
    assert lists[7].get("unsubscribedAt") is not None
    assert lists[8].get("unsubscribedAt") is None


def test_a_global_unsubscribe_marks_the_profile_unsubscribed(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(OPEN)
    public.accepted(integration, profile(email=ANN))

    answer = public.accepted(
        integration, profile(email=ANN, unsubscribedTimestamp=True)
    )

    assert subscriber_of(container, answer).is_unsubscribed


def test_a_public_submission_does_not_reverse_a_global_unsubscribe(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(OPEN)
    public.accepted(integration, profile(email=ANN, unsubscribedTimestamp=True))

    answer = public.accepted(
        integration, profile(email=ANN, unsubscribedTimestamp=None)
    )

    assert subscriber_of(container, answer).is_unsubscribed


def test_the_rest_of_an_action_applies_when_its_reversal_is_refused(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(OPEN)
    public.accepted(integration, profile(email=ANN, unsubscribedTimestamp=True))

    answer = public.accepted(
        integration,
        profile(email=ANN, unsubscribedTimestamp=None, firstname="Ann"),
    )

    assert answer["results"][0]["description"] == "profile updated"
    assert subscriber_of(container, answer).values["firstname"] == "Ann"


def test_a_refused_global_reversal_is_recorded_as_reversal_refused(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(OPEN)
    public.accepted(integration, profile(email=ANN, unsubscribedTimestamp=True))

    answer = public.accepted(
        integration, profile(email=ANN, unsubscribedTimestamp=None)
    )

    (refused,) = events_of(container, ReversalRefused)
    assert refused.scope == "global"
    assert refused.originator_id == UUID(answer["results"][0]["subscriberId"])
    assert refused.submission_id == UUID(answer["submissionId"])


def test_subscribing_again_does_not_reverse_a_list_unsubscribe(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(OPEN)
    public.accepted(
        integration,
        profile(email=ANN, lists=[{"listId": 7, "subscribedTimestamp": True}]),
    )
    public.accepted(
        integration,
        profile(email=ANN, lists=[{"listId": 7, "unsubscribedTimestamp": True}]),
    )

    answer = public.accepted(
        integration,
        profile(email=ANN, lists=[{"listId": 7, "subscribedTimestamp": True}]),
    )

    assert subscriber_of(container, answer).lists[7].get("unsubscribedAt")
    assert [(r.scope, r.list_id) for r in events_of(container, ReversalRefused)] == [
        ("list", 7)
    ]


def test_a_null_list_unsubscribe_does_not_reverse_it(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(OPEN)
    public.accepted(
        integration,
        profile(email=ANN, lists=[{"listId": 7, "unsubscribedTimestamp": True}]),
    )

    answer = public.accepted(
        integration,
        profile(email=ANN, lists=[{"listId": 7, "unsubscribedTimestamp": None}]),
    )

    assert subscriber_of(container, answer).lists[7].get("unsubscribedAt")
    assert [(r.scope, r.list_id) for r in events_of(container, ReversalRefused)] == [
        ("list", 7)
    ]


# -- consent


def test_consent_is_recorded_with_its_time_and_the_client_ip(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(OPEN)
    before = datetime.now(UTC)

    answer = public.accepted(
        integration,
        profile(email=ANN, consent={"text": "Send me offers", "given": True}),
    )

    (consent,) = events_of(container, ConsentRecorded)
    assert (consent.text, consent.given) == ("Send me offers", True)
    assert consent.client_ip == "testclient"
    assert before <= consent.timestamp <= datetime.now(UTC)
    assert consent.originator_id == UUID(answer["results"][0]["subscriberId"])


# -- who holds an identifying value


def test_a_second_profile_given_a_held_email_stores_it(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    by_ref = endpoints.open({**OPEN, "identifyBy": "ref"})
    public.accepted(by_ref, profile(ref="crm-1", email=ANN))

    second = public.accepted(by_ref, profile(ref="crm-2", email=ANN))

    assert second["results"][0]["description"] == "profile created"
    assert subscriber_of(container, second).values["email"] == ANN


def test_lookups_keep_finding_the_first_profile_given_an_email(
    endpoints: Endpoints, public: Public
) -> None:
    by_ref = endpoints.open({**OPEN, "identifyBy": "ref"})
    by_email = endpoints.open(OPEN)
    holder = public.accepted(by_ref, profile(ref="crm-1", email=ANN))
    public.accepted(by_ref, profile(ref="crm-2", email=ANN))

    lookup = public.accepted(by_email, profile(email=ANN, firstname="Ann"))

    assert lookup["results"][0]["subscriberId"] == holder["results"][0]["subscriberId"]


def test_each_identifying_value_is_claimed_once(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    by_ref = endpoints.open({**OPEN, "identifyBy": "ref"})
    public.accepted(by_ref, profile(ref="crm-1", email=ANN))

    public.accepted(by_ref, profile(ref="crm-2", email=ANN))

    # crm-1, crm-2 and the email: the second profile claims only its ref.
    assert len(events_of(container, IdentityClaimed)) == 3


def test_changing_an_email_releases_it_for_the_next_profile_given_it(
    endpoints: Endpoints, public: Public
) -> None:
    by_ref = endpoints.open({**OPEN, "identifyBy": "ref"})
    by_email = endpoints.open(OPEN)
    public.accepted(by_ref, profile(ref="crm-1", email=ANN))
    public.accepted(by_ref, profile(ref="crm-1", email="ann.lee@example.com"))
    newcomer = public.accepted(by_ref, profile(ref="crm-2", email=ANN))

    lookup = public.accepted(by_email, profile(email=ANN))

    assert (
        lookup["results"][0]["subscriberId"] == (newcomer["results"][0]["subscriberId"])
    )


def test_clearing_an_email_releases_it_for_the_next_profile_given_it(
    endpoints: Endpoints, public: Public
) -> None:
    by_ref = endpoints.open({**OPEN, "identifyBy": "ref"})
    by_email = endpoints.open(OPEN)
    public.accepted(by_ref, profile(ref="crm-1", email=ANN))
    public.accepted(by_ref, profile(ref="crm-1", email=None))
    newcomer = public.accepted(by_ref, profile(ref="crm-2", email=ANN))

    lookup = public.accepted(by_email, profile(email=ANN))

    assert (
        lookup["results"][0]["subscriberId"] == (newcomer["results"][0]["subscriberId"])
    )


def test_a_changed_email_finds_its_profile_by_the_new_value(
    endpoints: Endpoints, public: Public
) -> None:
    by_ref = endpoints.open({**OPEN, "identifyBy": "ref"})
    by_email = endpoints.open(OPEN)
    first = public.accepted(by_ref, profile(ref="crm-1", email=ANN))
    public.accepted(by_ref, profile(ref="crm-1", email="ann.lee@example.com"))

    lookup = public.accepted(by_email, profile(email="ann.lee@example.com"))

    assert lookup["results"][0]["description"] == "profile unchanged"
    assert lookup["results"][0]["subscriberId"] == first["results"][0]["subscriberId"]


# -- provenance and ids


def test_a_profile_change_records_the_import_source_and_configuration_version(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open({**OPEN, "importSourceName": "spring-fair"})

    answer = public.accepted(integration, profile(email=ANN, firstname="Ann"))

    (changed,) = events_of(container, ProfileChanged)
    assert changed.source == "spring-fair"
    assert changed.configuration_version == integration["configurationVersion"]
    assert changed.integration_id == UUID(integration["id"])
    assert changed.submission_id == UUID(answer["submissionId"])


def test_a_new_profile_records_the_import_source_that_created_it(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open({**OPEN, "importSourceName": "spring-fair"})

    answer = public.accepted(integration, profile(email=ANN))

    (registered,) = events_of(container, SubscriberRegistered)
    assert registered.source == "spring-fair"
    assert subscriber_of(container, answer).source == "spring-fair"


def test_a_later_save_is_the_configuration_version_recorded(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(OPEN)
    resaved = endpoints.admin.put(
        f"/admin/v1/integrations/{integration['id']}",
        json={"name": "Signup", **OPEN, "importSourceName": "autumn-fair"},
    ).json()

    public.accepted(integration, profile(email=ANN, firstname="Ann"))

    (changed,) = events_of(container, ProfileChanged)
    assert changed.configuration_version == resaved["configurationVersion"]
    assert changed.configuration_version != integration["configurationVersion"]
    assert changed.source == "autumn-fair"


def test_subscriber_ids_are_random_version_4_uuids(
    endpoints: Endpoints, public: Public
) -> None:
    integration = endpoints.open(OPEN)

    answer = public.accepted(integration, profile(email=ANN))

    assert UUID(answer["results"][0]["subscriberId"]).version == 4


def test_the_same_email_gets_a_different_subscriber_id_in_another_store(
    endpoints: Endpoints,
    public: Public,
    settings: Settings,
    tmp_path: Path,
) -> None:
    here = public.accepted(endpoints.open(OPEN), profile(email=ANN))
    elsewhere = build(another_store(settings, tmp_path))
    try:
        with TestClient(create_app(elsewhere)) as other_admin:
            issued = elsewhere.tokens.issue_first_admin()
            assert issued is not None
            other_admin.headers["Authorization"] = f"Bearer {issued.secret}"
            integration = Endpoints(other_admin).open(OPEN)

            there = decided(
                elsewhere.writer,
                command_for(elsewhere, integration, profile(email=ANN)),
            )
    finally:
        elsewhere.close()

    assert there.results[0].subscriber_id is not None
    assert str(there.results[0].subscriber_id) != here["results"][0]["subscriberId"]


# -- permission flags that depend on whether a profile exists


def test_creation_off_answers_accepted_and_records_the_action_as_refused(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open({"allowProfileUpdates": True})

    answer = public.accepted(integration, profile(email=ANN))

    assert answer["results"] == [{"code": 200, "name": "OK", "description": "accepted"}]
    (accepted,) = events_of(container, SubmissionAccepted)
    assert [(r.outcome, r.refused) for r in accepted.results] == [
        ("refused", "allowProfileCreation")
    ]
    assert events_of(container, SubscriberRegistered) == []


def test_updates_off_answers_accepted_and_records_the_action_as_refused(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    creator = endpoints.open({"allowProfileCreation": True})
    public.accepted(creator, profile(email=ANN, firstname="Ann"))
    integration = endpoints.open({"allowProfileCreation": True})

    answer = public.accepted(integration, profile(email=ANN, firstname="Anna"))

    assert answer["results"] == [{"code": 200, "name": "OK", "description": "accepted"}]
    accepted = events_of(container, SubmissionAccepted)[-1]
    assert [(r.outcome, r.refused) for r in accepted.results] == [
        ("refused", "allowProfileUpdates")
    ]
    assert events_of(container, ProfileChanged)[-1].changes["firstname"].after == (
        "Ann"
    )


def test_without_detail_a_new_and_a_known_email_get_the_same_answer(
    endpoints: Endpoints, public: Public
) -> None:
    creator = endpoints.open({"allowProfileCreation": True})
    public.accepted(creator, profile(email=ANN))
    integration = endpoints.open({"allowProfileCreation": True})

    known = public.accepted(integration, profile(email=ANN, firstname="Ann"))
    new = public.accepted(integration, profile(email="bo@example.com", firstname="Bo"))

    assert known["results"] == new["results"]
    assert known.keys() == new.keys()


def test_with_detail_creation_off_refuses_the_whole_submission_with_403(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    creator = endpoints.open({"allowProfileCreation": True})
    public.accepted(creator, profile(email=ANN))
    integration = endpoints.open(
        {"allowProfileUpdates": True, "detailedResponses": True}
    )

    answer = public.submit(
        integration,
        [profile(email=ANN, firstname="Ann"), profile(email="bo@example.com")],
    )

    assert answer.status_code == 403
    assert answer.json()["type"].endswith("action-not-permitted")
    assert events_of(container, ProfileChanged)[-1].changes.keys() == {"email"}
    assert len(events_of(container, SubscriberRegistered)) == 1


def test_with_detail_updates_off_refuses_the_whole_submission_with_403(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    creator = endpoints.open({"allowProfileCreation": True})
    public.accepted(creator, profile(email=ANN, firstname="Ann"))
    integration = endpoints.open(
        {"allowProfileCreation": True, "detailedResponses": True}
    )

    answer = public.submit(
        integration,
        [profile(email="bo@example.com"), profile(email=ANN, firstname="Anna")],
    )

    assert answer.status_code == 403
    assert len(events_of(container, SubscriberRegistered)) == 1
    (refused,) = events_of(container, SubmissionRefused)
    assert refused.reason == "action-not-permitted"
    assert [(v.action, v.rule) for v in refused.violations] == [
        (1, "allowProfileUpdates")
    ]
    holder = events_of(container, SubscriberRegistered)[0].originator_id
    assert found(container, holder, Subscriber).values["firstname"] == "Ann"
