"""Where the time goes under the ingest load: CPU by process, and a py-spy
profile of the server.

    python -m bench.profile --store postgres --seconds 20

First the CPU each process uses per request, for the plain peer and for
Headwater, each on a fresh store under the ingest benchmark's wrk load at
16 connections: the server, its children (the projector), PostgreSQL, and
the rest of the machine. Then, under the same load, py-spy samples the
server process (not the projector) 100 times a second, keeping only samples
of the thread that holds the interpreter lock (`--gil`): the share of time
the lock is busy, where it is spent by function and by layer, and the time
under a few milestones of a request. Results go to
bench/results/profile-<store>.json; the raw stacks go beside it for a flame
graph (`*.folded`, not committed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import (
    RESULTS,
    Server,
    active_endpoint,
    fresh_store,
    save_run,
    start_headwater,
    start_peer,
    wrk,
)
from bench.ingest import HEADWATER_PORT, PEER_PORT, WARM_UP_SECONDS

CONNECTIONS = 16
RATE = 100
#: Layers by the first folder of the file a frame runs in, as py-spy names
#: it (relative to the working directory or to site-packages).
LAYERS = {
    "api": "Headwater: api/",
    "application": "Headwater: application/",
    "domain": "Headwater: domain/",
    "infrastructure": "Headwater: infrastructure/",
    "psycopg": "psycopg and its pool",
    "psycopg_pool": "psycopg and its pool",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "eventsourcing": "eventsourcing",
    "starlette": "starlette",
    "hypercorn": "hypercorn and h11",
    "h11": "hypercorn and h11",
    "asyncio": "asyncio",
    "prometheus_client": "prometheus-client",
    "cryptography": "cryptography (sealing)",
}
#: Functions whose time, callees included, tells where a request's time goes.
MILESTONES = (
    "SubmissionWriter._run",
    "SubmissionWriter._prefetch",
    "Decider.decide",
    "LibraryEventStore.record",
    "PydanticMapper.to_stored_event",
    "Intake.prepare",
    "MetricsMiddleware.__call__",
    "Router.__call__",
    "submit_production",
    "read_limited",
    "H11Protocol.handle",
    "H11Protocol.stream_send",
)


def layer_of(frame: str) -> str:
    """The layer of a frame such as `handle (api/http/app.py:12)`."""
    where = frame.rpartition("(")[2].rpartition(":")[0]
    return LAYERS.get(where.split("/")[0], "Python's library and the rest")


def summarise(folded: Path) -> dict[str, Any]:
    """Own time per function and per layer, from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    under: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        leaf = frames[-1]
        own[leaf] += count
        layers[layer_of(leaf)] += count
        for name in {frame.partition(" (")[0] for frame in frames}:
            if name in MILESTONES:
                under[name] += count

    def share(count: int) -> float:
        return round(100 * count / total, 1) if total else 0.0

    return {
        "samples": total,
        "own_time_by_layer_percent": {
            name: share(count) for name, count in layers.most_common()
        },
        "inclusive_percent": {
            name: share(under[name]) for name in MILESTONES if name in under
        },
        "top_functions_own_percent": [
            {"frame": frame, "percent": share(count)}
            for frame, count in own.most_common(20)
        ],
    }


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 of the line; 12 and 13 after ")".
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    )
    return [int(p) for p in found.stdout.split()]


def machine_busy_seconds() -> float:
    """CPU seconds every core has spent busy since boot."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_split(server: Server, path: str, seconds: int) -> dict[str, Any]:
    """CPU milliseconds per request, by process, under the load (no sampler):
    the server, its children (the projector), PostgreSQL, and the rest of
    the machine (mostly wrk)."""
    children = children_of(server.process.pid)
    postgres = [
        int(p)
        for p in subprocess.run(
            ["pgrep", "-x", "postgres"], capture_output=True, text=True, check=False
        ).stdout.split()
    ]
    groups = {
        "server": [server.process.pid],
        "children (projector)": children,
        "PostgreSQL": postgres,
    }

    def snapshot() -> dict[str, float]:
        taken = {name: sum(map(cpu_seconds, pids)) for name, pids in groups.items()}
        taken["machine"] = machine_busy_seconds()
        return taken

    before = snapshot()
    result = wrk(server.url, path, connections=CONNECTIONS, seconds=seconds)
    after = snapshot()
    used = {name: after[name] - before[name] for name in before}
    used["the rest (wrk)"] = used["machine"] - sum(used[name] for name in groups)
    requests = result["requests"]
    return {
        "rps": round(result["rps"], 1),
        "cpu_ms_per_request": {
            name: round(1000 * value / requests, 3) for name, value in used.items()
        },
    }


def measure(kind: str, seconds: int) -> dict[str, Any]:
    spy = shutil.which("py-spy") or str(Path(__file__).parents[1] / ".venv/bin/py-spy")
    folded = RESULTS / f"profile-{kind}.folded"
    RESULTS.mkdir(parents=True, exist_ok=True)
    with fresh_store(kind) as (url, folder):
        store = url if kind == "postgres" else str(folder / "peer.db")
        peer = start_peer(store, folder, PEER_PORT)
        try:
            wrk(peer.url, "/submit", connections=CONNECTIONS, seconds=WARM_UP_SECONDS)
            peer_cpu = cpu_split(peer, "/submit", seconds)
        finally:
            peer.stop()
    with fresh_store(kind) as (url, folder):
        server = start_headwater(url, folder, HEADWATER_PORT)
        try:
            path = active_endpoint(server)
            wrk(server.url, path, connections=CONNECTIONS, seconds=WARM_UP_SECONDS)
            headwater_cpu = cpu_split(server, path, seconds)
            record = [
                spy,
                "record",
                "--pid",
                str(server.process.pid),
                "--gil",
                "--rate",
                str(RATE),
                "--duration",
                str(seconds),
                "--format",
                "raw",
                "--output",
                str(folded),
                "--function",
                "--nonblocking",
            ]
            load: dict[str, Any] = {}

            def run_load() -> None:
                load.update(
                    wrk(server.url, path, connections=CONNECTIONS, seconds=seconds)
                )

            loader = threading.Thread(target=run_load)
            loader.start()
            subprocess.run(record, check=True, capture_output=True)
            loader.join()
        finally:
            server.stop()
    summary = summarise(folded)
    return {
        "connections": CONNECTIONS,
        "cpu": {"headwater": headwater_cpu, "peer": peer_cpu},
        "rps_while_sampled": round(load["rps"], 1),
        "interpreter_busy_percent": round(
            summary["samples"] / (RATE * seconds) * 100, 1
        ),
        **summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--seconds", type=int, default=20)
    arguments = parser.parse_args()
    result = measure(arguments.store, arguments.seconds)
    path = save_run("profile", arguments.store, "seconds", arguments.seconds, result)
    for name, percent in result["own_time_by_layer_percent"].items():
        print(f"{percent:5.1f}%  {name}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
