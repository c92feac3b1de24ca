"""PostgreSQL stopped under load for a few seconds, as a crash would stop it,
then started again (CONTRACT 2.4: 503 with Retry-After, nothing written; 3:
projections resume; 5: a database restart needs no service restart)."""

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
    waiting,
)

#: How long the database stays down, at least.
OUTAGE_SECONDS = 4.0
#: How soon after the database is back submissions must succeed again.
RECOVERY_SECONDS = 10.0
PROJECTION_SECONDS = 30.0


def test_a_database_outage_answers_503_with_retry_after_and_the_service_recovers_alone(
    deployment: Deployment, admin_of: Callable[[Headwater, str], Admin]
) -> None:
    server = deployment.serve()
    assert server.admin_token is not None
    assert server.base_url is not None
    admin = admin_of(server, server.admin_token)
    integration = admin.open_integration(LOAD_CONFIGURATION)

    with Load([server.base_url], integration["endpointId"]) as load:
        load.wait_for(100, since=0, within=30)
        deployment.postgres.crash()
        stopped_at = time.monotonic()
        noticed = waiting(lambda: load.ledger.statuses()[503] > 0, within=15)
        time.sleep(max(0.0, stopped_at + OUTAGE_SECONDS - time.monotonic()))
        deployment.postgres.start()
        back_at = time.monotonic()
        recovered = waiting(
            lambda: load.ledger.acknowledged_since(back_at) > 0,
            within=RECOVERY_SECONDS,
        )
        load.wait_for(100, since=back_at, within=30)
    admin.wait_until_caught_up(within=PROJECTION_SECONDS)
    readback = Readback.of(admin)

    entries = load.ledger.entries()
    assert noticed is not None, "no client was answered 503 while the database was down"
    assert recovered is not None, (
        f"no submission succeeded within {RECOVERY_SECONDS} s of the database's return"
    )
    unexpected = [
        e
        for e in entries
        if not e.acknowledged and (e.status != 503 or e.retry_after is None)
    ]
    assert unexpected == [], load.ledger.statuses()
    first_success = min(
        e.sent_at for e in entries if e.acknowledged and e.sent_at >= back_at
    )
    relapsed = [e for e in entries if e.sent_at > first_success and not e.acknowledged]
    assert relapsed == [], "submissions failed again after the service had recovered"
    assert unstored(load.ledger, readback) == []
    assert half_applied(readback) == []
    assert unprojected(admin, load.ledger) == []
    chain = admin.chain()
    assert chain["ok"], chain
    assert chain["unchained"] == 0, chain
