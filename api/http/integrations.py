"""Admin routes for endpoint integrations (contract section 1.5)."""

from __future__ import annotations

import re
from typing import Any, Final
from uuid import UUID

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api.http.jsonio import JSONResponse, parse_instant, read_json_object
from api.http.problems import ProblemError
from api.http.reading import MIN_POSITION, POSITION_HEADER, at_least
from api.http.representations import (
    history_entry,
    integration_json,
    integration_row_json,
    public_base,
)
from api.http.routing import AdminRoute, container_of
from api.http.specs import integration_spec
from application.integrations import Changed
from domain.access import AccessToken, Permission
from domain.configuration import SECRET_FIELD, parse_configuration
from domain.errors import InvalidInput, Problem
from domain.integration import SecretUpdate

MAX_SECRET_LENGTH: Final = 1000
ENTITY_TAG: Final = re.compile(r'^\s*"?(\d+)"?\s*$')


def integration_id(request: Request) -> UUID:
    text = request.path_params["integration_id"]
    try:
        return UUID(text)
    except ValueError:
        raise ProblemError(404, "not-found", "no such integration") from None


def written(request: Request, change: Changed, *, status: int = 200) -> Response:
    body = integration_json(change.integration, public_base(request))
    body["position"] = change.position
    return JSONResponse(
        body, status_code=status, headers={"ETag": f'"{change.integration.version}"'}
    )


async def create(request: Request, caller: AccessToken) -> Response:
    body = await read_json_object(request)
    problems = [
        Problem(name, "required", "is required")
        for name in ("name", "type")
        if not isinstance(body.get(name), str)
    ]
    problems += [
        Problem(name, "unknown-field", f"unknown field {name!r}")
        for name in body
        if name not in ("name", "type")
    ]
    if problems:
        raise InvalidInput(problems)
    integrations = container_of(request).integrations
    change = await run_in_threadpool(
        lambda: integrations.create(
            name=body["name"], integration_type=body["type"], actor=caller.as_actor()
        )
    )
    return written(request, change, status=201)


async def list_all(request: Request, caller: AccessToken) -> Response:
    """The integrations read model; `?minPosition=` waits for a write to show."""
    await at_least(request, "integrations")
    read_models = container_of(request).read_side.read_models
    found = await run_in_threadpool(read_models.integrations)
    base = public_base(request)
    return JSONResponse(
        {
            "items": [integration_row_json(r, base) for r in found.rows],
            "nextCursor": None,
        },
        headers={POSITION_HEADER: str(found.position)},
    )


async def get_one(request: Request, caller: AccessToken) -> Response:
    identifier = integration_id(request)
    integrations = container_of(request).integrations
    as_of = request.query_params.get("asOf")
    if as_of is not None:
        moment = parse_instant(as_of, parameter="asOf")
        integration = await run_in_threadpool(
            integrations.get_as_of, identifier, moment
        )
    else:
        integration = await run_in_threadpool(integrations.get, identifier)
    return JSONResponse(
        integration_json(integration, public_base(request)),
        headers={"ETag": f'"{integration.version}"'},
    )


async def save_changes(request: Request, caller: AccessToken) -> Response:
    identifier = integration_id(request)
    expected = expected_version(request)
    body = await read_json_object(request)
    configuration = {k: v for k, v in body.items() if k != SECRET_FIELD}
    try:
        secret = secret_update(body)
    except InvalidInput as error:
        # One answer lists every problem, so check the rest of the body too.
        raise InvalidInput(error.problems + other_problems(configuration)) from None
    integrations = container_of(request).integrations
    change = await run_in_threadpool(
        lambda: integrations.save_changes(
            identifier,
            configuration,
            secret=secret,
            expected_version=expected,
            actor=caller.as_actor(),
        )
    )
    return written(request, change)


def expected_version(request: Request) -> int | None:
    """The version named by `If-Match`, if any (`*` matches any version).

    If-Match uses strong comparison (RFC 9110): a weak tag never matches.
    """
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    match = ENTITY_TAG.match(header)
    if match is None:
        raise ProblemError(
            412,
            "precondition-failed",
            f'If-Match must be the entity tag the ETag header gave, like "3"; '
            f"got {header[:40]!r}",
        )
    return int(match.group(1))


def secret_update(body: dict[str, Any]) -> SecretUpdate:
    """Left out: keep the secret. null: clear it. A string: set it."""
    if SECRET_FIELD not in body:
        return SecretUpdate.keep()
    value = body[SECRET_FIELD]
    if value is None:
        return SecretUpdate("clear")
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_SECRET_LENGTH:
        raise InvalidInput(
            [
                Problem(
                    SECRET_FIELD,
                    "type",
                    f"must be a string of 1 to {MAX_SECRET_LENGTH} characters, or null",
                )
            ]
        )
    return SecretUpdate("set", value)


def other_problems(configuration: dict[str, Any]) -> list[Problem]:
    """The configuration's problems, supposing a secret was given with it."""
    try:
        parse_configuration(configuration, secret_set=True)
    except InvalidInput as error:
        return error.problems
    return []


def lifecycle(command: str) -> Any:
    async def handler(request: Request, caller: AccessToken) -> Response:
        identifier = integration_id(request)
        integrations = container_of(request).integrations
        method = getattr(integrations, command)
        change = await run_in_threadpool(
            lambda: method(identifier, actor=caller.as_actor())
        )
        return written(request, change)

    return handler


async def history(request: Request, caller: AccessToken) -> Response:
    identifier = integration_id(request)
    events = await run_in_threadpool(
        container_of(request).integrations.history, identifier
    )
    return JSONResponse(
        {"items": [history_entry(e) for e in events], "nextCursor": None}
    )


def spec(mode: str) -> Any:
    async def handler(request: Request, caller: AccessToken) -> Response:
        identifier = integration_id(request)
        integration = await run_in_threadpool(
            container_of(request).integrations.get, identifier
        )
        document = integration_spec(integration, base=public_base(request), mode=mode)
        filename = f"headwater-{mode}-{integration.endpoint_id[:8]}.openapi.json"
        return JSONResponse(
            document,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    return handler


ID_PARAMETER: Final = {
    "name": "integration_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
ONE: Final = "/integrations/{integration_id}"
WRITE_ANSWERS: Final = {
    200: ("Integration", "The integration, with the position of the last event."),
    404: ("Problem", "No such integration."),
}

ROUTES: Final = (
    AdminRoute(
        "POST",
        "/integrations",
        create,
        Permission.WRITE_INTEGRATIONS,
        "Create an integration with a new endpoint",
        "createIntegration",
        request_schema="IntegrationCreate",
        responses={
            201: ("Integration", "Created; saved is false and status inactive."),
            422: ("Problem", "Unknown type or bad name."),
        },
    ),
    AdminRoute(
        "GET",
        "/integrations",
        list_all,
        Permission.READ_INTEGRATIONS,
        "List integrations",
        "listIntegrations",
        responses={
            200: ("IntegrationList", "Every integration."),
            503: ("Problem", "The read model did not reach minPosition in time."),
        },
        parameters=(MIN_POSITION,),
    ),
    AdminRoute(
        "GET",
        ONE,
        get_one,
        Permission.READ_INTEGRATIONS,
        "Get one integration, now or as of an instant",
        "getIntegration",
        responses={
            200: ("Integration", "The integration; ETag carries its version."),
            400: ("Problem", "asOf is not an RFC 3339 time."),
            404: ("Problem", "No such integration (at that instant)."),
        },
        parameters=(
            ID_PARAMETER,
            {
                "name": "asOf",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "format": "date-time"},
            },
        ),
    ),
    AdminRoute(
        "PUT",
        ONE,
        save_changes,
        Permission.WRITE_INTEGRATIONS,
        "Save changes: the whole configuration",
        "saveIntegration",
        request_schema="IntegrationConfiguration",
        responses={
            **WRITE_ANSWERS,
            412: ("Problem", "If-Match names another version."),
            422: (
                "Problem",
                "The configuration cannot work; errors lists every problem.",
            ),
        },
        parameters=(
            ID_PARAMETER,
            {
                "name": "If-Match",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
            },
        ),
    ),
    AdminRoute(
        "POST",
        ONE + "/activate",
        lifecycle("activate"),
        Permission.WRITE_INTEGRATIONS,
        "Activate: the production endpoint starts accepting",
        "activateIntegration",
        responses={
            **WRITE_ANSWERS,
            409: ("Problem", "The integration was never saved."),
        },
        parameters=(ID_PARAMETER,),
    ),
    AdminRoute(
        "POST",
        ONE + "/deactivate",
        lifecycle("deactivate"),
        Permission.WRITE_INTEGRATIONS,
        "Deactivate: the production endpoint stops accepting",
        "deactivateIntegration",
        responses=WRITE_ANSWERS,
        parameters=(ID_PARAMETER,),
    ),
    AdminRoute(
        "POST",
        ONE + "/rotate-endpoint",
        lifecycle("rotate_endpoint"),
        Permission.WRITE_INTEGRATIONS,
        "Issue a new endpoint id; the old URL stops answering",
        "rotateEndpoint",
        responses=WRITE_ANSWERS,
        parameters=(ID_PARAMETER,),
    ),
    AdminRoute(
        "GET",
        ONE + "/openapi/test",
        spec("test"),
        Permission.READ_INTEGRATIONS,
        "The Test OpenAPI spec file",
        "getTestSpec",
        responses={
            200: ("SpecFile", "An OpenAPI 3.1 document."),
            404: ("Problem", "No such integration."),
        },
        parameters=(ID_PARAMETER,),
    ),
    AdminRoute(
        "GET",
        ONE + "/openapi/production",
        spec("production"),
        Permission.READ_INTEGRATIONS,
        "The Production OpenAPI spec file",
        "getProductionSpec",
        responses={
            200: ("SpecFile", "An OpenAPI 3.1 document."),
            404: ("Problem", "No such integration."),
        },
        parameters=(ID_PARAMETER,),
    ),
    AdminRoute(
        "GET",
        ONE + "/history",
        history,
        Permission.READ_INTEGRATIONS,
        "The integration's lifecycle events, oldest first",
        "getIntegrationHistory",
        responses={
            200: ("HistoryList", "Its events."),
            404: ("Problem", "No such integration."),
        },
        parameters=(ID_PARAMETER,),
    ),
)
