"""A `headwater serve` process killed with SIGKILL under load, then started
again on the same store (CONTRACT 2.4: a submission is all or nothing, and
only then answered 2xx; 3: projections resume after a crash)."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.faults.conftest import Admin, Deployment, Headwater
from tests.faults.ledger import (
    LOAD_CONFIGURATION,
    Load,
    Readback,
    half_applied,
    unprojected,
    unstored,
)

PROJECTION_SECONDS = 30.0


def test_killing_the_server_loses_no_acknowledged_submission_and_applies_none_by_half(
    deployment: Deployment, admin_of: Callable[[Headwater, str], Admin]
) -> None:
    server = deployment.serve()
    assert server.admin_token is not None
    assert server.base_url is not None
    integration = admin_of(server, server.admin_token).open_integration(
        LOAD_CONFIGURATION
    )
    port = int(server.base_url.rsplit(":", 1)[1])

    with Load([server.base_url], integration["endpointId"]) as load:
        load.wait_for(150, since=0, within=30)
        server.kill()
        killed_at = time.monotonic()
        restarted = deployment.serve(port=port)
        load.wait_for(100, since=killed_at, within=30)
    admin = admin_of(restarted, server.admin_token)
    admin.wait_until_caught_up(within=PROJECTION_SECONDS)
    readback = Readback.of(admin)

    acknowledged_before = [
        e for e in load.ledger.acknowledged() if e.answered_at < killed_at
    ]
    assert acknowledged_before, "nothing was acknowledged before the kill"
    assert unstored(load.ledger, readback) == []
    assert half_applied(readback) == []
    assert unprojected(admin, load.ledger) == []
    chain = admin.chain()
    assert chain["ok"], chain
    assert chain["unchained"] == 0, chain
