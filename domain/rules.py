"""Field validation rules: a small JSON Schema subset an integration applies
to every profile submitted to it.

Rules are checked when a configuration is saved (`parse_rules`), so a broken
pattern or an unknown keyword never reaches a submission. A saved rule set is
compiled once into `CompiledRules`, which checks profile values quickly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from domain.errors import Problem
from domain.profile import SCALAR_FIELDS, is_custom_field

TYPES: Final = ("string", "number", "integer", "boolean")
FORMATS: Final = ("email", "date", "date-time", "uri")
KEYWORDS: Final = (
    "required",
    "type",
    "minLength",
    "maxLength",
    "pattern",
    "enum",
    "format",
    "minimum",
    "maximum",
)
STRING_KEYWORDS: Final = ("minLength", "maxLength", "pattern", "format")
NUMBER_KEYWORDS: Final = ("minimum", "maximum")
MAX_PATTERN_LENGTH: Final = 500
MAX_ENUM_VALUES: Final = 500

EMAIL: Final = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
FULL_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DATE_TIME: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
#: RFC 3986 unreserved, reserved and percent characters: no space, no non-ASCII.
URI_CHARACTERS: Final = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")


def is_email(value: str) -> bool:
    """Syntax check only: no DNS lookup is ever made."""
    if len(value) > 254 or "@" not in value:
        return False
    local = value.rsplit("@", 1)[0]
    # fullmatch: `$` alone would also accept a trailing newline.
    return len(local) <= 64 and bool(EMAIL.fullmatch(value))


def is_date(value: str) -> bool:
    """RFC 3339 full-date, `YYYY-MM-DD`, and a day that exists."""
    # The pattern first: `date.fromisoformat` also takes week dates (2024-W01-1).
    if not FULL_DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def is_date_time(value: str) -> bool:
    """RFC 3339: a date, a time with seconds, and an offset or `Z`."""
    # The pattern first: `datetime.fromisoformat` also takes a time without
    # seconds, an offset without minutes and week dates.
    if not DATE_TIME.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.upper())
    except ValueError:
        return False
    return True


def is_uri(value: str) -> bool:
    """An absolute URI: a scheme and something after it, in URI characters."""
    if not URI_CHARACTERS.fullmatch(value):
        return False
    parts = urlsplit(value)
    return bool(parts.scheme) and bool(parts.netloc or parts.path)


FORMAT_CHECKS: Final[dict[str, Callable[[str], bool]]] = {
    "email": is_email,
    "date": is_date,
    "date-time": is_date_time,
    "uri": is_uri,
}


@dataclass(frozen=True)
class Violation:
    """A submitted value that breaks a rule."""

    field: str
    rule: str
    message: str


def parse_rules(raw: object, *, path: str = "fieldValidationRules") -> list[Problem]:
    """Every problem with a rule set; an empty list means it can be compiled."""
    if not isinstance(raw, Mapping):
        return [Problem(path, "type", "must be an object of field name to rule")]
    problems: list[Problem] = []
    for field, rule in raw.items():
        field_path = f"{path}.{field}"
        if not isinstance(field, str) or not (
            field in SCALAR_FIELDS or is_custom_field(field)
        ):
            problems.append(
                Problem(
                    field_path,
                    "unknown-field",
                    f"unknown profile field {field!r}; use one of "
                    f"{', '.join(SCALAR_FIELDS)} or custom.<name>",
                )
            )
            continue
        if not isinstance(rule, Mapping):
            problems.append(Problem(field_path, "type", "a rule must be an object"))
            continue
        problems.extend(_rule_problems(field, rule, field_path))
    return problems


def _rule_problems(  # noqa: PLR0912
    field: str, rule: Mapping[str, Any], path: str
) -> list[Problem]:
    problems: list[Problem] = []

    def bad(keyword: str, rule_name: str, message: str) -> None:
        problems.append(Problem(f"{path}.{keyword}", rule_name, message))

    for keyword in rule:
        if keyword not in KEYWORDS:
            bad(
                keyword,
                "unknown-keyword",
                f"unknown keyword {keyword!r}; use one of {', '.join(KEYWORDS)}",
            )

    if "required" in rule and not isinstance(rule["required"], bool):
        bad("required", "type", "must be true or false")

    declared = rule.get("type")
    if "type" in rule:
        if declared not in TYPES:
            bad("type", "enum", f"{declared!r} is not one of {', '.join(TYPES)}")
        elif not is_custom_field(field) and declared != "string":
            bad("type", "applies-to", f"{field} is a text field; its type is string")

    for keyword in ("minLength", "maxLength"):
        value = rule.get(keyword)
        if keyword in rule and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            bad(keyword, "type", "must be a non-negative integer")
    low, high = rule.get("minLength"), rule.get("maxLength")
    if _in_wrong_order(low, high):
        bad("minLength", "range", f"minLength {low} is greater than maxLength {high}")

    for keyword in NUMBER_KEYWORDS:
        if keyword in rule and not _is_number(rule[keyword]):
            bad(keyword, "type", "must be a number")
    low, high = rule.get("minimum"), rule.get("maximum")
    if _in_wrong_order(low, high):
        bad("minimum", "range", f"minimum {low} is greater than maximum {high}")

    if "pattern" in rule:
        pattern = rule["pattern"]
        if not isinstance(pattern, str):
            bad("pattern", "type", "must be a regular expression string")
        elif len(pattern) > MAX_PATTERN_LENGTH:
            bad("pattern", "maxLength", f"longer than {MAX_PATTERN_LENGTH} characters")
        else:
            try:
                re.compile(pattern)
            # A repetition count beyond the engine's limit is an OverflowError.
            except (re.error, OverflowError) as error:
                bad("pattern", "valid-regex", f"invalid regular expression: {error}")

    if "enum" in rule:
        values = rule["enum"]
        if (
            not isinstance(values, list)
            or not values
            or len(values) > MAX_ENUM_VALUES
            or not all(_is_scalar(v) for v in values)
        ):
            bad(
                "enum",
                "type",
                f"must list 1 to {MAX_ENUM_VALUES} strings, numbers or booleans",
            )

    if "format" in rule and rule["format"] not in FORMATS:
        bad("format", "enum", f"{rule['format']!r} is not one of {', '.join(FORMATS)}")

    if declared in ("number", "integer", "boolean"):
        for keyword in STRING_KEYWORDS:
            if keyword in rule:
                bad(
                    keyword,
                    "applies-to",
                    f"{keyword} applies to strings, not {declared}",
                )
    if declared in ("string", "boolean") or not is_custom_field(field):
        for keyword in NUMBER_KEYWORDS:
            if keyword in rule:
                bad(keyword, "applies-to", f"{keyword} applies to numbers only")
    return problems


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _in_wrong_order(low: object, high: object) -> bool:
    numbers = (int, float)
    return isinstance(low, numbers) and isinstance(high, numbers) and low > high


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


Check = Callable[[Any], Violation | None]


class CompiledRules:
    """A saved rule set, ready to check submitted profile values."""

    def __init__(self, rules: Mapping[str, Mapping[str, Any]]) -> None:
        problems = parse_rules(rules)
        if problems:
            msg = f"cannot compile rules with problems: {problems[0].message}"
            raise ValueError(msg)
        self._required = tuple(f for f, r in rules.items() if r.get("required"))
        self._checks = {
            field: tuple(_compile_rule(field, rule)) for field, rule in rules.items()
        }

    @property
    def required_fields(self) -> tuple[str, ...]:
        return self._required

    def check(
        self, values: Mapping[str, Any], *, partial: bool = False
    ) -> list[Violation]:
        """Every violation in `values` (field name to value; absent is missing).

        With `partial`, a missing required field is not a violation.
        """
        violations: list[Violation] = []
        if not partial:
            for field in self._required:
                if values.get(field) is None:
                    violations.append(Violation(field, "required", "is required"))
        for field, checks in self._checks.items():
            value = values.get(field)
            if value is None:
                continue
            for check in checks:
                violation = check(value)
                if violation is not None:
                    violations.append(violation)
        return violations


def _compile_rule(field: str, rule: Mapping[str, Any]) -> list[Check]:
    checks: list[Check] = []
    declared = rule.get("type")

    if declared is not None:

        def check_type(value: Any) -> Violation | None:
            if _matches_type(value, declared):
                return None
            return Violation(field, "type", f"must be of type {declared}")

        checks.append(check_type)

    if "minLength" in rule:
        low = int(rule["minLength"])
        checks.append(
            _string_check(
                field,
                "minLength",
                lambda s: len(s) >= low,
                f"must be at least {low} characters",
            )
        )
    if "maxLength" in rule:
        high = int(rule["maxLength"])
        checks.append(
            _string_check(
                field,
                "maxLength",
                lambda s: len(s) <= high,
                f"must be at most {high} characters",
            )
        )
    if "pattern" in rule:
        pattern = re.compile(rule["pattern"])
        checks.append(
            _string_check(
                field,
                "pattern",
                lambda s: pattern.search(s) is not None,
                f"must match the pattern {rule['pattern']}",
            )
        )
    if "format" in rule:
        name = rule["format"]
        checks.append(
            _string_check(
                field, "format", FORMAT_CHECKS[name], f"must be a valid {name}"
            )
        )
    if "enum" in rule:
        allowed = list(rule["enum"])
        shown = ", ".join(str(v) for v in allowed[:10])

        def check_enum(value: Any) -> Violation | None:
            if any(_same_scalar(value, a) for a in allowed):
                return None
            return Violation(field, "enum", f"must be one of: {shown}")

        checks.append(check_enum)
    if "minimum" in rule:
        minimum = rule["minimum"]
        checks.append(
            _number_check(
                field, "minimum", lambda n: n >= minimum, f"must be at least {minimum}"
            )
        )
    if "maximum" in rule:
        maximum = rule["maximum"]
        checks.append(
            _number_check(
                field, "maximum", lambda n: n <= maximum, f"must be at most {maximum}"
            )
        )
    return checks


def _string_check(
    field: str, rule: str, test: Callable[[str], bool], message: str
) -> Check:
    def check(value: Any) -> Violation | None:
        if not isinstance(value, str) or test(value):
            return None
        return Violation(field, rule, message)

    return check


def _number_check(
    field: str, rule: str, test: Callable[[float], bool], message: str
) -> Check:
    def check(value: Any) -> Violation | None:
        if not _is_number(value) or test(value):
            return None
        return Violation(field, rule, message)

    return check


def _matches_type(value: Any, declared: str) -> bool:
    if declared == "string":
        return isinstance(value, str)
    if declared == "boolean":
        return isinstance(value, bool)
    if declared == "integer":
        # No float(value) for ints: a huge JSON integer would overflow.
        if isinstance(value, float):
            return value.is_integer()
        return _is_number(value)
    return _is_number(value)


def _same_scalar(value: Any, allowed: Any) -> bool:
    # True == 1 in Python; a rule author listing 1 does not mean `true`.
    if isinstance(value, bool) or isinstance(allowed, bool):
        return (
            isinstance(value, bool) and isinstance(allowed, bool) and value is allowed
        )
    return bool(value == allowed)
