"""Ingest: Headwater against the plain peer, side by side, in one run.

    python -m bench.ingest --store postgres --seconds 30

The same wrk load (production submissions: a profile with a list
subscription, and an event; half fresh emails, half repeating) goes to
Headwater and then to the plain peer, at 16 and 64 connections, each on a
fresh store. Results go to bench/results/ingest-<store>.json.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.common import (
    active_endpoint,
    fresh_store,
    save_run,
    start_headwater,
    start_peer,
    wrk,
)

HEADWATER_PORT = 8181
PEER_PORT = 8182
WARM_UP_SECONDS = 5


def measure(kind: str, seconds: int, connections: list[int]) -> dict[str, Any]:
    rows: dict[str, Any] = {"headwater": {}, "peer": {}}
    for count in connections:
        with fresh_store(kind) as (url, folder):
            server = start_headwater(url, folder, HEADWATER_PORT)
            try:
                path = active_endpoint(server)
                wrk(server.url, path, connections=count, seconds=WARM_UP_SECONDS)
                result = wrk(server.url, path, connections=count, seconds=seconds)
                result["peak_rss_mib"] = server.peak_rss_mib()
                rows["headwater"][str(count)] = result
            finally:
                server.stop()
        with fresh_store(kind) as (url, folder):
            store = url if kind == "postgres" else str(folder / "peer.db")
            peer = start_peer(store, folder, PEER_PORT)
            try:
                wrk(peer.url, "/submit", connections=count, seconds=WARM_UP_SECONDS)
                result = wrk(peer.url, "/submit", connections=count, seconds=seconds)
                result["peak_rss_mib"] = peer.peak_rss_mib()
                rows["peer"][str(count)] = result
            finally:
                peer.stop()
        time.sleep(1)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    arguments = parser.parse_args()
    rows = measure(arguments.store, arguments.seconds, arguments.connections)
    path = save_run("ingest", arguments.store, "seconds", arguments.seconds, rows)
    for name, by_connections in rows.items():
        for count, result in by_connections.items():
            print(
                f"{arguments.store} {name:9} c={count:>3}: {result['rps']:8.0f} req/s"
                f"  p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms"
                f"  non-2xx {result['non2xx']}"
            )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
