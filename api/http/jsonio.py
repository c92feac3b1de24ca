"""Reading JSON request bodies and writing JSON answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from api.http.problems import ProblemError

ADMIN_BODY_LIMIT: Final = 1024 * 1024
JSON_MEDIA_TYPES: Final = ("application/json",)
#: A body must keep arriving: at most this long between two chunks ...
BODY_CHUNK_SECONDS: Final = 10.0
#: ... and at most this long in all, or the request is answered 408.
BODY_TOTAL_SECONDS: Final = 30.0
#: The only charset a body may declare: JSON is UTF-8 (RFC 8259), and so
#: are the forms Headwater reads.
CHARSET: Final = "utf-8"


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` bytes, and
    with 408 when it stops arriving.

    The body is read in chunks, so an oversized one never sits in memory.
    A client that sends its headers and then trickles (or never finishes)
    its body would hold a connection and a task for as long as it likes:
    hypercorn's keep-alive timer stops once the headers are in, so the
    deadline is kept here.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with aclosing(_within_deadline(request.stream())) as arriving:
            async for chunk in arriving:
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except ClientDisconnect:
        raise ProblemError(
            400, "malformed-request", "the client disconnected"
        ) from None
    return b"".join(chunks)


async def _within_deadline(
    stream: AsyncIterator[bytes],
) -> AsyncGenerator[bytes, None]:
    """The chunks of `stream`, or a 408 once one is late."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + BODY_TOTAL_SECONDS
    chunks = aiter(stream)
    while True:
        wait = min(BODY_CHUNK_SECONDS, give_up_at - loop.time())
        try:
            async with asyncio.timeout(wait):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ProblemError(
                408,
                "request-timeout",
                f"the body did not arrive in time: send it within "
                f"{BODY_TOTAL_SECONDS:.0f} seconds, with no pause over "
                f"{BODY_CHUNK_SECONDS:.0f} seconds",
                # The rest of the body may still be on its way: the
                # connection cannot carry another request.
                headers={"Connection": "close"},
            ) from None
        yield chunk


def _too_large(limit: int) -> ProblemError:
    return ProblemError(
        413,
        "body-too-large",
        f"the body exceeds {limit} bytes",
        headers={"Connection": "close"},
    )


def media_type_of(request: Request) -> str:
    """The request's media type, lower-case, without parameters."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def check_charset(request: Request) -> None:
    """A 415 problem when the body declares a charset other than UTF-8."""
    _, _, parameters = request.headers.get("content-type", "").partition(";")
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in (CHARSET, "utf8"):
            raise ProblemError(
                415,
                "unsupported-media-type",
                f"the body must be UTF-8; got charset={charset[:40]!r}",
            )


def loads_unambiguous(raw: bytes) -> Any:
    """The JSON value of `raw`, or a 400 problem.

    Besides malformed JSON, this refuses what orjson reads silently one
    way among several: an object with the same key twice (RFC 8259 leaves
    its meaning open; parsers keep the first value or the last), which
    could let a body pass a check with one value and be applied with the
    other. orjson parses first, as it also refuses invalid UTF-8, NaN and
    nesting past 1,024 levels; the standard library then reads the same
    bytes again only to see every key of every object.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ProblemError(
            400, "malformed-request", f"the body is not JSON: {error}"
        ) from None
    if isinstance(value, dict | list):
        try:
            json.loads(raw, object_pairs_hook=_refuse_duplicates)
        except DuplicateKey as error:
            raise ProblemError(
                400,
                "malformed-request",
                f"the body is ambiguous JSON: key {error.key[:40]!r} appears "
                "twice in one object; send each key once",
            ) from None
        except RecursionError:
            raise ProblemError(
                400, "malformed-request", "the body nests too deep"
            ) from None
    return value


class DuplicateKey(ValueError):
    """A JSON object names the same key twice."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return found


async def read_json_object(
    request: Request, *, limit: int = ADMIN_BODY_LIMIT
) -> dict[str, Any]:
    """A JSON object body, or a 415/400/413/408 problem."""
    if media_type_of(request) not in JSON_MEDIA_TYPES:
        raise ProblemError(
            415, "unsupported-media-type", "send the body as application/json"
        )
    check_charset(request)
    value = loads_unambiguous(await read_limited(request, limit))
    if not isinstance(value, dict):
        raise ProblemError(400, "malformed-request", "the body must be a JSON object")
    return value


def parse_instant(text: str, *, parameter: str) -> datetime:
    """An RFC 3339 time with an offset (or `Z`), else a 400 problem."""
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
        # Near year 1 or 9999 an offset can push the time off the calendar
        # once it is converted to UTC, as every reader of it does.
        moment.astimezone(UTC)
    except (ValueError, OverflowError):
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ProblemError(
            400,
            "malformed-request",
            f"{parameter} must be an RFC 3339 time with an offset, "
            f"like 2026-12-03T12:00:00Z; got {text[:40]!r}",
        )
    return moment


def rfc3339(moment: datetime | None) -> str | None:
    """A UTC time as `2026-12-03T12:00:00.123456Z`."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
