"""Field validation rules: refused when saved if they cannot work, and applied
to every submitted profile once compiled."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from domain.errors import Problem
from domain.profile import SCALAR_FIELDS
from domain.rules import FORMATS, KEYWORDS, TYPES, CompiledRules, parse_rules

CONTRACT_EXAMPLE: dict[str, dict[str, Any]] = {
    "firstname": {"required": True, "maxLength": 50},
    "postcode": {"pattern": "^[0-9]{4}$"},
    "custom.favouriteColour": {"enum": ["red", "green", "blue"]},
}


def broken_rules(problems: list[Problem]) -> set[tuple[str, str]]:
    return {(problem.field, problem.rule) for problem in problems}


def violated(rule: dict[str, Any], value: Any, *, field: str = "custom.x") -> set[str]:
    """The rules that `value` breaks when `rule` applies to `field`."""
    compiled = CompiledRules({field: rule})
    return {violation.rule for violation in compiled.check({field: value})}


# -- checked when saved


def test_the_contract_example_has_no_problems() -> None:
    problems = parse_rules(CONTRACT_EXAMPLE)

    assert problems == []


@pytest.mark.parametrize(
    ("rules", "field", "rule"),
    [
        ({"nickname": {}}, "fieldValidationRules.nickname", "unknown-field"),
        ({"custom.1st": {}}, "fieldValidationRules.custom.1st", "unknown-field"),
        ({"custom.x\n": {}}, "fieldValidationRules.custom.x\n", "unknown-field"),
        (
            {"firstname": {"maxlength": 5}},
            "fieldValidationRules.firstname.maxlength",
            "unknown-keyword",
        ),
        (
            {"postcode": {"pattern": "[0-9"}},
            "fieldValidationRules.postcode.pattern",
            "valid-regex",
        ),
        (
            {"postcode": {"pattern": "a{4294967296}"}},
            "fieldValidationRules.postcode.pattern",
            "valid-regex",
        ),
        (
            {"postcode": {"pattern": "x" * 501}},
            "fieldValidationRules.postcode.pattern",
            "maxLength",
        ),
        (
            {"firstname": {"minLength": 5, "maxLength": 2}},
            "fieldValidationRules.firstname.minLength",
            "range",
        ),
        (
            {"custom.age": {"minimum": 10, "maximum": 1}},
            "fieldValidationRules.custom.age.minimum",
            "range",
        ),
        (
            {"firstname": {"minLength": -1}},
            "fieldValidationRules.firstname.minLength",
            "type",
        ),
        (
            {"firstname": {"maxLength": True}},
            "fieldValidationRules.firstname.maxLength",
            "type",
        ),
        (
            {"custom.age": {"minimum": "1"}},
            "fieldValidationRules.custom.age.minimum",
            "type",
        ),
        (
            {"firstname": {"required": "yes"}},
            "fieldValidationRules.firstname.required",
            "type",
        ),
        (
            {"custom.age": {"type": "float"}},
            "fieldValidationRules.custom.age.type",
            "enum",
        ),
        (
            {"firstname": {"type": "integer"}},
            "fieldValidationRules.firstname.type",
            "applies-to",
        ),
        (
            {"custom.age": {"type": "integer", "maxLength": 3}},
            "fieldValidationRules.custom.age.maxLength",
            "applies-to",
        ),
        (
            {"custom.vip": {"type": "boolean", "pattern": "^t"}},
            "fieldValidationRules.custom.vip.pattern",
            "applies-to",
        ),
        (
            {"custom.code": {"type": "string", "maximum": 9}},
            "fieldValidationRules.custom.code.maximum",
            "applies-to",
        ),
        (
            {"firstname": {"minimum": 1}},
            "fieldValidationRules.firstname.minimum",
            "applies-to",
        ),
        ({"gender": {"enum": []}}, "fieldValidationRules.gender.enum", "type"),
        ({"gender": {"enum": "f"}}, "fieldValidationRules.gender.enum", "type"),
        ({"gender": {"enum": [["f"]]}}, "fieldValidationRules.gender.enum", "type"),
        (
            {"gender": {"enum": list(range(501))}},
            "fieldValidationRules.gender.enum",
            "type",
        ),
        ({"email": {"format": "phone"}}, "fieldValidationRules.email.format", "enum"),
        ({"firstname": "required"}, "fieldValidationRules.firstname", "type"),
        (["firstname"], "fieldValidationRules", "type"),
    ],
)
def test_a_rule_that_cannot_work_is_refused_at_its_path(
    rules: Any, field: str, rule: str
) -> None:
    problems = parse_rules(rules)

    assert broken_rules(problems) == {(field, rule)}


def test_every_problem_of_a_rule_set_is_listed() -> None:
    rules = {
        "nickname": {"required": True},
        "firstname": {"maxlength": 5, "pattern": "("},
        "custom.age": {"type": "integer", "minimum": 5, "maximum": 1},
    }

    problems = parse_rules(rules)

    assert broken_rules(problems) == {
        ("fieldValidationRules.nickname", "unknown-field"),
        ("fieldValidationRules.firstname.maxlength", "unknown-keyword"),
        ("fieldValidationRules.firstname.pattern", "valid-regex"),
        ("fieldValidationRules.custom.age.minimum", "range"),
    }


def test_rules_with_problems_cannot_be_compiled() -> None:
    rules = {"postcode": {"pattern": "[0-9"}}

    with pytest.raises(ValueError, match="cannot compile"):
        CompiledRules(rules)


# -- applied to submitted values


def test_a_missing_required_field_is_a_violation() -> None:
    compiled = CompiledRules(CONTRACT_EXAMPLE)

    violations = compiled.check({"postcode": "2000"})

    assert [(v.field, v.rule) for v in violations] == [("firstname", "required")]


def test_a_null_required_field_is_a_violation() -> None:
    compiled = CompiledRules(CONTRACT_EXAMPLE)

    violations = compiled.check({"firstname": None})

    assert [(v.field, v.rule) for v in violations] == [("firstname", "required")]


def test_a_partial_check_lets_a_required_field_be_missing() -> None:
    compiled = CompiledRules(CONTRACT_EXAMPLE)

    violations = compiled.check({"postcode": "2000"}, partial=True)

    assert violations == []
    assert compiled.required_fields == ("firstname",)


def test_an_absent_optional_field_is_not_checked() -> None:
    compiled = CompiledRules(CONTRACT_EXAMPLE)

    violations = compiled.check({"firstname": "Ada"})

    assert violations == []


def test_a_violation_names_its_field_its_rule_and_the_limit() -> None:
    compiled = CompiledRules({"firstname": {"maxLength": 3}})

    violations = compiled.check({"firstname": "Adelaide"})

    assert len(violations) == 1
    assert violations[0].field == "firstname"
    assert violations[0].rule == "maxLength"
    assert "3" in violations[0].message


@pytest.mark.parametrize(
    ("declared", "value", "accepted"),
    [
        ("string", "7", True),
        ("string", 7, False),
        ("integer", 7, True),
        ("integer", 7.0, True),
        ("integer", 7.5, False),
        pytest.param("integer", 10**400, True, id="integer-huge-True"),
        ("integer", "7", False),
        ("integer", True, False),
        ("number", 7.5, True),
        ("number", 7, True),
        ("number", False, False),
        ("boolean", True, True),
        ("boolean", 1, False),
        ("boolean", "true", False),
    ],
)
def test_a_value_must_be_of_the_declared_type(
    declared: str, value: Any, accepted: bool
) -> None:
    broken = violated({"type": declared}, value)

    assert (broken == set()) is accepted
    assert broken <= {"type"}


@pytest.mark.parametrize(
    ("value", "broken"),
    [
        ("ab", {"minLength"}),
        ("abc", set()),
        ("abcde", set()),
        ("abcdef", {"maxLength"}),
    ],
)
def test_a_string_must_have_a_length_within_the_limits(
    value: str, broken: set[str]
) -> None:
    rule = {"minLength": 3, "maxLength": 5}

    assert violated(rule, value) == broken


def test_a_length_counts_characters_not_bytes() -> None:
    rule = {"maxLength": 3}

    assert violated(rule, "äöü") == set()


def test_a_pattern_may_match_anywhere_in_the_value() -> None:
    rule = {"pattern": "[0-9]{4}"}

    assert violated(rule, "NSW 2000 Australia") == set()
    assert violated(rule, "NSW 200") == {"pattern"}


def test_an_anchored_pattern_must_match_the_whole_value() -> None:
    rule = {"pattern": "^[0-9]{4}$"}

    assert violated(rule, "2000") == set()
    assert violated(rule, "20000") == {"pattern"}


def test_a_value_must_be_one_of_the_enumerated_values() -> None:
    rule = {"enum": ["red", "green", "blue"]}

    assert violated(rule, "green") == set()
    assert violated(rule, "purple") == {"enum"}


def test_true_is_not_the_enumerated_number_one() -> None:
    rule = {"enum": [1, 2]}

    assert violated(rule, 1) == set()
    assert violated(rule, True) == {"enum"}


def test_the_number_one_is_not_the_enumerated_true() -> None:
    rule = {"enum": [True]}

    assert violated(rule, True) == set()
    assert violated(rule, 1) == {"enum"}


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("email", "ada@example.com", True),
        ("email", "ada.lovelace+news@mail.example.co.uk", True),
        ("email", "ada@example", False),
        ("email", "ada example.com", False),
        ("email", "@example.com", False),
        ("email", "ada@example.com\n", False),
        ("email", "a" * 65 + "@example.com", False),
        ("date", "2026-02-28", True),
        ("date", "2024-02-29", True),
        ("date", "2026-02-29", False),
        ("date", "2026-13-01", False),
        ("date", "20260228", False),
        ("date", "2026-W09-6", False),
        ("date", "28/02/2026", False),
        ("date-time", "2026-12-03T12:00:00Z", True),
        ("date-time", "2026-12-03t12:00:00.25z", True),
        ("date-time", "2026-12-03T12:00:00+10:30", True),
        ("date-time", "2026-12-03T12:00:00", False),
        ("date-time", "2026-12-03T12:00Z", False),
        ("date-time", "2026-12-03T12:00:00+10", False),
        ("date-time", "2026-12-03 12:00:00Z", False),
        ("date-time", "2026-12-03T25:00:00Z", False),
        ("date-time", "2026-12-03", False),
        ("uri", "https://shop.example/a?b=c#d", True),
        ("uri", "mailto:ada@example.com", True),
        ("uri", "urn:isbn:0451450523", True),
        ("uri", "shop.example/page", False),
        ("uri", "/relative/path", False),
        ("uri", "https://", False),
        ("uri", "https://shop.example/a b", False),
    ],
)
def test_a_value_must_have_the_declared_format(
    name: str, value: str, accepted: bool
) -> None:
    broken = violated({"format": name}, value)

    assert (broken == set()) is accepted


@pytest.mark.parametrize(
    ("value", "broken"),
    [(0.5, {"minimum"}), (1, set()), (10, set()), (10.01, {"maximum"})],
)
def test_a_number_must_lie_within_the_minimum_and_maximum(
    value: float, broken: set[str]
) -> None:
    rule = {"minimum": 1, "maximum": 10}

    assert violated(rule, value) == broken


def test_string_rules_leave_a_number_to_the_type_rule() -> None:
    rule = {"maxLength": 1, "pattern": "^x$", "format": "email"}

    assert violated(rule, 12345) == set()


# -- properties


@given(limit=st.integers(min_value=0, max_value=30), value=st.text(max_size=40))
def test_a_max_length_rule_accepts_exactly_the_strings_up_to_that_length(
    limit: int, value: str
) -> None:
    accepted = violated({"maxLength": limit}, value, field="firstname") == set()

    assert accepted == (len(value) <= limit)


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)
FIELD_NAMES = st.one_of(
    st.sampled_from([*SCALAR_FIELDS, "custom.age", "custom.vip", "custom.1x"]),
    st.text(max_size=12),
)
#: Regular expressions that break the engine in different ways; random text
#: supplies the ones that compile.
BROKEN_PATTERNS = st.sampled_from(
    ["(", "[", "\\", "x{2,1}", "a{4294967296}", "(?P<a>x)(?P=b)"]
)
KEYWORD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "required": st.one_of(st.booleans(), JSON_VALUES),
    "type": st.one_of(st.sampled_from(TYPES), JSON_VALUES),
    "minLength": st.one_of(st.integers(min_value=0, max_value=20), JSON_VALUES),
    "maxLength": st.one_of(st.integers(min_value=0, max_value=20), JSON_VALUES),
    "pattern": st.one_of(BROKEN_PATTERNS, st.text(max_size=12), JSON_VALUES),
    "enum": st.one_of(st.lists(JSON_SCALARS, min_size=1, max_size=4), JSON_VALUES),
    "format": st.one_of(st.sampled_from(FORMATS), JSON_VALUES),
    "minimum": st.one_of(st.integers(-50, 50), st.floats(-50, 50), JSON_VALUES),
    "maximum": st.one_of(st.integers(-50, 50), st.floats(-50, 50), JSON_VALUES),
}


@st.composite
def rules_like(draw: st.DrawFn) -> dict[str, Any]:
    """A rule object: known keywords with likely values, and the odd stray."""
    keywords = draw(st.lists(st.sampled_from(KEYWORDS), unique=True, max_size=4))
    rule = {keyword: draw(KEYWORD_VALUES[keyword]) for keyword in keywords}
    rule.update(draw(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=1)))
    return rule


RULE_SETS = st.dictionaries(
    FIELD_NAMES, st.one_of(rules_like(), JSON_VALUES), max_size=3
)


@settings(max_examples=300)
@given(field=st.sampled_from(SCALAR_FIELDS), rule=rules_like())
def test_parse_rules_answers_any_rule_of_a_known_field_with_problems_only(
    field: str, rule: dict[str, Any]
) -> None:
    problems = parse_rules({field: rule})

    assert isinstance(problems, list)
    assert all(isinstance(problem, Problem) for problem in problems)
    assert all(p.field.startswith(f"fieldValidationRules.{field}") for p in problems)


@given(raw=st.one_of(RULE_SETS, JSON_VALUES))
def test_parse_rules_answers_any_json_with_problems_only(raw: Any) -> None:
    problems = parse_rules(raw)

    assert isinstance(problems, list)
    assert all(isinstance(problem, Problem) for problem in problems)
    assert all(p.field.startswith("fieldValidationRules") for p in problems)


VALID_LOOKING_RULES = st.fixed_dictionaries(
    {},
    optional={
        "required": st.booleans(),
        "type": st.sampled_from(TYPES),
        "minLength": st.integers(min_value=0, max_value=20),
        "maxLength": st.integers(min_value=0, max_value=20),
        "pattern": st.sampled_from(["^[0-9]{4}$", "[a-z]+", "x|y", "^$"]),
        "enum": st.lists(JSON_SCALARS.filter(lambda v: v is not None), min_size=1),
        "format": st.sampled_from(FORMATS),
        "minimum": st.integers(-50, 50),
        "maximum": st.integers(-50, 50),
    },
)


@given(
    rules=st.dictionaries(
        st.sampled_from([*SCALAR_FIELDS, "custom.age", "custom.vip"]),
        VALID_LOOKING_RULES,
        max_size=3,
    ),
    values=st.dictionaries(
        st.sampled_from([*SCALAR_FIELDS, "custom.age", "custom.vip"]),
        st.one_of(JSON_SCALARS, st.integers(), st.floats()),
    ),
)
def test_rules_that_parse_without_problems_compile_and_check_any_values(
    rules: dict[str, dict[str, Any]], values: dict[str, Any]
) -> None:
    assume(parse_rules(rules) == [])

    violations = CompiledRules(rules).check(values)

    assert all(violation.field in rules for violation in violations)
