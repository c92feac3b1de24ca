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
from api.http.submissions import MAX_IDEMPOTENCY_KEY
from domain.actions import (
    MAX_ACTIONS,
    MAX_ACTIVITY_ID,
    MAX_CONSENT_TEXT,
    MAX_CUSTOM_FIELDS,
    MAX_CUSTOM_TEXT_LENGTH,
    MAX_EVENT_TYPE_LENGTH,
    MAX_IDENTIFIER_LENGTH,
    MAX_LISTS,
    MAX_OPTION_LENGTH,
    MAX_TEXT_LENGTH,
)
from domain.configuration import Configuration
from domain.integration import Integration
from domain.profile import (
    CUSTOM_NAME,
    CUSTOM_PREFIX,
    IDENTIFIERS,
    TEXT_FIELDS,
    is_custom_field,
)

#: The longest address `domain.rules.is_email` takes (RFC 5321's path limit).
MAX_EMAIL_LENGTH: Final = 254
CUSTOM_NAME_PATTERN: Final = CUSTOM_NAME.pattern
#: Form list ids: whole numbers from 1, comma-separated; empty parts are
#: ignored. Fifteen digits keep every id below the domain's 2**53 limit.
FORM_LISTS_PATTERN: Final = r"^ *([1-9][0-9]{0,14} *)?(, *([1-9][0-9]{0,14} *)?)*$"
TIMESTAMP_OR_TRUE: Final = {
    "oneOf": [{"const": True}, {"type": "string", "format": "date-time"}]
}
#: A list subscription's time: null asks for nothing (or, to unsubscribe, a
#: reversal, which is refused and recorded but is no error).
NULLABLE_TIMESTAMP_OR_TRUE: Final = {
    "oneOf": [{"type": "null"}, *TIMESTAMP_OR_TRUE["oneOf"]]
}
#: An activity or list id, as `domain.actions` takes them.
POSITIVE_ID: Final = {"type": "integer", "minimum": 1, "maximum": MAX_ACTIVITY_ID}
PROBLEM_ANSWERS: Final = {
    "400": "The body is not JSON, not an action list, or ambiguous (a key "
    "twice in one object); a form is not UTF-8; a bad Idempotency-Key.",
    "403": "CAPTCHA missing or failed (captcha-failed), origin not allowed "
    "(origin-not-allowed), or an action the configuration forbids "
    "(action-not-permitted).",
    "404": "Unknown endpoint, or inactive on production.",
    "405": "Only POST and OPTIONS are served here.",
    "408": "The body did not arrive in time (request-timeout).",
    "413": "The body is too large.",
    "415": "Unsupported content type, a charset other than UTF-8, or files.",
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
            "description": "Names the request for deduplication "
            f"(1 to {MAX_IDEMPOTENCY_KEY} characters).",
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_IDEMPOTENCY_KEY,
            },
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
                "204": {"description": "Allowed origins, methods and headers."},
                "404": {
                    "description": PROBLEM_ANSWERS["404"],
                    "content": {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        }
                    },
                },
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
                "type": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_EVENT_TYPE_LENGTH,
                },
                "data": {"type": ["object", "null"]},
                "activityId": {"oneOf": [{"type": "null"}, POSITIVE_ID]},
                "parentId": {
                    "type": ["string", "null"],
                    "maxLength": MAX_IDENTIFIER_LENGTH,
                },
                "target": {
                    "oneOf": [
                        {"type": "null"},
                        {"$ref": "#/components/schemas/Target"},
                    ]
                },
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
                    else POSITIVE_ID
                ),
                "target": {
                    "oneOf": [
                        {"type": "null"},
                        {"$ref": "#/components/schemas/Target"},
                    ]
                },
                "requestContent": {"type": ["object", "null"]},
            },
        },
        "Target": {
            "type": "object",
            "description": f"The {configuration.identify_by} of an existing profile.",
            "additionalProperties": False,
            "required": [configuration.identify_by],
            "properties": {
                configuration.identify_by: _identifier(configuration.identify_by)
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
    for name in (*IDENTIFIERS, *TEXT_FIELDS, "dob"):
        properties[name] = _with_rule(_scalar(name), rules.get(name))
    custom_properties = {
        name.removeprefix(CUSTOM_PREFIX): _with_rule({}, rule)
        for name, rule in rules.items()
        if is_custom_field(name)
    }
    properties["custom"] = {
        "type": "object",
        "maxProperties": MAX_CUSTOM_FIELDS,
        "propertyNames": {"pattern": CUSTOM_NAME_PATTERN},
        "properties": custom_properties,
        "additionalProperties": {
            "oneOf": [
                {"type": "string", "maxLength": MAX_CUSTOM_TEXT_LENGTH},
                {"type": ["number", "boolean", "null"]},
            ]
        },
    }
    custom_required = [
        name.removeprefix(CUSTOM_PREFIX)
        for name, rule in rules.items()
        if is_custom_field(name) and rule.get("required")
    ]
    if custom_required:
        properties["custom"]["required"] = custom_required
    # null clears the global unsubscribe, which a submission may not do: it
    # is refused and recorded, and the rest of the action applies.
    properties["unsubscribedTimestamp"] = NULLABLE_TIMESTAMP_OR_TRUE
    properties["consent"] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["text", "given"],
        "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": MAX_CONSENT_TEXT},
            "given": {"type": "boolean"},
        },
    }
    properties["lists"] = {
        "type": "array",
        "maxItems": MAX_LISTS,
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["listId"],
            "properties": {
                "listId": POSITIVE_ID,
                "subscribedTimestamp": NULLABLE_TIMESTAMP_OR_TRUE,
                "unsubscribedTimestamp": NULLABLE_TIMESTAMP_OR_TRUE,
                "subscriptionOption": {
                    "type": ["string", "null"],
                    "maxLength": MAX_OPTION_LENGTH,
                },
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


def _scalar(name: str) -> dict[str, Any]:
    """A profile field's own schema, before any configured rule.

    The field's built-in limits sit in `allOf`, so that a configured rule,
    merged in at the top, narrows them without replacing them.
    """
    if name == "dob":
        return {"type": "string", "format": "date"}
    if name in IDENTIFIERS:
        return _identifier(name)
    return {"type": "string", "allOf": [{"maxLength": MAX_TEXT_LENGTH}]}


def _identifier(name: str) -> dict[str, Any]:
    if name == "email":
        return {
            "type": "string",
            "format": "email",
            "allOf": [{"maxLength": MAX_EMAIL_LENGTH}],
        }
    if name == "ref":
        # Read with surrounding spaces trimmed: blank is empty, and refused.
        return {
            "type": "string",
            "allOf": [{"maxLength": MAX_IDENTIFIER_LENGTH, "pattern": r"\S"}],
        }
    return {
        "type": "string",
        "description": "A phone number with + and the country code, or one the "
        "integration's defaultPhoneRegion reads.",
        "allOf": [{"pattern": "[0-9]"}],
    }


def _with_rule(schema: dict[str, Any], rule: dict[str, Any] | None) -> dict[str, Any]:
    merged = copy.deepcopy(schema)
    for keyword, value in (rule or {}).items():
        if keyword != "required":
            merged[keyword] = value
    return merged


def _form_schema(configuration: Configuration) -> dict[str, Any]:
    """Form fields are strings; an empty one is left out before any rule."""
    rules = configuration.field_validation_rules
    properties: dict[str, Any] = {
        name: _with_rule(
            _scalar(name), rules.get(name) if _stringy(rules.get(name)) else None
        )
        for name in (*IDENTIFIERS, *TEXT_FIELDS, "dob")
    }
    properties["lists"] = {
        "type": "string",
        "pattern": FORM_LISTS_PATTERN,
        "description": "List ids to subscribe to, repeated or comma-separated.",
    }
    properties["consent.text"] = {"type": "string", "maxLength": MAX_CONSENT_TEXT}
    for name, rule in rules.items():
        if is_custom_field(name):
            properties[name] = _with_rule(
                {"type": "string", "allOf": [{"maxLength": MAX_CUSTOM_TEXT_LENGTH}]},
                rule if _stringy(rule) else None,
            )
    required = [configuration.identify_by] + [
        name
        for name, rule in rules.items()
        if rule.get("required") and name in properties
    ]
    for name, schema in properties.items():
        if name in required:
            # A required field sent empty is a field left out.
            least = max(1, schema.get("minLength", 0))
            properties[name] = {**schema, "minLength": least}
        else:
            properties[name] = {"anyOf": [{"const": ""}, schema]}
    anything = {"type": "string"}
    properties["consent.given"] = {
        **anything,
        "description": "on, true, yes or 1 give consent; anything else does not.",
    }
    properties["g-recaptcha-response"] = anything
    if configuration.honeypot_field:
        properties[configuration.honeypot_field] = anything
    return {
        "type": "object",
        "description": "An HTML form: its fields form one profile action; custom "
        "fields are written custom.<name>; empty fields are ignored.",
        "required": list(dict.fromkeys(required)),
        "properties": properties,
        "patternProperties": {
            "^" + CUSTOM_PREFIX.replace(".", r"\.") + CUSTOM_NAME_PATTERN[1:]: {
                "type": "string",
                "maxLength": MAX_CUSTOM_TEXT_LENGTH,
            }
        },
        "additionalProperties": False,
        # Consent needs its text: a ticked box alone records nothing.
        "if": {
            "required": ["consent.given"],
            "properties": {"consent.given": {"minLength": 1}},
        },
        "then": {
            "required": ["consent.text"],
            "properties": {"consent.text": {"minLength": 1}},
        },
    }


def _stringy(rule: dict[str, Any] | None) -> bool:
    return rule is None or rule.get("type", "string") == "string"
