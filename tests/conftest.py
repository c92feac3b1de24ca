"""Fixtures shared by every test: a fresh store on SQLite and on PostgreSQL.

Each test run gets a PostgreSQL database of its own, and each test a schema
of its own in it, so that runs and tests never see each other's data. With
`CI=true`, an unreachable PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from starlette.testclient import TestClient

from api.bootstrap import Container, build
from api.http.app import create_app
from api.settings import Settings

POSTGRES_SERVER = os.environ.get(
    "HEADWATER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TEST_SECRET_KEY = "test-deployment-key-0123456789abcdefghij"


def postgres_unreachable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required in CI but unreachable: {reason}")
    pytest.skip(f"PostgreSQL is unreachable: {reason}")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database for this test run (or xdist worker), dropped at the end."""
    name = f"headwater_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        connection = psycopg.connect(
            POSTGRES_SERVER, autocommit=True, connect_timeout=3
        )
    except psycopg.OperationalError as error:
        postgres_unreachable(str(error))
    with connection:
        connection.execute(f'CREATE DATABASE "{name}"'.encode())
        server = POSTGRES_SERVER.rsplit("/", 1)[0]
        try:
            yield f"{server}/{name}"
        finally:
            connection.execute(
                f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode()
            )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store: a SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/var/headwater.db"
    database: str = request.getfixturevalue("postgres_database")
    return f"{database}?schema=t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url, secret_key=TEST_SECRET_KEY, home=tmp_path
    )


@pytest.fixture
def container(settings: Settings) -> Iterator[Container]:
    """The services over a fresh store, with projections running in-process."""
    built = build(settings)
    built.run_projections()
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:
    """The real ASGI application over the real store, without a socket."""
    with TestClient(create_app(container), base_url="http://testserver") as test_client:
        yield test_client


@pytest.fixture
def admin_token(container: Container) -> str:
    issued = container.tokens.issue_first_admin()
    assert issued is not None
    return issued.secret


@pytest.fixture
def admin(client: TestClient, admin_token: str) -> TestClient:
    """The client, signed in with an admin token."""
    client.headers["Authorization"] = f"Bearer {admin_token}"
    return client
