"""A property of every projection (CONTRACT 3): whatever happened, the read
models rebuilt from position zero equal the ones built live, page by page, as
it happened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.bootstrap import Container
from infrastructure.projections.catalog import NAMES
from infrastructure.projections.runner import Leases, Projector
from tests.readside.conftest import (
    OPEN,
    STORES,
    Json,
    World,
    fresh_settings,
    leases_for,
    live_rows,
    opened,
)

CONFIGURATION: Final[Json] = {
    "name": "Signup",
    **OPEN,
    "dedupePeriodSeconds": 60,
    "allowMessages": True,
    "triggerActivityId": 5,
}


@dataclass(frozen=True)
class Submit:
    person: int
    firstname: str | None
    colour: str | None
    list_change: str | None
    unsubscribe: bool
    event: bool
    key: int | None
    test: bool


@dataclass(frozen=True)
class Configure:
    allow_updates: bool
    source: str | None


@dataclass(frozen=True)
class Lifecycle:
    step: str


Step = Submit | Configure | Lifecycle

submits = st.builds(
    Submit,
    person=st.integers(0, 3),
    firstname=st.sampled_from(["Ann", "Bob", None]),
    colour=st.sampled_from([None, "red", "green"]),
    list_change=st.sampled_from([None, "subscribe", "unsubscribe"]),
    unsubscribe=st.booleans(),
    event=st.booleans(),
    key=st.one_of(st.none(), st.integers(0, 2)),
    test=st.booleans(),
)
configures = st.builds(
    Configure,
    allow_updates=st.booleans(),
    source=st.sampled_from([None, "spring", "autumn"]),
)
lifecycles = st.builds(
    Lifecycle, step=st.sampled_from(["activate", "deactivate", "rotate-endpoint"])
)
#: Each step, and whether the projections catch up right after it.
histories = st.lists(
    st.tuples(st.one_of(submits, submits, configures, lifecycles), st.booleans()),
    min_size=1,
    max_size=8,
)


def body_of(step: Submit) -> list[Json]:
    profile: dict[str, Any] = {
        "email": f"person{step.person}@example.com",
        "firstname": step.firstname,
    }
    if step.colour is not None:
        profile["custom"] = {"colour": step.colour}
    if step.list_change is not None:
        profile["lists"] = [{"listId": 7, f"{step.list_change}dTimestamp": True}]
    if step.unsubscribe:
        profile["unsubscribedTimestamp"] = True
    actions: list[Json] = [{"profile": profile}]
    if step.event:
        actions.append({"event": {"type": "visit", "data": {"person": step.person}}})
    return actions


def take(world: World, integration: Json, step: Step) -> Json:
    """Do one step through the API; answers the integration as it now is."""
    if isinstance(step, Submit):
        headers = {} if step.key is None else {"Idempotency-Key": f"key-{step.key}"}
        world.public.submit(integration, body_of(step), test=step.test, headers=headers)
        return integration
    if isinstance(step, Configure):
        return world.endpoints.save(
            integration,
            {
                **CONFIGURATION,
                "allowProfileUpdates": step.allow_updates,
                "importSourceName": step.source,
            },
        )
    return world.endpoints.lifecycle(integration, step.step)


def project(projector: Projector, held: list[str]) -> None:
    """Step the projector until nothing moves: live, in small pages."""
    while projector.step(held):
        pass


def generations(container: Container) -> dict[str, int]:
    return {name: container.registry.state(name).live_generation for name in NAMES}


@pytest.mark.parametrize("kind", STORES)
# Each example builds a store of its own; the fixtures only say where.
@settings(
    max_examples=6,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(history=histories)
def test_read_models_rebuilt_from_zero_equal_the_ones_built_live(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    history: list[tuple[Step, bool]],
) -> None:
    folder = tmp_path_factory.mktemp("example")
    with opened(fresh_settings(kind, folder, request), projections=False) as world:
        container = world.container
        leases: Leases = leases_for(container)
        try:
            projector = Projector(container.registry, container.events, leases, NAMES)
            held = [name for name in NAMES if leases.try_acquire(name)]
            integration = world.endpoints.open(CONFIGURATION)
            for step, catch_up in history:
                integration = take(world, integration, step)
                if catch_up:
                    project(projector, held)
            project(projector, held)
            live = live_rows(container.registry)

            for name in NAMES:
                container.read_side.rebuild(name)
            project(projector, held)

            assert generations(container) == dict.fromkeys(NAMES, 2)
            assert live_rows(container.registry) == live
        finally:
            leases.close()
