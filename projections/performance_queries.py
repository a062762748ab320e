"""The figures of DESIGN.md, computed from the daily counts for any period.

A rate is shown as its numerator, its denominator and the rate; an empty
denominator gives no rate (None), never zero.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from projections.performance import local_days, performance_communities, performance_counts, performance_grids

if TYPE_CHECKING:
    from sqlalchemy import Connection

#: figure → (numerator metric, denominator metric or a tuple (total, minus)).
RATES: dict[str, tuple[str, str | tuple[str, str]]] = {
    "valid_report_rate": ("report_valid", "report_judged"),
    "sign_on_time_rate": ("signed_on_time", "signed"),
    "on_time_resolution_rate": ("resolved_on_time", "resolved"),
    "rework_rate": ("rework", "verified"),
    "satisfaction_rate": ("feedback_satisfied", "feedback"),
    "community_closure_share": ("closed_in_community", "closed"),
    "escalation_rate": ("escalated", "accepted"),
    "response_rate": ("signed_on_time", "dispatched"),
    "resolution_rate": ("feedback_resolved", "feedback"),
    "closure_rate": ("due_closed", ("due", "due_suspended")),
    "on_time_closure_rate": ("due_closed_on_time", ("due", "due_suspended")),
    "urgent_closure_rate": ("urgent_due_closed", ("urgent_due", "urgent_due_suspended")),
    "urgent_on_time_closure_rate": ("urgent_due_closed_on_time", ("urgent_due", "urgent_due_suspended")),
}
#: figure → (total metric, count metric, divisor to hours).
MEANS = {"mean_hours_to_sign": ("sign_seconds", "signed"), "mean_hours_to_resolve": ("resolve_seconds", "resolved")}
COUNTS = (
    "patrols", "households_visited", "elderly_visits", "places_inspected", "reported", "accepted", "rejected",
    "dispatched", "handled", "signed", "resolved", "closed", "escalated", "bounces", "reopened", "feedback",
    "due", "due_suspended", "due_closed",
)  # fmt: skip
#: Which figures each kind of subject shows.
FIGURES = {
    "worker": ("patrols", "patrol_hours", "households_visited", "elderly_visits", "reported", "valid_report_rate",
               "handled", "sign_on_time_rate", "on_time_resolution_rate", "rework_rate", "satisfaction_rate",
               "mean_hours_to_sign", "mean_hours_to_resolve"),
    "department": ("dispatched", "handled", "bounces", "sign_on_time_rate", "on_time_resolution_rate", "rework_rate",
                   "satisfaction_rate", "mean_hours_to_sign", "mean_hours_to_resolve", "due", "due_suspended",
                   "due_closed", "closure_rate", "on_time_closure_rate", "urgent_closure_rate",
                   "urgent_on_time_closure_rate"),
    "area": ("residents", "reported", "cases_per_1000_residents", "accepted", "rejected", "closed", "escalated",
             "bounces", "reopened", "patrols", "households_visited", "elderly_visits", "community_closure_share",
             "escalation_rate", "response_rate", "resolution_rate", "satisfaction_rate", "due", "due_suspended",
             "due_closed", "closure_rate", "on_time_closure_rate", "urgent_closure_rate",
             "urgent_on_time_closure_rate"),
}  # fmt: skip


def rate(numerator: float, denominator: float) -> dict[str, Any]:
    """A rate as a fraction: no rate when nothing was counted."""
    return {
        "numerator": _number(numerator),
        "denominator": _number(denominator),
        "rate": round(numerator / denominator, 4) if denominator else None,
    }


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 2)


#: Where a kind of subject is found in the counts: areas are sums of their grids.
_AREA_COLUMN = {"community": "community", "street": "street"}


def metric_sums(
    connection: Connection, kind: str, period: str, subject: str | None = None
) -> dict[str, dict[str, float]]:
    """Sums of each metric over the period's local days, per subject."""
    first, last = local_days(period)
    counts = performance_counts.c
    if kind in {"worker", "department", "grid"}:
        group = counts.subject
        query = select(group, counts.metric, func.sum(counts.value)).where(counts.kind == kind)
    elif kind == "district":
        group = None
        query = select(counts.metric, func.sum(counts.value)).where(counts.kind == "grid")
    else:
        group = counts[_AREA_COLUMN[kind]]
        query = select(group, counts.metric, func.sum(counts.value)).where(counts.kind == "grid")
    query = query.where(counts.day.between(first, last))
    if subject is not None and group is not None:
        query = query.where(group == subject)
    query = query.group_by(*([group] if group is not None else []), counts.metric)
    sums: dict[str, dict[str, float]] = {}
    for row in connection.execute(query):
        name, metric, total = ("all", *row) if group is None else row
        sums.setdefault(name, {})[metric] = float(total)
    return sums


def residents(connection: Connection, kind: str) -> dict[str, int]:
    """Residents per grid, community, street or the district (latest counts)."""
    streets: dict[str, str] = {row.community: row.street for row in connection.execute(select(performance_communities))}
    grids = connection.execute(
        select(performance_grids.c.grid, performance_grids.c.community, performance_grids.c.population)
    ).all()
    totals: dict[str, int] = {}
    for grid, community, population in grids:
        subject = {"grid": grid, "community": community, "street": streets.get(community), "district": "all"}.get(kind)
        if subject is not None:
            totals[subject] = totals.get(subject, 0) + int(population)
    return totals


def figures_of(kind: str, sums: dict[str, float], population: int | None) -> dict[str, Any]:
    """Turn summed metrics into the figures a kind of subject shows."""
    get = sums.get
    shown: dict[str, Any] = {}
    for figure in FIGURES["area" if kind in {"grid", "community", "street", "district"} else kind]:
        if figure in RATES:
            top, bottom = RATES[figure]
            denominator = get(bottom, 0.0) if isinstance(bottom, str) else get(bottom[0], 0.0) - get(bottom[1], 0.0)
            shown[figure] = rate(get(top, 0.0), denominator)
        elif figure in MEANS:
            total, count = MEANS[figure]
            shown[figure] = round(get(total, 0.0) / get(count, 0.0) / 3600, 2) if get(count) else None
        elif figure == "patrol_hours":
            shown[figure] = round(get("patrol_seconds", 0.0) / 3600, 2)
        elif figure == "residents":
            shown[figure] = population
        elif figure == "cases_per_1000_residents":
            shown[figure] = round(get("reported", 0.0) / population * 1000, 3) if population else None
        else:
            shown[figure] = _number(get(figure, 0.0))
    return shown


def performance(connection: Connection, kind: str, period: str, subject: str | None = None) -> list[dict[str, Any]]:
    """The figures of one subject, or of every subject of a kind, for a period (2021, 2021-06, 2021-06-01)."""
    sums = metric_sums(connection, kind, period, subject)
    people = residents(connection, kind)
    names = [subject] if subject is not None else sorted(sums)
    return [
        {"kind": kind, "subject": name, "period": period, **figures_of(kind, sums.get(name, {}), people.get(name))}
        for name in names
    ]
