"""The read side as queries see it: the read models' database, the runner that keeps them, the case queries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from projections import case_status_queries as queries

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from eventsourcing.persistence import Notification
    from sqlalchemy import Engine

    from projections.runner import Runner


class ReadModels:
    """The read models' database and the case queries on it, as they stand (nothing caught up)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

    def case(self, number: str) -> dict[str, Any] | None:
        """The status row of a case, with its overdue flag."""
        with self.engine.connect() as connection:
            return queries.status_of(connection, number)

    def queue(self, unit: str | None, state: str | None) -> list[dict[str, Any]]:
        """Cases of an org unit (grid, community, street or handling department) in a state."""
        with self.engine.connect() as connection:
            return queries.queue(connection, unit, state)

    def overdue(self, unit: str | None, now: datetime | None = None) -> list[dict[str, Any]]:
        """Open cases past their resolve-by on the SLA clock (parked time removed)."""
        with self.engine.connect() as connection:
            return queries.overdue(connection, unit, now)

    def timeline(self, number: str) -> dict[str, Any] | None:
        """The public view of a case by any of its numbers: no personal data, merges followed."""
        with self.engine.connect() as connection:
            return queries.timeline(connection, number)


class ReadSide(ReadModels):
    """The read models kept by one runner from the store, or (``catch_up_from_store=False``) by Kafka-fed projectors."""

    def __init__(self, engine: Engine, runner: Runner, *, fetch: Callable[[int], Notification | None],
                 catch_up_from_store: bool = True) -> None:  # fmt: skip
        super().__init__(engine)
        self.runner = runner
        self.fetch = fetch
        self.catch_up_from_store = catch_up_from_store
        runner.create_tables()

    def catch_up(self) -> None:
        """Bring the read models up to date before a query, unless another runner (or Kafka) is keeping them."""
        from projections.runner import LeaseHeld  # noqa: PLC0415 - a query on current read models needs no runner

        if not self.catch_up_from_store:
            return
        try:
            self.runner.run_once(lease_timeout=0)
        except LeaseHeld:
            return
        finally:
            self.runner.release()
