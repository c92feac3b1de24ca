"""The event log for analysts (CONTRACT 3): `GET /admin/v1/events` as NDJSON,
one line per event in log order, personal values opened, the CAPTCHA secret
only as set or changed; and `headwater events export`, which writes the same
lines."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import orjson
import pytest

from tests.conftest import TEST_SECRET_KEY
from tests.readside.conftest import (
    CLIENT_IP,
    OPEN,
    STORES,
    Json,
    World,
    fresh_settings,
    opened,
    stored_events,
)
from tests.support.server import environment, headwater_command

EVENTS: Final = "/admin/v1/events"
FIRST_SECRET: Final = "captcha-secret-Qx7-first"
SECOND_SECRET: Final = "captcha-secret-Zr9-second"
LINE_KEYS: Final = {"position", "occurredAt", "type", "aggregateId", "version", "data"}


def lines_of(body: bytes) -> list[Json]:
    return [orjson.loads(line) for line in body.splitlines()]


def log(world: World, **params: Any) -> list[Json]:
    answer = world.admin.get(EVENTS, params=params)
    assert answer.status_code == 200, answer.text
    return lines_of(answer.content)


def of_type(lines: list[Json], kind: str) -> list[Json]:
    return [line for line in lines if line["type"] == kind]


@pytest.fixture(scope="module", params=STORES)
def logged(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """A log with a CAPTCHA secret set then changed, a profile, an event and a
    test submission; shared by the module's tests, which only read it."""
    settings = fresh_settings(request.param, tmp_path_factory.mktemp("log"), request)
    with opened(settings, projections=False) as world:
        integration = world.endpoints.open({**OPEN, "recaptchaSecret": FIRST_SECRET})
        world.endpoints.save(
            integration,
            {"name": "Signup", **OPEN, "recaptchaSecret": SECOND_SECRET},
        )
        world.public.accepted(
            integration,
            [
                {"profile": {"email": "ann@example.com", "firstname": "Ann"}},
                {"event": {"type": "signup", "data": {"page": "/offers"}}},
            ],
        )
        world.public.accepted(
            integration, {"profile": {"email": "bob@example.com"}}, test=True
        )
        yield world


def test_the_log_has_one_line_per_event_in_log_order(logged: World) -> None:
    stored = stored_events(logged.container)

    lines = log(logged)

    assert [line["position"] for line in lines] == [e.position for e in stored]


def test_each_line_holds_position_time_type_aggregate_version_and_data(
    logged: World,
) -> None:
    stored = stored_events(logged.container)

    lines = log(logged)

    assert {frozenset(line) for line in lines} == {frozenset(LINE_KEYS)}
    assert [(line["type"], line["aggregateId"], line["version"]) for line in lines] == [
        (e.event_type, str(e.aggregate_id), e.version) for e in stored
    ]


def test_each_line_says_when_the_event_occurred_in_utc(logged: World) -> None:
    stored = stored_events(logged.container)

    lines = log(logged)

    assert [line["occurredAt"] for line in lines] == [e.occurred_at for e in stored]
    assert all(line["occurredAt"].endswith("Z") for line in lines)


def test_the_log_is_sent_as_ndjson_with_the_head_position(logged: World) -> None:
    head = logged.container.events.head()

    answer = logged.admin.get(EVENTS)

    assert answer.headers["content-type"].startswith("application/x-ndjson")
    assert answer.headers["X-Projection-Position"] == str(head)
    assert answer.content.endswith(b"\n")


def test_after_starts_the_log_after_that_position(logged: World) -> None:
    positions = [e.position for e in stored_events(logged.container)]

    lines = log(logged, after=positions[4])

    assert [line["position"] for line in lines] == positions[5:]


def test_limit_caps_the_number_of_lines(logged: World) -> None:
    positions = [e.position for e in stored_events(logged.container)]

    lines = log(logged, after=positions[1], limit=3)

    assert [line["position"] for line in lines] == positions[2:5]


def test_type_keeps_only_events_of_that_type(logged: World) -> None:
    expected = [
        e.position
        for e in stored_events(logged.container)
        if e.event_type == "ProfileChanged"
    ]

    lines = log(logged, type="ProfileChanged")

    assert [line["position"] for line in lines] == expected
    assert expected


def test_type_takes_several_types_comma_separated(logged: World) -> None:
    wanted = {"IntegrationSaved", "SubmissionTested"}
    expected = [
        e.position for e in stored_events(logged.container) if e.event_type in wanted
    ]

    lines = log(logged, type="IntegrationSaved,SubmissionTested")

    assert [line["position"] for line in lines] == expected
    assert {line["type"] for line in lines} == wanted


def test_an_unknown_type_is_a_bad_request(logged: World) -> None:
    answer = logged.admin.get(EVENTS, params={"type": "NoSuchEvent"})

    assert answer.status_code == 400
    assert "NoSuchEvent" in answer.json()["detail"]


def test_a_negative_after_is_a_bad_request(logged: World) -> None:
    answer = logged.admin.get(EVENTS, params={"after": "-1"})

    assert answer.status_code == 400


def test_personal_values_are_shown_decrypted(logged: World) -> None:
    lines = log(logged)

    changed = of_type(lines, "ProfileChanged")[0]["data"]["changes"]
    logged_event = of_type(lines, "EventLogged")[0]["data"]
    assert changed["email"] == {"from": None, "to": "ann@example.com"}
    assert changed["firstname"] == {"from": None, "to": "Ann"}
    assert logged_event["data"] == {"page": "/offers"}


def test_request_metadata_is_shown_decrypted(logged: World) -> None:
    lines = log(logged)

    accepted = of_type(lines, "SubmissionAccepted")[0]["data"]

    assert accepted["request"]["clientIp"] == CLIENT_IP


def test_no_line_reads_as_erased_while_every_key_exists(logged: World) -> None:
    lines = log(logged)

    erased = [line["type"] for line in lines if line["data"].get("erased")]

    assert erased == []


def test_the_captcha_secret_shows_only_as_set_when_first_saved(
    logged: World,
) -> None:
    lines = log(logged, type="IntegrationSaved")

    assert [line["data"]["recaptchaSecret"] for line in lines] == ["set"]


def test_the_captcha_secret_shows_only_as_changed_when_replaced(
    logged: World,
) -> None:
    lines = log(logged, type="IntegrationUpdated")

    assert [line["data"]["recaptchaSecret"] for line in lines] == ["changed"]


def test_the_captcha_secret_appears_nowhere_in_the_log(logged: World) -> None:
    answer = logged.admin.get(EVENTS)

    assert FIRST_SECRET.encode() not in answer.content
    assert SECOND_SECRET.encode() not in answer.content


def test_an_analyst_may_read_the_log(logged: World) -> None:
    analyst = logged.token_for("analyst")

    answer = logged.admin.get(EVENTS, headers=analyst)

    assert answer.status_code == 200


def test_an_integration_manager_may_not_read_the_log(logged: World) -> None:
    manager = logged.token_for("integration-manager")

    answer = logged.admin.get(EVENTS, headers=manager)

    assert answer.status_code == 403


def test_the_export_command_writes_the_same_lines_as_the_api(
    logged: World, tmp_path: Path
) -> None:
    settings = logged.container.settings
    after = stored_events(logged.container)[3].position
    output = tmp_path / "events.ndjson"

    finished = subprocess.run(
        [
            *headwater_command(),
            *("events", "export", "--after", str(after), "--output", str(output)),
        ],
        cwd=settings.home,
        env=environment(
            {
                "HEADWATER_DATABASE_URL": settings.database_url,
                "HEADWATER_SECRET_KEY": TEST_SECRET_KEY,
            }
        ),
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr
    assert lines_of(output.read_bytes()) == log(logged, after=after)


def test_a_log_of_thousands_of_events_is_streamed_in_complete_lines(
    still: World,
) -> None:
    integration = still.endpoints.open(OPEN)
    for batch in range(20):
        still.public.accepted(
            integration,
            [
                {"profile": {"email": f"person-{batch}-{n}@example.com"}}
                for n in range(50)
            ],
        )
    stored = [e.position for e in stored_events(still.container)]

    with still.admin.stream("GET", EVENTS) as answer:
        chunks = list(answer.iter_raw())

    body = b"".join(chunks)
    assert len(stored) > 3000
    assert "content-length" not in answer.headers
    assert len(chunks) > 1
    assert body.endswith(b"\n")
    assert [line["position"] for line in lines_of(body)] == stored
