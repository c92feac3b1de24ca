"""Queries over HTTP (CONTRACT 3 and 4): the profile view searched by keyed
hashes of email, ref and phone, paged; one profile, as it is and as it was;
its history; the projection position on every read; `?minPosition=`; and who
may read what."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Final
from uuid import uuid4

import pytest

from application.reading import encode_cursor
from domain.subscriber import SubscriberRegistered
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

SUBSCRIBERS: Final = "/admin/v1/subscribers"
OTHERS: Final = ("bob", "cara", "dan", "eve")


def instant_after(world: World, position: int) -> str:
    """The latest time of any event up to `position`: every change recorded
    by then had happened at that instant."""
    return max(
        e.occurred_at for e in stored_events(world.container) if e.position <= position
    )


def subscriber_ids(world: World) -> set[str]:
    recorded = world.container.events.read(
        after=0, limit=10_000, types=[SubscriberRegistered]
    )
    return {str(r.event.originator_id) for r in recorded}


@pytest.fixture(scope="module", params=STORES)
def profiles(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """Ann, created then changed, and four other profiles; shared by the
    module's tests, which only read them."""
    settings = fresh_settings(request.param, tmp_path_factory.mktemp("q"), request)
    with opened(settings) as world:
        integration = world.endpoints.open(OPEN)
        facts = world.facts
        facts["before"] = instant_after(world, world.container.events.head())
        created = world.public.accepted(
            integration,
            {
                "profile": {
                    "email": "Ann@Example.com",
                    "ref": "CUST-1",
                    "phone": "+61 412 345 678",
                    "firstname": "Ann",
                }
            },
        )
        facts["ann"] = created["results"][0]["subscriberId"]
        facts["created"] = instant_after(world, created["position"])
        changed = world.public.accepted(
            integration,
            {
                "profile": {
                    "email": "ann@example.com",
                    "firstname": "Annie",
                    "custom": {"colour": "green"},
                    "lists": [{"listId": 7, "subscribedTimestamp": True}],
                }
            },
        )
        facts["changed"] = instant_after(world, changed["position"])
        for name in OTHERS:
            world.public.accepted(
                integration, {"profile": {"email": f"{name}@example.com"}}
            )
        facts["head"] = caught_up(world.container)
        yield world


def ann(world: World) -> str:
    identifier: str = world.facts["ann"]
    return identifier


def search(world: World, **params: str | int) -> Json:
    answer = world.admin.get(SUBSCRIBERS, params=params)
    assert answer.status_code == 200, answer.text
    found: Json = answer.json()
    return found


# -- search


def test_a_profile_is_found_by_email_whatever_its_case(profiles: World) -> None:
    found = search(profiles, email="ANN@example.COM")

    assert [item["id"] for item in found["items"]] == [ann(profiles)]


def test_a_profile_is_found_by_ref(profiles: World) -> None:
    found = search(profiles, ref="CUST-1")

    assert [item["id"] for item in found["items"]] == [ann(profiles)]


def test_a_profile_is_found_by_phone_written_another_way(profiles: World) -> None:
    found = search(profiles, phone="+61412345678")

    assert [item["id"] for item in found["items"]] == [ann(profiles)]


def test_a_search_that_matches_nobody_answers_an_empty_list(profiles: World) -> None:
    found = search(profiles, email="nobody@example.com")

    assert found == {"items": [], "nextCursor": None}


def test_a_search_by_two_identifiers_at_once_is_a_bad_request(
    profiles: World,
) -> None:
    answer = profiles.admin.get(
        SUBSCRIBERS, params={"email": "ann@example.com", "ref": "CUST-1"}
    )

    assert answer.status_code == 400


def test_profiles_are_listed_page_by_page_without_duplicates(
    profiles: World,
) -> None:
    seen: list[str] = []
    pages = 0
    cursor: str | None = None

    while pages == 0 or cursor is not None:
        params: dict[str, str | int] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = search(profiles, **params)
        seen += [item["id"] for item in page["items"]]
        cursor = page["nextCursor"]
        pages += 1

    assert len(seen) == len(set(seen))
    assert set(seen) == subscriber_ids(profiles)
    assert pages >= 3


def test_a_page_holds_at_most_limit_profiles(profiles: World) -> None:
    page = search(profiles, limit=2)

    assert len(page["items"]) == 2
    assert page["nextCursor"] is not None


def test_the_last_page_has_no_next_cursor(profiles: World) -> None:
    page = search(profiles, limit=100)

    assert page["nextCursor"] is None
    assert len(page["items"]) == 1 + len(OTHERS)


def test_a_cursor_this_service_never_gave_is_a_bad_request(profiles: World) -> None:
    answer = profiles.admin.get(SUBSCRIBERS, params={"cursor": "not-a-cursor!"})

    assert answer.status_code == 400


@pytest.mark.parametrize("value", [5, ["only-one"], [1, 2], "text"])
def test_a_well_encoded_cursor_of_another_shape_is_a_bad_request(
    profiles: World, value: object
) -> None:
    cursor = encode_cursor(value)

    answer = profiles.admin.get(SUBSCRIBERS, params={"cursor": cursor})

    assert answer.status_code == 400


def test_a_limit_beyond_the_maximum_is_a_bad_request(profiles: World) -> None:
    answer = profiles.admin.get(SUBSCRIBERS, params={"limit": 100_000})

    assert answer.status_code == 400


# -- one profile


def test_a_profile_is_flat_with_its_fields_custom_fields_and_lists(
    profiles: World,
) -> None:
    answer = profiles.admin.get(f"{SUBSCRIBERS}/{ann(profiles)}")

    assert answer.status_code == 200
    profile = answer.json()
    assert profile["id"] == ann(profiles)
    assert (profile["email"], profile["ref"], profile["phone"]) == (
        "ann@example.com",
        "CUST-1",
        "+61412345678",
    )
    assert profile["firstname"] == "Annie"
    assert profile["custom"] == {"colour": "green"}
    assert [item["listId"] for item in profile["lists"]] == [7]
    assert profile["lists"][0]["subscribedAt"] is not None
    assert (profile["unsubscribed"], profile["unsubscribedAt"]) == (False, None)


def test_a_profile_says_when_it_was_created_and_last_updated(
    profiles: World,
) -> None:
    profile = profiles.admin.get(f"{SUBSCRIBERS}/{ann(profiles)}").json()

    assert profile["createdAt"] <= profiles.facts["created"]
    assert profiles.facts["created"] < profile["updatedAt"] <= profiles.facts["changed"]


def test_an_unknown_subscriber_is_not_found(profiles: World) -> None:
    answer = profiles.admin.get(f"{SUBSCRIBERS}/{uuid4()}")

    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_a_malformed_subscriber_id_is_not_found(profiles: World) -> None:
    answer = profiles.admin.get(f"{SUBSCRIBERS}/not-a-uuid")

    assert answer.status_code == 404


# -- time travel and history


def test_as_of_an_earlier_instant_gives_the_profile_as_it_was_then(
    profiles: World,
) -> None:
    answer = profiles.admin.get(
        f"{SUBSCRIBERS}/{ann(profiles)}", params={"asOf": profiles.facts["created"]}
    )

    assert answer.status_code == 200
    was = answer.json()
    assert (was["firstname"], was["custom"], was["lists"]) == ("Ann", {}, [])
    assert was["email"] == "ann@example.com"


def test_as_of_now_gives_the_profile_as_it_is(profiles: World) -> None:
    now = profiles.admin.get(f"{SUBSCRIBERS}/{ann(profiles)}").json()

    answer = profiles.admin.get(
        f"{SUBSCRIBERS}/{ann(profiles)}", params={"asOf": profiles.facts["changed"]}
    )

    assert answer.status_code == 200
    assert answer.json() == now


def test_as_of_takes_an_instant_written_with_an_offset(profiles: World) -> None:
    created = datetime.fromisoformat(profiles.facts["created"])
    in_sydney = created.astimezone(timezone(timedelta(hours=10))).isoformat()

    answer = profiles.admin.get(
        f"{SUBSCRIBERS}/{ann(profiles)}", params={"asOf": in_sydney}
    )

    assert answer.status_code == 200
    assert answer.json()["firstname"] == "Ann"


def test_as_of_before_the_profile_existed_is_not_found(profiles: World) -> None:
    answer = profiles.admin.get(
        f"{SUBSCRIBERS}/{ann(profiles)}", params={"asOf": profiles.facts["before"]}
    )

    assert answer.status_code == 404


def test_a_malformed_as_of_is_a_bad_request(profiles: World) -> None:
    answer = profiles.admin.get(
        f"{SUBSCRIBERS}/{ann(profiles)}", params={"asOf": "yesterday"}
    )

    assert answer.status_code == 400


def test_history_lists_the_profile_changes_oldest_first_newest_last(
    profiles: World,
) -> None:
    answer = profiles.admin.get(f"{SUBSCRIBERS}/{ann(profiles)}/history")

    assert answer.status_code == 200
    items = answer.json()["items"]
    versions = [item["version"] for item in items]
    assert versions == sorted(versions) == list(range(1, len(items) + 1))
    assert items[0]["type"] == "SubscriberRegistered"
    changes = [i["data"]["changes"] for i in items if i["type"] == "ProfileChanged"]
    assert changes[-1]["firstname"] == {"from": "Ann", "to": "Annie"}


def test_history_says_when_each_change_occurred(profiles: World) -> None:
    items = profiles.admin.get(f"{SUBSCRIBERS}/{ann(profiles)}/history").json()["items"]

    times = [item["occurredAt"] for item in items]

    assert times[-1] <= profiles.facts["changed"]
    assert times[0] <= profiles.facts["created"] < times[-1]


def test_history_of_an_unknown_subscriber_is_not_found(profiles: World) -> None:
    answer = profiles.admin.get(f"{SUBSCRIBERS}/{uuid4()}/history")

    assert answer.status_code == 404


# -- positions


READS: Final[tuple[tuple[str, str, dict[str, str]], ...]] = (
    ("subscribers", SUBSCRIBERS, {}),
    ("subscriber", SUBSCRIBERS + "/{ann}", {}),
    ("subscriber as of", SUBSCRIBERS + "/{ann}", {"asOf": "{changed}"}),
    ("history", SUBSCRIBERS + "/{ann}/history", {}),
    ("audit", "/admin/v1/audit", {}),
    ("audit csv", "/admin/v1/audit", {"accept": "text/csv"}),
    ("dedupe", "/admin/v1/dedupe", {}),
    ("events", "/admin/v1/events", {}),
    ("projections", "/admin/v1/projections", {}),
)


@pytest.mark.parametrize(
    ("path", "params"),
    [(path, params) for _, path, params in READS],
    ids=[name for name, _, _ in READS],
)
def test_every_read_answers_the_projection_position(
    profiles: World, path: str, params: dict[str, str]
) -> None:
    facts = profiles.facts
    query = {k: v.format(**facts) for k, v in params.items() if k != "accept"}
    headers = {"Accept": params["accept"]} if "accept" in params else {}

    answer = profiles.admin.get(path.format(**facts), params=query, headers=headers)

    assert answer.status_code == 200, answer.text
    position = int(answer.headers["X-Projection-Position"])
    assert facts["head"] <= position <= profiles.container.events.head()


def test_a_min_position_already_reached_answers_at_once(profiles: World) -> None:
    started = time.monotonic()

    answer = profiles.admin.get(
        SUBSCRIBERS, params={"minPosition": profiles.facts["head"]}
    )

    assert answer.status_code == 200
    assert time.monotonic() - started < 2


@pytest.fixture
def on_sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """One store, for a test that waits its full five seconds: the wait is the
    same on either store, so once is enough."""
    with opened(fresh_settings("sqlite", tmp_path, request)) as world:
        yield world


def test_a_min_position_beyond_the_head_waits_then_answers_projection_behind(
    on_sqlite: World,
) -> None:
    beyond = on_sqlite.container.events.head() + 1000
    started = time.monotonic()

    answer = on_sqlite.admin.get(SUBSCRIBERS, params={"minPosition": beyond})

    waited = time.monotonic() - started
    assert answer.status_code == 503
    assert answer.json()["type"].endswith("projection-behind")
    assert int(answer.headers["Retry-After"]) > 0
    assert 4.5 <= waited < 10


def test_a_read_with_the_position_of_a_write_sees_that_write(world: World) -> None:
    integration = world.endpoints.open(OPEN)
    written = world.public.accepted(
        integration, {"profile": {"email": "fresh@example.com"}}
    )

    answer = world.admin.get(
        SUBSCRIBERS,
        params={"email": "fresh@example.com", "minPosition": written["position"]},
    )

    assert answer.status_code == 200
    assert [item["id"] for item in answer.json()["items"]] == [
        written["results"][0]["subscriberId"]
    ]
    assert int(answer.headers["X-Projection-Position"]) >= written["position"]


# -- who may read what (CONTRACT 4)


@pytest.mark.parametrize(
    ("role", "path", "status"),
    [
        ("integration-manager", SUBSCRIBERS, 403),
        ("integration-manager", SUBSCRIBERS + "/{ann}", 403),
        ("integration-manager", "/admin/v1/audit", 403),
        ("integration-manager", "/admin/v1/dedupe", 200),
        ("integration-manager", "/admin/v1/projections", 200),
        ("analyst", SUBSCRIBERS, 200),
        ("analyst", "/admin/v1/events", 200),
        ("analyst", "/admin/v1/audit", 403),
        ("auditor", "/admin/v1/audit", 200),
        ("auditor", SUBSCRIBERS + "/{ann}", 200),
        ("auditor", "/admin/v1/events", 200),
    ],
)
def test_each_role_reads_what_its_permissions_allow(
    profiles: World, role: str, path: str, status: int
) -> None:
    headers = profiles.token_for(role)

    answer = profiles.admin.get(path.format(**profiles.facts), headers=headers)

    assert answer.status_code == status


def test_a_read_without_a_token_is_unauthenticated(profiles: World) -> None:
    answer = profiles.public.client.get(SUBSCRIBERS)

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
