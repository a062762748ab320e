"""The bounded types every command and event field is built from (issue 13; the figures are in domain.bounds).

A :class:`Bound` is checked whenever a value is validated: a command from any entry point (CLI, ``apply``,
HTTP, the simulator), an event an aggregate decides. It is *not* checked when a stored event is read back
(``DomainEvent.model_validate`` passes the ``stored`` context): an event written before a bound existed (a
10 MB description, a patrol of 10^20 metres) must still load, replay and project. The JSON Schemas show a
bound as a constraint where a value is taken in (validation mode: the commands, the API's request bodies)
and as a description where a value is given out (serialization mode: the published events), since events
already published may break it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError, core_schema

from domain import bounds as b

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue

#: The validation context key that marks a stored event being read back: bounds are not checked.
STORED = "stored"

#: No control character (line breaks and tabs neither): JSON Schema's form of domain.bounds.text_problem.
ONE_LINE_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"
#: No control character but line breaks and tabs.
MULTILINE_PATTERN = r"^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f]*$"
#: A year of the window at the start of a date or a date-time.
WINDOW_YEAR_PATTERN = r"^(19[7-9][0-9]|20[0-9][0-9])-"
_WINDOW = f"{b.EARLIEST.year}-01-01 … {b.LATEST.year - 1}-12-31"

_ISO_MOMENT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}")
_ISO_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def reading_stored(info: core_schema.ValidationInfo) -> bool:
    """Whether this validation reads back a stored event (its bounds were those of its day)."""
    context = info.context
    return isinstance(context, dict) and context.get(STORED) is True


@dataclass(frozen=True)
class Bound:
    """A bound on a value, checked on everything taken in and never on a stored event read back.

    ``max_length`` counts a text's characters, ``max_items`` a list's items; ``ge``/``le`` bound a number;
    ``line`` (no control character) and ``multiline`` (line breaks and tabs allowed) check a text with
    domain.bounds.text_problem; ``moment`` and ``day`` keep a date-time or a date inside the window.
    """

    max_length: int | None = None
    max_items: int | None = None
    ge: int | float | None = None
    le: int | float | None = None
    line: bool = False
    multiline: bool = False
    moment: bool = False
    day: bool = False

    def problem(self, value: Any) -> str | None:  # noqa: PLR0911 - one test per kind of bound
        """What breaks the bound, or None."""
        if isinstance(value, str):
            if self.max_length is not None and len(value) > self.max_length:
                return f"is {len(value):,} characters long; at most {self.max_length:,}"
            if self.line or self.multiline:
                return b.text_problem(value, multiline=self.multiline)
        items = self.max_items
        if isinstance(value, tuple | list | frozenset | set) and items is not None and len(value) > items:
            return f"has {len(value):,} items; at most {items:,}"
        if isinstance(value, int | float) and not isinstance(value, bool):
            if self.ge is not None and value < self.ge:
                return f"is {value}; at least {self.ge:,}"
            if self.le is not None and value > self.le:
                return f"is {value:,}; at most {self.le:,}"
        if self.moment and isinstance(value, datetime):
            return b.moment_problem(value)
        if self.day and isinstance(value, date) and not isinstance(value, datetime):
            return b.day_problem(value)
        return None

    def _check(self, value: Any, info: core_schema.ValidationInfo) -> Any:
        if reading_stored(info):
            return value
        problem = self.problem(value)
        if problem is not None:
            raise PydanticCustomError("out_of_bounds", problem)
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        """The source type's own schema, then this bound."""
        return core_schema.with_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Constraints where values are taken in; a description where (possibly older) values are given out."""
        json_schema = handler(schema)
        target = handler.resolve_ref_schema(json_schema)
        if handler.mode == "validation":
            target.update(self.keywords())
        else:
            words = f"New input is bounded (docs/input-bounds.md): {self.words()}; events stored earlier may not be."
            target["description"] = f"{target['description']} {words}" if "description" in target else words
        return json_schema

    def keywords(self) -> dict[str, Any]:
        """The bound as JSON Schema keywords."""
        found: dict[str, Any] = {}
        if self.max_length is not None:
            found["maxLength"] = self.max_length
        if self.max_items is not None:
            found["maxItems"] = self.max_items
        if self.ge is not None:
            found["minimum"] = self.ge
        if self.le is not None:
            found["maximum"] = self.le
        if self.line:
            found["pattern"] = ONE_LINE_PATTERN
        elif self.multiline:
            found["pattern"] = MULTILINE_PATTERN
        if self.moment or self.day:
            found["pattern"] = WINDOW_YEAR_PATTERN
            found["description"] = (
                f"ISO 8601 {'date and time with a UTC offset' if self.moment else 'date'}, {_WINDOW}; "
                "a Unix number is refused."
            )
        return found

    def words(self) -> str:
        """The bound in words, for the published events' schemas."""
        parts = []
        if self.max_length is not None:
            parts.append(f"at most {self.max_length} characters")
        if self.max_items is not None:
            parts.append(f"at most {self.max_items} items")
        if self.ge is not None:
            parts.append(f"at least {self.ge}")
        if self.le is not None:
            parts.append(f"at most {self.le}")
        if self.line:
            parts.append("one line without control characters")
        elif self.multiline:
            parts.append("no control characters but line breaks and tabs")
        if self.moment or self.day:
            parts.append(f"within {_WINDOW}")
        return ", ".join(parts)


def _iso_moment(value: Any, info: core_schema.ValidationInfo) -> Any:
    """A moment is a datetime or an ISO 8601 text: never a Unix number (nor a text of one)."""
    if reading_stored(info) or isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_MOMENT.match(value):
        return value
    raise PydanticCustomError(
        "iso_datetime", "give an ISO 8601 date and time with a UTC offset, e.g. 2021-06-01T09:00:00+08:00"
    )


def _iso_day(value: Any, info: core_schema.ValidationInfo) -> Any:
    """A day is a date or an ISO 8601 ``YYYY-MM-DD``: never a Unix number, nor a date-time."""
    if reading_stored(info) or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, str) and _ISO_DAY.match(value):
        return value
    raise PydanticCustomError("iso_date", "give an ISO 8601 date, e.g. 2021-06-01")


def as_utc(moment: datetime) -> datetime:
    """Normalise an aware datetime to UTC for comparisons and storage."""
    return moment.astimezone(UTC)


#: A moment a command gives (``at``, ``resolve_by``): ISO 8601 with an offset, inside the window.
Moment = Annotated[AwareDatetime, BeforeValidator(_iso_moment), Bound(moment=True)]
#: A moment an event carries, stored in UTC so every copy of an event reads the same.
UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_moment), AfterValidator(as_utc), Bound(moment=True)]
#: A registry day (an assignment's start or end, a holiday): ISO 8601, inside the window.
Day = Annotated[date, BeforeValidator(_iso_day), Bound(day=True)]

#: A code (grid, unit, category, worker, actor, case number as events keep it): one line.
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=b.CODE_MAX), Bound(line=True)]
#: The name of a unit, a worker, a category: one line.
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=b.NAME_MAX), Bound(line=True)]
#: What is wrong (a case's description): free text, line breaks allowed.
Description = Annotated[str, Bound(max_length=b.DESCRIPTION_MAX, multiline=True)]
#: Why (a refusal, a return, an escalation…): free text.
Reason = Annotated[str, Bound(max_length=b.REASON_MAX, multiline=True)]
#: A note, a result: free text.
LongText = Annotated[str, Bound(max_length=b.TEXT_MAX, multiline=True)]
#: A checkpoint's notes (kept at 4,000 characters since the start), free text.
Notes = Annotated[str, StringConstraints(strip_whitespace=True, max_length=b.TEXT_MAX), Bound(multiline=True)]
#: One evidence reference (a photo id, a URL): one line.
EvidenceItem = Annotated[str, Bound(max_length=b.EVIDENCE_ITEM_MAX, line=True)]
Evidence = Annotated[tuple[EvidenceItem, ...], Bound(max_items=b.EVIDENCE_ITEMS_MAX)]
#: An address (one line; the read model column is VARCHAR(500)).
Address = Annotated[str, StringConstraints(max_length=b.ADDRESS_MAX), Bound(line=True)]
ReporterName = Annotated[str, StringConstraints(max_length=b.REPORTER_NAME_MAX), Bound(line=True)]
Phone = Annotated[str, StringConstraints(max_length=b.PHONE_MAX), Bound(line=True)]
IdNumber = Annotated[str, StringConstraints(max_length=b.ID_NUMBER_MAX), Bound(line=True)]
#: Residents, households, elderly of a unit.
Count = Annotated[int, Field(ge=0, le=b.COUNT_MAX)]
#: A policy or calendar version.
Version = Annotated[int, Field(ge=1), Bound(le=b.VERSION_MAX)]
#: How far a patrol went, in metres.
Distance = Annotated[int, Field(ge=0), Bound(le=b.DISTANCE_M_MAX)]
#: How long a patrol lasted, in seconds.
PatrolSeconds = Annotated[int, Field(ge=0), Bound(le=b.PATROL_SECONDS_MAX)]
#: How many checkpoints a patrol logged.
Checkpoints = Annotated[int, Field(ge=0), Bound(le=b.CHECKPOINTS_MAX)]
#: How long a case was parked, in seconds.
SuspendedSeconds = Annotated[int, Bound(ge=0, le=b.SUSPENDED_SECONDS_MAX)]
#: The holidays or the make-up working days of one calendar version.
CalendarDays = Annotated[tuple[Day, ...], Bound(max_items=b.CALENDAR_DAYS_MAX)]
