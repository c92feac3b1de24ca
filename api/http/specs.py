"""The Test and Production OpenAPI spec files of an integration.

Both are generated from the integration's current configuration: the server
of their mode, the request schema with the identifying field and the field
validation rules, the CAPTCHA header when CAPTCHA is required, and every
answer the public endpoint gives.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from api.http.representations import endpoint_urls
from domain.configuration import Configuration
from domain.integration import Integration
from domain.profile import IDENTIFIERS, TEXT_FIELDS, is_custom_field

MAX_ACTIONS: Final = 50
TIMESTAMP_OR_TRUE: Final = {
    "oneOf": [{"const": True}, {"type": "string", "format": "date-time"}]
}
PROBLEM_ANSWERS: Final = {
    "400": "The body is not JSON or not an action list.",
    "403": "CAPTCHA missing or failed (captcha-failed), origin not allowed "
    "(origin-not-allowed), or an action the configuration forbids "
    "(action-not-permitted).",
    "404": "Unknown endpoint, or inactive on production.",
    "405": "Only POST and OPTIONS are served here.",
    "413": "The body is too large.",
    "415": "Unsupported content type.",
    "422": "Validation failed (validation-failed), too many actions, or a reused "
    "Idempotency-Key with another body (idempotency-key-reused).",
    "429": "Rate limit per endpoint and client; see Retry-After.",
    "503": "The store or the CAPTCHA verifier is unavailable; nothing was written.",
}


def integration_spec(
    integration: Integration, *, base: str, mode: str
) -> dict[str, Any]:
    """An OpenAPI 3.1 document for one mode (`test` or `production`)."""
    configuration = integration.configuration
    production_url, test_url = endpoint_urls(base, integration.endpoint_id)
    server = f"{base}/v5/test" if mode == "test" else f"{base}/v5"
    path = f"/endpoints/{integration.endpoint_id}"
    title_mode = "Test" if mode == "test" else "Production"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{integration.name} ({title_mode})",
            "version": str(integration.configuration_version or integration.version),
            "description": (
                f"{title_mode} endpoint of the integration {integration.name!r}. "
                f"Production: {production_url}. Test: {test_url}. "
                + (
                    "Test mode runs every check and answers what production would "
                    "do, but changes no profile and triggers no message."
                    if mode == "test"
                    else "Accepted submissions change profiles as configured."
                )
            ),
        },
        "servers": [{"url": server}],
        "paths": {
            path: _path_item(configuration, integration.recaptcha_secret is not None)
        },
        "components": {"schemas": _schemas(configuration)},
    }


def _path_item(configuration: Configuration, secret_set: bool) -> dict[str, Any]:
    headers: list[dict[str, Any]] = [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "Names the request for deduplication (at most 255 chars).",
            "schema": {"type": "string", "maxLength": 255},
        }
    ]
    if configuration.require_recaptcha:
        headers.insert(
            0,
            {
                "name": "X-Recaptcha-Token",
                "in": "header",
                "required": True,
                "description": "The CAPTCHA token; form posts may send the "
                "g-recaptcha-response field instead.",
                "schema": {"type": "string", "minLength": 1},
            },
        )
    responses: dict[str, Any] = {
        "200": {
            "description": "Accepted. A repeat inside the dedupe window answers the "
            "first answer again with duplicate true and Idempotent-Replayed: true.",
            "headers": {
                "Idempotent-Replayed": {
                    "description": "true when this answer replays an earlier one.",
                    "schema": {"type": "string", "enum": ["true"]},
                }
            },
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/Accepted"}
                },
                "text/html": {"schema": {"type": "string"}},
            },
        },
        "303": {
            "description": "Form posts with a redirect URL configured are sent there.",
            "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}},
        },
    }
    for status, description in PROBLEM_ANSWERS.items():
        answer: dict[str, Any] = {
            "description": description,
            "content": {
                "application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/Problem"}
                },
                "text/html": {"schema": {"type": "string"}},
            },
        }
        if status in ("429", "503"):
            answer["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
        responses[status] = answer
    return {
        "post": {
            "operationId": "submit",
            "summary": "Submit profile, event and message actions",
            "parameters": headers,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/Submission"}
                    },
                    "application/x-www-form-urlencoded": {
                        "schema": {"$ref": "#/components/schemas/FormSubmission"}
                    },
                    "multipart/form-data": {
                        "schema": {"$ref": "#/components/schemas/FormSubmission"}
                    },
                },
            },
            "responses": responses,
        },
        "options": {
            "operationId": "preflight",
            "summary": "CORS preflight",
            "responses": {
                "204": {"description": "Allowed origins, methods and headers."}
            },
        },
    }


def _schemas(configuration: Configuration) -> dict[str, Any]:
    return {
        "Submission": {
            "description": f"One action, or a list of 1 to {MAX_ACTIONS} actions.",
            "oneOf": [
                {"$ref": "#/components/schemas/Action"},
                {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Action"},
                    "minItems": 1,
                    "maxItems": MAX_ACTIONS,
                },
            ],
        },
        "Action": {
            "oneOf": [
                _single("profile", "Profile"),
                _single("event", "Event"),
                _single("message", "Message"),
            ]
        },
        "Profile": _profile_schema(configuration),
        "Event": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type"],
            "properties": {
                "type": {"type": "string", "minLength": 1, "maxLength": 64},
                "data": {"type": "object"},
                "activityId": {"type": "integer"},
                "parentId": {"type": "string", "maxLength": 200},
                "target": {"$ref": "#/components/schemas/Target"},
            },
        },
        "Message": {
            "type": "object",
            "additionalProperties": False,
            "required": ["activityId"],
            "properties": {
                "activityId": (
                    {"type": "integer", "const": configuration.trigger_activity_id}
                    if configuration.trigger_activity_id is not None
                    else {"type": "integer"}
                ),
                "target": {"$ref": "#/components/schemas/Target"},
                "requestContent": {"type": "object"},
            },
        },
        "Target": {
            "type": "object",
            "description": f"The {configuration.identify_by} of an existing profile.",
            "additionalProperties": False,
            "required": [configuration.identify_by],
            "properties": {
                configuration.identify_by: {"type": "string", "minLength": 1}
            },
        },
        "FormSubmission": _form_schema(configuration),
        "Accepted": {
            "type": "object",
            "required": ["submissionId", "position", "mode", "duplicate", "results"],
            "properties": {
                "submissionId": {"type": "string", "format": "uuid"},
                "position": {"type": "integer", "minimum": 1},
                "mode": {"type": "string", "enum": ["production", "test"]},
                "duplicate": {"type": "boolean"},
                "results": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Result"},
                },
            },
        },
        "Result": {
            "type": "object",
            "required": ["code", "name", "description"],
            "properties": {
                "code": {"type": "integer"},
                "name": {"type": "string"},
                "description": {"type": "string"},
                "subscriberId": {"type": "string", "format": "uuid"},
            },
        },
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
                            "action": {"type": "integer", "minimum": 0},
                            "field": {"type": "string"},
                            "rule": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        },
    }


def _single(key: str, schema: str) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [key],
        "properties": {key: {"$ref": f"#/components/schemas/{schema}"}},
    }


def _profile_schema(configuration: Configuration) -> dict[str, Any]:
    rules = configuration.field_validation_rules
    properties: dict[str, Any] = {}
    for name in (*IDENTIFIERS, *TEXT_FIELDS):
        properties[name] = _with_rule({"type": "string"}, rules.get(name))
    properties["email"].setdefault("format", "email")
    properties["dob"] = _with_rule(
        {"type": "string", "format": "date"}, rules.get("dob")
    )
    custom_properties = {
        name.removeprefix("custom."): _with_rule({}, rule)
        for name, rule in rules.items()
        if is_custom_field(name)
    }
    properties["custom"] = {
        "type": "object",
        "properties": custom_properties,
        "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
    }
    custom_required = [
        name.removeprefix("custom.")
        for name, rule in rules.items()
        if is_custom_field(name) and rule.get("required")
    ]
    if custom_required:
        properties["custom"]["required"] = custom_required
    properties["unsubscribedTimestamp"] = TIMESTAMP_OR_TRUE
    properties["consent"] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["text", "given"],
        "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": 2000},
            "given": {"type": "boolean"},
        },
    }
    properties["lists"] = {
        "type": "array",
        "maxItems": 100,
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["listId"],
            "properties": {
                "listId": {"type": "integer", "minimum": 1},
                "subscribedTimestamp": TIMESTAMP_OR_TRUE,
                "unsubscribedTimestamp": TIMESTAMP_OR_TRUE,
                "subscriptionOption": {"type": "string", "maxLength": 200},
            },
        },
    }
    if configuration.honeypot_field and configuration.honeypot_field not in properties:
        properties[configuration.honeypot_field] = {
            "type": "string",
            "description": "Leave empty.",
        }
    required = [configuration.identify_by] + [
        name
        for name, rule in rules.items()
        if rule.get("required") and not is_custom_field(name)
    ]
    for name, schema in properties.items():
        # Any field but a required one may be cleared with null.
        if name not in required and schema.get("type") == "string":
            schema["type"] = ["string", "null"]
    if custom_required:
        required.append("custom")
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(dict.fromkeys(required)),
        "properties": properties,
    }


def _with_rule(schema: dict[str, Any], rule: dict[str, Any] | None) -> dict[str, Any]:
    merged = copy.deepcopy(schema)
    for keyword, value in (rule or {}).items():
        if keyword != "required":
            merged[keyword] = value
    return merged


def _form_schema(configuration: Configuration) -> dict[str, Any]:
    rules = configuration.field_validation_rules
    properties: dict[str, Any] = {
        name: _with_rule(
            {"type": "string"}, rules.get(name) if _stringy(rules.get(name)) else None
        )
        for name in (*IDENTIFIERS, *TEXT_FIELDS, "dob")
    }
    properties["lists"] = {
        "type": "string",
        "description": "List ids to subscribe to, repeated or comma-separated.",
    }
    properties["g-recaptcha-response"] = {"type": "string"}
    for name in rules:
        if is_custom_field(name):
            properties[name] = {"type": "string"}
    if configuration.honeypot_field:
        properties[configuration.honeypot_field] = {"type": "string"}
    return {
        "type": "object",
        "description": "An HTML form: its fields form one profile action; custom "
        "fields are written custom.<name>; empty fields are ignored.",
        "required": [configuration.identify_by],
        "properties": properties,
        "additionalProperties": {"type": "string"},
    }


def _stringy(rule: dict[str, Any] | None) -> bool:
    return rule is None or rule.get("type", "string") == "string"
