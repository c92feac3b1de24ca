"""The test URL (CONTRACT 2.4): every check runs and the answer says what
production would do, but no profile changes, nothing is triggered, and the
submission is recorded as a test."""

from __future__ import annotations

from uuid import UUID

from api.bootstrap import Container
from domain.identity import IdentityClaimed
from domain.submission import (
    EventLogged,
    SubmissionAccepted,
    SubmissionRefused,
    SubmissionTested,
)
from domain.subscriber import (
    ConsentRecorded,
    MessageSuppressed,
    MessageTriggered,
    ProfileChanged,
    SubscriberRegistered,
)
from tests.intake.conftest import OPEN, Endpoints, Json, events_of, recorded
from tests.support.public import Public

ACTIVITY = 42
EVERYTHING: Json = {
    **OPEN,
    "allowEventLogging": True,
    "allowMessages": True,
    "triggerActivityId": ACTIVITY,
}
ANN = "ann@example.com"
FULL_SUBMISSION = [
    {
        "profile": {
            "email": ANN,
            "firstname": "Ann",
            "consent": {"text": "Send me offers", "given": True},
            "lists": [{"listId": 7, "subscribedTimestamp": True}],
        }
    },
    {"event": {"type": "signup", "data": {"page": "/offers"}}},
    {"message": {"activityId": ACTIVITY}},
]


def test_a_test_submission_answers_what_production_would_do(
    endpoints: Endpoints, public: Public
) -> None:
    integration = endpoints.open(EVERYTHING)

    answer = public.accepted(integration, FULL_SUBMISSION, test=True)

    assert answer["mode"] == "test"
    assert [r["description"] for r in answer["results"]] == [
        "would create profile",
        "would log event",
        "would trigger message",
    ]


def test_a_test_submission_for_a_known_profile_says_it_would_update_it(
    endpoints: Endpoints, public: Public
) -> None:
    integration = endpoints.open(EVERYTHING)
    production = public.accepted(integration, {"profile": {"email": ANN}})

    answer = public.accepted(
        integration, {"profile": {"email": ANN, "firstname": "Ann"}}, test=True
    )

    assert answer["results"][0]["description"] == "would update profile"
    assert (
        answer["results"][0]["subscriberId"]
        == (production["results"][0]["subscriberId"])
    )


def test_a_test_submission_changes_no_profile(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(EVERYTHING)

    public.accepted(integration, FULL_SUBMISSION, test=True)

    changes = recorded(
        container,
        SubscriberRegistered,
        ProfileChanged,
        IdentityClaimed,
        ConsentRecorded,
        EventLogged,
    )
    assert changes == []


def test_a_test_submission_leaves_a_known_profile_as_it_was(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(EVERYTHING)
    public.accepted(integration, {"profile": {"email": ANN, "firstname": "Ann"}})
    before = recorded(container, ProfileChanged)

    public.accepted(
        integration, {"profile": {"email": ANN, "firstname": "Anna"}}, test=True
    )

    assert recorded(container, ProfileChanged) == before


def test_a_test_submission_triggers_nothing(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(EVERYTHING)

    public.accepted(integration, FULL_SUBMISSION, test=True)

    assert recorded(container, MessageTriggered, MessageSuppressed) == []


def test_a_test_submission_is_recorded_as_submission_tested(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(EVERYTHING)

    answer = public.accepted(integration, FULL_SUBMISSION, test=True)

    (tested,) = events_of(container, SubmissionTested)
    assert tested.originator_id == UUID(answer["submissionId"])
    assert tested.mode == "test"
    assert [r.outcome for r in tested.results] == ["created", "logged", "triggered"]
    assert events_of(container, SubmissionAccepted) == []


def test_the_test_url_works_for_a_saved_inactive_integration(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(EVERYTHING, active=False)

    answer = public.submit(integration, {"profile": {"email": ANN}}, test=True)

    assert answer.status_code == 200
    assert len(events_of(container, SubmissionTested)) == 1


def test_the_production_url_of_a_saved_inactive_integration_answers_404(
    endpoints: Endpoints, public: Public
) -> None:
    integration = endpoints.open(EVERYTHING, active=False)

    answer = public.submit(integration, {"profile": {"email": ANN}})

    assert answer.status_code == 404


def test_a_test_submission_is_validated_as_production_would(
    endpoints: Endpoints, public: Public, container: Container
) -> None:
    integration = endpoints.open(EVERYTHING)

    answer = public.submit(integration, {"profile": {"email": "nobody"}}, test=True)

    assert answer.status_code == 422
    (refused,) = events_of(container, SubmissionRefused)
    assert (refused.mode, refused.reason) == ("test", "validation-failed")


def test_a_test_submission_is_refused_as_production_would_by_a_flag(
    endpoints: Endpoints, public: Public
) -> None:
    integration = endpoints.open({"detailedResponses": True})

    answer = public.submit(integration, {"profile": {"email": ANN}}, test=True)

    assert answer.status_code == 403
    assert answer.json()["type"].endswith("action-not-permitted")


def test_a_test_submission_says_it_would_suppress_a_message_to_an_unsubscribed(
    endpoints: Endpoints, public: Public
) -> None:
    integration = endpoints.open(EVERYTHING)
    public.accepted(
        integration, {"profile": {"email": ANN, "unsubscribedTimestamp": True}}
    )

    answer = public.accepted(
        integration,
        [{"profile": {"email": ANN}}, {"message": {"activityId": ACTIVITY}}],
        test=True,
    )

    assert answer["results"][1]["description"] == "would suppress message"
