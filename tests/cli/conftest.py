"""Fixtures for the command-line tests: fresh stores on SQLite and on
PostgreSQL, the `headwater` command run against them, and running servers."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from api.bootstrap import build
from api.settings import Settings
from application.access import IssuedToken
from domain.access import AccessToken, Role
from domain.model import Actor
from tests.conftest import TEST_SECRET_KEY
from tests.support.server import (
    LiveServer,
    environment,
    headwater_command,
    start_server,
)

COMMAND_SECONDS = 60
STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@dataclass(frozen=True)
class Store:
    """A fresh store, and the folder the `headwater` command runs from."""

    folder: Path
    database_url: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "HEADWATER_DATABASE_URL": self.database_url,
            "HEADWATER_SECRET_KEY": TEST_SECRET_KEY,
        }

    def run(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """Run `headwater <arguments>` to completion, capturing its output."""
        return subprocess.run(  # noqa: PLW1510 - callers check the exit code
            [*headwater_command(), *arguments],
            cwd=self.folder,
            env=environment(self.env),
            capture_output=True,
            text=True,
            timeout=COMMAND_SECONDS,
        )

    def start(self, *arguments: str) -> LiveServer:
        return start_server(self.folder, self.env, arguments=arguments)

    def tokens(self) -> list[AccessToken]:
        """Every token in the store, read directly rather than by the CLI."""
        container = build(self.settings)
        try:
            return container.tokens.list()
        finally:
            container.close()

    def issue(self, name: str, role: Role) -> IssuedToken:
        """Issue a token directly in the store, as a test's arrangement."""
        container = build(self.settings)
        try:
            return container.tokens.issue(
                name=name, role=role, expires_at=None, actor=Actor.system()
            )
        finally:
            container.close()

    @property
    def settings(self) -> Settings:
        return Settings(
            database_url=self.database_url,
            secret_key=TEST_SECRET_KEY,
            home=self.folder,
        )


def fresh_store(request: pytest.FixtureRequest, folder: Path) -> Store:
    if request.param == "sqlite":
        return Store(folder, f"sqlite:///{folder}/var/headwater.db")
    database: str = request.getfixturevalue("postgres_database")
    return Store(folder, f"{database}?schema=t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A fresh, empty store of each kind for one test."""
    return fresh_store(request, tmp_path)


@pytest.fixture(scope="module", params=STORES)
def served_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Store, LiveServer]]:
    """A store and the one server started on it first, shared by a module's
    tests so that each store kind starts a single server."""
    served = fresh_store(request, tmp_path_factory.mktemp("served"))
    server = served.start()
    try:
        yield served, server
    finally:
        server.stop()
