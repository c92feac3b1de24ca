"""An integration's configuration: its defaults, and every problem reported at
once when a configuration that cannot work is saved."""

from __future__ import annotations

from typing import Any

import pytest

from domain.configuration import parse_configuration
from domain.errors import InvalidInput, Problem


def problems_of(raw: dict[str, Any], *, secret_set: bool = False) -> list[Problem]:
    """The problems `parse_configuration` reports for `raw`; it must refuse it."""
    with pytest.raises(InvalidInput) as refused:
        parse_configuration(raw, secret_set=secret_set)
    return refused.value.problems


def broken_rules(problems: list[Problem]) -> set[tuple[str, str]]:
    return {(problem.field, problem.rule) for problem in problems}


def test_a_configuration_with_only_a_name_takes_every_default() -> None:
    raw = {"name": "Shop"}

    configuration = parse_configuration(raw, secret_set=False)

    assert configuration.as_json() == {
        "name": "Shop",
        "identifyBy": "email",
        "allowProfileCreation": False,
        "allowProfileUpdates": False,
        "allowEventLogging": False,
        "allowMessages": False,
        "triggerActivityId": None,
        "allowMessagesToUnsubscribed": False,
        "requireRecaptcha": False,
        "recaptchaMinScore": 0.5,
        "fieldValidationRules": {},
        "importSourceName": None,
        "dedupePeriodSeconds": 0,
        "allowedOrigins": ["*"],
        "honeypotField": None,
        "detailedResponses": False,
        "defaultPhoneRegion": None,
        "successRedirectUrl": None,
        "errorRedirectUrl": None,
    }


def test_a_configuration_without_a_name_is_refused() -> None:
    raw: dict[str, Any] = {"allowProfileCreation": True}

    problems = problems_of(raw)

    assert broken_rules(problems) == {("name", "required")}


def test_requiring_recaptcha_without_a_secret_is_a_problem_of_the_secret() -> None:
    raw = {"name": "Shop", "requireRecaptcha": True}

    problems = problems_of(raw, secret_set=False)

    assert broken_rules(problems) == {("recaptchaSecret", "required")}
    assert "recaptchaSecret" in problems[0].message


def test_requiring_recaptcha_with_a_secret_set_is_accepted() -> None:
    raw = {"name": "Shop", "requireRecaptcha": True}

    configuration = parse_configuration(raw, secret_set=True)

    assert configuration.require_recaptcha is True


def test_allowing_messages_without_a_trigger_activity_is_a_problem() -> None:
    raw = {"name": "Shop", "allowMessages": True, "triggerActivityId": None}

    problems = problems_of(raw)

    assert broken_rules(problems) == {("triggerActivityId", "required")}
    assert "allowMessages" in problems[0].message


def test_allowing_messages_with_a_trigger_activity_is_accepted() -> None:
    raw = {"name": "Shop", "allowMessages": True, "triggerActivityId": 42}

    configuration = parse_configuration(raw, secret_set=False)

    assert configuration.trigger_activity_id == 42


def test_malformed_rules_are_problems_at_the_path_of_the_rule() -> None:
    raw = {"name": "Shop", "fieldValidationRules": {"postcode": {"pattern": "[0-9"}}}

    problems = problems_of(raw)

    assert broken_rules(problems) == {
        ("fieldValidationRules.postcode.pattern", "valid-regex")
    }


def test_an_unknown_field_is_a_problem_named_after_the_field() -> None:
    raw = {"name": "Shop", "favouriteColour": "blue"}

    problems = problems_of(raw)

    assert broken_rules(problems) == {("favouriteColour", "unknown-field")}
    assert "favouriteColour" in problems[0].message


def test_a_string_where_a_boolean_belongs_is_a_type_problem() -> None:
    raw = {"name": "Shop", "allowProfileCreation": "true"}

    problems = problems_of(raw)

    assert broken_rules(problems) == {("allowProfileCreation", "type")}


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("recaptchaMinScore", -0.1, "minimum"),
        ("recaptchaMinScore", 1.01, "maximum"),
        ("dedupePeriodSeconds", -1, "minimum"),
        ("dedupePeriodSeconds", 86401, "maximum"),
        ("triggerActivityId", 0, "minimum"),
    ],
)
def test_a_number_outside_its_range_is_a_problem(
    field: str, value: float, rule: str
) -> None:
    raw = {"name": "Shop", field: value}

    problems = problems_of(raw)

    assert broken_rules(problems) == {(field, rule)}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("recaptchaMinScore", 0.0),
        ("recaptchaMinScore", 1.0),
        ("dedupePeriodSeconds", 0),
        ("dedupePeriodSeconds", 86400),
    ],
)
def test_a_number_at_the_end_of_its_range_is_accepted(field: str, value: float) -> None:
    raw = {"name": "Shop", field: value}

    configuration = parse_configuration(raw, secret_set=False)

    assert configuration.as_json()[field] == value


@pytest.mark.parametrize(
    "origin",
    [
        "example.com",
        "ftp://example.com",
        "https://example.com/path",
        "https://example.com?query",
        "https://example.com#fragment",
        "https://user@example.com",
        "https://:password@example.com",
        "https://example.com:port",
        "https://example.com:",
        "https://example.com:99999",
        "null",
        "",
    ],
)
def test_a_value_that_is_not_an_origin_is_a_problem(origin: str) -> None:
    raw = {"name": "Shop", "allowedOrigins": ["https://shop.example", origin]}

    problems = problems_of(raw)

    assert broken_rules(problems) == {("allowedOrigins.1", "format")}


def test_an_empty_list_of_origins_is_a_problem() -> None:
    raw: dict[str, Any] = {"name": "Shop", "allowedOrigins": []}

    problems = problems_of(raw)

    assert broken_rules(problems) == {("allowedOrigins", "minItems")}


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("https://Shop.EXAMPLE", "https://shop.example"),
        ("https://shop.example/", "https://shop.example"),
        ("https://shop.example:443", "https://shop.example"),
        ("http://shop.example:80", "http://shop.example"),
        ("http://shop.example:8080", "http://shop.example:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("*", "*"),
    ],
)
def test_origins_are_normalised_to_what_a_browser_sends(
    written: str, normalised: str
) -> None:
    raw = {"name": "Shop", "allowedOrigins": [written]}

    configuration = parse_configuration(raw, secret_set=False)

    assert configuration.allowed_origins == (normalised,)


@pytest.mark.parametrize(
    "url",
    ["/thanks", "shop.example/thanks", "ftp://shop.example/x", "javascript:alert(1)"],
)
def test_a_redirect_url_that_is_not_absolute_http_is_a_problem(url: str) -> None:
    raw = {"name": "Shop", "successRedirectUrl": url, "errorRedirectUrl": url}

    problems = problems_of(raw)

    assert broken_rules(problems) == {
        ("successRedirectUrl", "format"),
        ("errorRedirectUrl", "format"),
    }


def test_an_absolute_https_redirect_url_is_accepted() -> None:
    raw = {"name": "Shop", "successRedirectUrl": "https://shop.example/thanks"}

    configuration = parse_configuration(raw, secret_set=False)

    assert configuration.success_redirect_url == "https://shop.example/thanks"


@pytest.mark.parametrize("region", ["XX", "GBR", "", "001"])
def test_an_unknown_phone_region_is_a_problem(region: str) -> None:
    raw = {"name": "Shop", "defaultPhoneRegion": region}

    problems = problems_of(raw)

    assert broken_rules(problems) == {("defaultPhoneRegion", "format")}


def test_a_phone_region_is_written_in_upper_case() -> None:
    raw = {"name": "Shop", "defaultPhoneRegion": "au"}

    configuration = parse_configuration(raw, secret_set=False)

    assert configuration.default_phone_region == "AU"


def test_every_problem_of_a_configuration_is_reported_at_once() -> None:
    raw = {
        "name": "Shop",
        "requireRecaptcha": True,
        "allowMessages": True,
        "fieldValidationRules": {"nickname": {"maxLength": 5}},
        "favouriteColour": "blue",
        "recaptchaMinScore": 2,
        "dedupePeriodSeconds": -5,
        "allowedOrigins": ["ftp://shop.example"],
        "successRedirectUrl": "/thanks",
        "defaultPhoneRegion": "XX",
    }

    problems = problems_of(raw, secret_set=False)

    assert broken_rules(problems) == {
        ("recaptchaSecret", "required"),
        ("triggerActivityId", "required"),
        ("fieldValidationRules.nickname", "unknown-field"),
        ("favouriteColour", "unknown-field"),
        ("recaptchaMinScore", "maximum"),
        ("dedupePeriodSeconds", "minimum"),
        ("allowedOrigins.0", "format"),
        ("successRedirectUrl", "format"),
        ("defaultPhoneRegion", "format"),
    }
    assert len(problems) == 9


def test_every_problem_carries_a_field_a_rule_and_a_message() -> None:
    raw = {
        "name": "",
        "requireRecaptcha": True,
        "identifyBy": "nickname",
        "fieldValidationRules": {"firstname": {"minLength": 5, "maxLength": 2}},
        "allowedOrigins": ["shop.example"],
    }

    problems = problems_of(raw)

    assert len(problems) == 5
    assert all(problem.field and problem.rule for problem in problems)
    assert all(len(problem.message) > 5 for problem in problems)
