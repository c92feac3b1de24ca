"""What the benchmarks share: stores, servers, the load generator, machine facts."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
POSTGRES_SERVER = os.environ.get(
    "HEADWATER_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SECRET_KEY = "bench-deployment-key-0123456789abcdefghij"
INTEGRATION = {
    "name": "Benchmark",
    "allowProfileCreation": True,
    "allowProfileUpdates": True,
    "allowEventLogging": True,
}
TOKEN_LINE = re.compile(r"^\s+(hw_[A-Za-z0-9_-]+)\s*$")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0
    with suppress(OSError, ValueError):
        memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    postgres = subprocess.run(
        ["psql", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mib": memory,
        "python": platform.python_version(),
        "postgres": postgres,
        "sqlite": __import__("sqlite3").sqlite_version,
        "kernel": platform.release(),
    }


@contextmanager
def fresh_store(kind: str) -> Iterator[tuple[str, Path]]:
    """(HEADWATER_DATABASE_URL, work folder) of an empty store, removed after."""
    folder = Path(tempfile.mkdtemp(prefix="headwater-bench-"))
    name = f"headwater_bench_{uuid.uuid4().hex[:8]}"
    try:
        if kind == "sqlite":
            yield f"sqlite:///{folder}/var/headwater.db", folder
        else:
            with psycopg.connect(POSTGRES_SERVER, autocommit=True) as connection:
                connection.execute(f'CREATE DATABASE "{name}"'.encode())
            yield f"{POSTGRES_SERVER.rsplit('/', 1)[0]}/{name}", folder
    finally:
        if kind != "sqlite":
            with psycopg.connect(POSTGRES_SERVER, autocommit=True) as connection:
                connection.execute(
                    f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode()
                )
        shutil.rmtree(folder, ignore_errors=True)


def environment(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.update(
        HEADWATER_DATABASE_URL=url,
        HEADWATER_SECRET_KEY=SECRET_KEY,
        HEADWATER_RATE_LIMIT="0",
        **extra,
    )
    return env


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    token: str | None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def peak_rss_mib(self) -> float:
        """The highest resident memory of the server process so far."""
        try:
            for line in (
                Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
            ):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0


def start(
    command: list[str], env: dict[str, str], cwd: Path, port: int, health: str
) -> Server:
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command} exited with {process.returncode}")
        try:
            if httpx.get(url + health, timeout=1).status_code < 500:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    token = None
    if "serve" in command and process.stdout is not None:
        for line in process.stdout:
            match = TOKEN_LINE.match(line)
            if match:
                token = match.group(1)
            if line.startswith("Press Ctrl+C"):
                break
    return Server(process, url, token)


def start_headwater(
    url: str, cwd: Path, port: int, *arguments: str, **extra: str
) -> Server:
    command = [
        sys.executable,
        "-m",
        "api.cli",
        "serve",
        "--port",
        str(port),
        *arguments,
    ]
    return start(command, environment(url, **extra), cwd, port, "/healthz")


def start_peer(store: str, cwd: Path, port: int) -> Server:
    command = [
        sys.executable,
        "-m",
        "bench.peers.plain",
        "--store",
        store,
        "--port",
        str(port),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return start(command, env, cwd, port, "/submit")


def active_endpoint(server: Server) -> str:
    """Create, save and activate a benchmark integration; its production path."""
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        created = client.post(
            "/admin/v1/integrations",
            json={"name": "Benchmark", "type": "v5-api-endpoint-unauthenticated"},
        ).json()
        client.put(f"/admin/v1/integrations/{created['id']}", json=INTEGRATION)
        client.post(f"/admin/v1/integrations/{created['id']}/activate")
    return f"/v5/endpoints/{created['endpointId']}"


def wrk(url: str, path: str, *, connections: int, seconds: int) -> dict[str, Any]:
    """Run wrk with the submissions script; its RESULT line as a dict."""
    command = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(ROOT / "bench" / "submissions.lua"),
        url,
        "--",
        path,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(row for row in output.splitlines() if row.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    result["rps"] = result["requests"] / result["seconds"]
    return result


def save(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def save_run(kind: str, store: str, option: str, value: int, results: Any) -> Path:
    """Save a benchmark's results as bench/results/<kind>-<store>.json, with
    the machine and the command that produced them."""
    return save(
        f"{kind}-{store}",
        {
            "machine": machine(),
            "command": f"python -m bench.{kind} --store {store} --{option} {value}",
            "results": results,
        },
    )
