"""Human-readable numbers for cases and patrols: ``SN-20211231-000123``.

A number is the prefix, the local day of the report and a six-digit sequence
within that day. The aggregate id is derived from the number, so the store's
uniqueness of (id, version 1) is what makes a number impossible to reuse.
"""

from __future__ import annotations

import re
from datetime import date

from domain.bounds import day_problem

NUMBER_PATTERN = re.compile(r"^(?P<prefix>[A-Z]{2,6})-(?P<day>[0-9]{8})-(?P<seq>[0-9]{6})$")
NUMBER_SHAPE = "PREFIX-YYYYMMDD-NNNNNN"
MAX_SEQUENCE = 999_999


def format_number(prefix: str, day: date, sequence: int) -> str:
    """Compose a number from its parts."""
    return f"{prefix}-{day:%Y%m%d}-{sequence:06d}"


def is_number(text: str) -> bool:
    """Whether a string has the shape of a case or patrol number."""
    return NUMBER_PATTERN.match(text) is not None


def old_number_problem(text: str, prefix: str) -> str | None:
    """What is wrong with a number an older system gave a case, to keep it (a migration), or None.

    It must be one this engine could have issued: the district's prefix, a real day inside the window,
    a sequence from 000001.
    """
    match = NUMBER_PATTERN.match(text)
    if match is None:
        return f"{text!r} is not {NUMBER_SHAPE}"
    if match["prefix"] != prefix:
        return f"{text!r} does not carry the district's prefix {prefix}"
    digits = match["day"]
    try:
        day = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return f"{text!r}: {digits} is not a real day"
    problem = day_problem(day)
    if problem is not None:
        return f"{text!r}: its day {problem}"
    if int(match["seq"]) == 0:
        return f"{text!r}: sequences start at 000001"
    return None
