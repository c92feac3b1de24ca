"""Two `headwater serve` processes sharing one PostgreSQL store, each with its
own writer, under load (CONTRACT 2.3: concurrent submissions with the same
new identifying value create exactly one profile; 2.4: N identical requests
inside the dedupe window, concurrent or not, apply once; 5: any number of
processes share one database)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.faults.conftest import Admin, Deployment, Headwater, Json
from tests.faults.ledger import (
    LOAD_CONFIGURATION,
    Load,
    Readback,
    pages,
    signup,
    submit_at_once,
)

#: Requests sent at once, half to each server.
AT_ONCE = 16


@dataclass
class TwoServers:
    servers: list[str]
    admin: Admin
    #: What the background load submits to.
    busy: Json
    load: Load


@pytest.fixture
def two_servers(
    deployment: Deployment, admin_of: Callable[[Headwater, str], Admin]
) -> Iterator[TwoServers]:
    """Two servers on one store, both busy with a background load."""
    first = deployment.serve()
    second = deployment.serve()
    assert first.admin_token is not None
    assert first.base_url is not None
    assert second.base_url is not None
    admin = admin_of(first, first.admin_token)
    busy = admin.open_integration(LOAD_CONFIGURATION)
    servers = [first.base_url, second.base_url]
    with Load(servers, busy["endpointId"], workers=4) as load:
        load.wait_for(40, since=0, within=30)
        yield TwoServers(servers, admin, busy, load)


def test_identical_submissions_sent_to_two_servers_at_once_are_accepted_once(
    two_servers: TwoServers,
) -> None:
    deduplicating = two_servers.admin.open_integration(
        {**LOAD_CONFIGURATION, "dedupePeriodSeconds": 600}
    )
    body = signup(f"same-{uuid.uuid4().hex}@faults.example", 1)

    answers = submit_at_once(
        two_servers.servers,
        f"/v5/endpoints/{deduplicating['endpointId']}",
        [body] * AT_ONCE,
    )
    readback = Readback.of(two_servers.admin)

    assert [a.status_code for a in answers] == [200] * AT_ONCE
    recorded = [
        e
        for e in readback.of_type("SubmissionAccepted", "SubmissionDeduplicated")
        if e["data"]["integrationId"] == deduplicating["id"]
    ]
    accepted = [e for e in recorded if e["type"] == "SubmissionAccepted"]
    assert len(accepted) == 1
    assert len(recorded) == AT_ONCE
    assert {a.json()["submissionId"] for a in answers} == {accepted[0]["aggregateId"]}
    assert sorted(a.json()["duplicate"] for a in answers) == [False] + [True] * (
        AT_ONCE - 1
    )


def test_one_new_email_sent_to_two_servers_at_once_creates_one_profile(
    two_servers: TwoServers,
) -> None:
    email = f"first-{uuid.uuid4().hex}@faults.example"

    answers = submit_at_once(
        two_servers.servers,
        f"/v5/endpoints/{two_servers.busy['endpointId']}",
        [signup(email, attempt) for attempt in range(AT_ONCE)],
    )
    readback = Readback.of(two_servers.admin)

    assert [a.status_code for a in answers] == [200] * AT_ONCE
    submissions = {a.json()["submissionId"] for a in answers}
    registered = [
        e
        for e in readback.of_type("SubscriberRegistered")
        if e["data"]["submissionId"] in submissions
    ]
    assert len(registered) == 1
    subscribers = {a.json()["results"][0]["subscriberId"] for a in answers}
    assert subscribers == {registered[0]["aggregateId"]}
    given_the_email = {
        e["aggregateId"]
        for e in readback.of_type("ProfileChanged")
        if e["data"]["changes"].get("email", {}).get("to") == email
    }
    assert given_the_email == subscribers
    through = max(a.json()["position"] for a in answers)
    profiles = pages(
        two_servers.admin, "/admin/v1/subscribers", {"minPosition": str(through)}
    )
    assert [p["id"] for p in profiles if p["email"] == email] == list(subscribers)
