"""Wiring of the read side: the projections over the configured database, and the queries the CLI shows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select

from projections.case_status import CaseStatus, case_status, case_timeline, is_overdue
from projections.intake import Intake
from projections.performance import Performance
from projections.runner import LeaseHeld, Runner
from projections.sql import make_engine

if TYPE_CHECKING:
    from eventsourcing.persistence import Notification
    from sqlalchemy import Engine, Select

    from adapters.service import Gridcase
    from adapters.settings import Settings


class ReadSide:
    """The three read models on the store's own database, kept by one runner."""

    def __init__(self, settings: Settings, service: Gridcase, *, batch_size: int = 25_000) -> None:
        self.settings = settings
        self.service = service
        self.engine: Engine = make_engine(settings.read_url)
        recorder = service.store.recorder
        self.runner = Runner(
            self.engine,
            lambda after, limit: recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False),
            [CaseStatus(), Performance(settings.tz), Intake(settings.tz)],
            batch_size=batch_size,
        )
        self.runner.create_tables()

    def catch_up(self) -> None:
        """Bring the read models up to date before a query, unless another runner is keeping them.

        With ``GRIDCASE_PROJECTIONS_SOURCE=kafka`` the Kafka-fed projectors keep them: nothing to do here.
        """
        if self.settings.projections_source == "kafka":
            return
        try:
            self.runner.run_once(lease_timeout=0)
        except LeaseHeld:
            return
        finally:
            self.runner.release()

    def fetch(self, position: int) -> Notification | None:
        """The stored event at a position."""
        found = self.service.store.recorder.select_notifications(start=position, limit=1)
        return found[0] if found and found[0].id == position else None

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

    # -- case status ------------------------------------------------------------

    def case(self, number: str) -> dict[str, Any] | None:
        """The status row of a case, with its overdue flag."""
        with self.engine.connect() as connection:
            row = connection.execute(select(case_status).where(case_status.c.case_number == number)).first()
        return None if row is None else self._status(row)

    def queue(self, unit: str | None, state: str | None) -> list[dict[str, Any]]:
        """Cases of an org unit (grid, community, street or handling department) in a state."""
        query = _of_unit(select(case_status).order_by(case_status.c.reported_at), unit)
        if state:
            query = query.where(case_status.c.state == state)
        with self.engine.connect() as connection:
            return [self._status(row) for row in connection.execute(query)]

    def overdue(self, unit: str | None, now: datetime | None = None) -> list[dict[str, Any]]:
        """Open cases past their resolve-by on the SLA clock (parked time removed)."""
        moment = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
        query = _of_unit(
            select(case_status).where(case_status.c.resolve_by < moment).order_by(case_status.c.resolve_by), unit
        )
        with self.engine.connect() as connection:
            return [self._status(row, moment) for row in connection.execute(query) if is_overdue(row, moment)]

    def timeline(self, number: str) -> dict[str, Any] | None:
        """The public view of a case by any of its numbers: no personal data, merges followed."""
        with self.engine.connect() as connection:
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
                "reported_at": _iso(row.reported_at),
                "timeline": [
                    {"event": e["event"], "state": e["state"], "occurred_at": _iso(e["occurred_at"]), "note": e["note"]}
                    for e in events
                ],
            }

    def _status(self, row: Any, now: datetime | None = None) -> dict[str, Any]:
        moment = now or datetime.now(UTC).replace(tzinfo=None)
        status = {key: _iso(value) if isinstance(value, datetime) else value for key, value in row._mapping.items()}  # noqa: SLF001
        status["overdue"] = is_overdue(row, moment)
        return status


def _of_unit(query: Select[Any], unit: str | None) -> Select[Any]:
    """Cases of a grid, community, street or handling department (all cases when no unit is given)."""
    if not unit:
        return query
    columns = (case_status.c.grid, case_status.c.community, case_status.c.street, case_status.c.handler_id)
    return query.where(or_(*(column == unit for column in columns)))


def _iso(moment: datetime | None) -> str | None:
    """Stored naive UTC as ISO 8601 with Z."""
    return None if moment is None else moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
