"""Fixtures for the fault tests: a PostgreSQL server of their own, which a
test may stop and start again, and real `headwater` processes over it, which
a test may kill.

The server belongs to this test run (to this xdist worker): stopping it, or
killing the processes that use it, harms nothing else. It runs on the
PostgreSQL binaries installed on the machine; as root they run as the
`postgres` user, since PostgreSQL refuses to run as root. With `CI=true`, a
machine that cannot start one fails the run instead of skipping these tests.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import psycopg
import pytest

from api.server import STOP_HINT
from tests.conftest import TEST_SECRET_KEY
from tests.support.server import (
    TOKEN_LINE,
    environment,
    free_port,
    headwater_command,
)

Json = dict[str, Any]

STARTUP_SECONDS: Final = 30.0
STOP_SECONDS: Final = 15.0
PG_CTL_SECONDS: Final = 60
INTEGRATIONS: Final = "/admin/v1/integrations"
INTEGRATION_TYPE: Final = "v5-api-endpoint-unauthenticated"
#: Where the store's tables live inside each test's database.
SCHEMA: Final = "hw"
#: Lines of a process's output shown when a test fails.
LOG_TAIL_LINES: Final = 40


def eventually(check: Callable[[], bool], *, within: float, every: float = 0.1) -> bool:
    """Poll `check` until it holds or `within` seconds have passed."""
    deadline = time.monotonic() + within
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)


# -- a private PostgreSQL server


def postgres_binaries() -> Path | None:
    """The folder of the installed `initdb` and `pg_ctl`, if there is one."""
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        found = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=False
        )
        if found.returncode == 0:
            candidates.append(Path(found.stdout.strip()))
    # Debian and Ubuntu keep each major version apart; the newest first.
    candidates += sorted(
        (Path(folder) for folder in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda folder: [int(n) for n in re.findall(r"\d+", folder.parent.name)],
        reverse=True,
    )
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


class PostgresUnavailable(RuntimeError):
    """A private PostgreSQL server cannot be started on this machine."""


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster in a temporary folder, on a port of its own."""

    binaries: Path
    folder: Path
    port: int
    #: The command prefix that runs the binaries as a user other than root.
    run_as: tuple[str, ...] = ()

    @classmethod
    def create(cls) -> PrivatePostgres:
        binaries = postgres_binaries()
        if binaries is None:
            raise PostgresUnavailable("no initdb and pg_ctl found (pg_config --bindir)")
        # Not under pytest's tmp_path: as root that is closed to `postgres`.
        folder = Path(tempfile.mkdtemp(prefix="headwater-faults-pg-"))
        run_as: tuple[str, ...] = ()
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError as error:
                raise PostgresUnavailable(
                    "running as root without a postgres user"
                ) from error
            shutil.chown(folder, "postgres", "postgres")
            run_as = ("runuser", "-u", "postgres", "--")
        cluster = cls(binaries, folder, free_port(), run_as)
        cluster._run(
            "initdb",
            "-D",
            str(cluster.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--no-instructions",
        )
        return cluster

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def _run(self, binary: str, *arguments: str) -> None:
        done = self._call(binary, *arguments)
        if done.returncode != 0:
            msg = f"{binary} failed ({done.returncode}): {done.stderr or done.stdout}"
            raise PostgresUnavailable(msg)

    def _call(self, binary: str, *arguments: str) -> subprocess.CompletedProcess[str]:
        command = [*self.run_as, str(self.binaries / binary), *arguments]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=PG_CTL_SECONDS, check=False
        )

    @property
    def running(self) -> bool:
        # pg_ctl status: 0 when the server runs, 3 when it does not.
        return self._call("pg_ctl", "-D", str(self.data), "status").returncode == 0

    def start(self) -> None:
        """Start the server on its port, and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
            " -c fsync=on -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "postgres.log"),
            "-t",
            str(PG_CTL_SECONDS),
            "start",
            "-w",
        )

    def stop(self, *, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "stop", "-w")

    def crash(self) -> None:
        """Stop the server at once, as a crash would: no checkpoint, every
        connection cut; the next start recovers from the write-ahead log."""
        self.stop(mode="immediate")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        name = f"faults_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"'.encode())
        return name

    def remove(self) -> None:
        try:
            if self.running:
                self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server for this run's fault tests alone."""
    try:
        cluster = PrivatePostgres.create()
    except (PostgresUnavailable, OSError, subprocess.SubprocessError) as error:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"a private PostgreSQL is required in CI: {error}")
        pytest.skip(f"cannot run a private PostgreSQL: {error}")
    try:
        cluster.start()
    except PostgresUnavailable as error:
        shutil.rmtree(cluster.folder, ignore_errors=True)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"a private PostgreSQL is required in CI: {error}")
        pytest.skip(f"cannot start a private PostgreSQL: {error}")
    try:
        yield cluster
    finally:
        cluster.remove()


# -- headwater processes


@dataclass
class Headwater:
    """A `headwater` subcommand running in the background; its output (the
    announcement and the logs) goes to a file."""

    process: subprocess.Popen[bytes]
    log: Path
    base_url: str | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def admin_token(self) -> str | None:
        for line in self.output().splitlines():
            match = TOKEN_LINE.match(line)
            if match:
                return match.group(1)
        return None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no goodbye to the database."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=STOP_SECONDS)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Deployment:
    """One store in the private server, and the `headwater` processes that
    share it, all run from one folder with the same settings."""

    postgres: PrivatePostgres
    database_url: str
    folder: Path
    processes: list[Headwater] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {
            "HEADWATER_DATABASE_URL": self.database_url,
            "HEADWATER_SECRET_KEY": TEST_SECRET_KEY,
            # Every load comes from one client address.
            "HEADWATER_RATE_LIMIT": "0",
        }

    def _launch(self, *arguments: str) -> Headwater:
        log = self.folder / f"{arguments[0]}-{len(self.processes)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [*headwater_command(), *arguments],
                cwd=self.folder,
                env=environment(self.env),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        started = Headwater(process, log)
        self.processes.append(started)
        return started

    def serve(self, *arguments: str, port: int | None = None) -> Headwater:
        """Start `headwater serve` and wait until it has announced itself."""
        port = port or free_port()
        server = self._launch("serve", "--port", str(port), *arguments)
        server.base_url = f"http://127.0.0.1:{port}"
        self._wait_until(server, lambda: STOP_HINT in server.output())
        self._wait_until(server, lambda: _healthy(server))
        return server

    def projector(self) -> Headwater:
        """Start `headwater projector` and wait until it runs its projections."""
        projector = self._launch("projector")
        self._wait_until(projector, lambda: "projecting " in projector.output())
        return projector

    def _wait_until(self, started: Headwater, ready: Callable[[], bool]) -> None:
        def up() -> bool:
            if started.process.poll() is not None:
                msg = (
                    f"headwater exited with {started.process.returncode}:\n"
                    f"{started.output()}"
                )
                raise RuntimeError(msg)
            return ready()

        if not eventually(up, within=STARTUP_SECONDS, every=0.05):
            started.stop()
            msg = f"headwater did not start in time:\n{started.output()}"
            raise RuntimeError(msg)

    def close(self) -> None:
        # Ask every process first, so that their graceful shutdowns overlap.
        for process in self.processes:
            if process.process.poll() is None:
                process.process.terminate()
        for process in self.processes:
            process.stop()

    def log_tails(self) -> str:
        """The last lines each process wrote, without the admin token."""
        tails = []
        for process in self.processes:
            lines = [
                line
                for line in process.output().splitlines()
                if not TOKEN_LINE.match(line) and "Bearer" not in line
            ]
            tails.append(
                f"--- {process.log.name}\n" + "\n".join(lines[-LOG_TAIL_LINES:])
            )
        return "\n".join(tails)


def _healthy(server: Headwater) -> bool:
    try:
        answer = httpx.get(f"{server.base_url}/healthz", timeout=1)
    except httpx.TransportError:
        return False
    return answer.status_code == 200


@pytest.fixture
def deployment(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> Iterator[Deployment]:
    """A fresh database in the private server; every process started on it
    is stopped at the end, and its output shown if the test failed."""
    # A test that stopped the server and then failed must not leave it down.
    if not private_postgres.running:
        private_postgres.start()
    database = private_postgres.create_database()
    deployed = Deployment(
        private_postgres,
        f"{private_postgres.url(database)}?schema={SCHEMA}",
        tmp_path,
    )
    try:
        yield deployed
    finally:
        deployed.close()
        # Shown by pytest only when the test failed.
        print(deployed.log_tails())


# -- the admin API


class Admin:
    """The admin API of a running server, with the first admin token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    def close(self) -> None:
        self.client.close()

    def open_integration(self, configuration: Json) -> Json:
        """A saved, active integration with `configuration`."""
        created = self.client.post(
            INTEGRATIONS, json={"name": "Faults", "type": INTEGRATION_TYPE}
        )
        assert created.status_code == 201, created.text
        integration_id = created.json()["id"]
        saved = self.client.put(
            f"{INTEGRATIONS}/{integration_id}",
            json={"name": "Faults", **configuration},
        )
        assert saved.status_code == 200, saved.text
        activated = self.client.post(f"{INTEGRATIONS}/{integration_id}/activate")
        assert activated.status_code == 200, activated.text
        body: Json = activated.json()
        return body

    def projections(self) -> list[Json]:
        answer = self.client.get("/admin/v1/projections")
        assert answer.status_code == 200, answer.text
        items: list[Json] = answer.json()["items"]
        return items

    def caught_up(self) -> bool:
        """Every projection has applied the whole log, and none is rebuilding."""
        try:
            states = self.projections()
        except (httpx.TransportError, AssertionError):
            return False
        return all(s["lag"] == 0 and s["rebuild"] is None for s in states)

    def wait_until_caught_up(self, *, within: float) -> None:
        assert eventually(self.caught_up, within=within, every=0.2), (
            f"projections still behind after {within} s: {self.projections()}"
        )

    def chain(self) -> Json:
        answer = self.client.get("/admin/v1/audit/verify")
        assert answer.status_code == 200, answer.text
        verified: Json = answer.json()
        return verified


@pytest.fixture
def admin_of() -> Iterator[Callable[[Headwater, str], Admin]]:
    """Admin clients for running servers, closed at the end."""
    opened: list[Admin] = []

    def admin(server: Headwater, token: str) -> Admin:
        assert server.base_url is not None
        client = Admin(server.base_url, token)
        opened.append(client)
        return client

    yield admin
    for client in opened:
        client.close()
