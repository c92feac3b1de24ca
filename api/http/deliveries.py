"""Admin routes for deliveries (contract section 3.2)."""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api.http.jsonio import JSONResponse
from api.http.problems import ProblemError
from api.http.reading import (
    CURSOR,
    LIMIT,
    MIN_POSITION,
    POSITION_HEADER,
    at_least,
    limit_of,
    whole_number,
)
from api.http.routing import AdminRoute, container_of
from domain.access import AccessToken, Permission

STATUSES: Final = ("pending", "delivered", "dead", "cancelled")


def delivery_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["delivery_id"],
        "status": row["status"],
        "activityId": row["activity_id"],
        "subscriberId": row["subscriber_id"],
        "integrationId": row["integration_id"],
        "submissionId": row["submission_id"],
        "attempts": row["attempts"],
        "nextAttemptAt": row["next_attempt_at"] if row["status"] == "pending" else None,
        "lastError": row["last_error"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


async def list_deliveries(request: Request, caller: AccessToken) -> Response:
    await at_least(request, "deliveries")
    params = request.query_params
    status = params.get("status")
    if status is not None and status not in STATUSES:
        raise ProblemError(
            400, "malformed-request", f"status must be one of {', '.join(STATUSES)}"
        )
    activity = params.get("activityId")
    activity_id = (
        whole_number(activity, name="activityId") if activity is not None else None
    )
    limit = limit_of(request)
    deliveries = container_of(request).deliveries
    try:
        page = await run_in_threadpool(
            lambda: deliveries.list(
                status=status,
                activity_id=activity_id,
                subscriber_id=params.get("subscriberId"),
                cursor=params.get("cursor"),
                limit=limit,
            )
        )
    except ValueError as error:
        raise ProblemError(400, "malformed-request", str(error)) from None
    return JSONResponse(
        {
            "items": [delivery_json(r) for r in page.items],
            "nextCursor": page.next_cursor,
        },
        headers={POSITION_HEADER: str(page.position)},
    )


async def retry(request: Request, caller: AccessToken) -> Response:
    try:
        delivery_id = UUID(request.path_params["delivery_id"])
    except ValueError:
        raise ProblemError(404, "not-found", "no such delivery") from None
    deliveries = container_of(request).deliveries
    position = await run_in_threadpool(
        lambda: deliveries.retry(delivery_id, actor=caller.as_actor())
    )
    return JSONResponse(
        {"id": str(delivery_id), "status": "pending", "position": position}
    )


ROUTES: Final = (
    AdminRoute(
        "GET",
        "/deliveries",
        list_deliveries,
        Permission.READ_DELIVERIES,
        "Deliveries of triggered messages, by status, activity and subscriber",
        "listDeliveries",
        responses={
            200: ("DeliveryList", "Deliveries, oldest first."),
            400: ("Problem", "Bad filter."),
            503: ("Problem", "The projection did not reach minPosition in time."),
        },
        parameters=(
            {
                "name": "status",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "enum": list(STATUSES)},
            },
            {
                "name": "activityId",
                "in": "query",
                "required": False,
                "schema": {"type": "integer"},
            },
            {
                "name": "subscriberId",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
            },
            LIMIT,
            CURSOR,
            MIN_POSITION,
        ),
    ),
    AdminRoute(
        "POST",
        "/deliveries/{delivery_id}/retry",
        retry,
        Permission.RETRY_DELIVERIES,
        "Send a dead letter again",
        "retryDelivery",
        responses={
            200: ("DeliveryRetry", "The delivery is pending again."),
            404: ("Problem", "No such dead letter."),
            409: ("Problem", "The delivery is not a dead letter."),
        },
        parameters=(
            {
                "name": "delivery_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "format": "uuid"},
            },
        ),
    ),
)
