"""The Starlette application: routes, and the one place errors become HTTP."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Final

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Match, Route

from api.bootstrap import Container
from api.http import (
    compliance,
    console,
    deliveries,
    integrations,
    reading,
    submissions,
    tokens,
)
from api.http.jsonio import JSONResponse
from api.http.metrics import Metrics, MetricsMiddleware, metrics_endpoint
from api.http.openapi import PREFIX, admin_document
from api.http.problems import TITLES, ProblemError, problem_response
from api.http.ratelimit import RateLimiter, parse_networks
from api.http.representations import public_base
from api.http.routing import AdminRoute, starlette_route
from application.errors import (
    ConcurrencyConflict,
    Forbidden,
    Gone,
    NotFound,
    StoreUnavailable,
    Unauthenticated,
    VersionMismatch,
)
from domain.errors import InvalidInput, StateConflict

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS: Final = "5"
ADMIN_ROUTES: Final[tuple[AdminRoute, ...]] = (
    *integrations.ROUTES,
    *tokens.ROUTES,
    *reading.ROUTES,
    *deliveries.ROUTES,
    *compliance.ROUTES,
)


def create_app(
    container: Container,
    *,
    admin_routes: Iterable[AdminRoute] = ADMIN_ROUTES,
    extra_routes: Iterable[BaseRoute] = (),
) -> Starlette:
    """The ASGI application over an already built container."""
    admin = tuple(admin_routes)

    async def openapi(request: Request) -> Response:
        return JSONResponse(admin_document(admin, base=public_base(request)))

    metrics = Metrics(container)
    routes: list[BaseRoute] = [
        # The public endpoints first: Starlette tries routes in order, and
        # they take nearly all the traffic. Their paths (/v5/...) share no
        # prefix with the others, so the order changes no match.
        *submissions.ROUTES,
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/problems/{slug}", problem_page, methods=["GET"]),
        Route(PREFIX + "/openapi.json", openapi, methods=["GET"]),
        *(starlette_route(route, PREFIX) for route in admin),
        *console.ROUTES,
        *extra_routes,
    ]
    app = Starlette(
        routes=routes,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[Middleware(MetricsMiddleware, metrics=metrics)],
    )
    settings = container.settings
    app.state.container = container
    app.state.metrics = metrics
    app.state.public_base_url = settings.public_base_url
    app.state.rate_limiter = RateLimiter(settings.rate_limit)
    app.state.trusted_proxies = parse_networks(settings.trusted_proxies)
    return app


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    container: Container = request.app.state.container
    try:
        head = await run_in_threadpool(container.events.head)
        counts = await run_in_threadpool(container.deliveries.counts)
    except StoreUnavailable:
        return JSONResponse(
            {"status": "unavailable", "store": "unreachable"},
            status_code=503,
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    return JSONResponse(
        {
            "status": "ready",
            "store": "ok",
            "headPosition": head,
            "deliveries": {
                "channel": "webhook" if container.channel is not None else "none",
                "pending": counts["pending"],
                "dead": counts["dead"],
            },
        }
    )


async def problem_page(request: Request) -> Response:
    slug = request.path_params["slug"]
    if slug not in TITLES:
        raise ProblemError(404, "not-found", "no such problem type")
    return HTMLResponse(
        f"<!doctype html><title>{TITLES[slug]}</title>"
        f"<h1>{TITLES[slug]}</h1><p>Problem type <code>{slug}</code> of Headwater. "
        "The answer's detail and errors fields say what to change.</p>"
    )


async def on_problem(request: Request, error: Exception) -> Response:
    assert isinstance(error, ProblemError)
    return problem_response(
        request,
        error.status,
        error.slug,
        error.detail,
        errors=error.errors,
        headers=error.headers,
    )


async def on_invalid_input(request: Request, error: Exception) -> Response:
    assert isinstance(error, InvalidInput)
    errors = [
        {"field": p.field, "rule": p.rule, "message": p.message} for p in error.problems
    ]
    count = len(errors)
    detail = f"{count} problem{'s' if count != 1 else ''}; see errors"
    return problem_response(request, 422, "validation-failed", detail, errors=errors)


async def on_unauthenticated(request: Request, error: Exception) -> Response:
    challenge = 'Bearer realm="headwater"'
    if request.headers.get("authorization"):
        challenge += ', error="invalid_token"'
    return problem_response(
        request,
        401,
        "unauthenticated",
        str(error),
        headers={"WWW-Authenticate": challenge},
    )


async def on_unavailable(request: Request, error: Exception) -> Response:
    logger.warning("answered 503: %s", error)
    return problem_response(
        request,
        503,
        "store-unavailable",
        "the store is unavailable; nothing was written, retry later",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


async def on_http(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code == 405:
        headers = dict(error.headers or {})
        allowed = _allowed_methods(request)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
        return problem_response(
            request,
            405,
            "method-not-allowed",
            f"{request.method} is not allowed here",
            headers=headers,
        )
    if error.status_code == 404:
        return problem_response(request, 404, "not-found", "nothing is here")
    return problem_response(
        request, error.status_code, "malformed-request", str(error.detail)
    )


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path.

    Starlette's 405 names only the methods of the first route whose path
    matched, but one admin path may be served by several routes (GET and
    POST /integrations); RFC 9110 wants them all in `Allow`.
    """
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match is not Match.NONE:
                methods |= route.methods
    return sorted(methods)


async def on_unexpected(request: Request, error: Exception) -> Response:
    # The route's template, not the path: a public path holds the endpoint
    # id, which is a capability, and an admin path may hold a person's id.
    template = getattr(request.scope.get("route"), "path", "(no route)")
    logger.exception("unexpected error on %s %s", request.method, template)
    return problem_response(
        request, 500, "internal-error", "an unexpected error occurred; it was logged"
    )


def _simple(status: int, slug: str) -> Any:
    async def handler(request: Request, error: Exception) -> Response:
        return problem_response(request, status, slug, str(error))

    return handler


EXCEPTION_HANDLERS: Final[dict[Any, Any]] = {
    ProblemError: on_problem,
    InvalidInput: on_invalid_input,
    StateConflict: _simple(409, "conflict"),
    NotFound: _simple(404, "not-found"),
    Gone: _simple(410, "gone"),
    VersionMismatch: _simple(412, "precondition-failed"),
    ConcurrencyConflict: _simple(409, "conflict"),
    Unauthenticated: on_unauthenticated,
    Forbidden: _simple(403, "forbidden"),
    StoreUnavailable: on_unavailable,
    HTTPException: on_http,
    Exception: on_unexpected,
}
