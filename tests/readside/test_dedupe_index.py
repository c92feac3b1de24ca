"""The dedupe index (CONTRACT 3): one entry per key, mode and integration,
naming the submission that opened the window and counting the repeats that
were not applied."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Final

import pytest

from tests.readside.conftest import (
    OPEN,
    STORES,
    Json,
    World,
    caught_up,
    fresh_settings,
    opened,
    stored_events,
)

DEDUPE: Final = "/admin/v1/dedupe"
WINDOW: Final[Json] = {**OPEN, "dedupePeriodSeconds": 60}
ORDER: Final = {"Idempotency-Key": "order-1"}
ENTRY_KEYS: Final = {
    "integrationId",
    "mode",
    "key",
    "firstAcceptedAt",
    "lastAcceptedAt",
    "duplicates",
    "submissionId",
}


@pytest.fixture(scope="module", params=STORES)
def deduplicated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One keyed request sent three times, in production and twice in test
    mode; an unkeyed body sent twice; the key reused at another integration."""
    settings = fresh_settings(request.param, tmp_path_factory.mktemp("d"), request)
    with opened(settings) as world:
        facts = world.facts
        facts["shop"] = shop = world.endpoints.open(WINDOW, name="Shop")
        facts["blog"] = blog = world.endpoints.open(WINDOW, name="Blog")
        order = {"profile": {"email": "ann@example.com"}}
        facts["ordered"] = [
            world.public.accepted(shop, order, headers=ORDER) for _ in range(3)
        ]
        facts["tested"] = [
            world.public.accepted(shop, order, headers=ORDER, test=True)
            for _ in range(2)
        ]
        unkeyed = {"profile": {"email": "bob@example.com"}}
        facts["unkeyed"] = [world.public.accepted(shop, unkeyed) for _ in range(2)]
        facts["elsewhere"] = world.public.accepted(blog, order, headers=ORDER)
        facts["head"] = caught_up(world.container)
        yield world


def index(world: World, **params: str) -> list[Json]:
    answer = world.admin.get(DEDUPE, params=params)
    assert answer.status_code == 200, answer.text
    items: list[Json] = answer.json()["items"]
    return items


def test_an_entry_names_the_submission_that_opened_its_window(
    deduplicated: World,
) -> None:
    facts = deduplicated.facts

    entries = index(deduplicated, integrationId=facts["shop"]["id"], key="order-1")

    production = [e for e in entries if e["mode"] == "production"]
    assert [e["submissionId"] for e in production] == [
        facts["ordered"][0]["submissionId"]
    ]


def test_repeats_that_were_not_applied_are_counted_as_duplicates(
    deduplicated: World,
) -> None:
    facts = deduplicated.facts

    entries = index(deduplicated, integrationId=facts["shop"]["id"], key="order-1")

    production = [e for e in entries if e["mode"] == "production"]
    assert [e["duplicates"] for e in production] == [2]
    assert [answer["duplicate"] for answer in facts["ordered"]] == [False, True, True]


def test_test_mode_has_an_entry_and_a_count_of_its_own(deduplicated: World) -> None:
    facts = deduplicated.facts

    entries = index(deduplicated, integrationId=facts["shop"]["id"], key="order-1")

    assert sorted((e["mode"], e["duplicates"]) for e in entries) == [
        ("production", 2),
        ("test", 1),
    ]


def test_an_entry_holds_the_fields_the_contract_names(deduplicated: World) -> None:
    entries = index(deduplicated)

    assert {frozenset(entry) for entry in entries} == {frozenset(ENTRY_KEYS)}


def test_the_key_filter_takes_the_plain_idempotency_key(deduplicated: World) -> None:
    facts = deduplicated.facts

    entries = index(deduplicated, key="order-1")

    assert sorted((e["integrationId"], e["mode"]) for e in entries) == sorted(
        [
            (facts["shop"]["id"], "production"),
            (facts["shop"]["id"], "test"),
            (facts["blog"]["id"], "production"),
        ]
    )


def test_the_key_filter_takes_the_keyed_digest_an_entry_shows(
    deduplicated: World,
) -> None:
    digest = index(deduplicated, key="order-1")[0]["key"]

    entries = index(deduplicated, key=digest)

    assert {entry["key"] for entry in entries} == {digest}
    assert len(entries) == 3


def test_an_entry_shows_a_keyed_digest_never_the_key(deduplicated: World) -> None:
    entries = index(deduplicated)

    keys = {entry["key"] for entry in entries}

    assert "order-1" not in keys
    assert all(len(key) == 64 for key in keys)


def test_the_integration_filter_keeps_only_that_integrations_entries(
    deduplicated: World,
) -> None:
    blog = deduplicated.facts["blog"]

    entries = index(deduplicated, integrationId=blog["id"])

    assert [(e["integrationId"], e["duplicates"]) for e in entries] == [(blog["id"], 0)]


def test_an_unkeyed_body_sent_twice_is_counted_by_its_digest(
    deduplicated: World,
) -> None:
    first, repeat = deduplicated.facts["unkeyed"]

    entries = [
        e for e in index(deduplicated) if e["submissionId"] == first["submissionId"]
    ]

    assert [entry["duplicates"] for entry in entries] == [1]
    assert repeat["duplicate"] is True


def test_first_and_last_accepted_are_when_the_window_opened(
    deduplicated: World,
) -> None:
    opened_at = {
        str(e.state["submissionId"]): e.occurred_at
        for e in stored_events(deduplicated.container)
        if e.event_type == "DedupeWindowOpened"
    }

    entries = index(deduplicated)

    assert {
        e["submissionId"]: (e["firstAcceptedAt"], e["lastAcceptedAt"]) for e in entries
    } == {submission: (at, at) for submission, at in opened_at.items()}


def test_the_index_answers_its_projection_position(deduplicated: World) -> None:
    answer = deduplicated.admin.get(DEDUPE)

    assert int(answer.headers["X-Projection-Position"]) >= deduplicated.facts["head"]


def test_an_integration_manager_may_read_the_index(deduplicated: World) -> None:
    manager = deduplicated.token_for("integration-manager")

    answer = deduplicated.admin.get(DEDUPE, headers=manager)

    assert answer.status_code == 200
    assert answer.json()["items"]


def test_a_request_accepted_after_its_window_closed_reopens_the_entry(
    world: World,
) -> None:
    shop = world.endpoints.open({**OPEN, "dedupePeriodSeconds": 1})
    order = {"profile": {"email": "ann@example.com"}}
    first = world.public.accepted(shop, order, headers=ORDER)
    world.public.accepted(shop, order, headers=ORDER)
    time.sleep(1.2)

    again = world.public.accepted(shop, order, headers=ORDER)

    caught_up(world.container)
    entries = index(world, integrationId=shop["id"])
    assert [e["submissionId"] for e in entries] == [again["submissionId"]]
    assert again["submissionId"] != first["submissionId"]
    assert entries[0]["firstAcceptedAt"] < entries[0]["lastAcceptedAt"]
    assert entries[0]["duplicates"] == 1
