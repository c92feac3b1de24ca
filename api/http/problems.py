"""RFC 9457 problem details: every error answer, built in one place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"

TITLES: Final = {
    "malformed-request": "Malformed request",
    "unauthenticated": "Authentication required",
    "forbidden": "Forbidden",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "conflict": "Conflict",
    "gone": "Gone",
    "precondition-failed": "Precondition failed",
    "request-timeout": "Request timeout",
    "body-too-large": "Request body too large",
    "unsupported-media-type": "Unsupported media type",
    "validation-failed": "Validation failed",
    "too-many-requests": "Too many requests",
    "projection-behind": "Projection behind",
    "store-unavailable": "Service unavailable",
    "captcha-unavailable": "CAPTCHA verifier unavailable",
    "captcha-failed": "CAPTCHA failed",
    "origin-not-allowed": "Origin not allowed",
    "action-not-permitted": "Action not permitted",
    "idempotency-key-reused": "Idempotency key reused",
    "internal-error": "Internal error",
}


class ProblemError(Exception):
    """Raised by a handler to answer with a problem."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.errors = errors
        self.headers = headers


def problem_type(request: Request, slug: str) -> str:
    """The problem type URI: the service's own `/problems/<slug>` page."""
    base = request.app.state.public_base_url or str(request.base_url).rstrip("/")
    return f"{base}/problems/{slug}"


def problem_body(
    request: Request,
    status: int,
    slug: str,
    detail: str,
    *,
    errors: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": problem_type(request, slug),
        "title": TITLES.get(slug, slug.replace("-", " ").capitalize()),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = list(errors)
    return body


def problem_response(
    request: Request,
    status: int,
    slug: str,
    detail: str,
    *,
    errors: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = problem_body(request, status, slug, detail, errors=errors)
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )
