"""One window, one number: what came in through which channel, and how fast the centre took it on.

Per channel, category, street and local day: cases received, accepted, rejected
and merged as duplicates (additive counts), plus each case's time from report to
acceptance, kept per case so that a mean and a percentile can be computed for any
period and any grouping (percentiles do not roll up from daily figures).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import BigInteger, Column, Date, DateTime, Float, MetaData, String, Table

from projections.base import Projection
from projections.events import parse_time
from projections.sql import Counters, RowCache, upsert, utc_naive

if TYPE_CHECKING:
    from datetime import date, datetime, tzinfo

    from sqlalchemy import Connection

    from projections.events import ProjectedEvent

metadata = MetaData()

#: Additive figures, one long table: a row per channel, category, street, local day and metric.
intake_counts = Table(
    "intake_counts",
    metadata,
    Column("channel", String(16), primary_key=True),
    Column("category", String(64), primary_key=True),
    Column("street", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("metric", String(16), primary_key=True),
    Column("value", BigInteger, nullable=False),
    sqlite_with_rowid=False,  # clustered on the key: upserts touch one B-tree
)

#: One row per accepted case: how long it waited, counted on the local day it was accepted.
intake_acceptances = Table(
    "intake_acceptances",
    metadata,
    Column("case_number", String(32), primary_key=True),
    Column("channel", String(16), nullable=False, index=True),
    Column("category", String(64), nullable=False, index=True),
    Column("street", String(64), nullable=False, index=True),
    Column("day", Date, nullable=False, index=True),
    Column("seconds", Float, nullable=False),
)

#: What later events of a case need from its report; they carry only the aggregate id.
intake_cases = Table(
    "intake_cases",
    metadata,
    Column("case_id", String(36), primary_key=True),
    Column("case_number", String(32), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("category", String(64), nullable=False),
    Column("street", String(64), nullable=False),
    Column("reported_at", DateTime, nullable=False),
)

#: The metric each deciding event counts as.
METRICS = {
    "CaseReported": "received",
    "CaseAccepted": "accepted",
    "CaseRejected": "rejected",
    "DuplicateMerged": "merged",
}


class Intake(Projection):
    """Intake figures per channel, category, street and local day, and report→acceptance times per case."""

    name: ClassVar[str] = "intake"
    version: ClassVar[int] = 1
    metadata: ClassVar[MetaData] = metadata
    handles: ClassVar[frozenset[str]] = frozenset(METRICS)

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self.counts = Counters(intake_counts)
        # Cases learnt in this batch sit here too (put), so later events of the batch find them in memory.
        self.cases = RowCache(intake_cases)
        self.acceptances: list[dict[str, Any]] = []

    def prepare(self, connection: Connection, events: list[ProjectedEvent]) -> None:
        """Load the report facts of every case the batch touches, in a few queries."""
        born = {event.originator_id for event in events if event.type == "CaseReported"}
        self.cases.prefetch(connection, [(event.originator_id,) for event in events if event.originator_id not in born])

    def apply(self, connection: Connection, event: ProjectedEvent) -> None:
        """Count the event on its local day under its case's channel, category and street."""
        data = event.data
        occurred = parse_time(data["occurred_at"])
        key = (str(event.originator_id),)
        if event.type == "CaseReported":
            case: dict[str, Any] = {
                "case_id": key[0],
                "case_number": data["case_number"],
                "channel": data["channel"],
                "category": data["category"],
                "street": data["street"],
                "reported_at": utc_naive(occurred),
            }
            self.cases.put(key, case)
        else:
            found = self.cases.get(connection, key)
            if found is None:
                msg = f"aggregate {key[0]}: {event.type} before CaseReported"
                raise LookupError(msg)
            case = found
        day = self._day(occurred)
        self.counts.add((case["channel"], case["category"], case["street"], day, METRICS[event.type]))
        if event.type == "CaseAccepted":
            accepted_at = utc_naive(occurred)
            assert accepted_at is not None
            self.acceptances.append(
                {
                    "case_number": case["case_number"],
                    "channel": case["channel"],
                    "category": case["category"],
                    "street": case["street"],
                    "day": day,
                    "seconds": (accepted_at - case["reported_at"]).total_seconds(),
                }
            )

    def _day(self, moment: datetime) -> date:
        """The district's local day of a moment."""
        return moment.astimezone(self.tz).date()

    def flush(self, connection: Connection) -> None:
        """Write the batch's counts, new cases and acceptance times."""
        self.cases.flush(connection)
        self.counts.flush(connection)
        upsert(connection, intake_acceptances, self.acceptances)
        self.discard()

    def discard(self) -> None:
        """Forget the batch."""
        self.cases.clear()
        self.counts.clear()
        self.acceptances = []
