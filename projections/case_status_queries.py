"""Queries of the case-status read model: one case, queues, the overdue list, the citizen's timeline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select

from projections.case_status import case_status, case_timeline, is_overdue

if TYPE_CHECKING:
    from sqlalchemy import Connection, Select


def status_of(connection: Connection, number: str) -> dict[str, Any] | None:
    """The status row of a case, with its overdue flag."""
    row = connection.execute(select(case_status).where(case_status.c.case_number == number)).first()
    return None if row is None else _status(row)


def queue(
    connection: Connection, unit: str | None, state: str | None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Cases of an org unit (grid, community, street or handling department) in a state; overdue judged at ``now``."""
    query = _of_unit(select(case_status).order_by(case_status.c.reported_at, case_status.c.case_number), unit)
    if state:
        query = query.where(case_status.c.state == state)
    moment = None if now is None else now.astimezone(UTC).replace(tzinfo=None)
    return [_status(row, moment) for row in connection.execute(query)]


def overdue(connection: Connection, unit: str | None, now: datetime | None = None) -> list[dict[str, Any]]:
    """Open cases past their resolve-by on the SLA clock (parked time removed)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    late = select(case_status).where(case_status.c.resolve_by < moment)
    query = _of_unit(late.order_by(case_status.c.resolve_by, case_status.c.case_number), unit)
    return [_status(row, moment) for row in connection.execute(query) if is_overdue(row, moment)]


def timeline(connection: Connection, number: str) -> dict[str, Any] | None:
    """The public view of a case by any of its numbers: no personal data, merges followed."""
    asked = number
    seen = set()
    while True:
        row = connection.execute(select(case_status).where(case_status.c.case_number == number)).first()
        if row is None:
            return None
        if row.merged_into is None or row.merged_into in seen:
            break
        seen.add(number)
        number = row.merged_into
    events = connection.execute(
        select(case_timeline).where(case_timeline.c.case_number == number).order_by(case_timeline.c.version)
    ).mappings()
    return {
        "case_number": number,
        "asked_for": asked,
        "state": row.state,
        "level": row.level,
        "reported_at": iso(row.reported_at),
        "timeline": [
            {"event": e["event"], "state": e["state"], "occurred_at": iso(e["occurred_at"]), "note": e["note"]}
            for e in events
        ],
    }


def _status(row: Any, now: datetime | None = None) -> dict[str, Any]:
    moment = now or datetime.now(UTC).replace(tzinfo=None)
    status = {key: iso(value) if isinstance(value, datetime) else value for key, value in row._mapping.items()}  # noqa: SLF001
    del status["description"]  # the public's masked copy, for Open311; staff read the stored one in the history
    status["overdue"] = is_overdue(row, moment)
    return status


def _of_unit(query: Select[Any], unit: str | None) -> Select[Any]:
    """Cases of a grid, community, street or handling department (all cases when no unit is given)."""
    if not unit:
        return query
    columns = (case_status.c.grid, case_status.c.community, case_status.c.street, case_status.c.handler_id)
    return query.where(or_(*(column == unit for column in columns)))


def iso(moment: datetime | None) -> str | None:
    """Stored naive UTC as ISO 8601 with Z."""
    return None if moment is None else moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
