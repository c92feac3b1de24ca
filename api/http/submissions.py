"""The public endpoints: `POST /v5/endpoints/{id}` and `/v5/test/endpoints/{id}`.

Checks run in the contract's order: body and envelope (400, 413, 415), the
endpoint (404), the origin (403), the rate limit (429), the honeypot, CAPTCHA
(403, or 503 when the verifier fails), validation (422) and permissions
(403). Refusals from the origin check on are recorded; the rest are only
counted. A 2xx is sent only after the submission is durably recorded.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Message

from api.http.jsonio import (
    JSONResponse,
    check_charset,
    loads_unambiguous,
    media_type_of,
    read_limited,
)
from api.http.metrics import submission_outcome
from api.http.problems import ProblemError, problem_body
from api.http.ratelimit import RateLimiter, client_address
from api.http.routing import container_of
from application.errors import StoreUnavailable, Unauthenticated
from application.ports import CaptchaUnavailable
from application.submissions import (
    Answer,
    Command,
    Refuse,
    RequestFacts,
    StaleIntegration,
)
from domain.access import Permission
from domain.actions import (
    MAX_ACTIONS,
    ActionViolation,
    MalformedSubmission,
    split_actions,
)
from domain.integration import Integration
from domain.profile import CUSTOM_PREFIX
from domain.submission import ActionResult, Mode

logger = logging.getLogger(__name__)

JSON_TYPE: Final = "application/json"
FORM_TYPE: Final = "application/x-www-form-urlencoded"
MULTIPART_TYPE: Final = "multipart/form-data"
CAPTCHA_HEADER: Final = "x-recaptcha-token"
CAPTCHA_FIELD: Final = "g-recaptcha-response"
MAX_IDEMPOTENCY_KEY: Final = 255
MAX_USER_AGENT: Final = 512
MAX_FORM_FIELDS: Final = 200
RETRY_AFTER_SECONDS: Final = "5"
ALLOWED_HEADERS: Final = "Content-Type, X-Recaptcha-Token, Idempotency-Key"
EXPOSED_HEADERS: Final = "Idempotent-Replayed, Retry-After"

DESCRIPTIONS: Final = {
    "created": "profile created",
    "updated": "profile updated",
    "unchanged": "profile unchanged",
    "logged": "event logged",
    "triggered": "message triggered",
    "suppressed": "message suppressed",
}
TEST_DESCRIPTIONS: Final = {
    "created": "would create profile",
    "updated": "would update profile",
    "unchanged": "would leave profile unchanged",
    "logged": "would log event",
    "triggered": "would trigger message",
    "suppressed": "would suppress message",
}
REFUSAL_STATUS: Final = {
    "origin-not-allowed": 403,
    "captcha-failed": 403,
    "action-not-permitted": 403,
    "validation-failed": 422,
    "idempotency-key-reused": 422,
}
REFUSAL_DETAIL: Final = {
    "origin-not-allowed": "this endpoint does not accept submissions from that origin",
    "captcha-failed": "the CAPTCHA token is missing or was not accepted",
    "action-not-permitted": "the endpoint's configuration does not allow an action",
    "validation-failed": "the submission breaks the endpoint's rules; see errors",
    "idempotency-key-reused": "the Idempotency-Key was used with another body",
}


@dataclass(frozen=True)
class Envelope:
    """A read body: its actions (as JSON values), and form details."""

    body: Any
    is_form: bool
    captcha_token: str | None
    honeypot_values: tuple[Any, ...] = ()


async def submit_production(request: Request) -> Response:
    return await _submit(request, "production")


async def submit_test(request: Request) -> Response:
    return await _submit(request, "test")


async def _submit(request: Request, mode: Mode) -> Response:
    endpoint_id: str = request.path_params["endpoint_id"]
    form_post = media_type_of(request) in (FORM_TYPE, MULTIPART_TYPE)
    try:
        response = await _handle(request, endpoint_id, mode)
    except ProblemError as problem:
        response = _problem(request, problem, form_post=form_post, integration=None)
    # Recorded submissions count by outcome; the rest by the status they got.
    outcome = getattr(request.state, "outcome", None)
    request.app.state.metrics.submission(
        mode, outcome or f"stopped:{response.status_code}"
    )
    return response


async def _handle(request: Request, endpoint_id: str, mode: Mode) -> Response:
    container = container_of(request)
    settings = container.settings
    received_at = datetime.now(UTC)

    # 1. The body and its envelope.
    idempotency_key = request.headers.get("idempotency-key")
    if (
        idempotency_key is not None
        and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY
    ):
        raise ProblemError(
            400,
            "malformed-request",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
        )
    _check_media_type(request)
    raw = await read_limited(request, settings.max_body_bytes)
    parsed = await _read_body(request, raw)

    # 2. The endpoint.
    intake = container.intake
    integration = intake.remembered(endpoint_id, mode) or await run_in_threadpool(
        intake.endpoint, endpoint_id, mode
    )
    if integration is None:
        raise ProblemError(404, "not-found", "no endpoint answers at this address")

    def submit_to(integration: Integration) -> Awaitable[Response]:
        return _submit_to(
            request,
            integration,
            _envelope(request, parsed, integration),
            endpoint_id=endpoint_id,
            mode=mode,
            idempotency_key=idempotency_key,
            received_at=received_at,
        )

    # From here on an error is answered for this integration: with its CORS
    # headers, so a browser script can read it, and its error redirect.
    try:
        try:
            response = await submit_to(integration)
        except StaleIntegration:
            # The integration changed while this request was checked: check
            # it again, once, against the integration as it is now.
            current = await run_in_threadpool(
                lambda: container.intake.endpoint(endpoint_id, mode, fresh=True)
            )
            if current is None:
                raise ProblemError(
                    404, "not-found", "no endpoint answers at this address"
                ) from None
            integration = current
            response = await submit_to(integration)
    except StoreUnavailable as error:
        logger.warning("answered 503: %s", error)
        problem = ProblemError(
            503,
            "store-unavailable",
            "the store is unavailable; nothing was written, retry later",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
        response = _problem(
            request, problem, form_post=parsed.is_form, integration=integration
        )
    except ProblemError as problem:
        response = _problem(
            request, problem, form_post=parsed.is_form, integration=integration
        )
    return _with_cors(request, integration, response)


async def _submit_to(
    request: Request,
    integration: Integration,
    envelope: Envelope,
    *,
    endpoint_id: str,
    mode: Mode,
    idempotency_key: str | None,
    received_at: datetime,
) -> Response:
    """Checks 3 to 7 and the decision, for a request to a known endpoint."""
    container = container_of(request)
    settings = container.settings
    form_post = envelope.is_form
    facts = RequestFacts(
        endpoint_id=endpoint_id,
        mode=mode,
        received_at=received_at,
        client_ip=_client_ip(request),
        user_agent=(request.headers.get("user-agent") or "")[:MAX_USER_AGENT] or None,
        idempotency_key=idempotency_key,
        body_digest=container.fingerprints.of("body", _canonical(envelope.body)),
        detailed=await _detailed(request, integration),
    )

    # 3. The origin.
    if not _origin_allowed(request, integration):
        refused = await _record(
            request, Refuse(integration, facts, "origin-not-allowed")
        )
        return _refused(request, refused, integration, form_post)

    # 4. The rate limit.
    limiter: RateLimiter = request.app.state.rate_limiter
    wait = limiter.take(endpoint_id, facts.client_ip or "unknown")
    if wait is not None:
        raise ProblemError(
            429,
            "too-many-requests",
            f"at most {settings.rate_limit} requests a minute from one client",
            headers={"Retry-After": RateLimiter.retry_after(wait)},
        )

    # The honeypot: bots get an ordinary acceptance and learn nothing.
    if any(v not in (None, "") for v in envelope.honeypot_values):
        refused = await _record(request, Refuse(integration, facts, "honeypot"))
        actions = len(split_actions(envelope.body, limit=None))
        return _accepted(
            request, refused, integration, form_post, False, actions=actions
        )

    # 5. CAPTCHA, in test mode too.
    configuration = integration.configuration
    if configuration.require_recaptcha:
        passed = await _captcha_passed(request, integration, envelope, facts)
        if not passed:
            refused = await _record(
                request, Refuse(integration, facts, "captcha-failed")
            )
            return _refused(request, refused, integration, form_post)

    # 6. and 7. Validation and permissions, then the decision itself.
    if len(split_actions(envelope.body, limit=None)) > MAX_ACTIONS:
        violation = ActionViolation(
            MAX_ACTIONS,
            "(body)",
            "maxItems",
            f"a submission holds at most {MAX_ACTIONS} actions",
        )
        command: Command = Refuse(integration, facts, "validation-failed", [violation])
    else:
        honeypot = configuration.honeypot_field
        command = container.intake.prepare(
            integration,
            facts,
            envelope.body,
            extra_profile_keys=frozenset({honeypot}) if honeypot else frozenset(),
        )
    result = await _record(request, command)
    if result.refusal is not None:
        return _refused(request, result, integration, form_post)
    return _accepted(request, result, integration, form_post, facts.detailed)


async def _record(request: Request, command: Command) -> Answer:
    """Hand the command to the process's writer and wait for the commit."""
    writer = container_of(request).writer
    answer = await asyncio.wrap_future(writer.submit(command))
    request.state.outcome = submission_outcome(answer)
    return answer


async def preflight(request: Request) -> Response:
    """CORS preflight, answered per the integration's allowed origins."""
    endpoint_id: str = request.path_params["endpoint_id"]
    mode: Mode = "test" if request.url.path.startswith("/v5/test/") else "production"
    integration = await run_in_threadpool(
        container_of(request).intake.endpoint, endpoint_id, mode
    )
    if integration is None:
        return _problem(
            request,
            ProblemError(404, "not-found", "no endpoint answers at this address"),
            form_post=False,
            integration=None,
        )
    response = Response(status_code=204)
    origin = request.headers.get("origin")
    if origin is not None and _origin_permitted(origin, integration):
        response.headers["Access-Control-Allow-Origin"] = _allow_origin_value(
            origin, integration
        )
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
    response.headers["Vary"] = "Origin"
    return response


# -- reading the body


@dataclass(frozen=True)
class ParsedBody:
    """A body read before its endpoint is known: JSON, or a form's fields."""

    json: Any = None
    form: list[tuple[str, str]] | None = None

    @property
    def is_form(self) -> bool:
        return self.form is not None


def _check_media_type(request: Request) -> None:
    """Check 1, before a byte of the body is read: the content type (415)."""
    media_type = media_type_of(request)
    if not _is_json(media_type) and media_type not in (FORM_TYPE, MULTIPART_TYPE):
        raise ProblemError(
            415,
            "unsupported-media-type",
            "send JSON, application/x-www-form-urlencoded or multipart/form-data",
        )
    check_charset(request)


def _is_json(media_type: str) -> bool:
    return media_type == JSON_TYPE or media_type.endswith("+json")


async def _read_body(request: Request, raw: bytes) -> ParsedBody:
    """Check 1: JSON and action shape (400), or a form's fields."""
    media_type = media_type_of(request)
    if _is_json(media_type):
        body = loads_unambiguous(raw)
        _check_shape(body)
        return ParsedBody(json=body)
    if media_type == FORM_TYPE:
        try:
            # Strict: a percent-escape that is not UTF-8 is as malformed as
            # a raw byte that is not, rather than a silent U+FFFD.
            pairs = parse_qsl(
                raw.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=False,
                errors="strict",
            )
        except UnicodeDecodeError:
            raise ProblemError(
                400, "malformed-request", "the form is not UTF-8"
            ) from None
        return ParsedBody(form=pairs)
    return ParsedBody(form=await _multipart_pairs(request, raw))


def _envelope(
    request: Request, parsed: ParsedBody, integration: Integration
) -> Envelope:
    """The actions, the CAPTCHA token and the honeypot values of a read body."""
    honeypot = integration.configuration.honeypot_field
    if parsed.form is not None:
        return _form_envelope(request, parsed.form, honeypot)
    body = parsed.json
    honeypot_values: tuple[Any, ...] = ()
    if honeypot:
        body, honeypot_values = _without_honeypot(body, honeypot)
    return Envelope(
        body=body,
        is_form=False,
        captcha_token=request.headers.get(CAPTCHA_HEADER),
        honeypot_values=honeypot_values,
    )


def _check_shape(body: Any) -> None:
    try:
        split_actions(body, limit=None)
    except MalformedSubmission as error:
        raise ProblemError(400, "malformed-request", str(error)) from None


def _without_honeypot(body: Any, honeypot: str) -> tuple[Any, tuple[Any, ...]]:
    """The body without the honeypot field in its profile actions, and its values."""
    values = []
    cleaned = []
    for item in body if isinstance(body, list) else [body]:
        profile = item.get("profile") if isinstance(item, dict) else None
        if isinstance(profile, dict) and honeypot in profile:
            values.append(profile[honeypot])
            cleaned.append(
                {"profile": {k: v for k, v in profile.items() if k != honeypot}}
            )
        else:
            cleaned.append(item)
    return (cleaned if isinstance(body, list) else cleaned[0]), tuple(values)


async def _multipart_pairs(request: Request, raw: bytes) -> list[tuple[str, str]]:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    replayed = Request(request.scope, replay)
    # Files are parsed (the body is already within the size limit) so that
    # they can be refused as a 415, which says what to change, not a 400.
    try:
        form = await replayed.form(
            max_files=MAX_FORM_FIELDS, max_fields=MAX_FORM_FIELDS
        )
    except Exception as error:
        raise ProblemError(
            400, "malformed-request", f"the form cannot be read: {error}"
        ) from None
    try:
        pairs = []
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                raise ProblemError(
                    415, "unsupported-media-type", "files are not accepted"
                )
            pairs.append((name, value))
    finally:
        await form.close()
    # The parser reads a part that is not UTF-8 as Latin-1, silently; with
    # files refused, every byte of the body belongs to a text field.
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProblemError(400, "malformed-request", "the form is not UTF-8") from None
    return pairs


def _form_envelope(
    request: Request, pairs: list[tuple[str, str]], honeypot: str | None
) -> Envelope:
    """An HTML form's fields as one profile action; empty fields are ignored."""
    if len(pairs) > MAX_FORM_FIELDS:
        raise ProblemError(
            400, "malformed-request", f"more than {MAX_FORM_FIELDS} form fields"
        )
    token = request.headers.get(CAPTCHA_HEADER)
    honeypot_values = []
    fields = []
    for name, value in pairs:
        if name == CAPTCHA_FIELD:
            token = value or token
        elif honeypot and name == honeypot:
            honeypot_values.append(value)
        elif value != "":
            fields.append((name, value))
    return Envelope(
        body={"profile": _form_profile(fields)},
        is_form=True,
        captcha_token=token,
        honeypot_values=tuple(honeypot_values),
    )


def _form_profile(fields: list[tuple[str, str]]) -> dict[str, Any]:
    """Form fields as profile JSON: `custom.<name>`, `lists` (repeated or
    comma-separated ids) and `consent.text`/`consent.given` included."""
    profile: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    lists: list[dict[str, Any]] = []
    consent: dict[str, str] = {}
    for name, value in fields:
        if name == "lists":
            lists += [
                {"listId": _form_number(part.strip()), "subscribedTimestamp": True}
                for part in value.split(",")
                if part.strip()  # "7,8," or "7,,8": empty parts are ignored too
            ]
        elif name.startswith(CUSTOM_PREFIX):
            custom[name.removeprefix(CUSTOM_PREFIX)] = value
        elif name in ("consent.text", "consent.given"):
            consent[name.removeprefix("consent.")] = value
        else:
            profile[name] = value
    if custom:
        profile["custom"] = custom
    if lists:
        profile["lists"] = lists
    if consent:
        given = consent.get("given", "").lower() in ("on", "true", "yes", "1")
        profile["consent"] = {"text": consent.get("text", ""), "given": given}
    return profile


def _form_number(text: str) -> Any:
    # isdigit() alone admits "²" and other digits int() cannot read.
    return int(text) if text.isascii() and text.isdigit() else text


def _canonical(body: Any) -> bytes:
    """The body in one canonical form: sorted keys, no whitespace."""
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


# -- who is asking, and from where


def _client_ip(request: Request) -> str | None:
    peer = request.client.host if request.client else None
    return client_address(
        peer, request.headers.get("x-forwarded-for"), request.app.state.trusted_proxies
    )


async def _detailed(request: Request, integration: Integration) -> bool:
    """Detailed answers: configured, or asked for with a token that may read
    subscribers (the answer reveals who is subscribed)."""
    if integration.configuration.detailed_responses:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return False
    try:
        token = await run_in_threadpool(
            container_of(request).tokens.authenticate, presented.strip()
        )
    except Unauthenticated:
        return False
    return Permission.READ_SUBSCRIBERS in token.permissions


def _request_origin(request: Request) -> str | None:
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return origin.rstrip("/").lower()
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}".lower()
    return origin


def _origin_permitted(origin: str, integration: Integration) -> bool:
    allowed = integration.configuration.allowed_origins
    return "*" in allowed or origin.rstrip("/").lower() in allowed


def _origin_allowed(request: Request, integration: Integration) -> bool:
    """CORS alone does not stop a form post from another site; this does."""
    if integration.configuration.allows_any_origin:
        return True
    origin = _request_origin(request)
    return origin is None or _origin_permitted(origin, integration)


def _allow_origin_value(origin: str, integration: Integration) -> str:
    return "*" if integration.configuration.allows_any_origin else origin


def _with_cors(
    request: Request, integration: Integration, response: Response
) -> Response:
    origin = request.headers.get("origin")
    if origin is not None and _origin_permitted(origin, integration):
        response.headers["Access-Control-Allow-Origin"] = _allow_origin_value(
            origin, integration
        )
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    response.headers["Vary"] = "Origin"
    return response


async def _captcha_passed(
    request: Request, integration: Integration, envelope: Envelope, facts: RequestFacts
) -> bool:
    token = envelope.captcha_token
    secret = integration.recaptcha_secret
    if not token or secret is None:
        return False
    verifier = container_of(request).captcha
    try:
        verdict = await verifier.verify(
            secret=secret.get_secret_value(), token=token, client_ip=facts.client_ip
        )
    except CaptchaUnavailable as error:
        logger.warning("CAPTCHA verification unavailable: %s", error)
        raise ProblemError(
            503,
            "captcha-unavailable",
            "the CAPTCHA verifier is unavailable; nothing was written, retry later",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        ) from None
    minimum = integration.configuration.recaptcha_min_score
    return verdict.success and (verdict.score is None or verdict.score >= minimum)


# -- answers


def _results(
    answer: Answer, detailed: bool, count: int | None = None
) -> list[dict[str, Any]]:
    if count is not None:
        return [_plain(answer.mode) for _ in range(count)]
    return [_result(result, answer.mode, detailed) for result in answer.results]


def _plain(mode: Mode) -> dict[str, Any]:
    description = "would accept" if mode == "test" else "accepted"
    return {"code": 200, "name": "OK", "description": description}


def _result(result: ActionResult, mode: Mode, detailed: bool) -> dict[str, Any]:
    if not detailed or result.outcome == "refused":
        return _plain(mode)
    words = TEST_DESCRIPTIONS if mode == "test" else DESCRIPTIONS
    body: dict[str, Any] = {
        "code": 200,
        "name": "OK",
        "description": words[result.outcome],
    }
    creates_nothing = mode == "test" and result.outcome == "created"
    if result.kind == "profile" and result.subscriber_id and not creates_nothing:
        body["subscriberId"] = str(result.subscriber_id)
    return body


def _accepted(
    request: Request,
    answer: Answer,
    integration: Integration,
    form_post: bool,
    detailed: bool,
    *,
    actions: int | None = None,
) -> Response:
    body = {
        "submissionId": str(answer.submission_id),
        "position": answer.position,
        "mode": answer.mode,
        "duplicate": answer.duplicate,
        "results": _results(answer, detailed, actions),
    }
    headers = {"Idempotent-Replayed": "true"} if answer.duplicate else {}
    if form_post:
        redirect = integration.configuration.success_redirect_url
        if redirect:
            return RedirectResponse(redirect, status_code=303, headers=headers)
        if _wants_html(request):
            return HTMLResponse(
                _page("Thank you", "Your submission was received."), headers=headers
            )
    return JSONResponse(body, headers=headers)


def _refused(
    request: Request, answer: Answer, integration: Integration, form_post: bool
) -> Response:
    reason = answer.refusal
    assert reason is not None
    errors = None
    if answer.violations:
        errors = [
            {"action": v.action, "field": v.field, "rule": v.rule, "message": v.message}
            for v in answer.violations
        ]
    problem = ProblemError(
        REFUSAL_STATUS[reason], reason, REFUSAL_DETAIL[reason], errors=errors
    )
    return _problem(request, problem, form_post=form_post, integration=integration)


def _problem(
    request: Request,
    problem: ProblemError,
    *,
    form_post: bool,
    integration: Integration | None,
) -> Response:
    headers = dict(problem.headers or {})
    if form_post:
        redirect = integration.configuration.error_redirect_url if integration else None
        if redirect:
            return RedirectResponse(
                _with_query(redirect, {"error": problem.slug}),
                status_code=303,
                headers=headers,
            )
        if _wants_html(request):
            return HTMLResponse(
                _page("Not sent", problem.detail),
                status_code=problem.status,
                headers=headers,
            )
    body = problem_body(
        request, problem.status, problem.slug, problem.detail, errors=problem.errors
    )
    return Response(
        orjson.dumps(body),
        status_code=problem.status,
        media_type="application/problem+json",
        headers=headers,
    )


def _with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit(parts._replace(query=query))


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _page(title: str, message: str) -> str:
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></html>"
    )


def _endpoint(
    submit: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    # One route per URL for both methods, so that a 405's Allow header names
    # every method the URL answers, as RFC 9110 requires.
    async def handle(request: Request) -> Response:
        if request.method == "OPTIONS":
            return await preflight(request)
        return await submit(request)

    return handle


ROUTES: Final = (
    Route(
        "/v5/endpoints/{endpoint_id}",
        _endpoint(submit_production),
        methods=["POST", "OPTIONS"],
    ),
    Route(
        "/v5/test/endpoints/{endpoint_id}",
        _endpoint(submit_test),
        methods=["POST", "OPTIONS"],
    ),
)
