"""The admin console: server-rendered pages under `/console`.

The console is a second door to the application services the admin API
uses, with the same permissions (`domain/access.py`). It never opens the
admin API, which takes bearer tokens only.

Sessions: signing in checks an access token once. The session cookie then
holds the token's id and an expiry, signed with HMAC-SHA256 under a key
derived from the deployment key; never the token itself. Every request checks
again that the token exists and may still be used, so revoking a token ends
its console sessions at once. The cookie is HttpOnly, SameSite=Strict, sent
only to `/console`, and Secure when the request came over HTTPS.

CSRF: every form carries a token derived from its session with HMAC, and
every POST without the right one is refused with 403. The sign-in form has no
session yet; it is tied the same way to a short-lived cookie of its own, so
that another site cannot sign a browser in under someone else's token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit
from uuid import UUID

import orjson
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from api.http.jsonio import JSONResponse, read_limited, rfc3339
from api.http.problems import ProblemError, problem_body
from api.http.ratelimit import client_address

# The console streams the audit CSV and shows history exactly as the admin API
# does, so it reuses the API's own helpers rather than a copy of them.
from api.http.reading import audit_entry, csv_export, subscriber_history_entry
from api.http.representations import endpoint_urls, public_base
from api.http.routing import container_of
from api.http.specs import integration_spec
from api.http.submissions import REFUSAL_DETAIL, REFUSAL_STATUS, TEST_DESCRIPTIONS
from application.errors import (
    ConcurrencyConflict,
    Gone,
    NotFound,
    StoreUnavailable,
    Unauthenticated,
    VersionMismatch,
)
from application.reading import AuditFilter, ProjectionBehind
from application.submissions import Answer, Command, Refuse, RequestFacts
from domain.access import AccessToken, Permission
from domain.actions import (
    MAX_ACTIONS,
    ActionViolation,
    MalformedSubmission,
    split_actions,
)
from domain.configuration import (
    FIELD_NAMES,
    SECRET_FIELD,
    Configuration,
    parse_configuration,
)
from domain.errors import InvalidInput, Problem, StateConflict
from domain.integration import INTEGRATION_TYPES, Integration, SecretUpdate
from domain.profile import IDENTIFIERS
from domain.submission import ActionResult
from infrastructure.eventlog import event_types

logger = logging.getLogger(__name__)

PREFIX: Final = "/console"
HERE: Final = Path(__file__).parent
TEMPLATES: Final = HERE / "templates"
STATIC: Final = HERE / "static"

SESSION_COOKIE: Final = "headwater_console"
SIGN_IN_COOKIE: Final = "headwater_console_sign_in"
SESSION_LIFETIME: Final = timedelta(hours=8)
SIGN_IN_LIFETIME: Final = timedelta(minutes=30)
#: A cookie longer than this is not one the console wrote.
MAX_COOKIE_LENGTH: Final = 1024
#: Purpose of the key derived from the deployment key for the console.
KEY_PURPOSE: Final = "console-session"

FORM_TYPE: Final = "application/x-www-form-urlencoded"
FORM_LIMIT: Final = 256 * 1024
MAX_FORM_FIELDS: Final = 100
MAX_SECRET_LENGTH: Final = 1000
MAX_USER_AGENT: Final = 512
PAGE_SIZE: Final = 50
MAX_LIMIT: Final = 500
#: How long the integrations page waits for its read model to catch up with
#: the log, so that a change just made shows; after that it says it may lag.
LIST_WAIT_SECONDS: Final = 2.0

SECURITY_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

#: Messages shown after a redirect, by the `done` query parameter. Only these
#: fixed texts are shown, so a link cannot make the console say anything else.
DONE: Final = {
    "created": "Integration created. Configure it, then save changes.",
    "saved": "Changes saved.",
    "unchanged": "Nothing had changed, so nothing was recorded.",
    "activated": "Activated: the production endpoint accepts submissions.",
    "deactivated": "Deactivated: the production endpoint stopped accepting.",
    "rotated": "A new endpoint was issued; the old URLs no longer answer.",
    "signed-out": "You are signed out.",
    "rebuild": "Rebuild requested; it runs beside the live projection.",
}

CHECKBOXES: Final = (
    "allowProfileCreation",
    "allowProfileUpdates",
    "allowEventLogging",
    "allowMessages",
    "allowMessagesToUnsubscribed",
    "requireRecaptcha",
    "detailedResponses",
)
#: Text fields whose empty value means null.
OPTIONAL_TEXT: Final = (
    "importSourceName",
    "honeypotField",
    "defaultPhoneRegion",
    "successRedirectUrl",
    "errorRedirectUrl",
)
EDITOR_FIELDS: Final = FIELD_NAMES | {SECRET_FIELD}
SECRET_CLEAR: Final = "recaptchaSecretClear"
EXAMPLE_IDENTIFIERS: Final = {
    "email": "ann@example.com",
    "ref": "customer-1001",
    "phone": "+61412345678",
}


# -- sessions and CSRF


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def same(presented: str, expected: str) -> bool:
    """Compare in constant time; bytes, since what was presented may be any text."""
    return hmac.compare_digest(presented.encode(), expected.encode())


class Signer:
    """Signs the console's cookies and derives CSRF tokens from them."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, kind: str, *, expires: datetime, **claims: str) -> str:
        """A cookie value: its claims, readable, and their signature.

        A random nonce makes every cookie, and so its CSRF token, unique.
        """
        body = {
            **claims,
            "kind": kind,
            "exp": int(expires.timestamp()),
            "nonce": secrets.token_urlsafe(16),
        }
        payload = _encode(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
        return f"{payload}.{self._mac('cookie', payload)}"

    def verify(self, value: str, *, kind: str, now: datetime) -> dict[str, Any] | None:
        """The claims of a cookie this console signed, of this kind, unexpired."""
        if not value or len(value) > MAX_COOKIE_LENGTH:
            return None
        payload, _, mac = value.partition(".")
        if not same(mac, self._mac("cookie", payload)):
            return None
        try:
            claims = orjson.loads(_decode(payload))
        except ValueError:
            return None
        if not isinstance(claims, dict) or claims.get("kind") != kind:
            return None
        expires = claims.get("exp")
        if not isinstance(expires, int) or expires <= now.timestamp():
            return None
        return claims

    def csrf_token(self, cookie: str) -> str:
        """The token a form of this cookie's session must send back."""
        return self._mac("csrf", cookie)

    def _mac(self, purpose: str, text: str) -> str:
        message = f"{purpose}\x00{text}".encode()
        return _encode(hmac.new(self._key, message, hashlib.sha256).digest())


@dataclass(frozen=True)
class Session:
    """A signed-in console user: the token it was opened with, and the CSRF
    token its forms carry."""

    token: AccessToken
    csrf: str

    def may(self, permission: Permission) -> bool:
        return permission in self.token.permissions


def signer_of(request: Request) -> Signer:
    state = request.app.state
    signer: Signer | None = getattr(state, "console_signer", None)
    if signer is None:
        key = container_of(request).deployment_key.derive(KEY_PURPOSE)
        signer = state.console_signer = Signer(key)
    return signer


def now_of(request: Request) -> datetime:
    return container_of(request).clock.now()


async def current_session(request: Request) -> Session | None:
    """The session of the request's cookie, if its token may still be used."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    signer = signer_of(request)
    claims = signer.verify(cookie, kind="session", now=now_of(request))
    if claims is None:
        return None
    try:
        token_id = UUID(str(claims.get("tokenId")))
    except ValueError:
        return None
    # The token is read again on every request: a revoked or expired token
    # ends the session at once, on every process.
    tokens = container_of(request).tokens
    token = await run_in_threadpool(tokens.find_usable, token_id)
    if token is None:
        return None
    return Session(token, signer.csrf_token(cookie))


def set_cookie(
    response: Response, request: Request, name: str, value: str, lifetime: timedelta
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(lifetime.total_seconds()),
        path=PREFIX,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        name,
        path=PREFIX,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console page, never another site."""
    if (
        value
        and value.startswith(PREFIX)
        and value.isprintable()
        and "\\" not in value
        and not urlsplit(value).netloc
        and not value.startswith(f"{PREFIX}/sign-")
    ):
        return value
    return PREFIX


# -- forms


@dataclass(frozen=True)
class Form:
    """A posted form's fields, in order."""

    pairs: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str:
        return next((value for key, value in self.pairs if key == name), "")

    def has(self, name: str) -> bool:
        return any(key == name for key, _ in self.pairs)


class ConsoleError(Exception):
    """Answered with the console's error page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_form(request: Request) -> Form:
    """The console's own forms are URL-encoded; anything else holds no CSRF
    token, so it reads as an empty form and is refused by that check."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip()
    if media_type.lower() != FORM_TYPE:
        return Form()
    raw = await read_limited(request, FORM_LIMIT)
    try:
        pairs = parse_qsl(
            raw.decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise ConsoleError(400, "the form could not be read") from None
    return Form(tuple(pairs))


# -- rendering


@cache
def environment() -> Environment:
    # Autoescaping is on for every template: whatever a page shows (names,
    # submitted values, audit entries) is escaped.
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def render(
    request: Request,
    session: Session | None,
    template: str,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    permissions = session.token.permissions if session else frozenset()
    page = (
        environment()
        .get_template(template)
        .render(
            prefix=PREFIX,
            path=request.url.path,
            session=session,
            can={
                permission.value: permission in permissions for permission in Permission
            },
            csrf=session.csrf if session else "",
            flash=DONE.get(request.query_params.get("done", "")),
            pretty=pretty,
            **context,
        )
    )
    return HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS)


def error_page(
    request: Request, session: Session | None, status: int, message: str
) -> Response:
    return render(
        request,
        session,
        "error.html",
        status=status,
        status_code=status,
        title=HTTPStatus(status).phrase,
        message=message,
    )


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


PageHandler = Callable[[Request, Session, Form], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def guarded(handler: PageHandler, permission: Permission | None) -> Endpoint:
    """A page that needs a session, a CSRF token on POST, and a permission.

    The permission is the admin API's for the same operation: what the
    console hides from a role, it also refuses.
    """

    async def endpoint(request: Request) -> Response:
        try:
            session = await current_session(request)
        except StoreUnavailable:
            return error_page(request, None, 503, "the store is unavailable; retry")
        if session is None:
            return to_sign_in(request)
        try:
            return await _checked(request, session, handler, permission)
        except (ConsoleError, ProblemError, NotFound, Gone, StoreUnavailable) as error:
            return error_page(request, session, *failure(error))

    return endpoint


async def _checked(
    request: Request,
    session: Session,
    handler: PageHandler,
    permission: Permission | None,
) -> Response:
    form = Form()
    if request.method == "POST":
        form = await read_form(request)
        if not same(form.get("csrf"), session.csrf):
            raise ConsoleError(
                403,
                "this form did not come from your console session, or the session "
                "changed; reload the page and try again",
            )
    if permission is not None and not session.may(permission):
        raise ConsoleError(
            403,
            f"the {session.token.role} role lacks the {permission} permission "
            "this page needs",
        )
    return await handler(request, session, form)


def failure(error: Exception) -> tuple[int, str]:
    """The status and message of the error page for an error."""
    match error:
        case ConsoleError():
            return error.status, error.message
        case ProblemError():
            return error.status, error.detail
        case NotFound():
            return 404, str(error)
        case Gone():
            return 410, str(error)
        case _:
            return 503, "the store is unavailable; retry shortly"


def to_sign_in(request: Request) -> Response:
    target = request.url.path
    if request.url.query and request.method == "GET":
        target += "?" + request.url.query
    response = redirect(f"{PREFIX}/sign-in?" + urlencode({"next": target}))
    if SESSION_COOKIE in request.cookies:
        clear_cookie(response, request, SESSION_COOKIE)
    return response


# -- signing in and out


async def sign_in_form(request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    if await current_session(request) is not None:
        return redirect(next_path)
    return sign_in_page(request, next_path=next_path)


def sign_in_page(
    request: Request,
    *,
    next_path: str,
    error: str | None = None,
    status: int = 200,
) -> Response:
    signer = signer_of(request)
    cookie = signer.sign("sign-in", expires=now_of(request) + SIGN_IN_LIFETIME)
    response = render(
        request,
        None,
        "sign_in.html",
        status=status,
        sign_in_csrf=signer.csrf_token(cookie),
        next_path=next_path,
        error=error,
    )
    set_cookie(response, request, SIGN_IN_COOKIE, cookie, SIGN_IN_LIFETIME)
    return response


async def sign_in(request: Request) -> Response:
    try:
        form = await read_form(request)
    except (ConsoleError, ProblemError):
        form = Form()
    next_path = safe_next(form.get("next"))
    signer = signer_of(request)
    cookie = request.cookies.get(SIGN_IN_COOKIE, "")
    fresh = signer.verify(cookie, kind="sign-in", now=now_of(request)) is not None
    if not fresh or not same(form.get("csrf"), signer.csrf_token(cookie)):
        return sign_in_page(
            request,
            next_path=next_path,
            error="This sign-in form expired or did not come from the console; "
            "sign in again.",
            status=403,
        )
    tokens = container_of(request).tokens
    try:
        token = await run_in_threadpool(tokens.authenticate, form.get("token").strip())
    except Unauthenticated:
        logger.info("a console sign-in was refused")
        return sign_in_page(
            request,
            next_path=next_path,
            error="That access token was not accepted: it is unknown, revoked or "
            "expired.",
            status=401,
        )
    except StoreUnavailable:
        return error_page(request, None, 503, "the store is unavailable; retry")
    session = signer.sign(
        "session",
        expires=now_of(request) + SESSION_LIFETIME,
        tokenId=str(token.id),
    )
    response = redirect(next_path)
    set_cookie(response, request, SESSION_COOKIE, session, SESSION_LIFETIME)
    clear_cookie(response, request, SIGN_IN_COOKIE)
    logger.info("console session opened for token %s (%s)", token.id, token.role)
    return response


async def sign_out(request: Request, session: Session, form: Form) -> Response:
    response = redirect(f"{PREFIX}/sign-in?done=signed-out")
    clear_cookie(response, request, SESSION_COOKIE)
    return response


# -- integrations


def integration_id(request: Request) -> UUID:
    try:
        return UUID(request.path_params["integration_id"])
    except ValueError:
        raise ConsoleError(404, "no such integration") from None


async def integrations_page(request: Request, session: Session, form: Form) -> Response:
    return await _integrations(request, session)


async def new_integration_page(
    request: Request, session: Session, form: Form
) -> Response:
    """The list with the New Integration dialog open: the dialog without script."""
    return await _integrations(request, session, dialog_open=True)


async def _integrations(
    request: Request,
    session: Session,
    *,
    dialog_open: bool = False,
    values: Mapping[str, str] | None = None,
    problems: Sequence[Problem] = (),
    status: int = 200,
) -> Response:
    container = container_of(request)
    read_side = container.read_side

    def load() -> tuple[list[dict[str, Any]], bool]:
        # The list reads a projection; waiting for it to reach the head of
        # the log makes a change just made in the editor show here.
        try:
            read_side.wait_for(
                "integrations", container.events.head(), timeout=LIST_WAIT_SECONDS
            )
            behind = False
        except ProjectionBehind:
            behind = True
        return read_side.read_models.integrations().rows, behind

    rows, behind = await run_in_threadpool(load)
    errors, general = field_errors(problems, {"name", "type"})
    return render(
        request,
        session,
        "integrations.html",
        status=status,
        integrations=rows,
        behind=behind,
        types=INTEGRATION_TYPES,
        dialog_open=dialog_open,
        values=values or {"name": "", "type": INTEGRATION_TYPES[0]},
        errors=errors,
        general=general,
    )


async def create_integration(
    request: Request, session: Session, form: Form
) -> Response:
    name, integration_type = form.get("name").strip(), form.get("type")
    integrations = container_of(request).integrations
    try:
        change = await run_in_threadpool(
            lambda: integrations.create(
                name=name,
                integration_type=integration_type,
                actor=session.token.as_actor(),
            )
        )
    except InvalidInput as error:
        return await _integrations(
            request,
            session,
            dialog_open=True,
            values={"name": name, "type": integration_type},
            problems=error.problems,
            status=422,
        )
    return redirect(f"{PREFIX}/integrations/{change.integration.id}?done=created")


async def editor_page(request: Request, session: Session, form: Form) -> Response:
    integration = await _load(request)
    return editor(request, session, integration)


async def _load(request: Request) -> Integration:
    identifier = integration_id(request)
    integrations = container_of(request).integrations
    return await run_in_threadpool(integrations.get, identifier)


@dataclass(frozen=True)
class Trial:
    """The answer a Try it submission got, as the test URL would give it."""

    status: int
    body: dict[str, Any]

    @property
    def phrase(self) -> str:
        return HTTPStatus(self.status).phrase


def editor(
    request: Request,
    session: Session,
    integration: Integration,
    *,
    values: Mapping[str, Any] | None = None,
    problems: Sequence[Problem] = (),
    general: Sequence[str] = (),
    status: int = 200,
    trial: Trial | None = None,
    trial_body: str | None = None,
) -> Response:
    errors, unplaced = field_errors(problems, EDITOR_FIELDS)
    production_url, test_url = endpoint_urls(
        public_base(request), integration.endpoint_id
    )
    return render(
        request,
        session,
        "editor.html",
        status=status,
        integration=integration,
        values=values if values is not None else values_of(integration.configuration),
        secret_set=integration.recaptcha_secret is not None,
        identifiers=IDENTIFIERS,
        errors=errors,
        general=[*general, *unplaced],
        production_url=production_url,
        test_url=test_url,
        trial=trial,
        trial_body=trial_body
        if trial_body is not None
        else example_submission(integration.configuration),
        created_at=rfc3339(integration.created_on),
        updated_at=rfc3339(integration.modified_on),
    )


def values_of(configuration: Configuration) -> dict[str, Any]:
    """A stored configuration as the editor's field values."""
    values: dict[str, Any] = {}
    for name, value in configuration.as_json().items():
        if name == "allowedOrigins":
            values[name] = "\n".join(value)
        elif name == "fieldValidationRules":
            values[name] = pretty(value)
        elif isinstance(value, bool):
            values[name] = value
        else:
            values[name] = "" if value is None else str(value)
    return values


def values_from(form: Form) -> dict[str, Any]:
    """The posted values, shown again as they were typed when saving fails."""
    values: dict[str, Any] = {name: form.get(name) for name in FIELD_NAMES}
    values.update({name: form.has(name) for name in CHECKBOXES})
    return values


def configuration_from(
    form: Form,
) -> tuple[dict[str, Any], SecretUpdate, list[Problem]]:
    """The contract's configuration JSON from the editor's fields.

    A field that cannot even be read (a number that is not one, rules that
    are not JSON) is left out, so that its default stands in while the rest
    is checked, and reported as a problem of its own.
    """
    configuration: dict[str, Any] = {
        "name": form.get("name").strip(),
        "identifyBy": form.get("identifyBy"),
        # One origin a line; commas and spaces separate them too.
        "allowedOrigins": form.get("allowedOrigins").replace(",", " ").split(),
    }
    configuration.update({name: form.has(name) for name in CHECKBOXES})
    configuration.update(
        {name: form.get(name).strip() or None for name in OPTIONAL_TEXT}
    )
    problems = _numbers(form, configuration)

    rules, rule_problems = _rules(form.get("fieldValidationRules"))
    if rules is not None:
        configuration["fieldValidationRules"] = rules
    secret, secret_problems = _secret(form)
    return configuration, secret, problems + rule_problems + secret_problems


def _numbers(form: Form, configuration: dict[str, Any]) -> list[Problem]:
    """Read the number fields into `configuration`; the ones that are not."""
    problems = []
    activity = form.get("triggerActivityId").strip()
    if not activity:
        configuration["triggerActivityId"] = None
    elif activity.isdigit():
        configuration["triggerActivityId"] = int(activity)
    else:
        problems.append(
            Problem("triggerActivityId", "type", "must be a whole number, or empty")
        )
    for name, parse in (("recaptchaMinScore", float), ("dedupePeriodSeconds", int)):
        text = form.get(name).strip()
        if not text:
            continue
        try:
            configuration[name] = parse(text)
        except ValueError:
            problems.append(Problem(name, "type", f"{text[:20]!r} is not a number"))
    return problems


def _rules(text: str) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The rules object typed in the textarea; empty means none."""
    try:
        rules = orjson.loads(text.strip() or "{}")
    except orjson.JSONDecodeError as error:
        return None, [Problem("fieldValidationRules", "json", f"not JSON: {error}")]
    if not isinstance(rules, dict):
        message = "must be a JSON object mapping a field to its rule"
        return None, [Problem("fieldValidationRules", "type", message)]
    return rules, []


def _secret(form: Form) -> tuple[SecretUpdate, list[Problem]]:
    """Write-only: empty keeps the stored secret, the checkbox clears it."""
    if form.has(SECRET_CLEAR):
        return SecretUpdate("clear"), []
    text = form.get(SECRET_FIELD)
    if len(text) > MAX_SECRET_LENGTH:
        message = f"must be at most {MAX_SECRET_LENGTH} characters"
        return SecretUpdate.keep(), [Problem(SECRET_FIELD, "maxLength", message)]
    if text:
        return SecretUpdate("set", text), []
    return SecretUpdate.keep(), []


def field_errors(
    problems: Sequence[Problem], fields: frozenset[str] | set[str]
) -> tuple[dict[str, list[str]], list[str]]:
    """Problems by the form field they belong to, and those that fit none.

    A nested problem (`fieldValidationRules.postcode.pattern`) belongs to its
    top field and keeps the rest of its path in the message.
    """
    by_field: dict[str, list[str]] = {}
    unplaced: list[str] = []
    for problem in problems:
        head, _, rest = problem.field.partition(".")
        if head not in fields:
            unplaced.append(f"{problem.field}: {problem.message}")
            continue
        shown_path = rest and not rest.isdigit()
        message = f"{rest}: {problem.message}" if shown_path else problem.message
        by_field.setdefault(head, []).append(message)
    return by_field, unplaced


async def save_integration(request: Request, session: Session, form: Form) -> Response:
    integration = await _load(request)
    configuration, secret, problems = configuration_from(form)
    if problems:
        # Report the rest of the configuration's problems with these.
        new_secret = secret.applied_to(integration.recaptcha_secret)
        try:
            parse_configuration(configuration, secret_set=new_secret is not None)
        except InvalidInput as error:
            problems += error.problems
        return editor(
            request,
            session,
            integration,
            values=values_from(form),
            problems=problems,
            status=422,
        )
    version = form.get("version")
    integrations = container_of(request).integrations
    try:
        change = await run_in_threadpool(
            lambda: integrations.save_changes(
                integration.id,
                configuration,
                secret=secret,
                expected_version=int(version) if version.isdigit() else None,
                actor=session.token.as_actor(),
            )
        )
    except InvalidInput as error:
        return editor(
            request,
            session,
            integration,
            values=values_from(form),
            problems=error.problems,
            status=422,
        )
    except VersionMismatch as error:
        return editor(
            request,
            session,
            await _load(request),
            values=values_from(form),
            general=[
                "Someone saved this integration after you opened it (it is now "
                f"version {error.current}). Your changes are below and were not "
                "saved: reload the page to see theirs, then make yours again."
            ],
            status=412,
        )
    done = "saved" if change.position is not None else "unchanged"
    return redirect(f"{PREFIX}/integrations/{integration.id}?done={done}")


def lifecycle(command: str, done: str) -> PageHandler:
    async def handler(request: Request, session: Session, form: Form) -> Response:
        identifier = integration_id(request)
        integrations = container_of(request).integrations
        method = getattr(integrations, command)
        try:
            await run_in_threadpool(
                lambda: method(identifier, actor=session.token.as_actor())
            )
        except (StateConflict, ConcurrencyConflict) as error:
            return editor(
                request,
                session,
                await _load(request),
                general=[str(error).capitalize()],
                status=409,
            )
        return redirect(f"{PREFIX}/integrations/{identifier}?done={done}")

    return handler


def spec_file(mode: str) -> PageHandler:
    async def handler(request: Request, session: Session, form: Form) -> Response:
        integration = await _load(request)
        document = integration_spec(integration, base=public_base(request), mode=mode)
        filename = f"headwater-{mode}-{integration.endpoint_id[:8]}.openapi.json"
        return JSONResponse(
            document,
            headers={
                **SECURITY_HEADERS,
                "Content-Disposition": f'attachment; filename="{filename}"',
            },
        )

    return handler


# -- Try it: a test-mode submission


def example_submission(configuration: Configuration) -> str:
    """A profile action with the identifying field and every required field."""
    identify_by = configuration.identify_by
    profile: dict[str, Any] = {
        identify_by: EXAMPLE_IDENTIFIERS[identify_by],
        "firstname": "Ann",
    }
    for name, rule in configuration.field_validation_rules.items():
        if not rule.get("required") or name in profile:
            continue
        enum = rule.get("enum")
        value = enum[0] if enum else "example"
        if name.startswith("custom."):
            profile.setdefault("custom", {})[name.removeprefix("custom.")] = value
        else:
            profile[name] = value
    return pretty([{"profile": profile}])


async def try_submission(request: Request, session: Session, form: Form) -> Response:
    integration = await _load(request)
    text = form.get("body")
    trial = await _trial(request, session, integration, text)
    return editor(request, session, integration, trial=trial, trial_body=text)


async def _trial(
    request: Request, session: Session, integration: Integration, text: str
) -> Trial:
    """What the test URL answers this body, decided and recorded by the same
    intake and writer, as a test submission.

    The console calls from the server, so no origin is checked, and it is not
    rate-limited; a CAPTCHA cannot be solved here, so an integration that
    requires one refuses the trial as the test URL would refuse a request
    without a token. The answer is detailed when the integration says so, or
    when the user's role may read subscribers, as with a token on the API.
    """
    container = container_of(request)

    def problem(status: int, slug: str, detail: str, **extra: Any) -> Trial:
        return Trial(status, problem_body(request, status, slug, detail, **extra))

    try:
        body = orjson.loads(text)
        count = len(split_actions(body, limit=None))
    except orjson.JSONDecodeError as error:
        return problem(400, "malformed-request", f"the body is not JSON: {error}")
    except MalformedSubmission as error:
        return problem(400, "malformed-request", str(error))

    current = await run_in_threadpool(
        container.intake.endpoint, integration.endpoint_id, "test"
    )
    if current is None:
        return problem(
            404,
            "not-found",
            "the test URL answers saved integrations only; save changes first",
        )
    configuration = current.configuration
    body, honeypot_filled = without_honeypot(body, configuration.honeypot_field)
    peer = request.client.host if request.client else None
    facts = RequestFacts(
        endpoint_id=current.endpoint_id,
        mode="test",
        received_at=now_of(request),
        client_ip=client_address(
            peer,
            request.headers.get("x-forwarded-for"),
            request.app.state.trusted_proxies,
        ),
        user_agent=(request.headers.get("user-agent") or "")[:MAX_USER_AGENT] or None,
        idempotency_key=None,
        body_digest=container.fingerprints.of(
            "body", orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        ),
        detailed=configuration.detailed_responses
        or session.may(Permission.READ_SUBSCRIBERS),
    )

    command: Command
    if honeypot_filled:
        command = Refuse(current, facts, "honeypot")
    elif configuration.require_recaptcha:
        command = Refuse(current, facts, "captcha-failed")
    elif count > MAX_ACTIONS:
        violation = ActionViolation(
            MAX_ACTIONS,
            "(body)",
            "maxItems",
            f"a submission holds at most {MAX_ACTIONS} actions",
        )
        command = Refuse(current, facts, "validation-failed", [violation])
    else:
        honeypot = configuration.honeypot_field
        command = container.intake.prepare(
            current,
            facts,
            body,
            extra_profile_keys=frozenset({honeypot}) if honeypot else frozenset(),
        )
    answer: Answer = await asyncio.wrap_future(container.writer.submit(command))

    if answer.refusal == "honeypot":
        # Answered as accepted, like the public endpoint answers a bot.
        plain = [trial_result(None, detailed=False) for _ in range(count)]
        return Trial(200, accepted_body(answer, plain))
    if answer.refusal is not None:
        errors = [
            {"action": v.action, "field": v.field, "rule": v.rule, "message": v.message}
            for v in answer.violations
        ]
        return problem(
            REFUSAL_STATUS[answer.refusal],
            answer.refusal,
            REFUSAL_DETAIL[answer.refusal],
            errors=errors or None,
        )
    results = [trial_result(r, detailed=facts.detailed) for r in answer.results]
    return Trial(200, accepted_body(answer, results))


def without_honeypot(body: Any, honeypot: str | None) -> tuple[Any, bool]:
    """The body without the honeypot field, and whether any was filled."""
    if not honeypot:
        return body, False
    filled = False
    cleaned = []
    for item in body if isinstance(body, list) else [body]:
        profile = item.get("profile") if isinstance(item, dict) else None
        if isinstance(profile, dict) and honeypot in profile:
            filled = filled or profile[honeypot] not in (None, "")
            cleaned.append(
                {"profile": {k: v for k, v in profile.items() if k != honeypot}}
            )
        else:
            cleaned.append(item)
    return (cleaned if isinstance(body, list) else cleaned[0]), filled


def trial_result(result: ActionResult | None, *, detailed: bool) -> dict[str, Any]:
    """One result as the test URL words it (docs/submissions.md)."""
    if result is None or not detailed or result.outcome == "refused":
        return {"code": 200, "name": "OK", "description": "would accept"}
    answer: dict[str, Any] = {
        "code": 200,
        "name": "OK",
        "description": TEST_DESCRIPTIONS[result.outcome],
    }
    # A test-mode creation creates nothing, so there is no subscriber to name.
    if (
        result.kind == "profile"
        and result.subscriber_id
        and result.outcome != "created"
    ):
        answer["subscriberId"] = str(result.subscriber_id)
    return answer


def accepted_body(answer: Answer, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "submissionId": str(answer.submission_id),
        "position": answer.position,
        "mode": answer.mode,
        "duplicate": answer.duplicate,
        "results": results,
    }


# -- audit


AUDIT_FILTERS: Final = ("subjectId", "integrationId", "actor", "action", "from", "to")


def utc_text(local: str) -> str:
    """A `datetime-local` value, read as UTC, as the audit's fixed-width text."""
    moment = datetime.fromisoformat(local)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def audit_filter_of(
    params: Mapping[str, str],
) -> tuple[AuditFilter, dict[str, str], dict[str, list[str]]]:
    """The filter, the values to show again, and problems by field."""
    values = {name: params.get(name, "").strip() for name in AUDIT_FILTERS}
    errors: dict[str, list[str]] = {}
    times: dict[str, str | None] = {}
    for name in ("from", "to"):
        try:
            times[name] = utc_text(values[name]) if values[name] else None
        except ValueError:
            times[name] = None
            errors[name] = ["must be a date and time, like 2026-12-03T12:00"]
    where = AuditFilter(
        subject_id=values["subjectId"] or None,
        integration_id=values["integrationId"] or None,
        actor=values["actor"] or None,
        action=values["action"] or None,
        occurred_from=times["from"],
        occurred_to=times["to"],
    )
    return where, values, errors


async def audit_page(request: Request, session: Session, form: Form) -> Response:
    where, values, errors = audit_filter_of(request.query_params)
    read_side = container_of(request).read_side
    cursor = request.query_params.get("cursor") or None
    limit = request.query_params.get("limit", "")
    page_size = (
        int(limit) if limit.isdigit() and 1 <= int(limit) <= MAX_LIMIT else PAGE_SIZE
    )
    entries: list[dict[str, Any]] = []
    next_cursor = None
    if not errors:
        try:
            page = await run_in_threadpool(
                lambda: read_side.audit(
                    where,
                    cursor=cursor,
                    limit=page_size,
                    descending=True,
                    reveal=session.may(Permission.READ_SUBSCRIBERS),
                )
            )
        except ValueError as error:
            errors["cursor"] = [str(error)]
        else:
            entries = [audit_entry(row) for row in page.items]
            next_cursor = page.next_cursor
    query = {name: value for name, value in values.items() if value}
    if page_size != PAGE_SIZE:
        query["limit"] = str(page_size)
    return render(
        request,
        session,
        "audit.html",
        status=400 if errors else 200,
        values=values,
        errors=errors,
        entries=entries,
        actions=sorted(event_types()),
        first_page=cursor is not None,
        next_url=f"{PREFIX}/audit?" + urlencode({**query, "cursor": next_cursor})
        if next_cursor
        else None,
        first_url=f"{PREFIX}/audit?" + urlencode(query),
        csv_url=f"{PREFIX}/audit.csv?"
        + urlencode({k: v for k, v in query.items() if k != "limit"}),
    )


async def audit_csv(request: Request, session: Session, form: Form) -> Response:
    """The same CSV as `GET /admin/v1/audit` with `Accept: text/csv`."""
    where, _, errors = audit_filter_of(request.query_params)
    if errors:
        raise ConsoleError(400, "from and to must be dates and times")
    response = await run_in_threadpool(csv_export, request, session.token, where)
    response.headers.update(SECURITY_HEADERS)
    return response


# -- subscribers


def subscriber_id(request: Request) -> UUID:
    try:
        return UUID(request.path_params["subscriber_id"])
    except ValueError:
        raise ConsoleError(404, "no such subscriber") from None


async def subscribers_page(request: Request, session: Session, form: Form) -> Response:
    params = request.query_params
    by = params.get("by", "email")
    value = params.get("value", "").strip()
    cursor = params.get("cursor") or None
    read_side = container_of(request).read_side
    error = None
    if by not in IDENTIFIERS:
        raise ConsoleError(400, "find by email, ref or phone")
    try:
        page = await run_in_threadpool(
            lambda: read_side.search_profiles(
                identifier=(by, value) if value else None,
                limit=PAGE_SIZE,
                cursor=cursor,
                reveal=True,
            )
        )
    except ValueError as problem:
        raise ConsoleError(400, str(problem)) from None
    if value and len(page.items) == 1:
        return redirect(f"{PREFIX}/subscribers/{page.items[0]['id']}")
    if value:
        error = (
            f"No profile holds that {by}. A profile submitted a moment ago may "
            "take a moment to appear."
        )
    return render(
        request,
        session,
        "subscribers.html",
        by=by,
        value=value,
        identifiers=IDENTIFIERS,
        profiles=page.items if not value else [],
        error=error,
        next_url=f"{PREFIX}/subscribers?" + urlencode({"cursor": page.next_cursor})
        if page.next_cursor and not value
        else None,
    )


PROFILE_ROWS: Final = (
    "id",
    "ref",
    "email",
    "phone",
    "title",
    "firstname",
    "lastname",
    "dob",
    "gender",
    "address",
    "address2",
    "address3",
    "suburb",
    "state",
    "country",
    "postcode",
    "notifications",
    "extra",
    "custom",
    "lists",
    "unsubscribed",
    "unsubscribedAt",
    "source",
    "createdAt",
    "updatedAt",
)


def shown(value: Any) -> str:
    if value is None or value in ({}, []):
        return ""
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


async def subscriber_page(request: Request, session: Session, form: Form) -> Response:
    identifier = subscriber_id(request)
    read_side = container_of(request).read_side
    as_of_text = request.query_params.get("asOf", "").strip()
    profile, _ = await run_in_threadpool(
        lambda: read_side.profile(identifier, reveal=True)
    )
    events = await run_in_threadpool(read_side.profile_history, identifier)
    history = [subscriber_history_entry(event, reveal=True) for event in events]

    as_of: dict[str, Any] | None = None
    as_of_error = None
    if as_of_text:
        try:
            moment = datetime.fromisoformat(utc_text(as_of_text))
        except ValueError:
            as_of_error = "must be a date and time, like 2026-12-03T12:00"
        else:
            try:
                as_of = await run_in_threadpool(
                    read_side.profile_as_of, identifier, moment
                )
            except NotFound:
                as_of_error = "the profile did not exist yet at that time"
    rows = [
        (name, shown(profile.get(name)), shown(as_of.get(name)) if as_of else None)
        for name in PROFILE_ROWS
    ]
    return render(
        request,
        session,
        "subscriber.html",
        profile=profile,
        rows=[row for row in rows if row[1] or row[2]],
        as_of_text=as_of_text,
        as_of=as_of,
        as_of_error=as_of_error,
        history=list(reversed(history)),
    )


# -- status


async def status_page(request: Request, session: Session, form: Form) -> Response:
    container = container_of(request)
    projections = await run_in_threadpool(container.read_side.status)
    counts = await run_in_threadpool(container.deliveries.counts)
    return render(
        request,
        session,
        "status.html",
        projections=projections,
        counts=dict(counts),
        channel="webhook" if container.channel is not None else None,
    )


async def rebuild(request: Request, session: Session, form: Form) -> Response:
    name = request.path_params["name"]
    read_side = container_of(request).read_side
    await run_in_threadpool(read_side.rebuild, name)
    logger.info("console: rebuild of projection %s requested", name)
    return redirect(f"{PREFIX}/status?done=rebuild")


async def not_found(request: Request, session: Session, form: Form) -> Response:
    if not request.path_params["rest"]:
        return redirect(PREFIX)
    raise ConsoleError(404, "no console page is here")


def _route(
    path: str,
    handler: PageHandler,
    permission: Permission | None,
    method: str = "GET",
) -> Route:
    return Route(PREFIX + path, guarded(handler, permission), methods=[method])


ONE: Final = "/integrations/{integration_id}"

ROUTES: Final[tuple[BaseRoute, ...]] = (
    Route(PREFIX + "/sign-in", sign_in_form, methods=["GET"]),
    Route(PREFIX + "/sign-in", sign_in, methods=["POST"]),
    _route("/sign-out", sign_out, None, "POST"),
    _route("", integrations_page, Permission.READ_INTEGRATIONS),
    _route("/integrations/new", new_integration_page, Permission.WRITE_INTEGRATIONS),
    _route("/integrations", create_integration, Permission.WRITE_INTEGRATIONS, "POST"),
    _route(ONE, editor_page, Permission.READ_INTEGRATIONS),
    _route(ONE, save_integration, Permission.WRITE_INTEGRATIONS, "POST"),
    _route(
        ONE + "/activate",
        lifecycle("activate", "activated"),
        Permission.WRITE_INTEGRATIONS,
        "POST",
    ),
    _route(
        ONE + "/deactivate",
        lifecycle("deactivate", "deactivated"),
        Permission.WRITE_INTEGRATIONS,
        "POST",
    ),
    _route(
        ONE + "/rotate-endpoint",
        lifecycle("rotate_endpoint", "rotated"),
        Permission.WRITE_INTEGRATIONS,
        "POST",
    ),
    _route(ONE + "/openapi/test", spec_file("test"), Permission.READ_INTEGRATIONS),
    _route(
        ONE + "/openapi/production",
        spec_file("production"),
        Permission.READ_INTEGRATIONS,
    ),
    _route(ONE + "/try", try_submission, Permission.READ_INTEGRATIONS, "POST"),
    _route("/audit", audit_page, Permission.READ_AUDIT),
    _route("/audit.csv", audit_csv, Permission.READ_AUDIT),
    _route("/subscribers", subscribers_page, Permission.READ_SUBSCRIBERS),
    _route(
        "/subscribers/{subscriber_id}", subscriber_page, Permission.READ_SUBSCRIBERS
    ),
    _route("/status", status_page, Permission.READ_STATUS),
    _route("/status/projections/{name}/rebuild", rebuild, Permission.REBUILD, "POST"),
    Mount(PREFIX + "/static", app=StaticFiles(directory=STATIC), name="console"),
    _route("/{rest:path}", not_found, None),
)
