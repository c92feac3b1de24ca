"""Rebuilding a projection from zero over HTTP (CONTRACT 3): the new
generation fills beside the live one while queries keep answering, then
becomes live at the head of the log; only an admin may ask."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Final

import pytest
from eventsourcing.persistence import Notification

from infrastructure.eventstore import LibraryEventStore
from infrastructure.projections.runner import REBUILD_PAGE
from tests.readside.conftest import (
    OPEN,
    STORES,
    Json,
    World,
    caught_up,
    eventually,
    fresh_settings,
    live_rows,
    opened,
    supervise,
)

PROJECTIONS: Final = "/admin/v1/projections"
AUDIT: Final = "/admin/v1/audit"
SUBSCRIBERS: Final = "/admin/v1/subscribers"
GATE_SECONDS: Final = 30.0


class GatedSource:
    """The real store; a rebuild's first read waits until the test opens the
    gate, so the test can look while the rebuild is under way."""

    def __init__(self, store: LibraryEventStore) -> None:
        self._store = store
        self.rebuilding = threading.Event()
        self.gate = threading.Event()

    def read_stored(self, *, after: int, limit: int) -> Sequence[Notification]:
        if limit == REBUILD_PAGE:
            self.rebuilding.set()
            self.gate.wait(GATE_SECONDS)
        return self._store.read_stored(after=after, limit=limit)

    def head(self) -> int:
        return self._store.head()


def state_of(world: World, name: str) -> Json:
    answer = world.admin.get(PROJECTIONS)
    assert answer.status_code == 200, answer.text
    states: list[Json] = answer.json()["items"]
    return next(state for state in states if state["name"] == name)


def switched(state: Json) -> bool:
    return state["generation"] > 1 and state["rebuild"] is None


@pytest.fixture
def filled(still: World) -> World:
    """A store with profiles and repeats; no projection running yet."""
    integration = still.endpoints.open({**OPEN, "dedupePeriodSeconds": 60})
    for number in range(6):
        body = {"profile": {"email": f"p{number % 4}@example.com", "firstname": "A"}}
        still.public.accepted(
            integration, body, headers={"Idempotency-Key": f"k{number % 4}"}
        )
    return still


@pytest.fixture
def gated(filled: World) -> Iterator[GatedSource]:
    """Every projection running and caught up, reading through a gate that
    holds any rebuild until the test opens it."""
    source = GatedSource(filled.container.events)
    supervise(filled.container, source)
    caught_up(filled.container)
    try:
        yield source
    finally:
        source.gate.set()


def test_a_rebuild_answers_the_projection_with_its_rebuild_requested(
    still: World,
) -> None:
    still.endpoints.open()

    answer = still.admin.post(f"{PROJECTIONS}/audit/rebuild")

    assert answer.status_code == 200
    assert answer.json()["name"] == "audit"
    assert answer.json()["rebuild"] is not None


def test_queries_keep_answering_while_a_projection_is_rebuilt(
    filled: World, gated: GatedSource
) -> None:
    before = filled.admin.get(AUDIT, params={"limit": 500}).json()

    filled.admin.post(f"{PROJECTIONS}/audit/rebuild")
    assert gated.rebuilding.wait(GATE_SECONDS)
    during = filled.admin.get(AUDIT, params={"limit": 500})

    assert during.status_code == 200
    assert during.json() == before
    assert state_of(filled, "audit")["rebuild"]["generation"] == 2


def test_the_status_shows_a_rebuild_under_way_and_its_lag(
    filled: World, gated: GatedSource
) -> None:
    filled.admin.post(f"{PROJECTIONS}/subscribers/rebuild")
    assert gated.rebuilding.wait(GATE_SECONDS)

    state = state_of(filled, "subscribers")

    assert state["generation"] == 1
    assert state["position"] == state["headPosition"]
    assert state["rebuild"] == {
        "generation": 2,
        "position": 0,
        "lag": state["headPosition"],
    }


def test_a_rebuilt_projection_becomes_live_at_the_head_of_the_log(
    filled: World, gated: GatedSource
) -> None:
    filled.admin.post(f"{PROJECTIONS}/dedupe/rebuild")
    assert gated.rebuilding.wait(GATE_SECONDS)

    gated.gate.set()

    state = eventually(lambda: state_of(filled, "dedupe"), switched)
    assert state["generation"] == 2
    assert state["position"] == state["headPosition"] == filled.container.events.head()


def test_a_rebuilt_projection_holds_what_the_live_one_held(
    filled: World, gated: GatedSource
) -> None:
    before = live_rows(filled.container.registry)
    filled.admin.post(f"{PROJECTIONS}/subscribers/rebuild")

    gated.gate.set()

    eventually(lambda: state_of(filled, "subscribers"), switched)
    assert live_rows(filled.container.registry) == before


def test_writes_during_a_rebuild_reach_the_rebuilt_projection(
    filled: World, gated: GatedSource
) -> None:
    integration = filled.endpoints.open(OPEN, name="Later")
    filled.admin.post(f"{PROJECTIONS}/subscribers/rebuild")
    assert gated.rebuilding.wait(GATE_SECONDS)
    written = filled.public.accepted(
        integration, {"profile": {"email": "late@example.com"}}
    )

    gated.gate.set()

    eventually(lambda: state_of(filled, "subscribers"), switched)
    found = filled.admin.get(
        SUBSCRIBERS,
        params={"email": "late@example.com", "minPosition": written["position"]},
    )
    assert [item["id"] for item in found.json()["items"]] == [
        written["results"][0]["subscriberId"]
    ]


@pytest.fixture(scope="module", params=STORES)
def guarded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """A store whose projections nobody rebuilds; for refusals only."""
    settings = fresh_settings(request.param, tmp_path_factory.mktemp("r"), request)
    with opened(settings, projections=False) as world:
        yield world


@pytest.mark.parametrize("role", ["integration-manager", "auditor", "analyst"])
def test_only_an_admin_may_rebuild(guarded: World, role: str) -> None:
    headers = guarded.token_for(role)

    answer = guarded.admin.post(f"{PROJECTIONS}/audit/rebuild", headers=headers)

    assert answer.status_code == 403
    assert state_of(guarded, "audit")["rebuild"] is None


def test_rebuilding_an_unknown_projection_is_not_found(guarded: World) -> None:
    answer = guarded.admin.post(f"{PROJECTIONS}/nonsense/rebuild")

    assert answer.status_code == 404


def test_every_role_may_read_the_projection_status(guarded: World) -> None:
    headers = guarded.token_for("integration-manager")

    answer = guarded.admin.get(PROJECTIONS, headers=headers)

    assert answer.status_code == 200
    assert {state["name"] for state in answer.json()["items"]} >= {
        "integrations",
        "subscribers",
        "dedupe",
        "audit",
    }
