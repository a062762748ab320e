"""Human-readable numbers for cases and patrols: ``SN-20211231-000123``.

A number is the prefix, the local day of the report and a six-digit sequence
within that day. The aggregate id is derived from the number, so the store's
uniqueness of (id, version 1) is what makes a number impossible to reuse.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import date

NUMBER_PATTERN = re.compile(r"^(?P<prefix>[A-Z]{2,6})-(?P<day>\d{8})-(?P<seq>\d{6})$")
MAX_SEQUENCE = 999_999


def format_number(prefix: str, day: date, sequence: int) -> str:
    """Compose a number from its parts."""
    return f"{prefix}-{day:%Y%m%d}-{sequence:06d}"


def is_number(text: str) -> bool:
    """Whether a string has the shape of a case or patrol number."""
    return NUMBER_PATTERN.match(text) is not None
