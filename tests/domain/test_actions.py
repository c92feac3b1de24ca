"""Reading a submission's actions (CONTRACT 2.2 and 2.3): normalised values,
every broken rule named with its action's index, and nothing else raised."""

from __future__ import annotations

import dataclasses
import re
import string
from datetime import UTC, date, datetime
from typing import Any

import phonenumbers
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from domain.actions import (
    EVENT_KEYS,
    LIST_KEYS,
    MAX_ACTIONS,
    MESSAGE_KEYS,
    PROFILE_KEYS,
    ActionViolation,
    MalformedSubmission,
    ProfileAction,
    Reading,
    TooManyActions,
    read_actions,
)
from domain.profile import IDENTIFIERS, TEXT_FIELDS, IdentifierName
from domain.rules import CompiledRules

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
NO_RULES = CompiledRules({})
SOME_RULES = CompiledRules(
    {
        "firstname": {"maxLength": 20, "pattern": "^[A-Z]"},
        "custom.size": {"type": "integer", "minimum": 1, "maximum": 9},
        "custom.colour": {"enum": ["red", "green"]},
        "postcode": {"format": "date"},
    }
)
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
NUMBER_TYPES = (
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
)
#: Strings that have broken readers before: times at the calendar's edges,
#: non-ASCII digits, dates that do not exist.
AWKWARD_TEXT = (
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2026-02-30",
    "\u0662\u0660\u0662\u0664-\u0660\u0661-\u0660\u0661",
    "2024-W01-1",
    "+44 20 7946 0958",
    "ANN@EXAMPLE.COM",
    "",
    " ",
)


def read(
    body: Any,
    *,
    identify_by: IdentifierName = "email",
    region: str | None = None,
    rules: CompiledRules = NO_RULES,
) -> Reading:
    return read_actions(
        body, identify_by=identify_by, default_region=region, rules=rules, now=NOW
    )


def only_profile(reading: Reading) -> ProfileAction:
    assert reading.violations == []
    (action,) = reading.actions
    assert isinstance(action, ProfileAction)
    return action


# -- strategies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(AWKWARD_TEXT)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=16,
)


def contents(keys: frozenset[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects mostly made of the keys a kind knows, with some strangers."""
    names = st.sampled_from(sorted(keys)) | st.text(max_size=8)
    return st.dictionaries(names, json_values, max_size=6)


list_items = contents(LIST_KEYS) | json_values
profile_contents = st.one_of(
    contents(PROFILE_KEYS),
    st.fixed_dictionaries(
        {},
        optional={
            "email": st.text(max_size=20) | st.sampled_from(AWKWARD_TEXT),
            "phone": st.text(max_size=20) | st.sampled_from(AWKWARD_TEXT),
            "ref": st.text(max_size=10),
            "dob": st.text(max_size=12) | st.sampled_from(AWKWARD_TEXT),
            "custom": st.dictionaries(st.text(max_size=6), json_values, max_size=4),
            "unsubscribedTimestamp": json_scalars,
            "consent": contents(frozenset({"text", "given"})) | json_values,
            "lists": st.lists(list_items, max_size=3) | json_values,
        },
    ),
)
actions = st.one_of(
    profile_contents.map(lambda content: {"profile": content}),
    contents(EVENT_KEYS).map(lambda content: {"event": content}),
    contents(MESSAGE_KEYS).map(lambda content: {"message": content}),
    st.dictionaries(st.text(max_size=8), json_values, max_size=2),
)
bodies = st.one_of(json_values, actions, st.lists(actions, max_size=6))

letters_and_digits = string.ascii_letters + string.digits
emails = st.builds(
    lambda local, labels, top: f"{local}@{'.'.join(labels)}.{top}",
    st.text(letters_and_digits + "._%+-", min_size=1, max_size=20).filter(
        lambda local: not local.startswith(".")
    ),
    st.lists(
        st.text(letters_and_digits, min_size=1, max_size=10), min_size=1, max_size=4
    ),
    st.text(string.ascii_letters, min_size=2, max_size=6),
)


@st.composite
def mixed_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.swapcase() if f else c for c, f in zip(text, flips, strict=True))


@st.composite
def example_numbers(draw: st.DrawFn) -> tuple[str, phonenumbers.PhoneNumber]:
    region = draw(st.sampled_from(REGIONS))
    number = phonenumbers.example_number_for_type(
        region, draw(st.sampled_from(NUMBER_TYPES))
    )
    assume(number is not None)
    assert number is not None
    assume(phonenumbers.is_valid_number(number))
    return region, number


def e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# -- reading never fails except on the envelope


@settings(max_examples=200)
@given(body=bodies, identify_by=st.sampled_from(IDENTIFIERS))
@example(
    body={"profile": {"email": "a@b.co", "unsubscribedTimestamp": AWKWARD_TEXT[0]}},
    identify_by="email",
)
@example(
    body={"profile": {"email": "a@b.co", "lists": [{"listId": 1, "x": 1}, {"x": 2}]}},
    identify_by="email",
)
def test_reading_any_json_raises_nothing_but_malformed_or_too_many(
    body: Any, identify_by: IdentifierName
) -> None:
    try:
        reading = read(body, identify_by=identify_by, rules=SOME_RULES)
    except (MalformedSubmission, TooManyActions):
        return

    assert reading.actions == [] or reading.violations == []


def test_a_time_that_leaves_the_calendar_in_utc_is_a_violation() -> None:
    body = {
        "profile": {"email": "a@b.co", "unsubscribedTimestamp": AWKWARD_TEXT[1]},
    }

    reading = read(body)

    assert reading.violations == [
        ActionViolation(
            0,
            "unsubscribedTimestamp",
            "format",
            "must be true or an RFC 3339 time with an offset",
        )
    ]


def test_more_actions_than_the_limit_raise_too_many_actions() -> None:
    body = [{"event": {"type": "x"}}] * (MAX_ACTIONS + 1)

    with pytest.raises(TooManyActions):
        read(body)


@pytest.mark.parametrize(
    "body",
    [[], "text", 7, None, [{}], [{"profile": {}, "event": {}}], {"note": {}}],
)
def test_a_body_that_is_not_an_action_list_is_malformed(body: Any) -> None:
    with pytest.raises(MalformedSubmission):
        read(body)


# -- every violation names its action


@settings(max_examples=120)
@given(st.lists(actions, min_size=1, max_size=6))
def test_each_violation_names_the_action_that_broke_the_rule(
    body: list[Any],
) -> None:
    try:
        together = read(body, rules=SOME_RULES)
    except MalformedSubmission:
        return

    alone = [
        dataclasses.replace(violation, action=index)
        for index, action in enumerate(body)
        for violation in read([action], rules=SOME_RULES).violations
    ]
    assert together.violations == alone


def test_a_broken_third_action_is_reported_as_action_2() -> None:
    body = [
        {"profile": {"email": "ann@example.com"}},
        {"event": {"type": "signup"}},
        {"event": {"type": ""}},
    ]

    reading = read(body)

    assert [(v.action, v.field) for v in reading.violations] == [(2, "type")]


# -- unknown fields


unknown_names = st.text(min_size=1, max_size=12)


@given(st.lists(unknown_names, min_size=1, max_size=4, unique=True))
def test_every_unknown_profile_field_is_reported_by_name(names: list[str]) -> None:
    assume(not PROFILE_KEYS & set(names))
    content: dict[str, Any] = {"email": "ann@example.com"}
    content.update(dict.fromkeys(names, "x"))

    reading = read({"profile": content})

    reported = {v.field for v in reading.violations if v.rule == "unknown-field"}
    assert reported == set(names)


@given(st.lists(unknown_names, min_size=1, max_size=4, unique=True))
def test_every_unknown_event_field_is_reported_by_name(names: list[str]) -> None:
    assume(not EVENT_KEYS & set(names))
    content: dict[str, Any] = {"type": "signup"}
    content.update(dict.fromkeys(names, 1))

    reading = read({"event": content})

    reported = {v.field for v in reading.violations if v.rule == "unknown-field"}
    assert reported == set(names)


@given(st.lists(unknown_names, min_size=1, max_size=4, unique=True))
def test_every_unknown_message_field_is_reported_by_name(names: list[str]) -> None:
    assume(not MESSAGE_KEYS & set(names))
    content: dict[str, Any] = {"activityId": 5}
    content.update(dict.fromkeys(names, None))

    reading = read({"message": content})

    reported = {v.field for v in reading.violations if v.rule == "unknown-field"}
    assert reported == set(names)


@given(
    st.lists(unknown_names, min_size=1, max_size=3, unique=True),
    st.booleans(),
)
def test_every_unknown_list_field_is_named_with_or_without_a_list_id(
    names: list[str], with_list_id: bool
) -> None:
    assume(not LIST_KEYS & set(names))
    item: dict[str, Any] = dict.fromkeys(names, True)
    if with_list_id:
        item["listId"] = 7

    reading = read({"profile": {"email": "ann@example.com", "lists": [item]}})

    unknown = [v for v in reading.violations if v.rule == "unknown-field"]
    assert [v.field for v in unknown] == ["lists.0"]
    assert all(repr(name) in unknown[0].message for name in names)


@given(st.lists(unknown_names, min_size=1, max_size=3, unique=True))
def test_every_unknown_consent_field_is_reported_by_name(names: list[str]) -> None:
    assume(not {"text", "given"} & set(names))
    consent: dict[str, Any] = {"text": "Yes please", "given": True}
    consent.update(dict.fromkeys(names, "x"))

    reading = read({"profile": {"email": "ann@example.com", "consent": consent}})

    reported = {v.field for v in reading.violations if v.rule == "unknown-field"}
    assert reported == {f"consent.{name}" for name in names}


# -- emails


@given(emails)
def test_an_accepted_email_is_stored_in_lower_case(email: str) -> None:
    reading = read({"profile": {"email": email}})

    assert only_profile(reading).values["email"] == email.lower()


@given(st.data(), emails)
def test_emails_that_differ_only_in_case_read_as_the_same_value(
    data: st.DataObject, email: str
) -> None:
    variant = data.draw(mixed_case(email))

    first = only_profile(read({"profile": {"email": email}}))
    second = only_profile(read({"profile": {"email": f" {variant} "}}))

    assert first.values["email"] == second.values["email"]


@given(emails)
def test_a_message_target_email_is_read_in_lower_case(email: str) -> None:
    body = {"message": {"activityId": 3, "target": {"email": email.upper()}}}

    reading = read(body)

    assert reading.violations == []
    assert reading.actions[0].target == email.lower()  # type: ignore[union-attr]


def test_an_invalid_target_email_is_reported_at_the_target() -> None:
    body = {"event": {"type": "signup", "target": {"email": "not-an-email"}}}

    reading = read(body)

    assert [(v.field, v.rule) for v in reading.violations] == [
        ("target.email", "format")
    ]


# -- phones


@settings(max_examples=300)
@given(example_numbers())
def test_a_national_number_reads_as_e164_in_the_default_region(
    found: tuple[str, phonenumbers.PhoneNumber],
) -> None:
    region, number = found
    national = phonenumbers.format_number(
        number, phonenumbers.PhoneNumberFormat.NATIONAL
    )

    reading = read({"profile": {"phone": national}}, identify_by="phone", region=region)

    assert only_profile(reading).values["phone"] == e164(number)


@settings(max_examples=300)
@given(example_numbers(), st.sampled_from([None, "US", "GB", "AU", "DE"]))
def test_an_international_number_reads_as_e164_whatever_the_region(
    found: tuple[str, phonenumbers.PhoneNumber], region: str | None
) -> None:
    _, number = found
    international = phonenumbers.format_number(
        number, phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )

    reading = read(
        {"profile": {"phone": international}}, identify_by="phone", region=region
    )

    assert only_profile(reading).values["phone"] == e164(number)


@settings(max_examples=200)
@given(example_numbers())
def test_a_number_without_a_plus_is_refused_without_a_default_region(
    found: tuple[str, phonenumbers.PhoneNumber],
) -> None:
    _, number = found
    national = phonenumbers.format_number(
        number, phonenumbers.PhoneNumberFormat.NATIONAL
    )
    assume(not national.startswith("+"))

    reading = read({"profile": {"email": "a@b.co", "phone": national}})

    assert [(v.field, v.rule) for v in reading.violations] == [("phone", "format")]


# -- dates of birth


def is_real_date(text: str) -> bool:
    """The oracle: ASCII YYYY-MM-DD naming a day that exists."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


@settings(max_examples=300)
@given(
    st.text(max_size=12)
    | st.from_regex(r"\d{4}-\d{2}-\d{2}", fullmatch=True)
    | st.dates().map(date.isoformat)
    | st.sampled_from(AWKWARD_TEXT)
)
def test_a_date_of_birth_is_accepted_only_when_it_is_a_real_date(text: str) -> None:
    reading = read({"profile": {"email": "a@b.co", "dob": text}})

    accepted = reading.violations == []
    assert accepted == is_real_date(text.strip())


@given(st.dates())
def test_every_real_date_is_accepted_as_a_date_of_birth(day: date) -> None:
    reading = read({"profile": {"email": "a@b.co", "dob": day.isoformat()}})

    assert only_profile(reading).values["dob"] == day.isoformat()


# -- absent and null


@given(
    st.sampled_from([*TEXT_FIELDS, "dob", "ref", "phone"]),
)
def test_null_clears_a_profile_field(name: str) -> None:
    reading = read({"profile": {"email": "a@b.co", name: None}})

    values = only_profile(reading).values
    assert name in values
    assert values[name] is None


def test_null_clears_a_custom_field() -> None:
    reading = read({"profile": {"email": "a@b.co", "custom": {"colour": None}}})

    values = only_profile(reading).values
    assert values == {"email": "a@b.co", "custom.colour": None}


def test_absent_fields_are_not_in_the_values() -> None:
    reading = read({"profile": {"email": "a@b.co", "firstname": "Ann"}})

    assert dict(only_profile(reading).values) == {
        "email": "a@b.co",
        "firstname": "Ann",
    }


def test_a_null_global_unsubscribe_asks_to_reverse_it() -> None:
    reading = read({"profile": {"email": "a@b.co", "unsubscribedTimestamp": None}})

    action = only_profile(reading)
    assert action.clears_unsubscribe is True
    assert action.unsubscribe_at is None


def test_a_null_identifying_field_is_required_not_cleared() -> None:
    reading = read({"profile": {"email": None, "firstname": "Ann"}})

    assert [(v.field, v.rule) for v in reading.violations] == [("email", "required")]


# -- messages


def test_a_message_with_a_null_activity_id_is_a_violation() -> None:
    reading = read({"message": {"activityId": None}})

    assert [(v.action, v.field, v.rule) for v in reading.violations] == [
        (0, "activityId", "required")
    ]
