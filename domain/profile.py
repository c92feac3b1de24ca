"""The subscriber profile's vocabulary: field names and their kinds."""

from __future__ import annotations

import re
from typing import Final, Literal

IdentifierName = Literal["ref", "email", "phone"]

IDENTIFIERS: Final[tuple[IdentifierName, ...]] = ("ref", "email", "phone")

#: Text fields of a profile besides the identifiers.
TEXT_FIELDS: Final[tuple[str, ...]] = (
    "title",
    "firstname",
    "lastname",
    "gender",
    "address",
    "address2",
    "address3",
    "suburb",
    "state",
    "country",
    "postcode",
    "notifications",
    "extra",
)

#: Every scalar profile field a validation rule may name (custom fields aside).
SCALAR_FIELDS: Final[tuple[str, ...]] = (*IDENTIFIERS, *TEXT_FIELDS, "dob")

CUSTOM_PREFIX: Final = "custom."
CUSTOM_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def is_custom_field(name: str) -> bool:
    """Whether `name` is written `custom.<name>` with a valid custom name."""
    # fullmatch: `$` alone would also accept a trailing newline.
    return name.startswith(CUSTOM_PREFIX) and bool(
        CUSTOM_NAME.fullmatch(name.removeprefix(CUSTOM_PREFIX))
    )
