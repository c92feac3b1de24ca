"""Live projection lag at half the maximum ingest rate.

    python -m bench.lag --store postgres --seconds 20

Finds the maximum ingest rate with wrk, then sends submissions at half that
rate, evenly spaced, and measures for each accepted submission how long after
its answer every projection had applied its position. Results go to
bench/results/lag-<store>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.common import (
    active_endpoint,
    fresh_store,
    save_run,
    start_headwater,
    wrk,
)

PORT = 8183
SLOWEST = (
    "SELECT min(t.position) FROM projection_tracking t JOIN projection_state s"
    " ON s.name = t.name AND s.live_generation = t.generation"
)


class Watcher:
    """Polls the slowest live projection's position every few milliseconds."""

    def __init__(self, url: str, folder: Path) -> None:
        self._url = url
        self._folder = folder
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        if self._url.startswith("postgres"):
            with psycopg.connect(self._url, autocommit=True) as connection:
                while not self._stop.is_set():
                    row = connection.execute(SLOWEST).fetchone()
                    self.samples.append(
                        (time.monotonic(), int(row[0] or 0) if row else 0)
                    )
                    time.sleep(0.002)
        else:
            path = self._folder / "var" / "headwater-readmodels.db"
            database = sqlite3.connect(path)
            while not self._stop.is_set():
                found = database.execute(SLOWEST).fetchone()
                self.samples.append(
                    (time.monotonic(), int(found[0] or 0) if found else 0)
                )
                time.sleep(0.002)
            database.close()

    def applied_after(self, position: int, answered: float) -> float | None:
        """Seconds from `answered` until the position was seen applied."""
        for moment, reached in self.samples:
            if moment >= answered and reached >= position:
                return moment - answered
        return None


async def steady_load(
    url: str, path: str, rate: float, seconds: int
) -> list[tuple[float, int]]:
    """(answered at, position) of each accepted submission sent at `rate`/s."""
    answers: list[tuple[float, int]] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def send(number: int) -> None:
            body = [
                {
                    "profile": {
                        "email": f"steady-{number}@bench.example",
                        "firstname": "Ann",
                        "lists": [{"listId": 7, "subscribedTimestamp": True}],
                    }
                },
                {"event": {"type": "signup", "data": {"page": "/offers"}}},
            ]
            response = await client.post(path, json=body)
            if response.status_code == 200:
                answers.append((time.monotonic(), response.json()["position"]))

        tasks = []
        started = time.monotonic()
        for number in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, started + number / rate - time.monotonic()))
            tasks.append(asyncio.create_task(send(number)))
        await asyncio.gather(*tasks)
    return answers


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(kind: str, seconds: int) -> dict[str, Any]:
    with fresh_store(kind) as (url, folder):
        server = start_headwater(url, folder, PORT)
        try:
            path = active_endpoint(server)
            peak = wrk(server.url, path, connections=16, seconds=10)["rps"]
            rate = peak / 2
            with Watcher(url, folder) as watcher:
                answers = asyncio.run(steady_load(server.url, path, rate, seconds))
                time.sleep(2)
            lags = [
                lag
                for answered, position in answers
                if (lag := watcher.applied_after(position, answered)) is not None
            ]
        finally:
            server.stop()
    return {
        "max_rps": peak,
        "rate": rate,
        "submissions": len(answers),
        "measured": len(lags),
        "lag_p50_ms": percentile(lags, 0.50) * 1000,
        "lag_p99_ms": percentile(lags, 0.99) * 1000,
        "lag_max_ms": max(lags) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--seconds", type=int, default=20)
    arguments = parser.parse_args()
    result = measure(arguments.store, arguments.seconds)
    path = save_run("lag", arguments.store, "seconds", arguments.seconds, result)
    print(result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
