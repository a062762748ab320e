"""The bounds every value a client sends must keep, in one place (issue 13).

The command and event models, the queries' periods and moments, the CLI, ``apply``
and the HTTP API all check against these, so they agree, and the committed schemas
show them. Pure: no I/O, no pydantic; the models build their types on it.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta

#: The window every moment must fall in: a governance centre's records start well after 1970 and
#: the engine will be replaced before 2100. Outside it, date arithmetic overflows (years 1 and 9999)
#: and no figure means anything.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

#: A period names a year, a month or a day: "2021", "2021-06", "2021-06-01".
_PERIOD = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
PERIOD_SHAPES = "YYYY, YYYY-MM or YYYY-MM-DD"

#: Characters a free text may carry although they are "control": line breaks and tabs.
_ALLOWED_CONTROLS = frozenset("\n\t")
#: Every control character (Unicode category Cc) and every surrogate: where text_problem must look closer.
_SUSPECT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

# -- how long a text or a list may be, how large a number (docs/input-bounds.md says why each) --------------

#: Codes of grids, units, categories, workers, actors; a read model column is VARCHAR(64).
CODE_MAX = 64
#: Names of units, workers, categories.
NAME_MAX = 200
#: A place's address; the read model column is VARCHAR(500).
ADDRESS_MAX = 500
#: The reporter's name, phone number and identity-card number (personal data).
REPORTER_NAME_MAX = 100
PHONE_MAX = 40
ID_NUMBER_MAX = 40
#: What is wrong: Open311 takes 4,000 characters and adds a line with the media URL (up to 500).
DESCRIPTION_MAX = 5000
#: A progress note, a resolution's result, a checkpoint's notes.
TEXT_MAX = 4000
#: Why a case is rejected, returned, escalated, suspended, extended, reworked or reopened.
REASON_MAX = 2000
#: Evidence of a resolution: references (photo ids, URLs), each one line.
EVIDENCE_ITEMS_MAX = 20
EVIDENCE_ITEM_MAX = 500
#: A patrol on foot or by bicycle covers a few kilometres; 200 km is far beyond any day's walk.
DISTANCE_M_MAX = 200_000
#: A patrol left open this long is a mistake; the duration stays far inside a 32-bit column.
PATROL_SECONDS_MAX = 366 * 24 * 3600
#: Household visits and places on one patrol: a worker's grid holds a few hundred households.
CHECKPOINTS_MAX = 2000
#: Residents, households, elderly of one unit (already kept; fits a 32-bit INTEGER column).
COUNT_MAX = 10_000_000
#: Versions of the SLA policy and of the holiday calendar (each follows the last one).
VERSION_MAX = 1_000_000
#: Holidays or make-up working days of one calendar version (about 15 a year over the whole window).
CALENDAR_DAYS_MAX = 2000
#: An SLA policy has one rule per class (A, B, C) and urgency (normal, urgent).
SLA_RULES_MAX = 6
#: An org unit's boundary (GeoJSON): points over all its rings, rings of one polygon, polygons of a multipolygon.
#: A grid's outline has tens of points and a street's a few hundred; 10,000 (about 250 KB of JSON) stays far
#: inside one Kafka message and leaves room for a surveyed outline.
BOUNDARY_POINTS_MAX = 10_000
BOUNDARY_RINGS_MAX = 100
BOUNDARY_POLYGONS_MAX = 100
#: Seconds a case can have been parked: no more than the window holds (a 64-bit column in every read model).
SUSPENDED_SECONDS_MAX = int((LATEST - EARLIEST).total_seconds())


def day_problem(day: date) -> str | None:
    """What is wrong with a day (a registry date), or None: it must fall in the window."""
    if not EARLIEST.date() <= day < LATEST.date():
        return f"is outside {EARLIEST.year}-01-01 … {LATEST.year - 1}-12-31"
    return None


def moment_problem(moment: datetime) -> str | None:
    """What is wrong with a moment, or None: it must carry an offset and fall in the window."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return "has no UTC offset"
    if not EARLIEST <= moment < LATEST:
        return f"is outside {EARLIEST.year}-01-01 … {LATEST.year - 1}-12-31"
    return None


def period_days(period: str) -> tuple[date, date]:
    """The local days a period covers, as [first, after last); ValueError naming what is wrong."""
    match = _PERIOD.match(period)
    if match is None:
        msg = f"period {period!r} is not {PERIOD_SHAPES}"
        raise ValueError(msg)
    year, month, day = (int(part) if part is not None else None for part in match.groups())
    assert year is not None  # the pattern always captures a year
    if not EARLIEST.year <= year < LATEST.year:
        msg = f"period {period!r} is outside {EARLIEST.year} … {LATEST.year - 1}"
        raise ValueError(msg)
    try:
        first = date(year, 1 if month is None else month, 1 if day is None else day)
    except ValueError:
        msg = f"period {period!r} is not a real {'month' if day is None else 'day'}"
        raise ValueError(msg) from None
    if month is None:
        return first, date(year + 1, 1, 1)
    if day is not None:
        return first, first + timedelta(days=1)
    return first, date(year + month // 12, month % 12 + 1, 1)


def text_problem(text: str, *, multiline: bool = True) -> str | None:
    """What makes a text unfit to store and show, or None.

    A lone surrogate cannot be encoded as UTF-8 (the store, JSON and XML all refuse it);
    a control character breaks XML listings and terminals. Line breaks and tabs are
    allowed in multi-line free texts only.
    """
    if _SUSPECT.search(text) is None:  # the common case, without a step per character
        return None
    for index, character in enumerate(text):
        if "\ud800" <= character <= "\udfff":
            return f"has a lone surrogate (U+{ord(character):04X}) at character {index + 1}"
        if unicodedata.category(character) == "Cc" and not (multiline and character in _ALLOWED_CONTROLS):
            return f"has a control character (U+{ord(character):04X}) at character {index + 1}"
    return None
