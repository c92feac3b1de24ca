"""Admin routes for erasure, the right of access, and the chain (contract
sections 2.6 and 3.1)."""

from __future__ import annotations

from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api.http.deliveries import delivery_json
from api.http.jsonio import JSONResponse, read_json_object
from api.http.reading import POSITION_HEADER, audit_entry, subscriber_id
from api.http.routing import AdminRoute, container_of
from domain.access import AccessToken, Permission
from domain.errors import InvalidInput, Problem

SUBSCRIBER_ID: Final = {
    "name": "subscriber_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}


async def erase(request: Request, caller: AccessToken) -> Response:
    identifier = subscriber_id(request)
    body = await read_json_object(request)
    reason = body.get("reason")
    problems = [
        Problem(name, "unknown-field", f"unknown field {name!r}")
        for name in body
        if name != "reason"
    ]
    if not isinstance(reason, str) or not reason.strip():
        problems.append(Problem("reason", "required", "say why the person is erased"))
    if problems:
        raise InvalidInput(problems)
    compliance = container_of(request).compliance
    erased = await run_in_threadpool(
        lambda: compliance.erase(
            identifier, reason=str(reason), actor=caller.as_actor()
        )
    )
    return JSONResponse(
        {"id": str(erased.subscriber_id), "erased": True, "position": erased.position}
    )


async def export(request: Request, caller: AccessToken) -> Response:
    identifier = subscriber_id(request)
    container = container_of(request)
    document = await run_in_threadpool(container.compliance.export, identifier)
    head = await run_in_threadpool(container.events.head)
    # The same representations as GET /audit and GET /deliveries give.
    document["auditEntries"] = [audit_entry(row) for row in document["auditEntries"]]
    document["deliveries"] = [delivery_json(row) for row in document["deliveries"]]
    return JSONResponse(
        document,
        headers={
            POSITION_HEADER: str(head),
            "Content-Disposition": f'attachment; filename="{identifier}.json"',
        },
    )


async def checkpoint(request: Request, caller: AccessToken) -> Response:
    chain = container_of(request).compliance.chain
    found = await run_in_threadpool(chain.checkpoint)
    return JSONResponse(
        {"position": found.position, "hash": found.hash},
        headers={POSITION_HEADER: str(found.position)},
    )


async def verify(request: Request, caller: AccessToken) -> Response:
    chain = container_of(request).compliance.chain
    result = await run_in_threadpool(chain.verify)
    return JSONResponse(
        {
            "ok": result.ok,
            "checkedThrough": result.checked_through,
            "firstBadPosition": result.first_bad_position,
            "unchained": result.unchained,
            "reason": result.reason,
        },
        headers={POSITION_HEADER: str(result.checked_through)},
    )


ROUTES: Final = (
    AdminRoute(
        "POST",
        "/subscribers/{subscriber_id}/erase",
        erase,
        Permission.ERASE,
        "Erase a person: destroy their key, release their identifiers",
        "eraseSubscriber",
        request_schema="Erasure",
        responses={
            200: (
                "Erased",
                "Erased; every event stays, the person's values read as null.",
            ),
            404: ("Problem", "No such subscriber."),
        },
        parameters=(SUBSCRIBER_ID,),
    ),
    AdminRoute(
        "GET",
        "/subscribers/{subscriber_id}/export",
        export,
        Permission.READ_SUBSCRIBERS,
        "Everything stored about the person, decrypted (the right of access)",
        "exportSubscriber",
        responses={
            200: ("SubscriberExport", "The person's data."),
            404: ("Problem", "No such subscriber."),
            410: ("Problem", "The subscriber was erased."),
        },
        parameters=(SUBSCRIBER_ID,),
    ),
    AdminRoute(
        "GET",
        "/audit/checkpoint",
        checkpoint,
        Permission.READ_AUDIT,
        "The chain's current link, for auditors to keep elsewhere",
        "getAuditCheckpoint",
        responses={200: ("Checkpoint", "The last link and its position.")},
    ),
    AdminRoute(
        "GET",
        "/audit/verify",
        verify,
        Permission.READ_AUDIT,
        "Recompute every link of the chain",
        "verifyAuditChain",
        responses={
            200: ("ChainVerification", "Whether the chain holds, and where not.")
        },
    ),
)
