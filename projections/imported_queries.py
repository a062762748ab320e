"""The figures an analyst checks against a city's own, from the imported requests (docs/import.md, "The report").

Per import (reference prefix), overall and per category, agency, district and month of opening: requests,
closed, open; median and p90 hours to close over the closed ones (all of them, and without those the import
flagged closed before opened); the share of those with the export's own deadline that were closed by it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from statistics import median
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from projections.imported import imported_names, imported_requests
from projections.performance_queries import rate

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy import Connection

GROUPINGS = ("category", "agency", "district", "month")
_COLUMN = {"category": "category", "agency": "agency", "district": "street", "month": "opened_month"}


def p90(values: list[float]) -> float:
    """The 90th percentile by nearest rank (the same definition as the intake figures)."""
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def _hours(values: list[float], figure: Any) -> float | None:
    return round(figure(values), 2) if values else None


def figures(rows: Iterable[Any]) -> dict[str, Any]:
    """The figures of a set of imported requests."""
    requests = closed = with_deadline = by_deadline = 0
    hours: list[float] = []
    valid: list[float] = []
    for row in rows:
        requests += 1
        if row.has_deadline:
            with_deadline += 1
        if row.closed_at is None:
            continue
        closed += 1
        taken = (row.closed_at - row.opened_at).total_seconds() / 3600
        hours.append(taken)
        if "closed_before_opened" not in row.flags.split(","):
            valid.append(taken)
        if row.has_deadline and row.deadline is not None and row.closed_at <= row.deadline:
            by_deadline += 1
    return {
        "requests": requests,
        "closed": closed,
        "open": requests - closed,
        "median_hours_to_close": _hours(hours, median),
        "p90_hours_to_close": _hours(hours, p90),
        "median_hours_to_close_without_closed_before_opened": _hours(valid, median),
        "p90_hours_to_close_without_closed_before_opened": _hours(valid, p90),
        "closed_by_deadline": rate(by_deadline, with_deadline),
    }


def import_report(connection: Connection, ref_prefix: str = "") -> dict[str, Any]:
    """The report of the imports whose references start with ``ref_prefix`` (all imports when empty)."""
    t = imported_requests.c
    query = select(imported_requests)
    if ref_prefix:
        query = query.where(t.ref.like(f"{_like(ref_prefix)}%", escape="\\"))
    rows = connection.execute(query).all()
    names: dict[str, str] = {
        str(code): str(name) for code, name in connection.execute(select(imported_names.c.code, imported_names.c.name))
    }
    report: dict[str, Any] = {"ref_prefix": ref_prefix, "all": figures(rows)}
    for grouping in GROUPINGS:
        groups: defaultdict[str, list[Any]] = defaultdict(list)
        for row in rows:
            groups[getattr(row, _COLUMN[grouping]) or ""].append(row)
        closures: defaultdict[str, int] = defaultdict(int)
        if grouping == "month":
            for row in rows:
                if row.closed_month is not None:
                    closures[row.closed_month] += 1
        listed = []
        for key in sorted(set(groups) | set(closures)):
            entry: dict[str, Any] = {grouping: key if grouping == "month" else names.get(key, key)}
            if grouping != "month":
                entry["code"] = key
            entry.update(figures(groups.get(key, [])))
            if grouping == "month":
                entry["closures"] = closures.get(key, 0)  # closing events of the month, whenever opened
            listed.append(entry)
        report[f"by_{grouping}"] = sorted(listed, key=lambda entry: (entry[grouping], entry.get("code", "")))
    return report


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def case_number_of_ref(connection: Connection, ref: str) -> str | None:
    """The case imported under an external reference, or None.

    The full reference (``SF311-3600298``), or the export's bare id (``3600298``) when exactly one imported case
    has it after a prefix.
    """
    t = imported_requests.c
    found = connection.execute(select(t.case_number).where(t.ref == ref).order_by(t.opened_at, t.case_number)).scalar()
    if found is not None:
        return str(found)
    matches = connection.execute(select(t.case_number, t.ref).where(t.ref.like(f"%{_like(ref)}", escape="\\"))).all()
    # A prefix ends where the id starts: "SF311-" then "3600298", not "SF311-13600298".
    candidates = [number for number, full in matches if not full[: -len(ref)][-1:].isalnum()]
    return str(candidates[0]) if len(candidates) == 1 else None


def imported_refs(connection: Connection, source: str) -> set[str]:
    """Every reference an import under this profile filed (how a re-run knows what is already in)."""
    t = imported_requests.c
    return {str(ref) for (ref,) in connection.execute(select(t.ref).where(t.source == source))}
