"""The read side's commands (CONTRACT 5): `headwater projections status`
prints each projection's position, and `headwater projections rebuild`
rebuilds from zero with a progress bar, whether it does the work itself or
watches the process that holds the projections."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Final

from infrastructure.projections.catalog import NAMES
from infrastructure.projections.runner import Projector
from tests.conftest import TEST_SECRET_KEY
from tests.readside.conftest import OPEN, World, caught_up, leases_for
from tests.support.server import environment, headwater_command

COMMAND_SECONDS: Final = 60
STATUS_LINE: Final = re.compile(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(.*)$")


def headwater(world: World, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run `headwater <arguments>` on the world's store, to completion."""
    settings = world.container.settings
    return subprocess.run(
        [*headwater_command(), *arguments],
        cwd=settings.home,
        env=environment(
            {
                "HEADWATER_DATABASE_URL": settings.database_url,
                "HEADWATER_SECRET_KEY": TEST_SECRET_KEY,
            }
        ),
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )


def fill(world: World, submissions: int = 40) -> None:
    """Profiles and events enough for a rebuild to have some work."""
    integration = world.endpoints.open(OPEN)
    for number in range(submissions):
        world.public.accepted(
            integration,
            [
                {"profile": {"email": f"p{number}@example.com", "firstname": "A"}},
                {"event": {"type": "visit", "data": {"n": number}}},
            ],
        )


def generations(world: World) -> dict[str, int]:
    return {
        name: world.container.registry.state(name).live_generation for name in NAMES
    }


def status_lines(output: str) -> dict[str, tuple[int, int, int]]:
    """projection -> (position, head, lag), from `projections status`."""
    found = {}
    for line in output.splitlines()[1:]:
        match = STATUS_LINE.match(line)
        assert match is not None, line
        name, position, head, lag, _ = match.groups()
        found[name] = (int(position), int(head), int(lag))
    return found


def test_status_prints_each_projections_position_the_head_and_the_lag(
    still: World,
) -> None:
    fill(still, submissions=3)
    leases = leases_for(still.container)
    try:
        projector = Projector(
            still.container.registry, still.container.events, leases, NAMES
        )
        while projector.step([name for name in NAMES if leases.try_acquire(name)]):
            pass
    finally:
        leases.close()
    reached = still.container.events.head()
    fill(still, submissions=2)
    head = still.container.events.head()

    finished = headwater(still, "projections", "status")

    assert finished.returncode == 0, finished.stderr
    assert status_lines(finished.stdout) == dict.fromkeys(
        NAMES, (reached, head, head - reached)
    )


def test_rebuild_all_shows_its_progress_until_every_projection_has_switched(
    still: World,
) -> None:
    fill(still)
    head = still.container.events.head()

    finished = headwater(still, "projections", "rebuild", "all")

    assert finished.returncode == 0, finished.stderr
    assert re.search(r"\[[# ]{30}\] .* events/s  ETA ", finished.stderr)
    assert f"rebuilt {', '.join(NAMES)} through position {head}" in finished.stderr
    assert generations(still) == dict.fromkeys(NAMES, 2)
    assert {
        name: still.container.registry.state(name).live_position for name in NAMES
    } == dict.fromkeys(NAMES, head)


def test_rebuild_watches_while_the_process_holding_the_projection_rebuilds_it(
    world: World,
) -> None:
    fill(world)
    caught_up(world.container)

    finished = headwater(world, "projections", "rebuild", "audit")

    assert finished.returncode == 0, finished.stderr
    assert generations(world)["audit"] == 2
    assert world.container.registry.state("audit").live_position == (
        world.container.events.head()
    )


def test_rebuilding_an_unknown_projection_names_the_known_ones(
    tmp_path: Path,
) -> None:
    finished = subprocess.run(
        [*headwater_command(), "projections", "rebuild", "nonsense"],
        cwd=tmp_path,
        env=environment({"HEADWATER_SECRET_KEY": TEST_SECRET_KEY}),
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )

    assert finished.returncode == 2
    assert "nonsense" in finished.stderr
    assert all(name in finished.stderr for name in NAMES)
