"""Triggering the integration's activity (CONTRACT 2.3): once for each profile
a submission names, and suppressed, without an error, for unsubscribed
profiles and beyond the hourly limit."""

from __future__ import annotations

from uuid import UUID

import pytest

from api.bootstrap import Container
from api.settings import Settings
from domain.subscriber import MessageSuppressed, MessageTriggered
from tests.intake.conftest import OPEN, Endpoints, Json, events_of
from tests.support.public import Public

ACTIVITY = 42
MESSAGES: Json = {**OPEN, "allowMessages": True, "triggerActivityId": ACTIVITY}
ANN = "ann@example.com"
BO = "bo@example.com"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """At most two messages an hour for one recipient (HEADWATER_TRIGGER_LIMIT)."""
    return settings.model_copy(update={"trigger_limit": 2})


def triggered_for(container: Container) -> list[UUID]:
    return [event.originator_id for event in events_of(container, MessageTriggered)]


def subscriber_id(answer: Json, index: int = 0) -> UUID:
    return UUID(answer["results"][index]["subscriberId"])


def test_an_accepted_submission_triggers_its_profile_without_a_message_action(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(MESSAGES)

    answer = public.accepted(integration, {"profile": {"email": ANN}})

    (triggered,) = events_of(container, MessageTriggered)
    assert triggered.originator_id == subscriber_id(answer)
    assert triggered.activity_id == ACTIVITY
    assert triggered.submission_id == UUID(answer["submissionId"])


def test_a_message_target_names_another_profile_to_trigger(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(MESSAGES)
    bo = public.accepted(integration, {"profile": {"email": BO}})

    ann = public.accepted(
        integration,
        [
            {"profile": {"email": ANN}},
            {"message": {"activityId": ACTIVITY, "target": {"email": BO}}},
        ],
    )

    assert sorted(triggered_for(container)) == sorted(
        [subscriber_id(bo), subscriber_id(bo), subscriber_id(ann)]
    )


def test_a_profile_named_twice_in_a_submission_is_triggered_once(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(MESSAGES)

    answer = public.accepted(
        integration,
        [
            {"profile": {"email": ANN}},
            {"message": {"activityId": ACTIVITY}},
            {"message": {"activityId": ACTIVITY, "target": {"email": ANN}}},
        ],
    )

    assert triggered_for(container) == [subscriber_id(answer)]
    assert [r["description"] for r in answer["results"]] == [
        "profile created",
        "message triggered",
        "message triggered",
    ]


def test_a_message_carries_the_request_content(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(MESSAGES)

    public.accepted(
        integration,
        [
            {"profile": {"email": ANN}},
            {"message": {"activityId": ACTIVITY, "requestContent": {"order": 7}}},
        ],
    )

    (triggered,) = events_of(container, MessageTriggered)
    assert triggered.request_content == {"order": 7}


def test_a_globally_unsubscribed_profile_is_suppressed_as_unsubscribed(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(MESSAGES)

    answer = public.accepted(
        integration, {"profile": {"email": ANN, "unsubscribedTimestamp": True}}
    )

    assert events_of(container, MessageTriggered) == []
    (suppressed,) = events_of(container, MessageSuppressed)
    assert suppressed.reason == "unsubscribed"
    assert suppressed.originator_id == subscriber_id(answer)


def test_a_suppressed_message_is_answered_as_suppressed_not_as_an_error(
    endpoints: Endpoints, public: Public
) -> None:
    integration = endpoints.open(MESSAGES)
    public.accepted(
        integration, {"profile": {"email": ANN, "unsubscribedTimestamp": True}}
    )

    answer = public.submit(
        integration,
        [{"profile": {"email": ANN}}, {"message": {"activityId": ACTIVITY}}],
    )

    assert answer.status_code == 200
    assert answer.json()["results"][1]["description"] == "message suppressed"


def test_allowing_messages_to_unsubscribed_triggers_an_unsubscribed_profile(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open({**MESSAGES, "allowMessagesToUnsubscribed": True})

    answer = public.accepted(
        integration, {"profile": {"email": ANN, "unsubscribedTimestamp": True}}
    )

    assert triggered_for(container) == [subscriber_id(answer)]
    assert events_of(container, MessageSuppressed) == []


def test_beyond_the_trigger_limit_a_message_is_suppressed_as_trigger_limit(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(MESSAGES)
    for name in ("Ann", "Anna"):
        public.accepted(integration, {"profile": {"email": ANN, "firstname": name}})

    answer = public.accepted(
        integration, {"profile": {"email": ANN, "firstname": "Annie"}}
    )

    assert len(events_of(container, MessageTriggered)) == 2
    (suppressed,) = events_of(container, MessageSuppressed)
    assert suppressed.reason == "trigger-limit"
    assert suppressed.submission_id == UUID(answer["submissionId"])


def test_the_trigger_limit_counts_each_recipient_apart(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(MESSAGES)
    for name in ("Ann", "Anna"):
        public.accepted(integration, {"profile": {"email": ANN, "firstname": name}})

    public.accepted(integration, {"profile": {"email": BO}})

    assert len(events_of(container, MessageTriggered)) == 3
    assert events_of(container, MessageSuppressed) == []


def test_without_allow_messages_nothing_is_triggered(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open({**OPEN, "triggerActivityId": ACTIVITY})

    public.accepted(integration, {"profile": {"email": ANN}})

    assert events_of(container, MessageTriggered) == []
    assert events_of(container, MessageSuppressed) == []


def test_a_message_for_another_activity_is_refused_with_403(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(MESSAGES)

    answer = public.submit(
        integration,
        [{"profile": {"email": ANN}}, {"message": {"activityId": ACTIVITY + 1}}],
    )

    assert answer.status_code == 403
    assert answer.json()["type"].endswith("action-not-permitted")
    assert events_of(container, MessageTriggered) == []
