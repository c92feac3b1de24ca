"""A real `headwater serve` process, for tests that need a socket."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from api.server import STOP_HINT

TOKEN_LINE = re.compile(r"^\s+(hw_[A-Za-z0-9_-]+)\s*$")
STARTUP_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def headwater_command() -> list[str]:
    return [sys.executable, "-m", "api.cli"]


def environment(settings_env: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.update(settings_env)
    return env


@dataclass
class LiveServer:
    """A running service and what it printed when it started."""

    process: subprocess.Popen[str]
    base_url: str
    output: list[str] = field(default_factory=list)

    @property
    def admin_token(self) -> str | None:
        for line in self.output:
            match = TOKEN_LINE.match(line)
            if match:
                return match.group(1)
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.output += self.process.stdout.read().splitlines()
            self.process.stdout.close()


def start_server(
    cwd: Path,
    env: Mapping[str, str],
    *,
    port: int | None = None,
    arguments: tuple[str, ...] = (),
) -> LiveServer:
    """Start `headwater serve` and wait until /healthz answers."""
    port = port or free_port()
    process = subprocess.Popen(
        [*headwater_command(), "serve", "--port", str(port), *arguments],
        cwd=cwd,
        env=environment(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    server = LiveServer(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            server.stop()
            msg = f"headwater serve exited with {process.returncode}: {server.output}"
            raise RuntimeError(msg)
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        server.stop()
        raise RuntimeError("headwater serve did not answer /healthz in time")
    _read_announcement(server)
    return server


def _read_announcement(server: LiveServer) -> None:
    """The lines printed before serving: the address, maybe a token, the hint."""
    assert server.process.stdout is not None
    for line in server.process.stdout:
        server.output.append(line.rstrip("\n"))
        if line.strip() == STOP_HINT:
            return
