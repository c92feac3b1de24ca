"""The actions of a public submission: reading, normalising and checking them.

A submission is one action or a list of them; each action is an object with
exactly one key, `profile`, `event` or `message`. `read_actions` turns the
decoded JSON into typed actions with normalised values (lower-case emails,
E.164 phones), or reports every broken rule with the action's index and the
field. It changes nothing: whether the actions may be applied is decided
against the store later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final

import phonenumbers

from domain.profile import (
    CUSTOM_NAME,
    CUSTOM_PREFIX,
    IDENTIFIERS,
    TEXT_FIELDS,
    IdentifierName,
)
from domain.rules import CompiledRules, is_email

MAX_ACTIONS: Final = 50
MAX_IDENTIFIER_LENGTH: Final = 255
MAX_TEXT_LENGTH: Final = 1000
MAX_CUSTOM_FIELDS: Final = 100
MAX_CUSTOM_TEXT_LENGTH: Final = 2000
MAX_LISTS: Final = 100
MAX_CONSENT_TEXT: Final = 2000
MAX_EVENT_TYPE_LENGTH: Final = 64
MAX_NESTING: Final = 8
MAX_DATA_STRING: Final = 10_000
MAX_OPTION_LENGTH: Final = 200
MAX_ACTIVITY_ID: Final = 2**53

ACTION_KINDS: Final = ("profile", "event", "message")
PROFILE_KEYS: Final = frozenset(
    (
        *IDENTIFIERS,
        *TEXT_FIELDS,
        "dob",
        "custom",
        "unsubscribedTimestamp",
        "consent",
        "lists",
    )
)
EVENT_KEYS: Final = frozenset(("type", "data", "activityId", "parentId", "target"))
MESSAGE_KEYS: Final = frozenset(("activityId", "target", "requestContent"))
LIST_KEYS: Final = frozenset(
    ("listId", "subscribedTimestamp", "unsubscribedTimestamp", "subscriptionOption")
)
CONSENT_KEYS: Final = frozenset(("text", "given"))
DATE_FORMAT: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class MalformedSubmission(ValueError):
    """The body is not an action list (HTTP 400)."""


class TooManyActions(ValueError):
    """More actions than a submission may hold (HTTP 422)."""


@dataclass(frozen=True)
class ActionViolation:
    """A broken rule in one action: its index, the field, the rule, a message."""

    action: int
    field: str
    rule: str
    message: str


@dataclass(frozen=True)
class Consent:
    text: str
    given: bool


@dataclass(frozen=True)
class ListChange:
    """A subscription change to one list; a time is when it takes effect."""

    list_id: int
    subscribe_at: datetime | None = None
    unsubscribe_at: datetime | None = None
    option: str | None = None
    #: An explicit null on a timestamp: a request to reverse it.
    clears_unsubscribe: bool = False


@dataclass(frozen=True)
class ProfileAction:
    """Profile values to set (None clears); absent fields stay unchanged.

    `values` maps field names (`email`, `firstname`, `custom.colour`, ...) to
    normalised values; `submitted` holds the same fields as given, for rules.
    """

    index: int
    values: Mapping[str, Any]
    submitted: Mapping[str, Any]
    unsubscribe_at: datetime | None = None
    clears_unsubscribe: bool = False
    consent: Consent | None = None
    lists: tuple[ListChange, ...] = ()

    def identifier(self, name: IdentifierName) -> str | None:
        value = self.values.get(name)
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class EventAction:
    index: int
    event_type: str
    data: Mapping[str, Any] | None = None
    activity_id: int | None = None
    parent_id: str | None = None
    target: str | None = None


@dataclass(frozen=True)
class MessageAction:
    index: int
    activity_id: int
    target: str | None = None
    request_content: Mapping[str, Any] | None = None


Action = ProfileAction | EventAction | MessageAction


@dataclass
class Reading:
    """What `read_actions` found: the actions, or the violations."""

    actions: list[Action] = field(default_factory=list)
    violations: list[ActionViolation] = field(default_factory=list)


def split_actions(
    body: Any, *, limit: int | None = MAX_ACTIONS
) -> list[tuple[str, Any]]:
    """(kind, content) for each action, or `MalformedSubmission`/`TooManyActions`.

    `limit=None` reads the shape of a list of any length.
    """
    items = body if isinstance(body, list) else [body]
    if not items:
        raise MalformedSubmission("the action list is empty; send at least one action")
    if limit is not None and len(items) > limit:
        msg = f"{len(items)} actions; a submission holds at most {MAX_ACTIONS}"
        raise TooManyActions(msg)
    actions = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or len(item) != 1:
            msg = (
                f"action {index} must be an object with exactly one key: "
                f"{', '.join(ACTION_KINDS)}"
            )
            raise MalformedSubmission(msg)
        ((kind, content),) = item.items()
        if kind not in ACTION_KINDS:
            kinds = ", ".join(ACTION_KINDS)
            msg = f"action {index} has unknown kind {kind!r}; use {kinds}"
            raise MalformedSubmission(msg)
        if not isinstance(content, dict):
            raise MalformedSubmission(f"action {index}: {kind} must be an object")
        actions.append((kind, content))
    return actions


def read_actions(
    body: Any,
    *,
    identify_by: IdentifierName,
    default_region: str | None,
    rules: CompiledRules,
    now: datetime,
    extra_profile_keys: frozenset[str] = frozenset(),
) -> Reading:
    """Typed, normalised actions from a decoded body, or every violation.

    `extra_profile_keys` names profile keys the caller handles itself (the
    honeypot field), which are therefore not unknown.
    """
    reading = Reading()
    for index, (kind, content) in enumerate(split_actions(body)):
        reader = _ActionReader(index, identify_by, default_region, now)
        action: Action | None
        if kind == "profile":
            action = reader.profile(content, rules, extra_profile_keys)
        elif kind == "event":
            action = reader.event(content)
        else:
            action = reader.message(content)
        reading.violations += reader.violations
        if action is not None and not reader.violations:
            reading.actions.append(action)
    if reading.violations:
        reading.actions = []
    return reading


class _ActionReader:
    def __init__(
        self,
        index: int,
        identify_by: IdentifierName,
        default_region: str | None,
        now: datetime,
    ) -> None:
        self.index = index
        self.identify_by = identify_by
        self.default_region = default_region
        self.now = now
        self.violations: list[ActionViolation] = []

    def bad(self, field_name: str, rule: str, message: str) -> None:
        self.violations.append(ActionViolation(self.index, field_name, rule, message))

    # -- profile

    def profile(
        self,
        content: Mapping[str, Any],
        rules: CompiledRules,
        extra_keys: frozenset[str],
    ) -> ProfileAction | None:
        for name in content:
            if name not in PROFILE_KEYS and name not in extra_keys:
                self.bad(name, "unknown-field", f"unknown profile field {name!r}")
        values: dict[str, Any] = {}
        submitted: dict[str, Any] = {}
        for name in (*IDENTIFIERS, *TEXT_FIELDS, "dob"):
            if name in content:
                submitted[name] = content[name]
                values[name] = self.scalar(name, content[name])
        if "custom" in content:
            custom = self.custom(content["custom"])
            submitted.update(custom)
            values.update(custom)
        if content.get(self.identify_by) is None:
            self.bad(
                self.identify_by,
                "required",
                f"the integration identifies profiles by {self.identify_by}; "
                "it is required",
            )
        for violation in rules.check(submitted):
            self.bad(violation.field, violation.rule, violation.message)

        unsubscribe_at, clears = None, False
        if "unsubscribedTimestamp" in content:
            stamp = content["unsubscribedTimestamp"]
            if stamp is None:
                clears = True
            else:
                unsubscribe_at = self.stamp("unsubscribedTimestamp", stamp)
        consent = self.consent(content["consent"]) if "consent" in content else None
        lists = self.lists(content["lists"]) if "lists" in content else ()
        if self.violations:
            return None
        return ProfileAction(
            index=self.index,
            values=values,
            submitted=submitted,
            unsubscribe_at=unsubscribe_at,
            clears_unsubscribe=clears,
            consent=consent,
            lists=lists,
        )

    def scalar(self, name: str, value: Any, *, path: str | None = None) -> Any:
        """The normalised value of field `name`; `path` is where it was sent."""
        where = path or name
        if value is None:
            return None
        if not isinstance(value, str):
            self.bad(where, "type", "must be a string or null")
            return None
        text = value.strip()
        if name == "email":
            return self.email(text, where)
        if name == "phone":
            return self.phone(text, where)
        if name == "dob":
            if not DATE_FORMAT.match(text) or not _valid_date(text):
                self.bad(where, "format", "must be a date written YYYY-MM-DD")
            return text
        limit = MAX_IDENTIFIER_LENGTH if name == "ref" else MAX_TEXT_LENGTH
        # The length as sent, spaces and all: what the spec files promise.
        if len(value) > limit:
            self.bad(where, "maxLength", f"must be at most {limit} characters")
        if name == "ref" and not text:
            self.bad(where, "minLength", "must not be empty; use null to clear it")
        return text

    def email(self, text: str, where: str) -> str:
        if not is_email(text):
            self.bad(where, "format", "must be a valid email address")
        return text.lower()

    def phone(self, text: str, where: str) -> str | None:
        try:
            number = phonenumbers.parse(text, self.default_region)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            hint = (
                "" if self.default_region else "; write it with + and the country code"
            )
            self.bad(where, "format", f"must be a valid phone number{hint}")
            return None
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    def custom(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.bad("custom", "type", "must be an object of custom field values")
            return {}
        if len(value) > MAX_CUSTOM_FIELDS:
            self.bad("custom", "maxProperties", f"at most {MAX_CUSTOM_FIELDS} fields")
            return {}
        fields: dict[str, Any] = {}
        for name, item in value.items():
            path = f"{CUSTOM_PREFIX}{name}"
            if not isinstance(name, str) or not CUSTOM_NAME.fullmatch(name):
                self.bad(
                    path,
                    "format",
                    "custom field names start with a letter and hold letters, "
                    "digits and _ (at most 64)",
                )
            elif item is not None and not isinstance(item, str | int | float | bool):
                self.bad(path, "type", "must be a string, number, boolean or null")
            elif isinstance(item, str) and len(item) > MAX_CUSTOM_TEXT_LENGTH:
                self.bad(
                    path, "maxLength", f"at most {MAX_CUSTOM_TEXT_LENGTH} characters"
                )
            elif isinstance(item, float) and item != item:  # noqa: PLR0124 - NaN
                self.bad(path, "type", "must be a finite number")
            else:
                fields[path] = item
        return fields

    def stamp(self, name: str, value: Any) -> datetime | None:
        """`true` (now) or an RFC 3339 time."""
        if value is True:
            return self.now
        moment = _utc_moment(value) if isinstance(value, str) else None
        if moment is None:
            self.bad(name, "format", "must be true or an RFC 3339 time with an offset")
        return moment

    def consent(self, value: Any) -> Consent | None:
        if not isinstance(value, dict):
            self.bad("consent", "type", "must be an object {text, given}")
            return None
        unknown = [name for name in value if name not in CONSENT_KEYS]
        for name in unknown:
            self.bad(
                f"consent.{name}", "unknown-field", f"unknown consent field {name!r}"
            )
        if not set(value) >= CONSENT_KEYS:
            self.bad("consent", "type", "must be an object {text, given}")
        if unknown or not set(value) >= CONSENT_KEYS:
            return None
        text, given = value["text"], value["given"]
        if not isinstance(text, str) or not 1 <= len(text) <= MAX_CONSENT_TEXT:
            self.bad(
                "consent.text", "type", f"must be 1 to {MAX_CONSENT_TEXT} characters"
            )
            return None
        if not isinstance(given, bool):
            self.bad("consent.given", "type", "must be true or false")
            return None
        return Consent(text=text, given=given)

    def lists(self, value: Any) -> tuple[ListChange, ...]:
        if not isinstance(value, list) or len(value) > MAX_LISTS:
            self.bad("lists", "type", f"must be a list of at most {MAX_LISTS} objects")
            return ()
        changes = (self.list_change(f"lists.{n}", item) for n, item in enumerate(value))
        return tuple(change for change in changes if change is not None)

    def list_change(self, path: str, item: Any) -> ListChange | None:
        # Unknown fields are named even when the listId is missing too.
        unknown = set(item) - LIST_KEYS if isinstance(item, dict) else set()
        if unknown:
            self.bad(path, "unknown-field", f"unknown fields {sorted(unknown)}")
        if not isinstance(item, dict) or "listId" not in item:
            self.bad(path, "type", "must be an object with a listId")
            return None
        if unknown:
            return None
        list_id = item["listId"]
        if not _is_whole(list_id) or not 1 <= list_id <= MAX_ACTIVITY_ID:
            self.bad(f"{path}.listId", "type", "must be a positive integer")
            return None
        stamps: dict[str, datetime | None] = {}
        for key in ("subscribedTimestamp", "unsubscribedTimestamp"):
            if item.get(key) is not None:
                stamps[key] = self.stamp(f"{path}.{key}", item[key])
        option = item.get("subscriptionOption")
        if option is not None and (
            not isinstance(option, str) or len(option) > MAX_OPTION_LENGTH
        ):
            self.bad(f"{path}.subscriptionOption", "type", "must be a short string")
            option = None
        return ListChange(
            list_id=int(list_id),
            subscribe_at=stamps.get("subscribedTimestamp"),
            unsubscribe_at=stamps.get("unsubscribedTimestamp"),
            option=option,
            clears_unsubscribe="unsubscribedTimestamp" in item
            and item["unsubscribedTimestamp"] is None,
        )

    # -- event and message

    def event(self, content: Mapping[str, Any]) -> EventAction | None:
        self.unknown(content, EVENT_KEYS, "event")
        event_type = content.get("type")
        if (
            not isinstance(event_type, str)
            or not 1 <= len(event_type) <= MAX_EVENT_TYPE_LENGTH
        ):
            self.bad(
                "type",
                "type",
                f"must be a string of 1 to {MAX_EVENT_TYPE_LENGTH} characters",
            )
        data = self.data("data", content.get("data"))
        activity_id = self.optional_id("activityId", content.get("activityId"))
        parent_id = content.get("parentId")
        if parent_id is not None and (
            not isinstance(parent_id, str) or len(parent_id) > MAX_IDENTIFIER_LENGTH
        ):
            self.bad(
                "parentId",
                "type",
                f"must be a string of at most {MAX_IDENTIFIER_LENGTH}",
            )
        target = self.target(content.get("target"))
        if self.violations:
            return None
        return EventAction(
            index=self.index,
            event_type=str(event_type),
            data=data,
            activity_id=activity_id,
            parent_id=parent_id,
            target=target,
        )

    def message(self, content: Mapping[str, Any]) -> MessageAction | None:
        self.unknown(content, MESSAGE_KEYS, "message")
        activity_id = self.optional_id("activityId", content.get("activityId"))
        # A null activityId is as missing as an absent one: the message would
        # otherwise vanish from the submission without a word.
        if content.get("activityId") is None:
            self.bad("activityId", "required", "is required")
        request_content = self.data("requestContent", content.get("requestContent"))
        target = self.target(content.get("target"))
        if self.violations or activity_id is None:
            return None
        return MessageAction(
            index=self.index,
            activity_id=activity_id,
            target=target,
            request_content=request_content,
        )

    def unknown(
        self, content: Mapping[str, Any], allowed: frozenset[str], kind: str
    ) -> None:
        for name in content:
            if name not in allowed:
                self.bad(name, "unknown-field", f"unknown {kind} field {name!r}")

    def optional_id(self, name: str, value: Any) -> int | None:
        if value is None:
            return None
        if not _is_whole(value) or not 1 <= value <= MAX_ACTIVITY_ID:
            self.bad(name, "type", "must be a positive integer")
            return None
        return int(value)

    def data(self, name: str, value: Any) -> Mapping[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            self.bad(name, "type", "must be an object")
            return None
        problem = _nesting_problem(value, depth=1)
        if problem is not None:
            self.bad(name, *problem)
            return None
        return value

    def target(self, value: Any) -> str | None:
        """The identifying value of an existing profile, normalised."""
        if value is None:
            return None
        if not isinstance(value, dict) or set(value) != {self.identify_by}:
            self.bad(
                "target",
                "type",
                f"must be an object holding only {self.identify_by}",
            )
            return None
        given = value[self.identify_by]
        if not isinstance(given, str) or not given.strip():
            self.bad(f"target.{self.identify_by}", "type", "must be a non-empty string")
            return None
        normalised = self.scalar(
            self.identify_by, given, path=f"target.{self.identify_by}"
        )
        return normalised if isinstance(normalised, str) else None


def _is_whole(value: Any) -> bool:
    """An integer, or a number written with a fraction of zero: JSON (and
    JSON Schema's `integer`) does not tell 7 from 7.0."""
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


def _utc_moment(text: str) -> datetime | None:
    """An RFC 3339 time with an offset, in UTC; None if it is not one."""
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
        # A time near year 1 or 9999 can fall off the calendar once in UTC.
        return moment.astimezone(UTC) if moment.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None


def _valid_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _nesting_problem(value: Any, *, depth: int) -> tuple[str, str] | None:
    """(rule, message) when `value` nests too deep or holds a huge string."""
    if depth > MAX_NESTING:
        return "maxDepth", f"nests deeper than {MAX_NESTING} levels"
    if isinstance(value, str) and len(value) > MAX_DATA_STRING:
        return "maxLength", f"holds a string longer than {MAX_DATA_STRING} characters"
    if isinstance(value, float) and value != value:  # noqa: PLR0124 - NaN
        return "type", "holds a number that is not finite"
    items: Any = value.values() if isinstance(value, dict) else value
    if isinstance(value, dict | list):
        for item in items:
            problem = _nesting_problem(item, depth=depth + 1)
            if problem is not None:
                return problem
    return None
