"""Admin routes for access tokens (contract section 4)."""

from __future__ import annotations

from datetime import datetime
from typing import Final
from uuid import UUID

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api.http.jsonio import JSONResponse, parse_instant, read_json_object
from api.http.problems import ProblemError
from api.http.representations import token_json
from api.http.routing import AdminRoute, container_of
from domain.access import AccessToken, Permission, Role
from domain.errors import InvalidInput, Problem

FIELDS: Final = ("name", "role", "expiresAt")


async def issue(request: Request, caller: AccessToken) -> Response:
    body = await read_json_object(request)
    problems = [
        Problem(name, "unknown-field", f"unknown field {name!r}")
        for name in body
        if name not in FIELDS
    ]
    name = body.get("name")
    if not isinstance(name, str):
        problems.append(Problem("name", "required", "is required"))
    role = body.get("role")
    if role not in [r.value for r in Role]:
        problems.append(
            Problem(
                "role", "enum", f"must be one of {', '.join(r.value for r in Role)}"
            )
        )
    expires_at: datetime | None = None
    if body.get("expiresAt") is not None:
        try:
            expires_at = parse_instant(str(body["expiresAt"]), parameter="expiresAt")
        except ProblemError:
            problems.append(Problem("expiresAt", "format", "must be an RFC 3339 time"))
    if problems:
        raise InvalidInput(problems)
    assert isinstance(name, str)
    tokens = container_of(request).tokens
    issued = await run_in_threadpool(
        lambda: tokens.issue(
            name=name,
            role=Role(str(role)),
            expires_at=expires_at,
            actor=caller.as_actor(),
        )
    )
    body = token_json(issued.token) | {
        "token": issued.secret,
        "position": issued.position,
    }
    return JSONResponse(body, status_code=201)


async def list_all(request: Request, caller: AccessToken) -> Response:
    tokens = await run_in_threadpool(container_of(request).tokens.list)
    return JSONResponse({"items": [token_json(t) for t in tokens], "nextCursor": None})


async def revoke(request: Request, caller: AccessToken) -> Response:
    try:
        token_id = UUID(request.path_params["token_id"])
    except ValueError:
        raise ProblemError(404, "not-found", "no such token") from None
    tokens = container_of(request).tokens
    token, position = await run_in_threadpool(
        lambda: tokens.revoke(token_id, actor=caller.as_actor())
    )
    return JSONResponse(token_json(token) | {"position": position})


ROUTES: Final = (
    AdminRoute(
        "POST",
        "/tokens",
        issue,
        Permission.MANAGE_TOKENS,
        "Issue an access token; the token is shown in this answer only",
        "issueToken",
        request_schema="TokenCreate",
        responses={
            201: ("IssuedToken", "The token, shown once."),
            422: ("Problem", "Bad name, role or expiry."),
        },
    ),
    AdminRoute(
        "GET",
        "/tokens",
        list_all,
        Permission.MANAGE_TOKENS,
        "List access tokens, without their secrets",
        "listTokens",
        responses={200: ("TokenList", "Every token.")},
    ),
    AdminRoute(
        "DELETE",
        "/tokens/{token_id}",
        revoke,
        Permission.MANAGE_TOKENS,
        "Revoke a token; it is refused at once",
        "revokeToken",
        responses={
            200: ("Token", "The revoked token, with the position."),
            404: ("Problem", "No such token."),
        },
        parameters=(
            {
                "name": "token_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "format": "uuid"},
            },
        ),
    ),
)
