"""Admin routes of the read side (contract section 3): subscribers, the audit
trail, the dedupe index, the event log and the projections.

Every read answers `X-Projection-Position`. `?minPosition=N` first waits up to
five seconds for the projection to reach N, else answers 503
`projection-behind`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC
from typing import Any, Final
from uuid import UUID

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from api.http.jsonio import JSONResponse, parse_instant
from api.http.problems import ProblemError
from api.http.routing import AdminRoute, container_of
from application.reading import AuditFilter, ProjectionBehind
from domain.access import AccessToken, Permission
from infrastructure.eventlog import UnknownEventType
from infrastructure.projections.catalog import NAMES as PROJECTIONS

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500
#: The largest position, limit or id a query may name: both stores hold
#: signed 64-bit integers.
MAX_NUMBER: Final = 2**63 - 1
MAX_DIGITS: Final = len(str(MAX_NUMBER))
POSITION_HEADER: Final = "X-Projection-Position"
RETRY_AFTER: Final = "1"
CSV_COLUMNS: Final = (
    "position",
    "occurredAt",
    "actor",
    "action",
    "subjectType",
    "subjectId",
    "integrationId",
    "submissionId",
    "configurationVersion",
    "changes",
    "details",
    "clientIp",
    "userAgent",
    "erased",
)
FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r")
#: Lines sent per chunk of a streamed answer. Starlette runs each step of a
#: synchronous body iterator in the thread pool, so a chunk per line would
#: cost a thread hop per event.
CHUNK_LINES: Final = 200


def whole_number(
    text: str, *, name: str, minimum: int = 0, maximum: int = MAX_NUMBER
) -> int:
    """A query parameter's whole number, or a 400 problem.

    `str.isdigit` alone would pass "²", which `int` cannot read, and a
    number past `maximum` would reach the store, which holds 64-bit
    integers only.
    """
    readable = text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS
    value = int(text) if readable else None
    if value is None or not minimum <= value <= maximum:
        raise ProblemError(
            400,
            "malformed-request",
            f"{name} must be a whole number from {minimum} to {maximum}; "
            f"got {text[:24]!r}",
        )
    return value


async def at_least(request: Request, projection: str) -> None:
    """Honour `?minPosition=`: wait for the projection, or 503."""
    text = request.query_params.get("minPosition")
    if text is None:
        return
    position = whole_number(text, name="minPosition")
    read_side = container_of(request).read_side
    try:
        await run_in_threadpool(read_side.wait_for, projection, position)
    except ProjectionBehind as behind:
        raise ProblemError(
            503,
            "projection-behind",
            str(behind),
            headers={"Retry-After": RETRY_AFTER, POSITION_HEADER: str(behind.reached)},
        ) from None


def limit_of(request: Request) -> int:
    text = request.query_params.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    return whole_number(text, name="limit", minimum=1, maximum=MAX_LIMIT)


def subscriber_id(request: Request) -> UUID:
    try:
        return UUID(request.path_params["subscriber_id"])
    except ValueError:
        raise ProblemError(404, "not-found", "no such subscriber") from None


def reveals(caller: AccessToken) -> bool:
    """Personal values are opened only for roles that may read subscribers."""
    return Permission.READ_SUBSCRIBERS in caller.permissions


def positioned(body: Any, position: int, *, status: int = 200) -> Response:
    return JSONResponse(
        body, status_code=status, headers={POSITION_HEADER: str(position)}
    )


# -- subscribers


async def search_subscribers(request: Request, caller: AccessToken) -> Response:
    await at_least(request, "subscribers")
    given = [
        (name, request.query_params[name])
        for name in ("email", "ref", "phone")
        if request.query_params.get(name)
    ]
    if len(given) > 1:
        raise ProblemError(
            400, "malformed-request", "search by one of email, ref or phone"
        )
    read_side = container_of(request).read_side
    try:
        page = await run_in_threadpool(
            lambda: read_side.search_profiles(
                identifier=given[0] if given else None,
                limit=limit_of(request),
                cursor=request.query_params.get("cursor"),
                reveal=reveals(caller),
            )
        )
    except ValueError as error:
        raise ProblemError(400, "malformed-request", str(error)) from None
    return positioned(
        {"items": page.items, "nextCursor": page.next_cursor}, page.position
    )


async def get_subscriber(request: Request, caller: AccessToken) -> Response:
    identifier = subscriber_id(request)
    read_side = container_of(request).read_side
    as_of = request.query_params.get("asOf")
    if as_of is not None:
        moment = parse_instant(as_of, parameter="asOf")
        profile = await run_in_threadpool(read_side.profile_as_of, identifier, moment)
        head = await run_in_threadpool(container_of(request).events.head)
        return positioned(profile, head)
    await at_least(request, "subscribers")
    profile, position = await run_in_threadpool(
        lambda: read_side.profile(identifier, reveal=reveals(caller))
    )
    return positioned(profile, position)


async def subscriber_history(request: Request, caller: AccessToken) -> Response:
    identifier = subscriber_id(request)
    container = container_of(request)
    events = await run_in_threadpool(container.read_side.profile_history, identifier)
    head = await run_in_threadpool(container.events.head)
    items = [
        subscriber_history_entry(event, reveal=reveals(caller)) for event in events
    ]
    return positioned({"items": items, "nextCursor": None}, head)


def subscriber_history_entry(event: Any, *, reveal: bool) -> dict[str, Any]:
    """One entry of a profile's history, as the API and the console show it;
    without `reveal`, the changed values are left out."""
    data = event.model_dump(mode="json", by_alias=True, exclude={"erased"})
    for name in ("originatorId", "originatorVersion", "timestamp"):
        data.pop(name, None)
    if not reveal:
        data.pop("changes", None)
    entry = {
        "version": event.originator_version,
        "type": type(event).__name__,
        "occurredAt": event.timestamp.astimezone(UTC)
        .isoformat()
        .replace("+00:00", "Z"),
        "data": data,
    }
    if event.erased:
        entry["erased"] = True
    return entry


# -- audit


def audit_filter(request: Request) -> AuditFilter:
    params = request.query_params
    # An empty `from=` is a malformed time, not a missing one.
    occurred_from = params.get("from")
    occurred_to = params.get("to")
    return AuditFilter(
        subject_id=params.get("subjectId"),
        integration_id=params.get("integrationId"),
        actor=params.get("actor"),
        action=params.get("action"),
        occurred_from=None if occurred_from is None else _utc(occurred_from, "from"),
        occurred_to=None if occurred_to is None else _utc(occurred_to, "to"),
    )


def _utc(text: str, name: str) -> str:
    moment = parse_instant(text, parameter=name)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def audit_entry(row: dict[str, Any]) -> dict[str, Any]:
    request = row["request"] or {}
    entry = {
        "position": row["position"],
        "occurredAt": row["occurred_at"],
        "actor": row["actor"],
        "action": row["action"],
        "subjectType": row["subject_type"],
        "subjectId": row["subject_id"],
        "integrationId": row["integration_id"],
        "submissionId": row["submission_id"],
        "configurationVersion": row["configuration_version"],
        "changes": row["changes"],
        "details": row["details"],
        "request": {
            "clientIp": request.get("clientIp"),
            "userAgent": request.get("userAgent"),
        }
        if row["request"]
        else None,
    }
    if row.get("erased"):
        entry["erased"] = True
    return entry


async def audit(request: Request, caller: AccessToken) -> Response:
    await at_least(request, "audit")
    where = audit_filter(request)
    read_side = container_of(request).read_side
    if "text/csv" in request.headers.get("accept", ""):
        return csv_export(request, caller, where)
    order = request.query_params.get("order", "asc")
    if order not in ("asc", "desc"):
        raise ProblemError(400, "malformed-request", "order must be asc or desc")
    try:
        page = await run_in_threadpool(
            lambda: read_side.audit(
                where,
                cursor=request.query_params.get("cursor"),
                limit=limit_of(request),
                descending=order == "desc",
                reveal=reveals(caller),
            )
        )
    except ValueError as error:
        raise ProblemError(400, "malformed-request", str(error)) from None
    items = [audit_entry(row) for row in page.items]
    return positioned({"items": items, "nextCursor": page.next_cursor}, page.position)


def csv_export(request: Request, caller: AccessToken, where: AuditFilter) -> Response:
    """The filtered audit trail as a streamed CSV, for the API and the console."""
    container = container_of(request)
    position = container.read_side.read_models.position("audit")
    rows = container.read_side.audit_export(where, reveal=reveals(caller))
    return StreamingResponse(
        _csv_lines(rows),
        media_type="text/csv; charset=utf-8",
        headers={
            POSITION_HEADER: str(position),
            "Content-Disposition": 'attachment; filename="headwater-audit.csv"',
        },
    )


def _csv_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    rows_buffered = 0
    for row in rows:
        entry = audit_entry(row)
        request = entry["request"] or {}
        writer.writerow(
            neutralised(value)
            for value in (
                entry["position"],
                entry["occurredAt"],
                entry["actor"],
                entry["action"],
                entry["subjectType"],
                entry["subjectId"],
                entry["integrationId"],
                entry["submissionId"],
                entry["configurationVersion"],
                orjson.dumps(entry["changes"]).decode(),
                orjson.dumps(entry["details"]).decode(),
                request.get("clientIp"),
                request.get("userAgent"),
                "true" if entry.get("erased") else "",
            )
        )
        rows_buffered += 1
        if rows_buffered == CHUNK_LINES:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            rows_buffered = 0
    yield buffer.getvalue()


def neutralised(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


# -- dedupe, events, projections


async def dedupe(request: Request, caller: AccessToken) -> Response:
    await at_least(request, "dedupe")
    read_side = container_of(request).read_side
    page = await run_in_threadpool(
        lambda: read_side.dedupe(
            integration_id=request.query_params.get("integrationId"),
            key=request.query_params.get("key"),
        )
    )
    items = [
        {
            "integrationId": row["integration_id"],
            "mode": row["mode"],
            "key": row["key_digest"],
            "firstAcceptedAt": row["first_accepted_at"],
            "lastAcceptedAt": row["last_accepted_at"],
            "duplicates": row["duplicates"],
            "submissionId": row["submission_id"],
        }
        for row in page.items
    ]
    return positioned({"items": items, "nextCursor": None}, page.position)


async def events(request: Request, caller: AccessToken) -> Response:
    params = request.query_params
    after = whole_number(params.get("after", "0"), name="after")
    limit_text = params.get("limit")
    limit = whole_number(limit_text, name="limit") if limit_text is not None else None
    types = [t for t in params.getlist("type") for t in t.split(",") if t]
    container = container_of(request)
    log = container.event_log
    try:
        log.topics(types)
    except UnknownEventType as error:
        raise ProblemError(400, "malformed-request", str(error)) from None
    head = await run_in_threadpool(container.events.head)
    lines = log.lines(after=after, limit=limit, types=types)
    return StreamingResponse(
        _ndjson_chunks(lines),
        media_type="application/x-ndjson",
        headers={POSITION_HEADER: str(head)},
    )


def _ndjson_chunks(lines: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """Lines of NDJSON, `CHUNK_LINES` to a chunk."""
    chunk: list[bytes] = []
    for line in lines:
        chunk.append(orjson.dumps(line) + b"\n")
        if len(chunk) == CHUNK_LINES:
            yield b"".join(chunk)
            chunk = []
    if chunk:
        yield b"".join(chunk)


async def projections(request: Request, caller: AccessToken) -> Response:
    read_side = container_of(request).read_side
    states = await run_in_threadpool(read_side.status)
    head = max((s["headPosition"] for s in states), default=0)
    return positioned({"items": states, "nextCursor": None}, head)


async def rebuild(request: Request, caller: AccessToken) -> Response:
    name = request.path_params["name"]
    read_side = container_of(request).read_side
    await run_in_threadpool(read_side.rebuild, name)
    states = await run_in_threadpool(read_side.status)
    state = next(s for s in states if s["name"] == name)
    return positioned({**state, "position": state["position"]}, state["position"])


SUBSCRIBER_ID: Final = {
    "name": "subscriber_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
MIN_POSITION: Final = {
    "name": "minPosition",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_NUMBER},
}
LIMIT: Final = {
    "name": "limit",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
}
CURSOR: Final = {
    "name": "cursor",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
}
BEHIND: Final = (
    "Problem",
    "The projection did not reach minPosition within 5 seconds (projection-behind).",
)


def _query(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema or {"type": "string"},
    }


ROUTES: Final = (
    AdminRoute(
        "GET",
        "/subscribers",
        search_subscribers,
        Permission.READ_SUBSCRIBERS,
        "Profiles, paged; or the profile holding an email, ref or phone",
        "searchSubscribers",
        responses={
            200: ("ProfileList", "Profiles."),
            400: ("Problem", "Bad query."),
            503: BEHIND,
        },
        parameters=(
            _query("email"),
            _query("ref"),
            _query("phone"),
            LIMIT,
            CURSOR,
            MIN_POSITION,
        ),
    ),
    AdminRoute(
        "GET",
        "/subscribers/{subscriber_id}",
        get_subscriber,
        Permission.READ_SUBSCRIBERS,
        "One profile; asOf replays its events up to that instant",
        "getSubscriber",
        responses={
            200: ("Profile", "The profile."),
            404: ("Problem", "No such subscriber."),
            410: ("Problem", "The subscriber was erased."),
            503: BEHIND,
        },
        parameters=(
            SUBSCRIBER_ID,
            _query("asOf", {"type": "string", "format": "date-time"}),
            MIN_POSITION,
        ),
    ),
    AdminRoute(
        "GET",
        "/subscribers/{subscriber_id}/history",
        subscriber_history,
        Permission.READ_SUBSCRIBERS,
        "The subscriber's events, newest last",
        "getSubscriberHistory",
        responses={
            200: ("EventList", "Its events."),
            404: ("Problem", "No such subscriber."),
        },
        parameters=(SUBSCRIBER_ID,),
    ),
    AdminRoute(
        "GET",
        "/audit",
        audit,
        Permission.READ_AUDIT,
        "The audit trail; Accept: text/csv exports it",
        "getAudit",
        responses={
            200: (
                "AuditList",
                "Entries in log order (or newest first with order=desc).",
            ),
            400: ("Problem", "Bad filter."),
            503: BEHIND,
        },
        parameters=(
            _query("subjectId"),
            _query("integrationId"),
            _query("actor"),
            _query("action"),
            _query("from", {"type": "string", "format": "date-time"}),
            _query("to", {"type": "string", "format": "date-time"}),
            _query("order", {"type": "string", "enum": ["asc", "desc"]}),
            LIMIT,
            CURSOR,
            MIN_POSITION,
        ),
    ),
    AdminRoute(
        "GET",
        "/dedupe",
        dedupe,
        Permission.READ_DEDUPE,
        "The dedupe index",
        "getDedupe",
        responses={200: ("DedupeList", "Entries."), 503: BEHIND},
        parameters=(_query("integrationId"), _query("key"), MIN_POSITION),
    ),
    AdminRoute(
        "GET",
        "/events",
        events,
        Permission.READ_EVENTS,
        "The event log as NDJSON, in order",
        "getEvents",
        responses={
            200: (None, "One JSON event per line."),
            400: ("Problem", "Bad query."),
        },
        parameters=(
            _query("after", {"type": "integer", "minimum": 0, "maximum": MAX_NUMBER}),
            _query("limit", {"type": "integer", "minimum": 0, "maximum": MAX_NUMBER}),
            _query("type"),
        ),
    ),
    AdminRoute(
        "GET",
        "/projections",
        projections,
        Permission.READ_STATUS,
        "Each projection's position, the head of the log and the lag",
        "getProjections",
        responses={200: ("ProjectionList", "The projections.")},
    ),
    AdminRoute(
        "POST",
        "/projections/{name}/rebuild",
        rebuild,
        Permission.REBUILD,
        "Rebuild a projection from zero beside the live one",
        "rebuildProjection",
        responses={
            200: ("Projection", "The projection, with its rebuild under way."),
            404: ("Problem", "No such projection."),
        },
        parameters=(
            {
                "name": "name",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "enum": list(PROJECTIONS)},
            },
        ),
    ),
)
