"""The audit trail (CONTRACT 3): one entry per event, saying who did what to
which subject, from where and under which configuration; secrets only as
changed; filters, paging and a CSV export that a spreadsheet cannot run; and
the three questions a compliance user asks of it."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any, Final

import pytest
from starlette.testclient import TestClient

from api.http.app import create_app
from application.reading import encode_cursor
from tests.readside.conftest import (
    CLIENT_IP,
    OPEN,
    STORES,
    USER_AGENT,
    Endpoints,
    Json,
    World,
    caught_up,
    fresh_settings,
    opened,
    stored_events,
)

AUDIT: Final = "/admin/v1/audit"
FIRST_SECRET: Final = "captcha-secret-Kp4-first"
SECOND_SECRET: Final = "captcha-secret-Wd8-second"
FORMULA_AGENT: Final = '=HYPERLINK("http://example.com/x")'
FORMULA_STARTS: Final = ("=", "+", "-", "@")
MANAGER: Final = "Ops Manager"
#: A sealed value as the store keeps it: `<key id>:<ciphertext>`.
SEALED: Final = re.compile(r"^(?:[0-9a-f]{32}|day-\d{4}-\d{2}-\d{2}|deployment):\S+$")
CONFIGURATION: Final[Json] = {
    "name": "Signup",
    **OPEN,
    "allowMessages": True,
    "triggerActivityId": 5,
    "dedupePeriodSeconds": 60,
}
EVERY_KIND: Final = {
    "TokenIssued",
    "TokenRevoked",
    "IntegrationCreated",
    "IntegrationSaved",
    "IntegrationUpdated",
    "IntegrationActivated",
    "IntegrationDeactivated",
    "EndpointRotated",
    "SubmissionAccepted",
    "SubmissionRefused",
    "SubmissionDeduplicated",
    "SubmissionTested",
    "SubscriberRegistered",
    "ProfileChanged",
    "ConsentRecorded",
    "EventLogged",
    "MessageTriggered",
    "MessageSuppressed",
}


@pytest.fixture(scope="module", params=STORES)
def audited(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """A manager's integration through its whole lifecycle, with accepted,
    repeated, tested and refused submissions, consent, an event, a message
    triggered and one suppressed; shared by the module's tests, which only
    read it."""
    settings = fresh_settings(request.param, tmp_path_factory.mktemp("a"), request)
    with (
        opened(settings) as world,
        TestClient(create_app(world.container)) as manager_client,
    ):
        facts = world.facts
        issued = world.admin.post(
            "/admin/v1/tokens", json={"name": MANAGER, "role": "integration-manager"}
        ).json()
        manager_client.headers["Authorization"] = f"Bearer {issued['token']}"
        manager = Endpoints(manager_client)
        temporary = world.admin.post(
            "/admin/v1/tokens", json={"name": "Temporary", "role": "auditor"}
        ).json()
        world.admin.delete(f"/admin/v1/tokens/{temporary['id']}")

        integration = manager.open({**CONFIGURATION, "recaptchaSecret": FIRST_SECRET})
        facts["integration"] = integration
        first_body = [
            {
                "profile": {
                    "email": "ann@example.com",
                    "firstname": "=cmd()",
                    "consent": {"text": "Yes, email me", "given": True},
                }
            },
            {"event": {"type": "signup", "data": {"page": "/offers"}}},
        ]
        key = {"Idempotency-Key": "order-1"}
        first = world.public.accepted(integration, first_body, headers=key)
        facts["first"] = first
        facts["ann"] = first["results"][0]["subscriberId"]
        facts["repeat"] = world.public.accepted(integration, first_body, headers=key)
        facts["first_version"] = integration["configurationVersion"]

        updated = manager.save(
            integration,
            {
                **CONFIGURATION,
                "importSourceName": "spring-campaign",
                "recaptchaSecret": SECOND_SECRET,
            },
        )
        facts["updated"] = updated
        second = world.public.accepted(
            integration,
            {
                "profile": {
                    "email": "ann@example.com",
                    "firstname": "Ann",
                    "unsubscribedTimestamp": True,
                }
            },
        )
        facts["second"] = second
        third = world.public.accepted(
            integration,
            {
                "profile": {
                    "email": "cat@example.com",
                    "firstname": "@SUM(A1)",
                    "lastname": "+1",
                    "custom": {"note": "-2"},
                }
            },
            headers={"User-Agent": FORMULA_AGENT},
        )
        facts["third"] = third
        facts["tested"] = world.public.accepted(
            integration, {"profile": {"email": "dan@example.com"}}, test=True
        )
        refused = world.public.submit(integration, {"message": {"activityId": 99}})
        assert refused.status_code == 403, refused.text
        manager.lifecycle(integration, "deactivate")
        manager.lifecycle(integration, "rotate-endpoint")
        caught_up(world.container)
        yield world


def all_entries(world: World, **params: Any) -> list[Json]:
    """Every entry matching `params`, following the cursor page by page."""
    entries: list[Json] = []
    cursor: str | None = None
    while True:
        query = {"limit": 500, **params}
        if cursor is not None:
            query["cursor"] = cursor
        answer = world.admin.get(AUDIT, params=query)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        entries += page["items"]
        cursor = page["nextCursor"]
        if cursor is None:
            return entries


def only(entries: list[Json], action: str) -> list[Json]:
    return [entry for entry in entries if entry["action"] == action]


def one(entries: list[Json], action: str) -> Json:
    found = only(entries, action)
    assert len(found) == 1, [e["action"] for e in entries]
    return found[0]


def csv_rows(world: World, **params: Any) -> list[dict[str, str]]:
    answer = world.admin.get(AUDIT, params=params, headers={"Accept": "text/csv"})
    assert answer.status_code == 200, answer.text
    return list(csv.DictReader(io.StringIO(answer.text)))


def endpoint_actor(world: World, mode: str = "production") -> str:
    return f"endpoint {world.facts['integration']['endpointId']} ({mode})"


def submission_ids(world: World) -> set[str]:
    facts = world.facts
    return {facts[name]["submissionId"] for name in ("first", "second", "third")}


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


# -- what the trail holds


def test_every_event_has_one_entry_in_log_order(audited: World) -> None:
    stored = stored_events(audited.container)

    entries = all_entries(audited)

    assert [(e["position"], e["action"]) for e in entries] == [
        (s.position, s.event_type) for s in stored
    ]


def test_the_trail_covers_every_kind_of_change(audited: World) -> None:
    entries = all_entries(audited)

    actions = {entry["action"] for entry in entries}

    assert actions >= EVERY_KIND


def test_a_change_made_with_a_token_names_the_token(audited: World) -> None:
    integration_id = audited.facts["integration"]["id"]

    entries = all_entries(audited, subjectId=integration_id)

    assert {entry["actor"] for entry in entries} == {MANAGER}
    assert len(entries) >= 6


def test_a_token_issued_by_the_admin_names_the_admin(audited: World) -> None:
    entries = all_entries(audited, action="TokenIssued")

    manager = [e for e in entries if e["details"]["name"] == MANAGER]

    assert [entry["actor"] for entry in manager] == ["first admin"]


def test_a_revoked_token_shows_who_revoked_it(audited: World) -> None:
    revoked = one(all_entries(audited), "TokenRevoked")

    assert revoked["actor"] == "first admin"
    assert revoked["changes"] == {"revoked": {"from": False, "to": True}}


def test_a_public_submission_names_its_endpoint_and_mode(audited: World) -> None:
    entries = all_entries(audited)

    accepted = {e["actor"] for e in only(entries, "SubmissionAccepted")}
    tested = {e["actor"] for e in only(entries, "SubmissionTested")}

    assert accepted == {endpoint_actor(audited)}
    assert tested == {endpoint_actor(audited, "test")}


def test_changes_caused_by_a_submission_name_its_endpoint(audited: World) -> None:
    caused = {
        "SubscriberRegistered",
        "ProfileChanged",
        "ConsentRecorded",
        "EventLogged",
        "MessageTriggered",
        "MessageSuppressed",
    }

    entries = [e for e in all_entries(audited) if e["action"] in caused]

    assert {entry["actor"] for entry in entries} == {endpoint_actor(audited)}


def test_a_configuration_change_lists_each_changed_field_from_and_to(
    audited: World,
) -> None:
    updated = one(all_entries(audited), "IntegrationUpdated")

    assert updated["changes"] == {
        "importSourceName": {"from": None, "to": "spring-campaign"},
        "recaptchaSecret": {"changed": True},
    }


def test_a_profile_change_lists_each_changed_field_from_and_to(
    audited: World,
) -> None:
    changes = [
        e["changes"]
        for e in all_entries(audited, subjectId=audited.facts["ann"])
        if e["action"] == "ProfileChanged"
    ]

    assert changes[0]["firstname"] == {"from": None, "to": "=cmd()"}
    assert changes[-1]["firstname"] == {"from": "=cmd()", "to": "Ann"}
    assert changes[-1]["unsubscribedAt"]["from"] is None
    assert changes[-1]["unsubscribedAt"]["to"] is not None


def test_consent_shows_its_text_whether_given_and_from_where(
    audited: World,
) -> None:
    consent = one(all_entries(audited), "ConsentRecorded")

    assert consent["changes"] == {
        "consent": {
            "from": None,
            "to": {"text": "Yes, email me", "given": True, "clientIp": CLIENT_IP},
        }
    }


def test_a_logged_event_shows_its_type_and_data(audited: World) -> None:
    logged = one(all_entries(audited), "EventLogged")

    assert logged["subjectId"] == audited.facts["ann"]
    assert logged["details"]["eventType"] == "signup"
    assert logged["details"]["data"] == {"page": "/offers"}


def test_a_suppressed_message_says_why(audited: World) -> None:
    suppressed = one(all_entries(audited), "MessageSuppressed")

    assert suppressed["subjectId"] == audited.facts["ann"]
    assert suppressed["details"]["reason"] == "unsubscribed"


def test_a_refused_submission_says_why(audited: World) -> None:
    refused = one(all_entries(audited), "SubmissionRefused")

    assert refused["details"]["reason"] == "action-not-permitted"
    assert refused["actor"] == endpoint_actor(audited)


def test_a_deduplicated_submission_names_the_one_it_repeated(
    audited: World,
) -> None:
    repeat = one(all_entries(audited), "SubmissionDeduplicated")

    assert (
        repeat["details"]["originalSubmissionId"]
        == (audited.facts["first"]["submissionId"])
    )
    assert repeat["subjectId"] != audited.facts["first"]["submissionId"]


def test_entries_caused_by_a_submission_show_the_request_ip_and_user_agent(
    audited: World,
) -> None:
    agents = {audited.facts["third"]["submissionId"]: FORMULA_AGENT}

    entries = [e for e in all_entries(audited) if e["submissionId"] is not None]

    assert entries
    for entry in entries:
        assert entry["request"] == {
            "clientIp": CLIENT_IP,
            "userAgent": agents.get(entry["submissionId"], USER_AGENT),
        }, entry


def test_entries_without_a_request_show_none(audited: World) -> None:
    entries = [e for e in all_entries(audited) if e["submissionId"] is None]

    assert {entry["action"] for entry in entries} >= {"IntegrationUpdated"}
    assert [entry for entry in entries if entry["request"] is not None] == []


def test_entries_caused_by_a_submission_show_its_integration(
    audited: World,
) -> None:
    entries = [e for e in all_entries(audited) if e["submissionId"] is not None]

    integrations = {entry["integrationId"] for entry in entries}

    assert integrations == {audited.facts["integration"]["id"]}


def test_entries_caused_by_a_submission_show_its_configuration_version(
    audited: World,
) -> None:
    facts = audited.facts
    decided_under = {
        facts["first"]["submissionId"]: facts["first_version"],
        facts["second"]["submissionId"]: facts["updated"]["configurationVersion"],
        facts["third"]["submissionId"]: facts["updated"]["configurationVersion"],
    }

    entries = [e for e in all_entries(audited) if e["submissionId"] in decided_under]

    wrong = [
        (e["action"], e["configurationVersion"])
        for e in entries
        if e["configurationVersion"] != decided_under[e["submissionId"]]
    ]
    assert wrong == []
    assert len(entries) > 6


def test_every_lifecycle_entry_of_an_integration_shows_it(audited: World) -> None:
    entries = [e for e in all_entries(audited) if e["subjectType"] == "integration"]

    assert {entry["integrationId"] for entry in entries} == {
        audited.facts["integration"]["id"]
    }


def test_a_configuration_save_shows_the_configuration_version_it_made(
    audited: World,
) -> None:
    entries = all_entries(audited)

    saved = one(entries, "IntegrationSaved")
    updated = one(entries, "IntegrationUpdated")

    assert saved["configurationVersion"] == audited.facts["first_version"]
    assert (
        updated["configurationVersion"]
        == (audited.facts["updated"]["configurationVersion"])
    )


def test_the_captcha_secret_shows_only_as_changed(audited: World) -> None:
    entries = all_entries(audited)

    saved = one(entries, "IntegrationSaved")
    updated = one(entries, "IntegrationUpdated")

    assert saved["changes"]["recaptchaSecret"] == {"changed": True}
    assert updated["changes"]["recaptchaSecret"] == {"changed": True}


@pytest.mark.parametrize("accept", ["application/json", "text/csv"])
def test_the_captcha_secret_appears_nowhere_in_the_trail(
    audited: World, accept: str
) -> None:
    answer = audited.admin.get(AUDIT, params={"limit": 500}, headers={"Accept": accept})

    assert answer.status_code == 200
    assert FIRST_SECRET not in answer.text
    assert SECOND_SECRET not in answer.text


def test_no_entry_shows_a_value_still_sealed(audited: World) -> None:
    entries = all_entries(audited)

    sealed = [
        (entry["action"], text)
        for entry in entries
        for text in strings_in(entry)
        if SEALED.match(text)
    ]

    assert sealed == []


# -- filters and paging


def test_subject_id_keeps_only_entries_about_that_subject(audited: World) -> None:
    ann = audited.facts["ann"]
    expected = [e["position"] for e in all_entries(audited) if e["subjectId"] == ann]

    entries = all_entries(audited, subjectId=ann)

    assert [entry["position"] for entry in entries] == expected
    assert {entry["action"] for entry in entries} >= {
        "SubscriberRegistered",
        "ProfileChanged",
        "EventLogged",
    }


def test_integration_id_keeps_only_entries_about_that_integration(
    audited: World,
) -> None:
    integration_id = audited.facts["integration"]["id"]
    everything = all_entries(audited)
    expected = [
        e["position"] for e in everything if e["integrationId"] == integration_id
    ]

    entries = all_entries(audited, integrationId=integration_id)

    assert [entry["position"] for entry in entries] == expected
    assert len(expected) < len(everything)


def test_actor_keeps_only_entries_by_that_actor(audited: World) -> None:
    expected = [e["position"] for e in all_entries(audited) if e["actor"] == MANAGER]

    entries = all_entries(audited, actor=MANAGER)

    assert [entry["position"] for entry in entries] == expected
    assert expected


def test_actor_finds_entries_caused_by_a_public_endpoint(audited: World) -> None:
    actor = endpoint_actor(audited)
    expected = [e["position"] for e in all_entries(audited) if e["actor"] == actor]

    entries = all_entries(audited, actor=actor)

    assert [entry["position"] for entry in entries] == expected
    assert "EventLogged" in {entry["action"] for entry in entries}


def test_action_keeps_only_entries_of_that_action(audited: World) -> None:
    entries = all_entries(audited, action="ProfileChanged")

    assert {entry["action"] for entry in entries} == {"ProfileChanged"}
    assert len(entries) == 3


def test_from_and_to_keep_only_entries_inside_the_window(audited: World) -> None:
    everything = all_entries(audited)
    start = everything[4]["occurredAt"]
    end = everything[-5]["occurredAt"]
    expected = [e["position"] for e in everything if start <= e["occurredAt"] <= end]

    entries = all_entries(audited, **{"from": start, "to": end})

    assert [entry["position"] for entry in entries] == expected
    assert 0 < len(expected) < len(everything)


def test_from_takes_an_instant_written_with_an_offset(audited: World) -> None:
    everything = all_entries(audited)
    start = everything[-3]["occurredAt"]
    in_utc = all_entries(audited, **{"from": start})
    moved = start.replace("Z", "+00:00")

    entries = all_entries(audited, **{"from": moved})

    assert entries == in_utc


def test_a_malformed_from_is_a_bad_request(audited: World) -> None:
    answer = audited.admin.get(AUDIT, params={"from": "last week"})

    assert answer.status_code == 400


def test_filters_combine(audited: World) -> None:
    ann = audited.facts["ann"]

    entries = all_entries(audited, subjectId=ann, action="ProfileChanged")

    assert len(entries) == 2
    assert {(e["subjectId"], e["action"]) for e in entries} == {(ann, "ProfileChanged")}


def test_the_trail_is_paged_without_duplicates_or_gaps(audited: World) -> None:
    everything = [entry["position"] for entry in all_entries(audited)]
    seen: list[int] = []
    cursor: str | None = None

    while True:
        params: dict[str, Any] = {"limit": 7}
        if cursor is not None:
            params["cursor"] = cursor
        page = audited.admin.get(AUDIT, params=params).json()
        assert len(page["items"]) <= 7
        seen += [entry["position"] for entry in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break

    assert seen == everything


def test_a_filtered_trail_is_paged_too(audited: World) -> None:
    actor = endpoint_actor(audited)
    everything = [e["position"] for e in all_entries(audited, actor=actor)]

    first = audited.admin.get(AUDIT, params={"actor": actor, "limit": 3}).json()
    second = audited.admin.get(
        AUDIT, params={"actor": actor, "limit": 3, "cursor": first["nextCursor"]}
    ).json()

    assert [e["position"] for e in first["items"] + second["items"]] == everything[:6]


@pytest.mark.parametrize("value", [["x", "y"], "text", True])
def test_a_cursor_this_service_never_gave_is_a_bad_request(
    audited: World, value: object
) -> None:
    cursor = encode_cursor(value)

    answer = audited.admin.get(AUDIT, params={"cursor": cursor})

    assert answer.status_code == 400
    assert "cursor" in answer.json()["detail"]


def test_newest_first_when_asked(audited: World) -> None:
    everything = [entry["position"] for entry in all_entries(audited)]

    answer = audited.admin.get(AUDIT, params={"order": "desc", "limit": 5})

    assert [e["position"] for e in answer.json()["items"]] == everything[::-1][:5]


# -- the CSV export


def test_the_trail_exports_as_csv_when_asked(audited: World) -> None:
    positions = [str(entry["position"]) for entry in all_entries(audited)]

    answer = audited.admin.get(AUDIT, headers={"Accept": "text/csv"})

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [row["position"] for row in rows] == positions


def test_the_csv_export_names_its_columns(audited: World) -> None:
    answer = audited.admin.get(AUDIT, headers={"Accept": "text/csv"})

    header = next(csv.reader(io.StringIO(answer.text)))

    assert {"position", "occurredAt", "actor", "action", "subjectId"} <= set(header)
    assert {"integrationId", "configurationVersion", "changes"} <= set(header)
    assert {"clientIp", "userAgent"} <= set(header)


def test_the_csv_export_honours_the_filters(audited: World) -> None:
    ann = audited.facts["ann"]
    positions = [str(e["position"]) for e in all_entries(audited, subjectId=ann)]

    rows = csv_rows(audited, subjectId=ann)

    assert [row["position"] for row in rows] == positions


def test_no_csv_cell_starts_with_a_formula_character(audited: World) -> None:
    answer = audited.admin.get(AUDIT, headers={"Accept": "text/csv"})

    cells = [cell for row in csv.reader(io.StringIO(answer.text)) for cell in row]

    assert [cell for cell in cells if cell.startswith(FORMULA_STARTS)] == []
    assert any(cell.startswith("'=") for cell in cells)


def test_a_user_agent_written_as_a_formula_comes_out_neutralised(
    audited: World,
) -> None:
    third = audited.facts["third"]["submissionId"]

    rows = [row for row in csv_rows(audited) if row["submissionId"] == third]

    assert {row["userAgent"] for row in rows} == {"'" + FORMULA_AGENT}


def test_a_firstname_written_as_a_formula_is_exported_but_never_starts_a_cell(
    audited: World,
) -> None:
    # Field changes are exported as one JSON cell, which starts with "{".
    ann = audited.facts["ann"]

    rows = csv_rows(audited, subjectId=ann, action="ProfileChanged")

    assert '"to":"=cmd()"' in rows[0]["changes"]
    assert not rows[0]["changes"].startswith(FORMULA_STARTS)


def test_an_auditor_may_export_the_trail(audited: World) -> None:
    auditor = audited.token_for("auditor")

    answer = audited.admin.get(AUDIT, headers={**auditor, "Accept": "text/csv"})

    assert answer.status_code == 200
    assert len(list(csv.DictReader(io.StringIO(answer.text)))) > 20


# -- the three questions of compliance


def test_compliance_who_changed_the_configuration_and_what_changed(
    audited: World,
) -> None:
    integration_id = audited.facts["integration"]["id"]

    changed = all_entries(
        audited, integrationId=integration_id, action="IntegrationUpdated"
    )

    assert [(e["actor"], e["changes"]) for e in changed] == [
        (
            MANAGER,
            {
                "importSourceName": {"from": None, "to": "spring-campaign"},
                "recaptchaSecret": {"changed": True},
            },
        )
    ]


def test_compliance_which_submissions_touched_a_subscriber_from_where_and_how(
    audited: World,
) -> None:
    facts = audited.facts
    expected = {
        (facts["first"]["submissionId"], CLIENT_IP, facts["first_version"]),
        (
            facts["second"]["submissionId"],
            CLIENT_IP,
            facts["updated"]["configurationVersion"],
        ),
    }

    entries = all_entries(audited, subjectId=facts["ann"])

    touched = {
        (e["submissionId"], e["request"]["clientIp"], e["configurationVersion"])
        for e in entries
    }
    assert touched == expected


def test_compliance_what_the_profile_looked_like_at_an_earlier_instant(
    audited: World,
) -> None:
    ann = audited.facts["ann"]
    first_change = all_entries(audited, subjectId=ann, action="ProfileChanged")[0]

    answer = audited.admin.get(
        f"/admin/v1/subscribers/{ann}", params={"asOf": first_change["occurredAt"]}
    )

    assert answer.status_code == 200
    was = answer.json()
    assert (was["firstname"], was["unsubscribed"]) == ("=cmd()", False)
    now = audited.admin.get(f"/admin/v1/subscribers/{ann}").json()
    assert (now["firstname"], now["unsubscribed"]) == ("Ann", True)


def test_the_profile_as_of_its_latest_event_is_the_profile_shown_now(
    audited: World,
) -> None:
    # Ann's last event is a suppressed message, which changes no field.
    ann = audited.facts["ann"]
    latest = max(e["occurredAt"] for e in all_entries(audited, subjectId=ann))
    now = audited.admin.get(f"/admin/v1/subscribers/{ann}").json()

    answer = audited.admin.get(f"/admin/v1/subscribers/{ann}", params={"asOf": latest})

    assert answer.status_code == 200
    assert answer.json() == now
