"""Questions the intake desk asks: figures per channel, category or street; possible duplicates; number lookup.

Plain functions over a SQLAlchemy connection to the read models of
:mod:`projections.intake` and :mod:`projections.case_status`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, timedelta
from statistics import fmean
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import func, select

from domain.bounds import period_days
from projections.case_status import case_status
from projections.intake import intake_acceptances, intake_counts

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import Connection

Grouping = Literal["channel", "category", "street"]
GROUPINGS: tuple[Grouping, ...] = ("channel", "category", "street")
COUNTED = ("received", "accepted", "rejected", "merged")
#: States in which a case can still be the one a new report duplicates.
DUPLICATE_STATES = ("reported", "accepted", "dispatched", "in_progress", "suspended")
DUPLICATE_WINDOW = timedelta(hours=48)
DUPLICATE_RADIUS_M = 300.0
EARTH_RADIUS_M = 6_371_008.8

def p90(values: list[float]) -> float:
    """The 90th percentile by nearest rank: the smallest value at least 90% of the values do not exceed."""
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def intake_figures(connection: Connection, by: Grouping, period: str) -> list[dict[str, Any]]:
    """Received, accepted, rejected, merged and report→acceptance minutes (mean, p90) per group over a period.

    A figure counts on the local day its deciding event occurred; the acceptance
    times are those of the cases accepted in the period. Mean and p90 are None
    when the group has no acceptances (an empty denominator is no value, not zero).
    Rows are ordered by the group's value.
    """
    if by not in GROUPINGS:
        msg = f"by must be one of {', '.join(GROUPINGS)}, not {by!r}"
        raise ValueError(msg)
    first, after = period_days(period)
    group = intake_counts.c[by]
    totals: dict[str, dict[str, Any]] = {}
    counted = connection.execute(
        select(group, intake_counts.c.metric, func.sum(intake_counts.c.value))
        .where(intake_counts.c.day >= first, intake_counts.c.day < after)
        .group_by(group, intake_counts.c.metric)
    )
    for value, metric, amount in counted:
        row = totals.setdefault(value, {by: value, **dict.fromkeys(COUNTED, 0)})
        row[metric] = int(amount)
    waits: defaultdict[str, list[float]] = defaultdict(list)
    timed = connection.execute(
        select(intake_acceptances.c[by], intake_acceptances.c.seconds).where(
            intake_acceptances.c.day >= first, intake_acceptances.c.day < after
        )
    )
    for value, seconds in timed:
        waits[value].append(float(seconds))
    figures = []
    for value in sorted(totals):
        minutes = [seconds / 60 for seconds in waits.get(value, [])]
        figures.append(
            {
                **totals[value],
                # fmean sums exactly, so the mean does not depend on the order the database returns rows in.
                "mean_minutes_to_accept": fmean(minutes) if minutes else None,
                "p90_minutes_to_accept": p90(minutes) if minutes else None,
            }
        )
    return figures


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two points given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi = phi2 - phi1
    d_lambda = math.radians(lon2 - lon1)
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _aware(moment: datetime) -> datetime:
    """Read models store naive UTC; callers get aware UTC."""
    return moment.replace(tzinfo=UTC)


def possible_duplicates(connection: Connection, case_number: str) -> list[dict[str, Any]]:
    """Open cases that may report the same thing: same category and grid, within 48 hours and 300 m.

    The distance is checked only where both cases have coordinates; otherwise the
    candidate is kept with ``distance_m`` None. Nearest first, then by report
    time. An unknown case number has no duplicates.
    """
    case = connection.execute(select(case_status).where(case_status.c.case_number == case_number)).first()
    if case is None:
        return []
    candidates = connection.execute(
        select(
            case_status.c.case_number,
            case_status.c.state,
            case_status.c.reported_at,
            case_status.c.lat,
            case_status.c.lon,
        ).where(
            case_status.c.category == case.category,
            case_status.c.grid == case.grid,
            case_status.c.state.in_(DUPLICATE_STATES),
            case_status.c.case_number != case_number,
            case_status.c.reported_at >= case.reported_at - DUPLICATE_WINDOW,
            case_status.c.reported_at <= case.reported_at + DUPLICATE_WINDOW,
        )
    )
    found = []
    for other in candidates:
        distance = None
        if None not in (case.lat, case.lon, other.lat, other.lon):
            distance = haversine_m(case.lat, case.lon, other.lat, other.lon)
            if distance > DUPLICATE_RADIUS_M:
                continue
        found.append(
            {
                "case_number": other.case_number,
                "state": other.state,
                "reported_at": _aware(other.reported_at),
                "distance_m": distance,
            }
        )
    found.sort(key=lambda row: (row["distance_m"] is None, row["distance_m"] or 0.0, row["reported_at"]))
    return found


def lookup(connection: Connection, case_number: str) -> dict[str, Any] | None:
    """What a citizen's number stands for now: the master case it was merged into (following chains), or itself.

    Public: number, state, level and report time only, no personal data. None for an unknown number.
    """
    columns = (case_status.c.case_number, case_status.c.state, case_status.c.level,
               case_status.c.reported_at, case_status.c.merged_into)  # fmt: skip
    row = connection.execute(select(*columns).where(case_status.c.case_number == case_number)).first()
    if row is None:
        return None
    seen = {case_number}
    while row.merged_into is not None and row.merged_into not in seen:
        seen.add(row.merged_into)
        master = connection.execute(select(*columns).where(case_status.c.case_number == row.merged_into)).first()
        if master is None:  # the read model has not caught up with the master yet: say what is known
            break
        row = master
    return {
        "case_number": row.case_number,
        "state": row.state,
        "level": row.level,
        "reported_at": _aware(row.reported_at),
        "asked_for": case_number,
    }
