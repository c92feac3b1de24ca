"""Reading JSON request bodies and writing JSON answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from api.http.problems import ProblemError

ADMIN_BODY_LIMIT: Final = 1024 * 1024
JSON_MEDIA_TYPES: Final = ("application/json",)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` bytes.

    The body is read in chunks, so an oversized one never sits in memory.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProblemError(413, "body-too-large", f"the body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ProblemError(
                    413, "body-too-large", f"the body exceeds {limit} bytes"
                )
            chunks.append(chunk)
    except ClientDisconnect:
        raise ProblemError(
            400, "malformed-request", "the client disconnected"
        ) from None
    return b"".join(chunks)


async def read_json_object(
    request: Request, *, limit: int = ADMIN_BODY_LIMIT
) -> dict[str, Any]:
    """A JSON object body, or a 415/400/413 problem."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in JSON_MEDIA_TYPES:
        raise ProblemError(
            415, "unsupported-media-type", "send the body as application/json"
        )
    body = await read_limited(request, limit)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ProblemError(
            400, "malformed-request", f"the body is not JSON: {error}"
        ) from None
    if not isinstance(value, dict):
        raise ProblemError(400, "malformed-request", "the body must be a JSON object")
    return value


def parse_instant(text: str, *, parameter: str) -> datetime:
    """An RFC 3339 time with an offset (or `Z`), else a 400 problem."""
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
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
