"""Admin routes with their permission and documentation in one record.

Each admin route is declared once, as an `AdminRoute`: the router is built
from these records and so is `/admin/v1/openapi.json`, so the published
document cannot drift from what is served.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.bootstrap import Container
from application.errors import Forbidden, Unauthenticated
from domain.access import AccessToken, Permission

Handler = Callable[[Request, AccessToken], Awaitable[Response]]


@dataclass(frozen=True)
class AdminRoute:
    """One admin operation: where it lives, who may call it, what it answers."""

    method: str
    path: str
    handler: Handler
    permission: Permission
    summary: str
    operation_id: str
    #: Name of a request body schema in the OpenAPI components, if any.
    request_schema: str | None = None
    #: Status code to (name of the response schema, description).
    responses: Mapping[int, tuple[str | None, str]] = field(default_factory=dict)
    parameters: tuple[Mapping[str, Any], ...] = ()


def container_of(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


async def authenticate(request: Request) -> AccessToken:
    """The token in `Authorization: Bearer`, or `Unauthenticated`.

    The admin API takes bearer tokens only: a console cookie opens nothing here.
    """
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthenticated("send an access token as Authorization: Bearer <token>")
    tokens = container_of(request).tokens
    return await run_in_threadpool(tokens.authenticate, presented.strip())


def starlette_route(route: AdminRoute, prefix: str) -> Route:
    async def endpoint(request: Request) -> Response:
        caller = await authenticate(request)
        if route.permission not in caller.permissions:
            msg = f"the {caller.role} role lacks the {route.permission} permission"
            raise Forbidden(msg)
        request.state.caller = caller
        return await route.handler(request, caller)

    return Route(
        prefix + route.path, endpoint, methods=[route.method], name=route.operation_id
    )
