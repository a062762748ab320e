"""Reference data, event-sourced: org units, workers, categories, SLA policy, holiday calendar.

It changes over time and reviews need its history, so every change is an event
(published on ``gridcase.registry.events``). Each org unit, worker and category
is its own small aggregate, found in one step from its code.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

from eventsourcing.domain import event

from domain.base import ActorRef, Aggregate, Code, id_for
from domain.bounded import Bound, CalendarDays, Day, Version
from domain.bounds import SLA_RULES_MAX
from domain.errors import CommandRefused
from domain.geometry import Boundary, MultiPolygonBoundary, PolygonBoundary
from domain.registry_values import PARENT_KIND, REGISTRARS, Count, GridKind, Name, OrgKind, WorkerKind, check_registrar
from domain.sla import SlaClass, SlaRule, WorkingCalendar

if TYPE_CHECKING:
    from uuid import UUID

__all__ = [
    "CALENDAR_ID", "PARENT_KIND", "REGISTRARS", "SLA_POLICY_ID", "Category", "Count", "GridKind", "HolidayCalendar",
    "Name", "OrgKind", "OrgUnit", "SlaPolicy", "Worker", "WorkerKind", "category_id", "org_unit_id", "worker_id",
]  # fmt: skip


def org_unit_id(code: str) -> UUID:
    """The aggregate id of an org unit."""
    return id_for("org", code)


class OrgUnit(Aggregate):
    """A district, street, community, grid or department."""

    class OrgUnitCreated(Aggregate.Created):
        """A unit of the hierarchy is set up."""

        code: Code
        kind: OrgKind
        name: Name
        name_en: Name | None = None
        parent: Code | None = None
        grid_kind: GridKind | None = None
        households: Count = 0
        population: Count = 0
        elderly: Count = 0

    class GridFiguresUpdated(Aggregate.Event):
        """A grid's households and residents were counted again."""

        households: Count
        population: Count
        elderly: Count

    class GridLeaderAppointed(Aggregate.Event):
        """A worker leads the grid (网格长)."""

        worker: Code

    class BoundarySet(Aggregate.Event):
        """The unit's boundary is drawn (or redrawn): a GeoJSON Polygon or MultiPolygon, WGS84."""

        boundary: Boundary

    @classmethod
    def create(
        cls,
        *,
        code: str,
        kind: OrgKind,
        name: str,
        name_en: str | None,
        parent: OrgUnit | None,
        grid_kind: GridKind | None,
        households: int,
        population: int,
        elderly: int,
        actor: ActorRef,
        at: datetime,
    ) -> OrgUnit:
        """Set up a unit under its parent, checking the hierarchy holds."""
        subject = f"{kind.value} {code}"
        check_registrar(subject, "new", "registry.org-unit", actor)

        def refuse(rule: str, reason: str) -> CommandRefused:
            return CommandRefused(subject=subject, state="new", command="registry.org-unit", rule=rule, reason=reason)

        wanted = PARENT_KIND[kind]
        if wanted is None and parent is not None:
            raise refuse("DistrictHasNoParent", "a district hangs under nothing")
        if wanted is not None and (parent is None or parent.kind is not wanted):
            got = "nothing" if parent is None else f"{parent.kind.value} {parent.code}"
            raise refuse("UnitMustHangUnderTheRightKind", f"a {kind.value} hangs under a {wanted.value}, not {got}")
        if (kind is OrgKind.GRID) != (grid_kind is not None):
            raise refuse("GridKindIsForGrids", "grids, and only grids, have a grid kind (base or dedicated)")
        if elderly > population:
            raise refuse("ElderlyAreResidents", "more elderly than residents")
        created: OrgUnit = cls(
            id=org_unit_id(code),
            code=code,
            kind=kind,
            name=name,
            name_en=name_en,
            parent=parent.code if parent else None,
            grid_kind=grid_kind,
            households=households,
            population=population,
            elderly=elderly,
            actor=actor,
            occurred_at=at,
        )
        return created

    @event(OrgUnitCreated)
    def __init__(
        self,
        *,
        id: UUID,  # noqa: A002 - the library wants it named so
        code: str,
        kind: OrgKind,
        name: str,
        name_en: str | None,
        parent: str | None,
        grid_kind: GridKind | None,
        households: int,
        population: int,
        elderly: int,
        actor: ActorRef,
        occurred_at: datetime,
    ) -> None:
        self.code = code
        self.kind = kind
        self.name = name
        self.name_en = name_en
        self.parent = parent
        self.grid_kind = grid_kind
        self.households = households
        self.population = population
        self.elderly = elderly
        self.leader: str | None = None
        self.boundary: PolygonBoundary | MultiPolygonBoundary | None = None

    def _refuse(self, command: str, rule: str, reason: str) -> CommandRefused:
        return CommandRefused(
            subject=f"{self.kind.value} {self.code}", state="active", command=command, rule=rule, reason=reason
        )

    def update_figures(self, actor: ActorRef, households: int, population: int, elderly: int, at: datetime) -> None:
        """Record a new count of a grid's households and residents."""
        check_registrar(f"{self.kind.value} {self.code}", "active", "registry.grid-figures", actor)
        if self.kind is not OrgKind.GRID:
            raise self._refuse("registry.grid-figures", "FiguresAreKeptPerGrid", "only grids have figures")
        if elderly > population:
            raise self._refuse("registry.grid-figures", "ElderlyAreResidents", "more elderly than residents")
        self._figures(households=households, population=population, elderly=elderly, actor=actor, occurred_at=at)

    @event(GridFiguresUpdated)
    def _figures(self, households: int, population: int, elderly: int, actor: ActorRef, occurred_at: datetime) -> None:
        self.households = households
        self.population = population
        self.elderly = elderly

    def appoint_leader(self, actor: ActorRef, worker: str, at: datetime) -> None:
        """Make a worker the grid's leader (网格长)."""
        check_registrar(f"{self.kind.value} {self.code}", "active", "registry.grid-leader", actor)
        if self.kind is not OrgKind.GRID:
            raise self._refuse("registry.grid-leader", "LeadersLeadGrids", "only grids have a grid leader")
        self._leader(worker=worker, actor=actor, occurred_at=at)

    @event(GridLeaderAppointed)
    def _leader(self, worker: str, actor: ActorRef, occurred_at: datetime) -> None:
        self.leader = worker

    def set_boundary(self, actor: ActorRef, boundary: PolygonBoundary | MultiPolygonBoundary, at: datetime) -> None:
        """Draw the unit's boundary (only a change is recorded); a department has none."""
        check_registrar(f"{self.kind.value} {self.code}", "active", "registry.boundary", actor)
        if self.kind is OrgKind.DEPARTMENT:
            raise self._refuse("registry.boundary", "PlacesHaveBoundaries", "a department is not a place")
        if boundary != self.boundary:
            self._boundary(boundary=boundary, actor=actor, occurred_at=at)

    @event(BoundarySet)
    def _boundary(
        self, boundary: PolygonBoundary | MultiPolygonBoundary, actor: ActorRef, occurred_at: datetime
    ) -> None:
        self.boundary = boundary


def worker_id(code: str) -> UUID:
    """The aggregate id of a worker."""
    return id_for("worker", code)


class Worker(Aggregate):
    """A grid worker: full-time, professional or part-time, assigned to grids over time."""

    class WorkerRegistered(Aggregate.Created):
        """A worker joins."""

        code: Code
        name: Name
        kind: WorkerKind
        department: Code | None = None

    class WorkerAssigned(Aggregate.Event):
        """A worker starts working a grid."""

        grid: Code
        start: Day

    class WorkerAssignmentEnded(Aggregate.Event):
        """A worker stops working a grid."""

        grid: Code
        end: Day

    @classmethod
    def register(
        cls, *, code: str, name: str, kind: WorkerKind, department: str | None, actor: ActorRef, at: datetime
    ) -> Worker:
        """Register a worker."""
        check_registrar(f"worker {code}", "new", "registry.worker", actor)
        created: Worker = cls(
            id=worker_id(code), code=code, name=name, kind=kind, department=department, actor=actor, occurred_at=at
        )
        return created

    @event(WorkerRegistered)
    def __init__(
        self,
        *,
        id: UUID,  # noqa: A002 - the library wants it named so
        code: str,
        name: str,
        kind: WorkerKind,
        department: str | None,
        actor: ActorRef,
        occurred_at: datetime,
    ) -> None:
        self.code = code
        self.name = name
        self.kind = kind
        self.department = department
        #: grid code → start date of the assignment in force.
        self.assignments: dict[str, date] = {}
        #: every assignment ever made: grid, first day, last day (None while in force).
        self.periods: list[tuple[str, date, date | None]] = []

    def _refuse(self, command: str, rule: str, reason: str) -> CommandRefused:
        return CommandRefused(subject=f"worker {self.code}", state="active", command=command, rule=rule, reason=reason)

    def assign(self, actor: ActorRef, grid: str, start: date, at: datetime) -> None:
        """Assign the worker to a grid from a date."""
        check_registrar(f"worker {self.code}", "active", "registry.assign", actor)
        if grid in self.assignments:
            raise self._refuse("registry.assign", "OneAssignmentPerGridAtATime", f"already assigned to grid {grid}")
        self._assigned(grid=grid, start=start, actor=actor, occurred_at=at)

    @event(WorkerAssigned)
    def _assigned(self, grid: str, start: date, actor: ActorRef, occurred_at: datetime) -> None:
        self.assignments[grid] = start
        self.periods.append((grid, start, None))

    def unassign(self, actor: ActorRef, grid: str, end: date, at: datetime) -> None:
        """End the worker's assignment to a grid on a date."""
        check_registrar(f"worker {self.code}", "active", "registry.unassign", actor)
        start = self.assignments.get(grid)
        if start is None:
            raise self._refuse("registry.unassign", "AssignmentMustBeInForce", f"not assigned to grid {grid}")
        if end < start:
            raise self._refuse("registry.unassign", "AssignmentMustEndAfterItStarts", f"{end} is before {start}")
        self._unassigned(grid=grid, end=end, actor=actor, occurred_at=at)

    @event(WorkerAssignmentEnded)
    def _unassigned(self, grid: str, end: date, actor: ActorRef, occurred_at: datetime) -> None:
        del self.assignments[grid]
        self.periods = [(g, s, end if g == grid and e is None else e) for g, s, e in self.periods]

    def works_grid(self, grid: str, day: date) -> bool:
        """Whether the worker was assigned to the grid on that day (first and last day included)."""
        return any(g == grid and start <= day and (end is None or day <= end) for g, start, end in self.periods)


def category_id(code: str) -> UUID:
    """The aggregate id of a case category."""
    return id_for("category", code)


class Category(Aggregate):
    """A leaf of the two-level case catalogue, with its default handling unit and SLA class."""

    class CategoryDefined(Aggregate.Created):
        """A category enters the catalogue."""

        code: Code
        group: Code
        group_name: Name
        group_name_en: Name
        name: Name
        name_en: Name
        #: ``grid`` (the grid's own workers) or a department code.
        default_unit: Code
        sla_class: SlaClass
        #: Whether public views may show where such a case is (a street light: yes; a neighbour dispute, an elderly
        #: visit: no, only the grid). Events recorded before the flag existed load as public, as they were shown.
        location_public: bool = True

    class LocationVisibilitySet(Aggregate.Event):
        """The catalogue changes whether the public may see where cases of this category are."""

        location_public: bool

    @classmethod
    def define(
        cls,
        *,
        code: str,
        group: str,
        group_name: str,
        group_name_en: str,
        name: str,
        name_en: str,
        default_unit: str,
        sla_class: SlaClass,
        actor: ActorRef,
        at: datetime,
        location_public: bool = True,
    ) -> Category:
        """Add a category to the catalogue."""
        check_registrar(f"category {code}", "new", "registry.category", actor)
        created: Category = cls(
            id=category_id(code),
            code=code,
            group=group,
            group_name=group_name,
            group_name_en=group_name_en,
            name=name,
            name_en=name_en,
            default_unit=default_unit,
            sla_class=sla_class,
            location_public=location_public,
            actor=actor,
            occurred_at=at,
        )
        return created

    @event(CategoryDefined)
    def __init__(
        self,
        *,
        id: UUID,  # noqa: A002 - the library wants it named so
        code: str,
        group: str,
        group_name: str,
        group_name_en: str,
        name: str,
        name_en: str,
        default_unit: str,
        sla_class: SlaClass,
        actor: ActorRef,
        occurred_at: datetime,
        location_public: bool = True,
    ) -> None:
        self.code = code
        self.group = group
        self.group_name = group_name
        self.group_name_en = group_name_en
        self.name = name
        self.name_en = name_en
        self.default_unit = default_unit
        self.sla_class = sla_class
        self.location_public = location_public

    def set_location_visibility(self, actor: ActorRef, location_public: bool, at: datetime) -> None:
        """Say whether public views may show where cases of this category are (only a change is recorded)."""
        check_registrar(f"category {self.code}", "defined", "registry.category-location", actor)
        if location_public != self.location_public:
            self._visibility(location_public=location_public, actor=actor, occurred_at=at)

    @event(LocationVisibilitySet)
    def _visibility(self, location_public: bool, actor: ActorRef, occurred_at: datetime) -> None:
        self.location_public = location_public


SLA_POLICY_ID = id_for("policy", "sla")
CALENDAR_ID = id_for("policy", "calendar")


class SlaPolicy(Aggregate):
    """The district's SLA policy; each published version is kept, cases record the one used."""

    class SlaPolicyPublished(Aggregate.Event):
        """A new version of the SLA policy comes into force."""

        version: Version
        rules: Annotated[tuple[SlaRule, ...], Bound(max_items=SLA_RULES_MAX)]

    class SlaPolicyStarted(Aggregate.Created):
        """The policy's history begins."""

    @classmethod
    def start(cls, actor: ActorRef, at: datetime) -> SlaPolicy:
        """Begin the policy's history (no version in force yet)."""
        check_registrar("SLA policy", "new", "registry.sla-policy", actor)
        created: SlaPolicy = cls(id=SLA_POLICY_ID, actor=actor, occurred_at=at)
        return created

    @event(SlaPolicyStarted)
    def __init__(self, *, id: UUID, actor: ActorRef, occurred_at: datetime) -> None:  # noqa: A002
        self.current_version = 0
        self.rules: tuple[SlaRule, ...] = ()

    def publish(self, actor: ActorRef, version: int, rules: tuple[SlaRule, ...], at: datetime) -> None:
        """Publish the next version; every SLA class × urgency must have exactly one rule."""
        check_registrar("SLA policy", f"at version {self.current_version}", "registry.sla-policy", actor)

        def refuse(rule: str, reason: str) -> CommandRefused:
            return CommandRefused(
                subject="SLA policy",
                state=f"at version {self.current_version}",
                command="registry.sla-policy",
                rule=rule,
                reason=reason,
            )

        if version != self.current_version + 1:
            raise refuse(
                "PolicyVersionsFollowOneAnother", f"the next version is {self.current_version + 1}, not {version}"
            )
        keys = [(r.sla_class, r.urgency) for r in rules]
        if len(set(keys)) != len(keys):
            raise refuse("OneRulePerClassAndUrgency", "two rules for the same SLA class and urgency")
        missing = {(c, u) for c in ("A", "B", "C") for u in ("normal", "urgent")} - set(keys)
        if missing:
            raise refuse("EveryClassAndUrgencyHasARule", f"no rule for {sorted(missing)}")
        self._published(version=version, rules=rules, actor=actor, occurred_at=at)

    @event(SlaPolicyPublished)
    def _published(self, version: int, rules: tuple[SlaRule, ...], actor: ActorRef, occurred_at: datetime) -> None:
        self.current_version = version
        self.rules = rules


class HolidayCalendar(Aggregate):
    """Public holidays and make-up working days; each published version is kept."""

    class CalendarStarted(Aggregate.Created):
        """The calendar's history begins."""

    class CalendarPublished(Aggregate.Event):
        """A new version of the calendar comes into force."""

        version: Version
        holidays: CalendarDays
        workdays: CalendarDays

    @classmethod
    def start(cls, actor: ActorRef, at: datetime) -> HolidayCalendar:
        """Begin the calendar's history (plain Monday–Friday weeks until a version is published)."""
        check_registrar("holiday calendar", "new", "registry.calendar", actor)
        created: HolidayCalendar = cls(id=CALENDAR_ID, actor=actor, occurred_at=at)
        return created

    @event(CalendarStarted)
    def __init__(self, *, id: UUID, actor: ActorRef, occurred_at: datetime) -> None:  # noqa: A002
        self.calendar = WorkingCalendar()

    def publish(
        self, actor: ActorRef, version: int, holidays: tuple[date, ...], workdays: tuple[date, ...], at: datetime
    ) -> None:
        """Publish the next version of the calendar."""
        state = f"at version {self.calendar.version}"
        check_registrar("holiday calendar", state, "registry.calendar", actor)
        refused = {"subject": "holiday calendar", "state": state, "command": "registry.calendar"}
        if version != self.calendar.version + 1:
            raise CommandRefused(**refused, rule="CalendarVersionsFollowOneAnother",
                                 reason=f"the next version is {self.calendar.version + 1}, not {version}")  # fmt: skip
        if set(holidays) & set(workdays):
            raise CommandRefused(**refused, rule="ADayIsAHolidayOrAWorkday",
                                 reason="a day is both a holiday and a make-up working day")  # fmt: skip
        self._published(version=version, holidays=holidays, workdays=workdays, actor=actor, occurred_at=at)

    @event(CalendarPublished)
    def _published(
        self,
        version: int,
        holidays: tuple[date, ...],
        workdays: tuple[date, ...],
        actor: ActorRef,
        occurred_at: datetime,
    ) -> None:
        self.calendar = WorkingCalendar(version=version, holidays=frozenset(holidays), workdays=frozenset(workdays))
