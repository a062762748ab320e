"""SLA clocks: deadlines decided once, at dispatch, from a versioned policy and holiday calendar."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import tzinfo

SlaClass = Literal["A", "B", "C"]


class SlaDuration(BaseModel):
    """A span on the SLA clock: hours of wall time, or working days on the holiday calendar."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Annotated[int, Field(gt=0, le=10_000)]
    unit: Literal["hours", "working_days"]


class SlaRule(BaseModel):
    """How long a case of one SLA class and urgency may take to sign and to resolve."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sla_class: SlaClass
    urgency: Literal["normal", "urgent"]
    sign_within: SlaDuration
    resolve_within: SlaDuration


class WorkingCalendar(BaseModel):
    """Public holidays and make-up working days (调休) on top of the Monday–Friday week."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = 0
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()

    def is_working_day(self, day: date) -> bool:
        """Whether government offices work on this local day."""
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5  # noqa: PLR2004 - Saturday is 5


def add_duration(start: datetime, duration: SlaDuration, calendar: WorkingCalendar, tz: tzinfo) -> datetime:
    """The moment a duration after ``start`` ends.

    Working days count whole local days after the start day that are working days;
    the deadline is the same local time on the last of them (so a case dispatched
    on Friday 15:00 with 1 working day is due Monday 15:00).
    """
    if duration.unit == "hours":
        return start + timedelta(hours=duration.amount)
    local = start.astimezone(tz)
    day = local.date()
    remaining = duration.amount
    while remaining:
        day += timedelta(days=1)
        if calendar.is_working_day(day):
            remaining -= 1
    return datetime.combine(day, local.timetz()).astimezone(start.tzinfo)


def rule_for(rules: Iterable[SlaRule], sla_class: str, urgency: str) -> SlaRule | None:
    """The rule that applies to a category's SLA class and a case's urgency."""
    return next((r for r in rules if r.sla_class == sla_class and r.urgency == urgency), None)


def default_policy_rules() -> tuple[SlaRule, ...]:
    """Version 1 of the district's SLA policy, loaded with the reference district."""

    def d(amount: int, unit: Literal["hours", "working_days"]) -> SlaDuration:
        return SlaDuration(amount=amount, unit=unit)

    return (
        SlaRule(sla_class="A", urgency="urgent", sign_within=d(1, "hours"), resolve_within=d(4, "hours")),
        SlaRule(sla_class="A", urgency="normal", sign_within=d(2, "hours"), resolve_within=d(24, "hours")),
        SlaRule(sla_class="B", urgency="urgent", sign_within=d(2, "hours"), resolve_within=d(24, "hours")),
        SlaRule(sla_class="B", urgency="normal", sign_within=d(1, "working_days"), resolve_within=d(5, "working_days")),
        SlaRule(sla_class="C", urgency="urgent", sign_within=d(4, "hours"), resolve_within=d(5, "working_days")),
        SlaRule(
            sla_class="C", urgency="normal", sign_within=d(1, "working_days"), resolve_within=d(15, "working_days")
        ),
    )
