"""The admin API's own OpenAPI document, built from the route records."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, Final

from api.http.routing import AdminRoute
from domain.access import Role
from domain.configuration import Configuration
from domain.integration import INTEGRATION_TYPES
from domain.profile import IDENTIFIERS, TEXT_FIELDS

PROFILE_FIELDS: Final = (*IDENTIFIERS, *TEXT_FIELDS, "dob")

PREFIX: Final = "/admin/v1"

NULLABLE_TIME: Final = {"type": ["string", "null"], "format": "date-time"}
TIME: Final = {"type": "string", "format": "date-time"}


def admin_document(routes: Iterable[AdminRoute], *, base: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Headwater admin API",
            "version": "1",
            "description": "Integrations, tokens and the read side. Every route "
            "needs Authorization: Bearer <token>; errors are RFC 9457 problems.",
        },
        "servers": [{"url": base + PREFIX}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
    }


def _operation(route: AdminRoute) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    answers = {
        **route.responses,
        401: ("Problem", "No valid token (WWW-Authenticate: Bearer)."),
        403: ("Problem", f"The role lacks the {route.permission} permission."),
        503: ("Problem", "The store is unavailable."),
    }
    if any(parameter["in"] == "query" for parameter in route.parameters):
        answers.setdefault(400, ("Problem", "A query parameter is malformed."))
    if route.request_schema is not None:
        answers.setdefault(
            400, ("Problem", "The body is not a JSON object, or names a key twice.")
        )
        answers.setdefault(
            408, ("Problem", "The body did not arrive in time (request-timeout).")
        )
        answers.setdefault(413, ("Problem", "The body is too large."))
        answers.setdefault(
            415, ("Problem", "The body is not application/json in UTF-8.")
        )
        answers.setdefault(
            422, ("Problem", "The body breaks a rule; errors lists each.")
        )
    for status, (schema, description) in sorted(answers.items()):
        answer: dict[str, Any] = {"description": description}
        if schema is not None:
            media = (
                "application/problem+json"
                if schema == "Problem"
                else "application/json"
            )
            answer["content"] = {
                media: {"schema": {"$ref": f"#/components/schemas/{schema}"}}
            }
        responses[str(status)] = answer
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "description": f"Needs the {route.permission} permission.",
        "responses": responses,
    }
    if route.parameters:
        operation["parameters"] = [dict(p) for p in route.parameters]
    if route.request_schema is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{route.request_schema}"}
                }
            },
        }
    return operation


def _configuration_properties(mode: str) -> dict[str, Any]:
    schema = Configuration.model_json_schema(by_alias=True, mode=mode)  # type: ignore[arg-type]
    properties: dict[str, Any] = copy.deepcopy(schema["properties"])
    for value in properties.values():
        value.pop("title", None)
    return properties


def _configuration_request() -> dict[str, Any]:
    properties = _configuration_properties("validation")
    properties["recaptchaSecret"] = {
        "type": ["string", "null"],
        "writeOnly": True,
        "minLength": 1,
        "maxLength": 1000,
        "description": "Left out: kept. null: cleared. Never returned.",
    }
    return {
        "type": "object",
        "description": "The whole configuration; a field left out takes its default, "
        "except recaptchaSecret, which keeps its value.",
        "additionalProperties": False,
        "required": ["name"],
        "properties": properties,
    }


def _integration() -> dict[str, Any]:
    configuration = _configuration_properties("serialization")
    configuration.pop("name")
    properties = {
        "id": {"type": "string", "format": "uuid"},
        "name": {"type": "string"},
        "type": {"type": "string", "enum": list(INTEGRATION_TYPES)},
        "status": {"type": "string", "enum": ["active", "inactive"]},
        "saved": {"type": "boolean"},
        "version": {"type": "integer", "minimum": 1},
        "configurationVersion": {"type": ["integer", "null"]},
        "endpointId": {"type": "string"},
        "productionUrl": {"type": "string", "format": "uri"},
        "testUrl": {"type": "string", "format": "uri"},
        **configuration,
        "recaptchaSecretSet": {"type": "boolean"},
        "createdAt": TIME,
        "updatedAt": TIME,
        "position": {"type": ["integer", "null"]},
    }
    required = [name for name in properties if name != "position"]
    return {"type": "object", "required": required, "properties": properties}


def _list_of(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "nextCursor"],
        "properties": {
            "items": {
                "type": "array",
                "items": {"$ref": f"#/components/schemas/{item}"},
            },
            "nextCursor": {"type": ["string", "null"]},
        },
    }


TOKEN_PROPERTIES: Final = {
    "id": {"type": "string", "format": "uuid"},
    "name": {"type": "string"},
    "role": {"type": "string", "enum": [r.value for r in Role]},
    "expiresAt": NULLABLE_TIME,
    "createdAt": TIME,
    "revoked": {"type": "boolean"},
    "position": {"type": ["integer", "null"]},
}

SCHEMAS: Final[dict[str, Any]] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "rule", "message"],
                    "properties": {
                        "field": {"type": "string"},
                        "rule": {"type": "string"},
                        "message": {"type": "string"},
                    },
                },
            },
        },
    },
    "IntegrationCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "type"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "type": {"type": "string", "enum": list(INTEGRATION_TYPES)},
        },
    },
    "IntegrationConfiguration": _configuration_request(),
    "Integration": _integration(),
    "IntegrationList": _list_of("Integration"),
    "HistoryEntry": {
        "type": "object",
        "required": ["version", "type", "occurredAt", "actor", "data"],
        "properties": {
            "version": {"type": "integer"},
            "type": {"type": "string"},
            "occurredAt": TIME,
            "actor": {"type": ["string", "null"]},
            "data": {"type": "object"},
        },
    },
    "HistoryList": _list_of("HistoryEntry"),
    "SpecFile": {"type": "object", "required": ["openapi"]},
    "TokenCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "role"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "role": {"type": "string", "enum": [r.value for r in Role]},
            "expiresAt": NULLABLE_TIME,
        },
    },
    "Token": {
        "type": "object",
        "required": ["id", "name", "role", "expiresAt", "createdAt", "revoked"],
        "properties": TOKEN_PROPERTIES,
    },
    "IssuedToken": {
        "type": "object",
        "required": [
            "id",
            "name",
            "role",
            "token",
            "expiresAt",
            "createdAt",
            "position",
        ],
        "properties": {**TOKEN_PROPERTIES, "token": {"type": "string"}},
    },
    "TokenList": _list_of("Token"),
    "Profile": {
        "type": "object",
        "required": ["id", "custom", "lists", "unsubscribed", "createdAt", "updatedAt"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            **{name: {"type": ["string", "null"]} for name in PROFILE_FIELDS},
            "custom": {"type": "object"},
            "lists": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["listId"],
                    "properties": {
                        "listId": {"type": "integer"},
                        "subscribedAt": {"type": ["string", "null"]},
                        "unsubscribedAt": {"type": ["string", "null"]},
                        "subscriptionOption": {"type": ["string", "null"]},
                    },
                },
            },
            "unsubscribed": {"type": "boolean"},
            "unsubscribedAt": {"type": ["string", "null"]},
            "source": {"type": ["string", "null"]},
            "createdAt": {"type": "string"},
            "updatedAt": {"type": "string"},
            "erased": {"type": "boolean"},
        },
    },
    "ProfileList": _list_of("Profile"),
    "Event": {
        "type": "object",
        "required": ["version", "type", "occurredAt", "data"],
        "properties": {
            "version": {"type": "integer"},
            "type": {"type": "string"},
            "occurredAt": TIME,
            "data": {"type": "object"},
            "erased": {"type": "boolean"},
        },
    },
    "EventList": _list_of("Event"),
    "AuditEntry": {
        "type": "object",
        "required": [
            "position",
            "occurredAt",
            "actor",
            "action",
            "subjectType",
            "subjectId",
            "changes",
        ],
        "properties": {
            "position": {"type": "integer"},
            "occurredAt": {"type": "string"},
            "actor": {"type": ["string", "null"]},
            "action": {"type": "string"},
            "subjectType": {"type": "string"},
            "subjectId": {"type": "string"},
            "integrationId": {"type": ["string", "null"]},
            "submissionId": {"type": ["string", "null"]},
            "configurationVersion": {"type": ["integer", "null"]},
            "changes": {"type": ["object", "null"]},
            "details": {"type": ["object", "null"]},
            "request": {
                "type": ["object", "null"],
                "properties": {
                    "clientIp": {"type": ["string", "null"]},
                    "userAgent": {"type": ["string", "null"]},
                },
            },
            "erased": {"type": "boolean"},
        },
    },
    "AuditList": _list_of("AuditEntry"),
    "DedupeEntry": {
        "type": "object",
        "required": [
            "integrationId",
            "mode",
            "key",
            "firstAcceptedAt",
            "lastAcceptedAt",
            "duplicates",
            "submissionId",
        ],
        "properties": {
            "integrationId": {"type": "string"},
            "mode": {"type": "string", "enum": ["production", "test"]},
            "key": {"type": "string"},
            "firstAcceptedAt": {"type": "string"},
            "lastAcceptedAt": {"type": "string"},
            "duplicates": {"type": "integer"},
            "submissionId": {"type": "string"},
        },
    },
    "DedupeList": _list_of("DedupeEntry"),
    "Projection": {
        "type": "object",
        "required": ["name", "position", "headPosition", "lag"],
        "properties": {
            "name": {"type": "string"},
            "position": {"type": "integer"},
            "headPosition": {"type": "integer"},
            "lag": {"type": "integer"},
            "generation": {"type": "integer"},
            "rebuild": {
                "type": ["object", "null"],
                "properties": {
                    "generation": {"type": ["integer", "null"]},
                    "position": {"type": "integer"},
                    "lag": {"type": "integer"},
                },
            },
        },
    },
    "ProjectionList": _list_of("Projection"),
    "Delivery": {
        "type": "object",
        "required": ["id", "status", "activityId", "subscriberId", "attempts"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "status": {
                "type": "string",
                "enum": ["pending", "delivered", "dead", "cancelled"],
            },
            "activityId": {"type": "integer"},
            "subscriberId": {"type": "string"},
            "integrationId": {"type": "string"},
            "submissionId": {"type": "string"},
            "attempts": {"type": "integer"},
            "nextAttemptAt": {"type": ["string", "null"]},
            "lastError": {"type": ["string", "null"]},
            "createdAt": {"type": "string"},
            "updatedAt": {"type": "string"},
        },
    },
    "DeliveryList": _list_of("Delivery"),
    "Erasure": {
        "type": "object",
        "additionalProperties": False,
        "required": ["reason"],
        "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 1000}},
    },
    "Erased": {
        "type": "object",
        "required": ["id", "erased", "position"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "erased": {"type": "boolean", "const": True},
            "position": {"type": ["integer", "null"]},
        },
    },
    "SubscriberExport": {
        "type": "object",
        "required": ["subscriberId", "profile", "events", "auditEntries", "deliveries"],
    },
    "Checkpoint": {
        "type": "object",
        "required": ["position", "hash"],
        "properties": {
            "position": {"type": "integer"},
            "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        },
    },
    "ChainVerification": {
        "type": "object",
        "required": ["ok", "checkedThrough", "firstBadPosition", "unchained"],
        "properties": {
            "ok": {"type": "boolean"},
            "checkedThrough": {"type": "integer"},
            "firstBadPosition": {"type": ["integer", "null"]},
            "unchained": {"type": "integer"},
            "reason": {"type": ["string", "null"]},
        },
    },
    "DeliveryRetry": {
        "type": "object",
        "required": ["id", "status", "position"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "status": {"type": "string"},
            "position": {"type": ["integer", "null"]},
        },
    },
}
