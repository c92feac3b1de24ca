"""The `audit` read model: one entry for every event, in log order.

An entry says who (`actor`), what (`action` and field-level `changes`), to
what (`subjectType`, `subjectId`), where from (`request`: client IP and user
agent), and under which integration and configuration version. Personal
values and request metadata stay sealed, as in the events; a secret appears
only as `{"changed": true}`. Entries caused by a submission take their actor
and request from the submission's own entry when they are read, so the
projection never needs the submission before its effects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final

from infrastructure.database import Cursor
from infrastructure.projections.base import (
    Projection,
    StoredView,
    Tables,
    insert_rows,
    json_text,
)

SUBJECT_TYPES: Final = {
    "IntegrationCreated": "integration",
    "IntegrationSaved": "integration",
    "IntegrationUpdated": "integration",
    "IntegrationActivated": "integration",
    "IntegrationDeactivated": "integration",
    "EndpointRotated": "integration",
    "EndpointIssued": "endpoint",
    "TokenIssued": "token",
    "TokenRevoked": "token",
    "FirstAdminIssued": "token",
    "SubscriberRegistered": "subscriber",
    "ProfileChanged": "subscriber",
    "ConsentRecorded": "subscriber",
    "ReversalRefused": "subscriber",
    "MessageTriggered": "subscriber",
    "MessageSuppressed": "subscriber",
    "SubscriberErased": "subscriber",
    "EventLogged": "subscriber",
    "SubmissionAccepted": "submission",
    "SubmissionTested": "submission",
    "SubmissionRefused": "submission",
    "SubmissionDeduplicated": "submission",
    "IdentityClaimed": "identity",
    "IdentityReclaimed": "identity",
    "IdentityReleased": "identity",
    "DedupeWindowOpened": "dedupe-window",
    "DedupeWindowReopened": "dedupe-window",
    "DeliveryOpened": "delivery",
    "DeliveryAttemptFailed": "delivery",
    "DeliveryDeadLettered": "delivery",
    "DeliveryRetryRequested": "delivery",
    "DeliveryCancelled": "delivery",
    "DeliverySucceeded": "delivery",
}
SUBMISSION_EVENTS: Final = frozenset(
    {
        "SubmissionAccepted",
        "SubmissionTested",
        "SubmissionRefused",
        "SubmissionDeduplicated",
    }
)
INTEGRATION_EVENTS: Final = frozenset(
    name for name, kind in SUBJECT_TYPES.items() if kind == "integration"
)
#: Saves of a configuration: the version they record is its new version.
CONFIGURATION_SAVES: Final = frozenset({"IntegrationSaved", "IntegrationUpdated"})
#: Stored fields an entry shows, opened, in its `changes`; left out of its
#: details, where they would show sealed.
SHOWN_AS_CHANGES: Final = {"ConsentRecorded": frozenset({"text", "clientIp"})}
SECRET_FIELD: Final = "recaptchaSecret"
CHANGED: Final = {"changed": True}
#: Stored fields that are not part of an entry's details.
ENVELOPE_FIELDS: Final = frozenset(
    {
        "timestamp",
        "actor",
        "integrationId",
        "submissionId",
        "configurationVersion",
        "changes",
        "request",
        "recaptchaSecret",
        "secretChange",
        "configuration",
        "secretDigest",
    }
)
POSITION_TYPE: Final = {"sqlite": "INTEGER", "postgres": "BIGINT"}
COLUMNS: Final = (
    "position",
    "occurred_at",
    "action",
    "actor",
    "subject_type",
    "subject_id",
    "integration_id",
    "submission_id",
    "configuration_version",
    "changes",
    "details",
    "request",
)


class AuditProjection(Projection):
    name: ClassVar[str] = "audit"
    tables: ClassVar = {
        "entries": {
            dialect: [
                "CREATE TABLE IF NOT EXISTS {table} ("
                f" position {POSITION_TYPE[dialect]} PRIMARY KEY,"
                " occurred_at TEXT NOT NULL, action TEXT NOT NULL, actor TEXT,"
                " subject_type TEXT NOT NULL, subject_id TEXT NOT NULL,"
                " integration_id TEXT, submission_id TEXT,"
                " configuration_version INTEGER, changes TEXT, details TEXT,"
                " request TEXT)",
                "CREATE INDEX IF NOT EXISTS {table}_subject"
                " ON {table} (subject_id, position)",
                "CREATE INDEX IF NOT EXISTS {table}_integration"
                " ON {table} (integration_id, position)",
                "CREATE INDEX IF NOT EXISTS {table}_submission"
                " ON {table} (submission_id)",
                "CREATE INDEX IF NOT EXISTS {table}_time ON {table} (occurred_at)",
            ]
            for dialect in ("sqlite", "postgres")
        },
        "requests": {
            dialect: [
                "CREATE TABLE IF NOT EXISTS {table} ("
                " submission_id TEXT PRIMARY KEY, actor TEXT NOT NULL, request TEXT)"
            ]
            for dialect in ("sqlite", "postgres")
        },
    }

    def apply(
        self, cursor: Cursor, events: Sequence[StoredView], tables: Tables
    ) -> None:
        # Every event makes exactly one entry, and the tracking position
        # guarantees each event is applied once: plain inserts, in bulk.
        entries = [_entry(event) for event in events]
        insert_rows(
            cursor,
            tables.dialect,
            tables["entries"],
            COLUMNS,
            [tuple(entry[c] for c in COLUMNS) for entry in entries],
        )
        insert_rows(
            cursor,
            tables.dialect,
            tables["requests"],
            ("submission_id", "actor", "request"),
            [
                (entry["subject_id"], entry["actor"], entry["request"])
                for entry in entries
                if entry["action"] in SUBMISSION_EVENTS
            ],
        )


def _entry(event: StoredView) -> dict[str, Any]:
    state = event.state
    action = event.event_type
    subject_type = SUBJECT_TYPES.get(action, "other")
    subject_id = str(event.aggregate_id)
    integration_id = state.get("integrationId")
    submission_id = state.get("submissionId")
    if action in INTEGRATION_EVENTS:
        integration_id = subject_id
    if action in SUBMISSION_EVENTS:
        submission_id = subject_id
    if action == "EventLogged":
        submission_id = subject_id
        subject_id = str(state["subscriberId"])
    configuration_version = state.get("configurationVersion")
    if action in CONFIGURATION_SAVES:
        configuration_version = event.version
    hidden = ENVELOPE_FIELDS | SHOWN_AS_CHANGES.get(action, frozenset())
    if action == "DeliverySucceeded":
        subject_id = str(state["deliveryId"])
    return {
        "position": event.position,
        "occurred_at": event.occurred_at,
        "action": action,
        "actor": _actor(action, state),
        "subject_type": subject_type,
        "subject_id": subject_id,
        "integration_id": None if integration_id is None else str(integration_id),
        "submission_id": None if submission_id is None else str(submission_id),
        "configuration_version": configuration_version,
        "changes": json_text(_changes(action, state)),
        "details": json_text({k: v for k, v in state.items() if k not in hidden}),
        "request": json_text(state["request"]) if state.get("request") else None,
    }


def _actor(action: str, state: dict[str, Any]) -> str | None:
    actor = state.get("actor")
    if isinstance(actor, dict):
        return str(actor.get("name"))
    if action in SUBMISSION_EVENTS:
        return f"endpoint {state['endpointId']} ({state['mode']})"
    if action in ("EndpointIssued", "FirstAdminIssued"):
        return "system"
    return None


def _changes(action: str, state: dict[str, Any]) -> dict[str, Any]:
    """Field to {from, to}; a secret only as {changed: true}."""
    if "changes" in state:
        changes = dict(state["changes"])
    elif action == "IntegrationSaved":
        changes = {
            field: {"from": None, "to": value}
            for field, value in state["configuration"].items()
        }
    elif action == "IntegrationCreated":
        changes = {
            "name": {"from": None, "to": state["name"]},
            "type": {"from": None, "to": state["integrationType"]},
            "endpointId": {"from": None, "to": state["endpointId"]},
        }
    elif action == "IntegrationActivated":
        changes = {"status": {"from": "inactive", "to": "active"}}
    elif action == "IntegrationDeactivated":
        changes = {"status": {"from": "active", "to": "inactive"}}
    elif action == "EndpointRotated":
        changes = {
            "endpointId": {
                "from": state["previousEndpointId"],
                "to": state["endpointId"],
            }
        }
    elif action == "TokenIssued":
        changes = {
            "name": {"from": None, "to": state["name"]},
            "role": {"from": None, "to": state["role"]},
            "expiresAt": {"from": None, "to": state.get("expiresAt")},
        }
    elif action == "TokenRevoked":
        changes = {"revoked": {"from": False, "to": True}}
    elif action == "ConsentRecorded":
        changes = {
            "consent": {
                "from": None,
                "to": {
                    "text": state.get("text"),
                    "given": state.get("given"),
                    "clientIp": state.get("clientIp"),
                },
            }
        }
    else:
        changes = {}
    if state.get(SECRET_FIELD) is not None or state.get("secretChange") is not None:
        changes[SECRET_FIELD] = CHANGED
    return changes
