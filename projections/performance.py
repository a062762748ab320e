"""Worker performance and the figures of grids, streets and departments, as additive daily counts.

Every figure is a sum of daily counts (``performance_counts``: subject kind,
subject, local day, metric, value), so rolling a day up to a month or a year
is a SUM, and a rate is a numerator and a denominator summed separately. A
count goes to the local day its deciding event occurred (DESIGN.md).
Subjects: ``worker``, ``department``, ``grid``, ``community``, ``street``,
``district``. The formulas that turn counts into figures are in
projections/performance_queries.py; what each metric counts is below.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, String, Table

from domain.bounds import period_days
from projections.base import Projection
from projections.events import parse_time
from projections.sql import Counters, RowCache

if TYPE_CHECKING:
    from datetime import tzinfo

    from sqlalchemy import Connection

    from projections.events import ProjectedEvent

metadata = MetaData()

performance_counts = Table(
    "performance_counts",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("subject", String(64), primary_key=True),
    # A grid's community and street ("" for workers and departments): areas are sums of their grids.
    Column("community", String(64), primary_key=True),
    Column("street", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("metric", String(40), primary_key=True),
    Column("value", Float, nullable=False),
    sqlite_with_rowid=False,  # clustered on the key: upserts touch one B-tree
)

#: What the projection remembers of each case between events (keyed by aggregate id).
performance_cases = Table(
    "performance_cases",
    metadata,
    Column("case_id", String(36), primary_key=True),
    Column("grid", String(64), nullable=False),
    Column("community", String(64), nullable=False),
    Column("street", String(64), nullable=False),
    Column("urgent", Integer, nullable=False),
    Column("reporter", String(64)),
    Column("handler_kind", String(16)),
    Column("handler_id", String(64)),
    Column("dispatched_at", String(32)),
    Column("signed_at", String(32)),
    Column("sign_by", String(32)),
    Column("resolve_by", String(32)),
    Column("suspended_seconds", BigInteger, nullable=False),
    Column("suspended_at_dispatch", BigInteger, nullable=False),
    Column("max_level", Integer, nullable=False),
    Column("resolver_kind", String(16)),
    Column("resolver_id", String(64)),
    Column("due_day", String(10)),
    Column("due_department", String(64)),
    Column("due_suspended", Integer, nullable=False),
    Column("closed_day", String(10)),
    Column("closed_on_time", Integer, nullable=False),
)

performance_patrols = Table(
    "performance_patrols",
    metadata,
    Column("patrol_id", String(36), primary_key=True),
    Column("worker", String(64), nullable=False),
    Column("grid", String(64), nullable=False),
    Column("community", String(64), nullable=False),
    Column("street", String(64), nullable=False),
    Column("day", String(10), nullable=False),
)

#: Residents per grid, for cases per 1,000 residents (latest count).
performance_grids = Table(
    "performance_grids",
    metadata,
    Column("unit_id", String(36), primary_key=True),
    Column("grid", String(64), nullable=False, unique=True),
    Column("community", String(64), nullable=False),
    Column("population", Integer, nullable=False),
    Column("households", Integer, nullable=False),
)

#: Which street each community belongs to, for residents per street.
performance_communities = Table(
    "performance_communities",
    metadata,
    Column("community", String(64), primary_key=True),
    Column("street", String(64), nullable=False),
)

LEVEL_RANK = {"community": 0, "street": 1, "district": 2}
SATISFIED = {"satisfied", "basically_satisfied"}
CASE_EVENTS = frozenset({
    "CaseReported", "CaseAccepted", "CaseRejected", "CaseDispatched", "DispatchSigned", "DispatchReturned",
    "CaseEscalated", "DeadlineExtended", "CaseSuspended", "CaseResumed", "CaseResolved", "ResolutionVerified",
    "ResolutionRejected", "CaseClosed", "CitizenFeedbackRecorded", "CaseReopened",
})  # fmt: skip
#: (kind, subject, community, street): a grid carries its community and street, others "".
Subject = tuple[str, str, str, str]
PATROL_EVENTS = frozenset({"PatrolStarted", "PatrolCheckpointLogged", "PatrolEnded"})
REGISTRY_EVENTS = frozenset({"OrgUnitCreated", "GridFiguresUpdated"})


class Performance(Projection):
    """Daily counts behind every figure of workers, grids, communities, streets and departments."""

    name: ClassVar[str] = "performance"
    version: ClassVar[int] = 1
    metadata: ClassVar[MetaData] = metadata
    handles: ClassVar[frozenset[str]] = CASE_EVENTS | PATROL_EVENTS | REGISTRY_EVENTS

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self.counts = Counters(performance_counts)
        self.cases = RowCache(performance_cases)
        self.patrols = RowCache(performance_patrols)
        self.grids = RowCache(performance_grids)
        self.communities = RowCache(performance_communities)

    # -- batch plumbing ---------------------------------------------------------

    def prepare(self, connection: Connection, events: list[ProjectedEvent]) -> None:
        """Load the cases and patrols the batch touches in a few queries."""
        # Cases and patrols that begin in this batch are not in the tables yet: no need to look.
        born = {e.originator_id for e in events if e.type in {"CaseReported", "PatrolStarted"}}
        self.cases.prefetch(
            connection, [(e.originator_id,) for e in events if e.aggregate == "Case" and e.originator_id not in born]
        )
        self.patrols.prefetch(
            connection, [(e.originator_id,) for e in events if e.aggregate == "Patrol" and e.originator_id not in born]
        )

    def flush(self, connection: Connection) -> None:
        """Write counts and remembered context."""
        self.counts.flush(connection)
        self.cases.flush(connection)
        self.patrols.flush(connection)
        self.grids.flush(connection)
        self.communities.flush(connection)

    def discard(self) -> None:
        """Forget the batch."""
        self.counts.clear()
        self.cases.clear()
        self.patrols.clear()
        self.grids.clear()
        self.communities.clear()

    # -- helpers ----------------------------------------------------------------

    def day(self, moment: datetime) -> str:
        """The district-local day of a moment."""
        return moment.astimezone(self.tz).date().isoformat()

    def add(self, subjects: list[Subject], day: str, metric: str, amount: float = 1) -> None:
        """Add to a metric of several subjects on one day."""
        add = self.counts.add
        for kind, subject, community, street in subjects:
            if subject:
                add((kind, subject, community, street, day, metric), amount)

    @staticmethod
    def areas(row: dict[str, Any]) -> list[Subject]:
        """The grid of a case or patrol; its community, street and the district are sums of their grids."""
        return [("grid", row["grid"], row["community"], row["street"])]

    @staticmethod
    def handler(row: dict[str, Any], prefix: str = "handler") -> list[Subject]:
        """The worker or department holding (or having resolved) the case."""
        kind, subject = row[f"{prefix}_kind"], row[f"{prefix}_id"]
        if not kind:
            return []
        return [("worker" if kind == "worker" else "department", subject, "", "")]

    # -- events -----------------------------------------------------------------

    def apply(self, connection: Connection, event: ProjectedEvent) -> None:
        """Turn one event into daily counts."""
        if event.aggregate == "OrgUnit":
            self._registry(connection, event)
        elif event.aggregate == "Patrol":
            self._patrol(connection, event)
        else:
            self._case(connection, event)

    def _registry(self, connection: Connection, event: ProjectedEvent) -> None:
        data = event.data
        key = (event.originator_id,)
        if event.type == "OrgUnitCreated":
            if data["kind"] == "community":
                self.communities.put((data["code"],), {"community": data["code"], "street": data["parent"]})
            if data["kind"] == "grid":
                self.grids.put(key, {"unit_id": key[0], "grid": data["code"], "community": data["parent"],
                                     "population": data["population"], "households": data["households"]})  # fmt: skip
            return
        found = self.grids.get(connection, key)
        if found is not None:
            self.grids.put(key, {**found, "population": data["population"], "households": data["households"]})

    def _patrol(self, connection: Connection, event: ProjectedEvent) -> None:
        data = event.data
        key = (event.originator_id,)
        if event.type == "PatrolStarted":
            row = {"patrol_id": key[0], "worker": data["worker"], "grid": data["grid"],
                   "community": data["community"], "street": data["street"],
                   "day": self.day(parse_time(data["occurred_at"]))}  # fmt: skip
            self.patrols.put(key, row)
            self.add([("worker", row["worker"], "", ""), *self.areas(row)], row["day"], "patrols")
            return
        found = self.patrols.get(connection, key)
        if found is None:
            msg = f"patrol {key[0]}: {event.type} before PatrolStarted"
            raise LookupError(msg)
        subjects = [("worker", found["worker"], "", ""), *self.areas(found)]
        if event.type == "PatrolCheckpointLogged":
            if data["kind"] == "household_visit":
                self.add(subjects, found["day"], "households_visited")
                if data.get("elderly_visit"):
                    self.add(subjects, found["day"], "elderly_visits")
            else:
                self.add(subjects, found["day"], "places_inspected")
        else:
            self.add(subjects, found["day"], "patrol_seconds", data["duration_seconds"])
            self.add(subjects, found["day"], "patrol_metres", data["distance_m"])

    def _case(self, connection: Connection, event: ProjectedEvent) -> None:  # noqa: C901, PLR0912, PLR0915
        data = event.data
        key = (event.originator_id,)
        at = parse_time(data["occurred_at"])
        day = self.day(at)
        if event.type == "CaseReported":
            actor = data["actor"]
            row: dict[str, Any] = {
                "case_id": key[0], "grid": data["grid"], "community": data["community"], "street": data["street"],
                "urgent": 1 if data["urgency"] == "urgent" else 0,
                "reporter": actor["id"] if actor["role"] == "grid_worker" else None,
                "handler_kind": None, "handler_id": None, "dispatched_at": None, "signed_at": None,
                "sign_by": None, "resolve_by": None, "suspended_seconds": 0, "suspended_at_dispatch": 0,
                "max_level": 0, "resolver_kind": None, "resolver_id": None, "due_day": None, "due_department": None,
                "due_suspended": 0, "closed_day": None, "closed_on_time": 0,
            }  # fmt: skip
            self.cases.put(key, row)
            self.add(self.areas(row), day, "reported")
            if row["reporter"]:
                self.add([("worker", row["reporter"], "", "")], day, "reported")
            return
        found = self.cases.get(connection, key)
        if found is None:
            msg = f"case {key[0]}: {event.type} before CaseReported"
            raise LookupError(msg)
        row = dict(found)
        areas = self.areas(row)
        reporter: list[Subject] = [("worker", row["reporter"], "", "")] if row["reporter"] else []
        match event.type:
            case "CaseAccepted":
                row["max_level"] = max(row["max_level"], LEVEL_RANK[data["level"]])
                self.add(areas, day, "accepted")
                self.add(reporter, day, "report_valid")
                self.add(reporter, day, "report_judged")
            case "CaseRejected":
                self.add(areas, day, "rejected")
                self.add(reporter, day, "report_judged")
            case "CaseDispatched":
                row["handler_kind"] = data["handler"]["kind"]
                row["handler_id"] = data["handler"]["id"]
                row["dispatched_at"] = data["occurred_at"]
                row["sign_by"] = data["sign_by"]
                row["resolve_by"] = data["resolve_by"]
                row["suspended_at_dispatch"] = row["suspended_seconds"]
                self.add(areas + self.handler(row), day, "dispatched")
                department = data["handler"]["id"] if data["handler"]["kind"] == "department" else None
                self._move_due(row, self.day(parse_time(data["resolve_by"])), department)
            case "DispatchSigned":
                handler = self.handler(row)
                on_time = at <= parse_time(row["sign_by"])
                waited = (at - parse_time(row["dispatched_at"])).total_seconds()
                row["signed_at"] = data["occurred_at"]
                self.add(handler, day, "handled")
                self.add(handler + areas, day, "signed")
                self.add(handler + areas, day, "signed_on_time", 1 if on_time else 0)
                self.add(handler, day, "sign_seconds", waited)
            case "DispatchReturned":
                self.add(self.handler(row) + areas, day, "bounces")
                row["handler_kind"] = row["handler_id"] = None
            case "CaseEscalated":
                row["max_level"] = max(row["max_level"], LEVEL_RANK[data["to_level"]])
                self.add(areas, day, "escalated")
                row["handler_kind"] = row["handler_id"] = None
            case "DeadlineExtended":
                row["resolve_by"] = data["resolve_by"]
                self._move_due(row, self.day(parse_time(data["resolve_by"])), row["due_department"])
            case "CaseSuspended":
                # Parked (缓办) for the assessment while it stays parked: a resumed case is back in the count.
                if row["due_day"] and not row["due_suspended"]:
                    row["due_suspended"] = 1
                    self._add_due(row, "due_suspended", 1)
            case "CaseResumed":
                row["suspended_seconds"] += int(data["suspended_seconds"])
                if row["due_suspended"]:
                    row["due_suspended"] = 0
                    self._add_due(row, "due_suspended", -1)
            case "CaseResolved":
                handler = self.handler(row)
                parked = row["suspended_seconds"] - row["suspended_at_dispatch"]
                on_time = (at - parse_time(row["dispatched_at"])).total_seconds() - parked <= (
                    parse_time(row["resolve_by"]) - parse_time(row["dispatched_at"])
                ).total_seconds()
                worked = (at - parse_time(row["signed_at"])).total_seconds() - parked
                self.add(handler, day, "resolved")
                self.add(handler, day, "resolved_on_time", 1 if on_time else 0)
                self.add(handler, day, "resolve_seconds", worked)
                row["resolver_kind"], row["resolver_id"] = row["handler_kind"], row["handler_id"]
            case "ResolutionVerified":
                self.add(self.handler(row, "resolver"), day, "verified")
            case "ResolutionRejected":
                self.add(self.handler(row, "resolver"), day, "verified")
                self.add(self.handler(row, "resolver"), day, "rework")
            case "CaseClosed":
                self.add(areas, day, "closed")
                self.add(areas, day, "closed_in_community", 1 if row["max_level"] == 0 else 0)
                if row["due_day"]:
                    parked = row["suspended_seconds"] - row["suspended_at_dispatch"]
                    late = (at - parse_time(row["resolve_by"])).total_seconds() - parked > 0
                    row["closed_day"] = row["due_day"]
                    row["closed_on_time"] = 0 if late else 1
                    self._add_due(row, "due_closed", 1)
                    self._add_due(row, "due_closed_on_time", row["closed_on_time"])
            case "CitizenFeedbackRecorded":
                resolver = self.handler(row, "resolver")
                satisfied = 1 if data["satisfaction"] in SATISFIED else 0
                self.add(areas + resolver, day, "feedback")
                self.add(areas + resolver, day, "feedback_satisfied", satisfied)
                self.add(areas, day, "feedback_resolved", 1 if data["resolved"] else 0)
            case "CaseReopened":
                self.add(areas, day, "reopened")
                # Closed is not fixed: a reopened case no longer counts as closed for the assessment.
                if row["closed_day"]:
                    self._add_due(row, "due_closed", -1, day=row["closed_day"])
                    self._add_due(row, "due_closed_on_time", -row["closed_on_time"], day=row["closed_day"])
                    row["closed_day"] = None
                    row["closed_on_time"] = 0
                row["handler_kind"] = row["handler_id"] = None
        self.cases.put(key, row)

    # -- the digital city-management assessment: due, suspended, closed ---------

    def _due_subjects(self, row: dict[str, Any]) -> list[Subject]:
        subjects = self.areas(row)
        if row["due_department"]:
            subjects.append(("department", row["due_department"], "", ""))
        return subjects

    def _add_due(self, row: dict[str, Any], metric: str, amount: int, day: str | None = None) -> None:
        when = day or row["due_day"]
        subjects = self._due_subjects(row)
        self.add(subjects, when, metric, amount)
        if row["urgent"]:
            self.add(subjects, when, f"urgent_{metric}", amount)

    def _move_due(self, row: dict[str, Any], new_day: str, department: str | None) -> None:
        """A case is due once, on its current resolve-by day, for its street and its department."""
        if row["due_day"]:
            self._add_due(row, "due", -1)
            if row["due_suspended"]:
                self._add_due(row, "due_suspended", -1)
        row["due_day"] = new_day
        row["due_department"] = department
        self._add_due(row, "due", 1)
        if row["due_suspended"]:
            self._add_due(row, "due_suspended", 1)


def local_days(period: str) -> tuple[str, str]:
    """The first and last local day of a period: 2021, 2021-06 or 2021-06-01."""
    first, after = period_days(period)
    return first.isoformat(), (after - timedelta(days=1)).isoformat()
