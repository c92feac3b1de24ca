"""A load of production submissions, the clients' ledger of every answer, and
the checks that hold the store and the read models to that ledger.

The load is what a busy signup form sends: a profile with a list
subscription and an event, for a mix of fresh emails and emails seen before.
Each worker thread posts back to back and writes down what it was told: the
status, the submission id, the position, the subscriber, and `Retry-After`.
A request that got no answer at all (refused, cut or timed out) is written
down too, with no status.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import count
from typing import Any, Final

import httpx
import orjson

from tests.faults.conftest import Admin, Json, eventually

#: The integration the load submits to: it may create and update profiles
#: and log events, and its answers name the subscriber.
LOAD_CONFIGURATION: Final[Json] = {
    "allowProfileCreation": True,
    "allowProfileUpdates": True,
    "allowEventLogging": True,
    "detailedResponses": True,
}
CLIENT_TIMEOUT_SECONDS: Final = 20.0
#: Emails that come back again and again, next to fresh ones.
REPEATING_EMAILS: Final = 16
#: Every third submission repeats an email.
REPEAT_EVERY: Final = 3
PAUSE_AFTER_FAILURE_SECONDS: Final = 0.05
PAGE: Final = 500


def signup(email: str, attempt: int) -> list[Json]:
    """A production submission: a profile on list 7, and a signup event."""
    return [
        {
            "profile": {
                "email": email,
                "firstname": f"Name{attempt % 5}",
                "lists": [{"listId": 7, "subscribedTimestamp": True}],
            }
        },
        {"event": {"type": "signup", "data": {"attempt": attempt}}},
    ]


@dataclass(frozen=True)
class Answered:
    """One request, and what its client was told."""

    email: str
    server: str
    sent_at: float
    answered_at: float
    #: None: no answer at all (connection refused, cut, or timed out).
    status: int | None
    submission_id: str | None = None
    subscriber_id: str | None = None
    position: int | None = None
    duplicate: bool = False
    retry_after: str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def answered(
    answer: httpx.Response, *, email: str, server: str, sent_at: float
) -> Answered:
    """The ledger line for an HTTP answer."""
    common: dict[str, Any] = {
        "email": email,
        "server": server,
        "sent_at": sent_at,
        "answered_at": time.monotonic(),
        "status": answer.status_code,
        "retry_after": answer.headers.get("retry-after"),
    }
    if not answer.is_success:
        return Answered(**common)
    body = answer.json()
    return Answered(
        **common,
        submission_id=body["submissionId"],
        subscriber_id=body["results"][0].get("subscriberId"),
        position=body["position"],
        duplicate=body["duplicate"],
    )


@dataclass
class Ledger:
    """Every answer the clients got, in the order they got them."""

    _entries: list[Answered] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, entry: Answered) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[Answered]:
        with self._lock:
            return list(self._entries)

    def acknowledged(self) -> list[Answered]:
        return [e for e in self.entries() if e.acknowledged]

    def acknowledged_since(self, moment: float) -> int:
        return sum(1 for e in self.entries() if e.acknowledged and e.sent_at >= moment)

    def statuses(self) -> Counter[int | None]:
        return Counter(e.status for e in self.entries())


class Load:
    """Worker threads that post submissions back to back until stopped."""

    def __init__(
        self,
        servers: Sequence[str],
        endpoint_id: str,
        *,
        workers: int = 6,
    ) -> None:
        self.ledger = Ledger()
        self._servers = list(servers)
        self._path = f"/v5/endpoints/{endpoint_id}"
        self._stop = threading.Event()
        self._attempts = count()
        self._threads = [
            threading.Thread(
                target=self._work, args=(n,), name=f"load-{n}", daemon=True
            )
            for n in range(workers)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT_SECONDS + 5)

    def wait_for(self, acknowledged: int, *, since: float, within: float) -> None:
        """Wait until `acknowledged` requests sent after `since` got a 2xx."""
        reached = eventually(
            lambda: self.ledger.acknowledged_since(since) >= acknowledged,
            within=within,
            every=0.05,
        )
        assert reached, (
            f"fewer than {acknowledged} submissions acknowledged in {within} s:"
            f" {self.ledger.statuses()}"
        )

    def _work(self, worker: int) -> None:
        server = self._servers[worker % len(self._servers)]
        with httpx.Client(base_url=server, timeout=CLIENT_TIMEOUT_SECONDS) as client:
            while not self._stop.is_set():
                attempt = next(self._attempts)
                if attempt % REPEAT_EVERY == 0:
                    email = f"repeat-{attempt % REPEATING_EMAILS}@faults.example"
                else:
                    email = f"fresh-{uuid.uuid4().hex}@faults.example"
                sent_at = time.monotonic()
                try:
                    answer = client.post(self._path, json=signup(email, attempt))
                except httpx.TransportError:
                    self.ledger.write(
                        Answered(email, server, sent_at, time.monotonic(), None)
                    )
                    self._stop.wait(PAUSE_AFTER_FAILURE_SECONDS)
                    continue
                self.ledger.write(
                    answered(answer, email=email, server=server, sent_at=sent_at)
                )
                if not answer.is_success:
                    self._stop.wait(PAUSE_AFTER_FAILURE_SECONDS)


# -- reading back what was recorded


@dataclass(frozen=True)
class Readback:
    """The whole event log, as `GET /admin/v1/events` streams it."""

    events: list[Json]

    @classmethod
    def of(cls, admin: Admin) -> Readback:
        answer = admin.client.get("/admin/v1/events")
        assert answer.status_code == 200, answer.text
        return cls([orjson.loads(line) for line in answer.content.splitlines()])

    def of_type(self, *types: str) -> Iterator[Json]:
        return (e for e in self.events if e["type"] in types)

    @property
    def accepted(self) -> dict[str, Json]:
        """SubmissionAccepted events by submission id."""
        return {e["aggregateId"]: e for e in self.of_type("SubmissionAccepted")}


def unstored(ledger: Ledger, readback: Readback) -> list[Answered]:
    """Acknowledged submissions that have no SubmissionAccepted event."""
    accepted = readback.accepted
    return [
        entry
        for entry in ledger.acknowledged()
        if not entry.duplicate and entry.submission_id not in accepted
    ]


def half_applied(readback: Readback) -> list[str]:
    """Submissions of which some events were recorded and others not.

    An accepted submission must have every change its results report: a
    registration and a profile change for a created profile, a profile change
    for an updated one, the logged event. And every change a submission
    caused must belong to a submission that was recorded as accepted.
    """
    registered = {
        (e["aggregateId"], e["data"]["submissionId"])
        for e in readback.of_type("SubscriberRegistered")
    }
    changed = {
        (e["aggregateId"], e["data"]["submissionId"])
        for e in readback.of_type("ProfileChanged")
    }
    logged = {
        (e["data"]["subscriberId"], e["aggregateId"])
        for e in readback.of_type("EventLogged")
    }
    accepted = readback.accepted
    problems = []
    for submission_id, event in accepted.items():
        for result in event["data"]["results"]:
            pair = (result["subscriberId"], submission_id)
            needed: list[tuple[str, set[tuple[str, str]]]] = []
            if result["kind"] == "profile" and result["outcome"] == "created":
                needed = [
                    ("SubscriberRegistered", registered),
                    ("ProfileChanged", changed),
                ]
            elif result["kind"] == "profile" and result["outcome"] == "updated":
                needed = [("ProfileChanged", changed)]
            elif result["kind"] == "event" and result["outcome"] == "logged":
                needed = [("EventLogged", logged)]
            problems += [
                f"submission {submission_id} reports {result['outcome']} for"
                f" {result['subscriberId']} but has no {kind}"
                for kind, found in needed
                if pair not in found
            ]
    for event in readback.events:
        if event["type"].startswith("Submission"):
            continue
        cause = (
            event["aggregateId"]
            if event["type"] == "EventLogged"
            else event["data"].get("submissionId")
        )
        if cause is not None and cause not in accepted:
            problems.append(
                f"{event['type']} at {event['position']} belongs to submission"
                f" {cause}, which was never recorded as accepted"
            )
    return problems


def unprojected(admin: Admin, ledger: Ledger) -> list[str]:
    """Acknowledged submissions missing from the audit trail, and emails whose
    profile lookup does not find the subscriber the answers named."""
    acknowledged = [e for e in ledger.acknowledged() if not e.duplicate]
    through = max((e.position or 0 for e in acknowledged), default=0)
    audited = {
        entry["subjectId"]
        for entry in pages(
            admin,
            "/admin/v1/audit",
            {"action": "SubmissionAccepted", "minPosition": str(through)},
        )
    }
    problems = [
        f"submission {e.submission_id} (position {e.position}) has no audit entry"
        for e in acknowledged
        if e.submission_id not in audited
    ]
    named: dict[str, set[str | None]] = {}
    for entry in acknowledged:
        named.setdefault(entry.email, set()).add(entry.subscriber_id)
    for email, subscribers in named.items():
        found = admin.client.get(
            "/admin/v1/subscribers",
            params={"email": email, "minPosition": str(through)},
        )
        assert found.status_code == 200, found.text
        ids = {item["id"] for item in found.json()["items"]}
        if len(subscribers) != 1 or ids != subscribers:
            problems.append(
                f"{email}: answers named {sorted(map(str, subscribers))},"
                f" the profile lookup finds {sorted(ids)}"
            )
    return problems


def pages(admin: Admin, path: str, params: dict[str, str]) -> Iterator[Json]:
    """Every item of a paged admin list."""
    cursor: str | None = None
    while True:
        query = {**params, "limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
        answer = admin.client.get(path, params=query)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        yield from page["items"]
        cursor = page["nextCursor"]
        if cursor is None:
            return


def submit_at_once(
    servers: Sequence[str], path: str, bodies: Sequence[Json | list[Json]]
) -> list[httpx.Response]:
    """Post each body from a client of its own, alternating between the
    servers, all released together once every connection is open."""
    barrier = threading.Barrier(len(bodies))
    answers: list[httpx.Response | None] = [None] * len(bodies)

    def post(index: int) -> None:
        server = servers[index % len(servers)]
        with httpx.Client(base_url=server, timeout=CLIENT_TIMEOUT_SECONDS) as client:
            client.get("/healthz")
            barrier.wait(timeout=30)
            answers[index] = client.post(path, json=bodies[index])

    threads = [threading.Thread(target=post, args=(n,)) for n in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(CLIENT_TIMEOUT_SECONDS + 35)
    missing = [n for n, a in enumerate(answers) if a is None]
    assert not missing, f"requests {missing} got no answer"
    return [a for a in answers if a is not None]


def waiting(check: Callable[[], bool], *, within: float) -> float | None:
    """Seconds until `check` held, or None if it did not within `within`."""
    started = time.monotonic()
    if eventually(check, within=within, every=0.05):
        return time.monotonic() - started
    return None
