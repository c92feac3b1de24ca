"""Rebuild: every projection from zero over a large log, against a raw read.

    python -m bench.rebuild --store postgres --events 1000000

Fills a fresh store through the real write path (the submission writer, with
personal-data sealing and the hash chain), then measures in one run:

- a raw read of the events table: read and decode the JSON, nothing else;
- catching every projection up from zero (the live runner);
- a rebuild of every projection beside the live ones (`rebuild all`);
- the peak memory of `headwater events export` over the whole log.

Results go to bench/results/rebuild-<store>.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from api.bootstrap import Container, build
from api.settings import Settings
from application.submissions import Answer, RequestFacts
from bench.common import SECRET_KEY, environment, fresh_store, save_run
from domain.integration import Integration, SecretUpdate
from domain.model import Actor
from infrastructure.projections.catalog import NAMES
from infrastructure.projections.runner import Supervisor

IN_FLIGHT = 256
PAGE = 5000


def active_integration(container: Container) -> Integration:
    integrations = container.integrations
    created = integrations.create(
        name="Rebuild",
        integration_type="v5-api-endpoint-unauthenticated",
        actor=Actor.system(),
    )
    integration_id = created.integration.id
    integrations.save_changes(
        integration_id,
        {
            "name": "Rebuild",
            "allowProfileCreation": True,
            "allowProfileUpdates": True,
            "allowEventLogging": True,
        },
        secret=SecretUpdate.keep(),
        expected_version=None,
        actor=Actor.system(),
    )
    integrations.activate(integration_id, actor=Actor.system())
    return integrations.get(integration_id)


def fill(container: Container, integration: Integration, target_events: int) -> int:
    """Submit until the log holds `target_events` events; answers the head."""
    number = container.events.head()
    pending: list[Future[Answer]] = []
    started = time.monotonic()
    while container.events.head() < target_events:
        for _ in range(IN_FLIGHT):
            number += 1
            email = (
                f"person-{number}@bench.example"
                if number % 2
                else (f"repeat-{number % 5000}@bench.example")
            )
            body = [
                {
                    "profile": {
                        "email": email,
                        "firstname": f"Name{number % 977}",
                        "lists": [{"listId": 7, "subscribedTimestamp": True}],
                    }
                },
                {"event": {"type": "signup", "data": {"page": "/offers", "n": number}}},
            ]
            facts = RequestFacts(
                endpoint_id=integration.endpoint_id,
                mode="production",
                received_at=datetime.now(UTC),
                client_ip="192.0.2.1",
                user_agent="bench",
                idempotency_key=None,
                body_digest=container.fingerprints.of("body", orjson.dumps(body)),
                detailed=False,
            )
            pending.append(
                container.writer.submit(
                    container.intake.prepare(integration, facts, body)
                )
            )
        for future in pending:
            future.result()
        pending.clear()
        head = container.events.head()
        rate = head / max(time.monotonic() - started, 1e-6)
        print(f"\rfilled {head:,} events ({rate:,.0f}/s)", end="", file=sys.stderr)
    print(file=sys.stderr)
    return container.events.head()


def raw_read(container: Container) -> float:
    """Events per second for reading and decoding the JSON of every event."""
    recorder = container.events.application.recorder
    started = time.perf_counter()
    after, count = 0, 0
    while True:
        page = recorder.select_notifications(
            start=after, limit=PAGE, inclusive_of_start=False
        )
        if not page:
            break
        for notification in page:
            orjson.loads(notification.state)
        count += len(page)
        after = page[-1].id
    return count / (time.perf_counter() - started)


def project(container: Container, *, rebuild: bool) -> float:
    """Events per second to bring every projection to the head."""
    head = container.events.head()
    if rebuild:
        for name in NAMES:
            container.read_side.rebuild(name)
    supervisor = Supervisor(container.projector)
    started = time.perf_counter()
    supervisor.start()
    try:
        while True:
            states = container.read_side.status()
            done = all(s["position"] >= head and s["rebuild"] is None for s in states)
            if done:
                break
            time.sleep(0.2)
    finally:
        supervisor.stop()
    return head / (time.perf_counter() - started)


#: The exporting process's own peak resident memory. Not `ru_maxrss`: on
#: Linux that survives exec, so a child started from a large process reports
#: its parent's size at the fork.
PEAK_OF_THIS_PROCESS = (
    "from pathlib import Path\n"
    "status = Path('/proc/self/status').read_text().splitlines()\n"
    "print(next(l for l in status if l.startswith('VmHWM:')).split()[1])\n"
)


def export_memory(url: str, folder: Path) -> dict[str, float]:
    """Peak memory and time of `headwater events export` over the whole log,
    measured by the exporting process itself."""
    started = time.perf_counter()
    output = subprocess.run(
        [
            sys.executable,
            "-c",
            "from api.cli import main\n"
            "main(['events', 'export', '--output', '/dev/null'])\n"
            + PEAK_OF_THIS_PROCESS,
        ],
        cwd=folder,
        env=environment(url),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return {
        "seconds": time.perf_counter() - started,
        "peak_rss_mib": int(output[-1]) / 1024,
    }


def measure(kind: str, events: int) -> dict[str, Any]:
    with fresh_store(kind) as (url, folder):
        settings = Settings(database_url=url, secret_key=SECRET_KEY, home=folder)
        container = build(settings)
        try:
            # Export memory at half the log and at all of it: it must not
            # grow with the log. (Below some 400,000 events of this fill it is
            # smaller: the key cache, at most 50,000 keys, is still filling.)
            integration = active_integration(container)
            fill(container, integration, events // 2)
            export_half = export_memory(url, folder)
            head = fill(container, integration, events)
            export_all = export_memory(url, folder)
            raw = raw_read(container)
            catch_up = project(container, rebuild=False)
            rebuilt = project(container, rebuild=True)
        finally:
            container.close()
    return {
        "events": head,
        "raw_read_events_per_second": raw,
        "catch_up_events_per_second": catch_up,
        "rebuild_events_per_second": rebuilt,
        "rebuild_to_raw_ratio": rebuilt / raw,
        "export_of_half": export_half,
        "export_of_all": export_all,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--events", type=int, default=1_000_000)
    arguments = parser.parse_args()
    threading.current_thread().name = "bench"
    result = measure(arguments.store, arguments.events)
    path = save_run("rebuild", arguments.store, "events", arguments.events, result)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
