"""A plain peer of Headwater's public endpoint, for the ingest benchmark.

A minimal Starlette app on hypercorn that validates the same JSON actions
(with pydantic) and upserts one profile row per submission, with psycopg on
PostgreSQL or sqlite3 on SQLite. No events, no dedupe, no encryption: what a
careful team would write if it only needed the current profile.

Run: python -m bench.peers.plain --store postgresql://... --port 8091
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import orjson
from hypercorn.asyncio import serve
from hypercorn.config import Config
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


class ListChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    listId: int = Field(ge=1)  # noqa: N815 - the wire name
    subscribedTimestamp: Literal[True] | str | None = None  # noqa: N815
    unsubscribedTimestamp: Literal[True] | str | None = None  # noqa: N815


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
    firstname: Annotated[str, Field(max_length=1000)] | None = None
    lastname: Annotated[str, Field(max_length=1000)] | None = None
    lists: list[ListChange] = Field(default_factory=list, max_length=100)


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Annotated[str, Field(min_length=1, max_length=64)]
    data: dict[str, Any] | None = None


class ProfileAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    profile: Profile


class EventAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: Event


Actions = TypeAdapter(
    Annotated[list[ProfileAction | EventAction], Field(min_length=1, max_length=50)]
)

UPSERT = (
    "INSERT INTO plain_profiles (email, firstname, lastname, lists)"
    " VALUES ({p}, {p}, {p}, {p})"
    " ON CONFLICT (email) DO UPDATE SET firstname = excluded.firstname,"
    " lastname = excluded.lastname, lists = excluded.lists"
)
TABLE = (
    "CREATE TABLE IF NOT EXISTS plain_profiles (email TEXT PRIMARY KEY,"
    " firstname TEXT, lastname TEXT, lists TEXT)"
)


def rows(body: bytes) -> list[tuple[Any, ...]] | Response:
    try:
        actions = Actions.validate_json(body)
    except ValidationError as error:
        return Response(
            orjson.dumps(
                {"status": 422, "errors": error.errors(include_url=False)}, default=str
            ),
            status_code=422,
            media_type="application/problem+json",
        )
    found = []
    for action in actions:
        if isinstance(action, ProfileAction):
            profile = action.profile
            lists = orjson.dumps([item.listId for item in profile.lists]).decode()
            found.append(
                (profile.email.lower(), profile.firstname, profile.lastname, lists)
            )
    return found


def postgres_app(url: str) -> Starlette:
    pool = AsyncConnectionPool(url, min_size=4, max_size=16, open=False)
    upsert = UPSERT.format(p="%s")

    async def submit(request: Request) -> Response:
        found = rows(await request.body())
        if isinstance(found, Response):
            return found
        async with pool.connection() as connection, connection.transaction():
            for row in found:
                await connection.execute(upsert, row)
        return Response(b'{"status":"ok"}', media_type="application/json")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await pool.open()
        async with pool.connection() as connection:
            await connection.execute(TABLE)
        yield
        await pool.close()

    return Starlette(
        routes=[Route("/submit", submit, methods=["POST"])], lifespan=lifespan
    )


def sqlite_app(path: str) -> Starlette:
    local = threading.local()
    upsert = UPSERT.format(p="?")

    def connection() -> sqlite3.Connection:
        if not hasattr(local, "connection"):
            local.connection = sqlite3.connect(path, isolation_level=None, timeout=30)
            local.connection.execute("PRAGMA journal_mode=WAL")
            local.connection.execute("PRAGMA synchronous=FULL")
        return local.connection  # type: ignore[no-any-return]

    def write(found: list[tuple[Any, ...]]) -> None:
        db = connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(upsert, found)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def submit(request: Request) -> Response:
        found = rows(await request.body())
        if isinstance(found, Response):
            return found
        await asyncio.to_thread(write, found)
        return Response(b'{"status":"ok"}', media_type="application/json")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        connection().execute(TABLE)
        yield

    return Starlette(
        routes=[Route("/submit", submit, methods=["POST"])], lifespan=lifespan
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--store", required=True, help="postgresql://... or a SQLite file path"
    )
    parser.add_argument("--port", type=int, default=8091)
    arguments = parser.parse_args()
    app = (
        postgres_app(arguments.store)
        if arguments.store.startswith("postgres")
        else sqlite_app(arguments.store)
    )
    config = Config()
    config.bind = [f"127.0.0.1:{arguments.port}"]
    config.accesslog = None
    asyncio.run(serve(app, config))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
