"""An endpoint integration's configuration and how a saved one is checked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
)
from pydantic.alias_generators import to_camel

from domain.errors import InvalidInput, Problem
from domain.profile import IdentifierName
from domain.rules import parse_rules

MAX_ORIGINS: Final = 100
MAX_URL_LENGTH: Final = 2000
DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def _origin(value: str) -> str:
    """The origin as a browser sends it: lower case, without a default port."""
    if value == "*":
        return value
    msg = f"{value!r} is not an origin; write scheme://host[:port], or *"
    parts = urlsplit(value)
    try:
        # Raises for a port that is not a number from 0 to 65535.
        port = parts.port
    except ValueError:
        raise ValueError(msg) from None
    if (
        parts.scheme not in DEFAULT_PORTS
        or not parts.hostname
        or parts.netloc.endswith(":")
        or "@" in parts.netloc
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ValueError(msg)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is None or port == DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def _redirect(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        msg = f"{value!r} is not an absolute http(s) URL"
        raise ValueError(msg)
    return value


def _region(value: str) -> str:
    region = value.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        msg = f"{value!r} is not an ISO 3166 alpha-2 region code with phone numbers"
        raise ValueError(msg)
    return region


Origin = Annotated[str, AfterValidator(_origin)]
RedirectUrl = Annotated[
    str, Field(max_length=MAX_URL_LENGTH), AfterValidator(_redirect)
]
Region = Annotated[str, AfterValidator(_region)]
Rule = dict[str, Any]


class Configuration(BaseModel):
    """What an integration's endpoint may do and how it answers.

    Field names follow the product contract; the CAPTCHA secret is kept apart
    (see `Integration`), so that a configuration can be shown and compared
    without ever exposing it.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        alias_generator=to_camel,
        populate_by_name=True,
    )

    name: str = Field(min_length=1, max_length=200)
    identify_by: IdentifierName = "email"
    allow_profile_creation: StrictBool = False
    allow_profile_updates: StrictBool = False
    allow_event_logging: StrictBool = False
    allow_messages: StrictBool = False
    trigger_activity_id: Annotated[StrictInt, Field(ge=1)] | None = None
    allow_messages_to_unsubscribed: StrictBool = False
    require_recaptcha: StrictBool = False
    recaptcha_min_score: Annotated[float, Field(ge=0, le=1)] = 0.5
    field_validation_rules: dict[str, Rule] = Field(default_factory=dict)
    import_source_name: Annotated[str, Field(min_length=1, max_length=200)] | None = (
        None
    )
    dedupe_period_seconds: Annotated[StrictInt, Field(ge=0, le=86400)] = 0
    allowed_origins: Annotated[
        tuple[Origin, ...], Field(min_length=1, max_length=MAX_ORIGINS, strict=False)
    ] = ("*",)
    honeypot_field: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    detailed_responses: StrictBool = False
    default_phone_region: Region | None = None
    success_redirect_url: RedirectUrl | None = None
    error_redirect_url: RedirectUrl | None = None

    def as_json(self) -> dict[str, Any]:
        """The configuration as the contract's JSON object."""
        return self.model_dump(mode="json", by_alias=True)

    @property
    def allows_any_origin(self) -> bool:
        return "*" in self.allowed_origins


#: Contract names of every configuration field, the secret included.
SECRET_FIELD: Final = "recaptchaSecret"
FIELD_NAMES: Final = frozenset(
    {info.alias or name for name, info in Configuration.model_fields.items()}
)

RULE_NAMES: Final = {
    "missing": "required",
    "extra_forbidden": "unknown-field",
    "string_too_short": "minLength",
    "string_too_long": "maxLength",
    "too_short": "minItems",
    "too_long": "maxItems",
    "greater_than_equal": "minimum",
    "less_than_equal": "maximum",
    "literal_error": "enum",
    "value_error": "format",
}


def parse_configuration(raw: Mapping[str, Any], *, secret_set: bool) -> Configuration:
    """Check a whole configuration, raising `InvalidInput` with every problem.

    `secret_set` says whether a CAPTCHA secret will be stored with it.
    """
    problems: list[Problem] = []
    configuration: Configuration | None = None
    try:
        configuration = Configuration.model_validate(dict(raw))
    except ValidationError as error:
        problems.extend(_problems_from(error))

    problems.extend(parse_rules(raw.get("fieldValidationRules", {})))

    if raw.get("requireRecaptcha") is True and not secret_set:
        problems.append(
            Problem(
                SECRET_FIELD,
                "required",
                "requireRecaptcha is on but no recaptchaSecret is set; set one",
            )
        )
    if raw.get("allowMessages") is True and raw.get("triggerActivityId") is None:
        problems.append(
            Problem(
                "triggerActivityId",
                "required",
                "allowMessages is on but triggerActivityId is null; "
                "name the activity to trigger",
            )
        )
    if problems or configuration is None:
        raise InvalidInput(_unique(problems))
    return configuration


def _problems_from(error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        location = [str(part) for part in item["loc"]]
        if location and location[0] == "fieldValidationRules":
            # Rules are checked more precisely by parse_rules.
            continue
        field = ".".join(location) or "(body)"
        kind = item["type"]
        rule = RULE_NAMES.get(kind, "type" if kind.endswith("_type") else kind)
        problems.append(Problem(field, rule, _message(item, location)))
    return problems


MESSAGES: Final = {
    "missing": "is required",
    "string_too_short": "must be at least {min_length} characters",
    "string_too_long": "must be at most {max_length} characters",
    "too_short": "must hold at least {min_length} items",
    "too_long": "must hold at most {max_length} items",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "literal_error": "must be one of {expected}",
}


def _message(item: Any, location: list[str]) -> str:
    kind, context = item["type"], item.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"unknown field {location[-1]!r}"
    if kind == "value_error":
        return str(item["msg"]).removeprefix("Value error, ")
    if kind in MESSAGES:
        return MESSAGES[kind].format(**context)
    return str(item["msg"]).lower()


def _unique(problems: list[Problem]) -> list[Problem]:
    # A list whose items failed is reported by those items, not by its length.
    failed_items = {
        p.field.rsplit(".", 1)[0] for p in problems if p.field[-1].isdigit()
    }
    seen: set[Problem] = set()
    ordered = []
    for problem in problems:
        if problem.rule == "minItems" and problem.field in failed_items:
            continue
        if problem not in seen:
            seen.add(problem)
            ordered.append(problem)
    return ordered
