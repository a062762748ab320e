"""The service layer: turns commands into aggregate calls and saves what they decided.

Entry points (CLI, ``apply``, HTTP) build a command model and call
:meth:`Gridcase.handle`; it returns plain values, never aggregates.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from functools import singledispatchmethod
from typing import TYPE_CHECKING, Any, TypeVar, cast

import structlog
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from adapters.store import EventStoreApplication, store_env
from domain import commands as c
from domain.base import Aggregate, Role
from domain.case import Case, CaseState, Channel, HandlerKind, case_id
from domain.errors import AlreadyExists, CommandRefused, UnknownReference
from domain.numbers import MAX_SEQUENCE, format_number
from domain.patrol import Patrol, patrol_id
from domain.registry import (
    CALENDAR_ID,
    SLA_POLICY_ID,
    Category,
    HolidayCalendar,
    OrgKind,
    OrgUnit,
    SlaPolicy,
    Worker,
    category_id,
    org_unit_id,
    worker_id,
)
from domain.sla import WorkingCalendar, add_duration, rule_for

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from uuid import UUID

    from adapters.settings import Settings

A = TypeVar("A", bound=Aggregate)
log = structlog.get_logger("gridcase")

#: How far ahead of the engine's clock an ``occurred_at`` may be (clock skew of field devices).
FUTURE_TOLERANCE = timedelta(minutes=5)


class BadInput(ValueError):
    """Input that cannot be a command: malformed, a missing field, a time in the future."""


class ConcurrentChange(RuntimeError):
    """Someone else changed the same aggregate first; reload and try again."""


Result = dict[str, Any]


class Gridcase:
    """The engine's application service over the event store."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.tz = settings.tz
        self.clock = clock or (lambda: datetime.now(UTC))
        self.store = EventStoreApplication(env=store_env(settings))
        self._pending: dict[UUID, Aggregate] | None = None
        self._next_sequence: dict[tuple[str, date], int] = {}

    def close(self) -> None:
        """Release database connections."""
        self.store.close()

    # -- unit of work -----------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Collect every change made inside and save it in one transaction at the end."""
        self._pending = {}
        numbers_before = dict(self._next_sequence)
        try:
            yield
            pending = list(self._pending.values())
        except BaseException:
            # Nothing of a refused batch is written, so none of its numbers were issued.
            self._next_sequence = numbers_before
            raise
        finally:
            self._pending = None
        try:
            self._save(*pending)
        except ConcurrentChange:
            self._next_sequence = numbers_before
            raise

    def _load(self, cls: type[A], aggregate_id: UUID, kind: str, code: str, command: str) -> A:
        if self._pending is not None and aggregate_id in self._pending:
            return cast("A", self._pending[aggregate_id])
        try:
            aggregate: Aggregate = self.store.repository.get(aggregate_id, projector_func=replay_events)
        except AggregateNotFoundError:
            raise UnknownReference(kind, code, command=command) from None
        if not isinstance(aggregate, cls):
            raise UnknownReference(kind, code, command=command)
        return aggregate

    def _exists(self, aggregate_id: UUID) -> bool:
        return (self._pending is not None and aggregate_id in self._pending) or self.store.exists(aggregate_id)

    def _save(self, *aggregates: Aggregate) -> None:
        if self._pending is not None:
            for aggregate in aggregates:
                self._pending[aggregate.id] = aggregate
            return
        try:
            self.store.save(*aggregates)
        except IntegrityError as error:
            raise ConcurrentChange(str(error)) from error

    def _when(self, command: c.Command) -> datetime:
        now = self.clock()
        at = command.at or now
        if at > now + FUTURE_TOLERANCE:
            msg = f"at: {at.isoformat()} is in the future"
            raise BadInput(msg)
        return at

    # -- numbers ----------------------------------------------------------------

    def _free_sequence(self, prefix: str, day: date, id_of: Callable[[str], UUID]) -> int:
        """The next unused sequence number of the day; the store's uniqueness guards races."""
        sequence = self._next_sequence.get((prefix, day))
        if sequence is None:
            sequence = self._first_free(lambda n: self._exists(id_of(format_number(prefix, day, n))))
        while self._exists(id_of(format_number(prefix, day, sequence))):
            sequence += 1
        if sequence > MAX_SEQUENCE:
            msg = f"no numbers left for {prefix} on {day}"
            raise BadInput(msg)
        return sequence

    @staticmethod
    def _first_free(exists: Callable[[int], bool]) -> int:
        """Numbers are issued in order, so the used ones form a prefix: gallop, then bisect."""
        low, high = 0, 1
        while exists(high):
            low, high = high, high * 2
        while high - low > 1:
            middle = (low + high) // 2
            if exists(middle):
                low = middle
            else:
                high = middle
        return low + 1

    def _create_numbered(self, prefix: str, day: date, id_of: Callable[[str], UUID], make: Callable[[str], A]) -> A:
        for _attempt in range(50):
            sequence = self._free_sequence(prefix, day, id_of)
            aggregate = make(format_number(prefix, day, sequence))  # a refusal here issues no number
            try:
                self._save(aggregate)
            except ConcurrentChange:
                # Another process took this number first: take the next one.
                self._next_sequence.pop((prefix, day), None)
                continue
            self._next_sequence[(prefix, day)] = sequence + 1
            return aggregate
        msg = f"could not issue a {prefix} number for {day}: too much contention"
        raise ConcurrentChange(msg)

    # -- the entry point --------------------------------------------------------

    def handle(self, command: c.AnyCommand) -> Result:
        """Carry out one command; raise a domain error (nothing written) if it is refused."""
        result = self._handle(command)
        log.info("command", command=command.command, actor=command.actor.id, **result)
        return result

    @singledispatchmethod
    def _handle(self, command: c.Command) -> Result:
        msg = f"unknown command {type(command).__name__}"
        raise BadInput(msg)

    # -- case -------------------------------------------------------------------

    def _case(self, number: str, command: str) -> Case:
        return self._load(Case, case_id(number), "case", number, command)

    def _grid(self, code: str, command: str) -> OrgUnit:
        grid = self._load(OrgUnit, org_unit_id(code), "grid", code, command)
        if grid.kind is not OrgKind.GRID:
            raise UnknownReference("grid", code, command=command)
        return grid

    def _report(self, command: c.ReportCase | c.ReportHazard, *, channel: Channel, grid_code: str,
                patrol_number: str | None) -> Result:  # fmt: skip
        at = self._when(command)
        self._load(Category, category_id(command.category), "category", command.category, command.command)
        grid = self._grid(grid_code, command.command)
        assert grid.parent is not None
        community = self._load(OrgUnit, org_unit_id(grid.parent), "community", grid.parent, command.command)
        assert community.parent is not None

        def make(number: str) -> Case:
            return Case.report(
                case_number=number,
                channel=channel,
                category=command.category,
                grid=grid.code,
                community=community.code,
                street=community.parent or "",
                location=command.location,
                description=command.description,
                reporter=getattr(command, "reporter", None),
                urgency=command.urgency,
                patrol_id=patrol_number,
                actor=command.actor,
                at=at,
            )

        given = getattr(command, "case_number", None)
        if given is not None:
            if self._exists(case_id(given)):
                raise AlreadyExists("case", given, command=command.command)
            case = make(given)
            try:
                self._save(case)
            except ConcurrentChange:
                raise AlreadyExists("case", given, command=command.command) from None
        else:
            day = at.astimezone(self.tz).date()
            case = self._create_numbered(self.settings.case_prefix, day, case_id, make)
        return {"case_number": case.case_number, "state": case.state.value}

    @_handle.register
    def _(self, command: c.ReportCase) -> Result:
        return self._report(command, channel=command.channel, grid_code=command.grid, patrol_number=None)

    def _on_case(self, command: c.CaseCommand, act: Callable[[Case, datetime], None]) -> Result:
        at = self._when(command)
        case = self._case(command.case_number, command.command)
        try:
            act(case, at)
        except UnknownReference as error:
            # Name the case and its state too, like every other refusal of a case command.
            raise CommandRefused(
                subject=f"case {case.case_number}",
                state=case.state.value,
                command=command.command.removeprefix("case."),
                rule=error.rule,
                reason=f"unknown {error.kind} {error.code!r}",
            ) from None
        self._save(case)
        return {"case_number": case.case_number, "state": case.state.value}

    @_handle.register
    def _(self, command: c.AcceptCase) -> Result:
        return self._on_case(command, lambda case, at: case.accept(command.actor, command.level, at))

    @_handle.register
    def _(self, command: c.RejectCase) -> Result:
        return self._on_case(command, lambda case, at: case.reject(command.actor, command.reason, at))

    @_handle.register
    def _(self, command: c.MergeDuplicate) -> Result:
        def act(case: Case, at: datetime) -> None:
            master = self._case(command.master_case_number, command.command)
            if master.state is CaseState.MERGED or not master.is_open:
                raise CommandRefused(
                    subject=f"case {case.case_number}",
                    state=case.state.value,
                    command="merge",
                    rule="MasterCaseMustBeOpen",
                    reason=f"master case {master.case_number} is {master.state.value}",
                )
            case.merge_into(command.actor, master.case_number, at)

        return self._on_case(command, act)

    @_handle.register
    def _(self, command: c.DispatchCase) -> Result:
        def act(case: Case, at: datetime) -> None:
            handler = command.handler
            if handler.kind is HandlerKind.WORKER:
                self._load(Worker, worker_id(handler.id), "worker", handler.id, command.command)
            else:
                unit = self._load(OrgUnit, org_unit_id(handler.id), "department", handler.id, command.command)
                if unit.kind is not OrgKind.DEPARTMENT:
                    raise UnknownReference("department", handler.id, command=command.command)
            category = self._load(Category, category_id(case.category), "category", case.category, command.command)
            policy = self._load(SlaPolicy, SLA_POLICY_ID, "SLA policy", "sla", command.command)
            rule = rule_for(policy.rules, category.sla_class, case.urgency.value)
            if rule is None:
                raise UnknownReference(
                    "SLA rule", f"{category.sla_class}/{case.urgency.value}", command=command.command
                )
            calendar = self._calendar()
            case.dispatch(
                command.actor,
                handler,
                sign_by=add_duration(at, rule.sign_within, calendar, self.tz),
                resolve_by=add_duration(at, rule.resolve_within, calendar, self.tz),
                sla_policy_version=policy.current_version,
                calendar_version=calendar.version,
                at=at,
            )

        return self._on_case(command, act)

    def _calendar(self) -> WorkingCalendar:
        if not self._exists(CALENDAR_ID):
            return WorkingCalendar()
        return self._load(HolidayCalendar, CALENDAR_ID, "calendar", "calendar", "dispatch").calendar

    @_handle.register
    def _(self, command: c.SignDispatch) -> Result:
        return self._on_case(command, lambda case, at: case.sign(command.actor, at))

    @_handle.register
    def _(self, command: c.ReturnDispatch) -> Result:
        return self._on_case(command, lambda case, at: case.return_dispatch(command.actor, command.reason, at))

    @_handle.register
    def _(self, command: c.EscalateCase) -> Result:
        return self._on_case(
            command, lambda case, at: case.escalate(command.actor, command.to_level, command.reason, at)
        )

    @_handle.register
    def _(self, command: c.ExtendDeadline) -> Result:
        return self._on_case(
            command, lambda case, at: case.extend_deadline(command.actor, command.resolve_by, command.reason, at)
        )

    @_handle.register
    def _(self, command: c.SuspendCase) -> Result:
        return self._on_case(command, lambda case, at: case.suspend(command.actor, command.reason, at))

    @_handle.register
    def _(self, command: c.ResumeCase) -> Result:
        return self._on_case(command, lambda case, at: case.resume(command.actor, at))

    @_handle.register
    def _(self, command: c.NoteProgress) -> Result:
        return self._on_case(command, lambda case, at: case.note(command.actor, command.note, at))

    @_handle.register
    def _(self, command: c.ResolveCase) -> Result:
        return self._on_case(
            command, lambda case, at: case.resolve(command.actor, command.result, command.evidence, at)
        )

    @_handle.register
    def _(self, command: c.VerifyResolution) -> Result:
        return self._on_case(command, lambda case, at: case.verify(command.actor, at))

    @_handle.register
    def _(self, command: c.RejectResolution) -> Result:
        return self._on_case(command, lambda case, at: case.reject_resolution(command.actor, command.reason, at))

    @_handle.register
    def _(self, command: c.CloseCase) -> Result:
        return self._on_case(command, lambda case, at: case.close(command.actor, at))

    @_handle.register
    def _(self, command: c.RecordFeedback) -> Result:
        return self._on_case(
            command,
            lambda case, at: case.record_feedback(command.actor, command.satisfaction, command.resolved, at),
        )

    @_handle.register
    def _(self, command: c.ReopenCase) -> Result:
        return self._on_case(command, lambda case, at: case.reopen(command.actor, command.reason, at))

    # -- patrol -----------------------------------------------------------------

    def _patrol(self, number: str, command: str) -> Patrol:
        return self._load(Patrol, patrol_id(number), "patrol", number, command)

    @_handle.register
    def _(self, command: c.StartPatrol) -> Result:
        at = self._when(command)
        self._load(Worker, worker_id(command.worker), "worker", command.worker, command.command)
        grid = self._grid(command.grid, command.command)
        assert grid.parent is not None
        community = self._load(OrgUnit, org_unit_id(grid.parent), "community", grid.parent, command.command)
        day = at.astimezone(self.tz).date()
        patrol = self._create_numbered(
            self.settings.patrol_prefix,
            day,
            patrol_id,
            lambda number: Patrol.start(
                patrol_number=number,
                worker=command.worker,
                grid=grid.code,
                community=community.code,
                street=community.parent or "",
                actor=command.actor,
                at=at,
            ),
        )
        return {"patrol_number": patrol.patrol_number, "state": patrol.state.value}

    def _on_patrol(self, command: c.PatrolCommand, act: Callable[[Patrol, datetime], None]) -> Result:
        at = self._when(command)
        patrol = self._patrol(command.patrol_number, command.command)
        act(patrol, at)
        self._save(patrol)
        return {"patrol_number": patrol.patrol_number, "state": patrol.state.value}

    @_handle.register
    def _(self, command: c.LogCheckpoint) -> Result:
        return self._on_patrol(
            command,
            lambda patrol, at: patrol.log_checkpoint(
                command.actor, command.kind, command.target, command.notes, command.elderly_visit, at
            ),
        )

    @_handle.register
    def _(self, command: c.EndPatrol) -> Result:
        return self._on_patrol(command, lambda patrol, at: patrol.end(command.actor, command.distance_m, at))

    @_handle.register
    def _(self, command: c.ReportHazard) -> Result:
        patrol = self._patrol(command.patrol_number, command.command)
        if command.actor.role is Role.GRID_WORKER and command.actor.id != patrol.worker:
            raise CommandRefused(
                subject=f"patrol {patrol.patrol_number}",
                state=patrol.state.value,
                command=command.command,
                rule="PatrolIsLoggedByItsWorker",
                reason=f"the patrol is {patrol.worker}'s, not {command.actor.id}'s",
            )
        return self._report(command, channel=Channel.PATROL, grid_code=patrol.grid, patrol_number=patrol.patrol_number)

    # -- registry ---------------------------------------------------------------

    def _fresh(self, aggregate_id: UUID, kind: str, code: str, command: str) -> None:
        if self._exists(aggregate_id):
            raise AlreadyExists(kind, code, command=command)

    def _save_new(self, aggregate: Aggregate, kind: str, code: str, command: str) -> None:
        try:
            self._save(aggregate)
        except ConcurrentChange:
            raise AlreadyExists(kind, code, command=command) from None

    @_handle.register
    def _(self, command: c.CreateOrgUnit) -> Result:
        at = self._when(command)
        self._fresh(org_unit_id(command.code), command.kind.value, command.code, command.command)
        parent = (
            self._load(OrgUnit, org_unit_id(command.parent), "org unit", command.parent, command.command)
            if command.parent
            else None
        )
        unit = OrgUnit.create(
            code=command.code,
            kind=command.kind,
            name=command.name,
            name_en=command.name_en,
            parent=parent,
            grid_kind=command.grid_kind,
            households=command.households,
            population=command.population,
            elderly=command.elderly,
            actor=command.actor,
            at=at,
        )
        self._save_new(unit, command.kind.value, command.code, command.command)
        return {"code": unit.code, "kind": unit.kind.value}

    @_handle.register
    def _(self, command: c.UpdateGridFigures) -> Result:
        at = self._when(command)
        grid = self._grid(command.grid, command.command)
        grid.update_figures(command.actor, command.households, command.population, command.elderly, at)
        self._save(grid)
        return {"code": grid.code, "households": grid.households, "population": grid.population}

    @_handle.register
    def _(self, command: c.AppointGridLeader) -> Result:
        at = self._when(command)
        grid = self._grid(command.grid, command.command)
        self._load(Worker, worker_id(command.worker), "worker", command.worker, command.command)
        grid.appoint_leader(command.actor, command.worker, at)
        self._save(grid)
        return {"code": grid.code, "leader": command.worker}

    @_handle.register
    def _(self, command: c.RegisterWorker) -> Result:
        at = self._when(command)
        self._fresh(worker_id(command.code), "worker", command.code, command.command)
        if command.department is not None:
            unit = self._load(
                OrgUnit, org_unit_id(command.department), "department", command.department, command.command
            )
            if unit.kind is not OrgKind.DEPARTMENT:
                raise UnknownReference("department", command.department, command=command.command)
        worker = Worker.register(
            code=command.code,
            name=command.name,
            kind=command.kind,
            department=command.department,
            actor=command.actor,
            at=at,
        )
        self._save_new(worker, "worker", command.code, command.command)
        return {"code": worker.code, "kind": worker.kind.value}

    @_handle.register
    def _(self, command: c.AssignWorker) -> Result:
        at = self._when(command)
        worker = self._load(Worker, worker_id(command.worker), "worker", command.worker, command.command)
        self._grid(command.grid, command.command)
        worker.assign(command.actor, command.grid, command.start, at)
        self._save(worker)
        return {"code": worker.code, "grids": sorted(worker.assignments)}

    @_handle.register
    def _(self, command: c.UnassignWorker) -> Result:
        at = self._when(command)
        worker = self._load(Worker, worker_id(command.worker), "worker", command.worker, command.command)
        worker.unassign(command.actor, command.grid, command.end, at)
        self._save(worker)
        return {"code": worker.code, "grids": sorted(worker.assignments)}

    @_handle.register
    def _(self, command: c.DefineCategory) -> Result:
        at = self._when(command)
        self._fresh(category_id(command.code), "category", command.code, command.command)
        if command.default_unit != "grid":
            unit = self._load(
                OrgUnit, org_unit_id(command.default_unit), "department", command.default_unit, command.command
            )
            if unit.kind is not OrgKind.DEPARTMENT:
                raise UnknownReference("department", command.default_unit, command=command.command)
        category = Category.define(
            code=command.code,
            group=command.group,
            group_name=command.group_name,
            group_name_en=command.group_name_en,
            name=command.name,
            name_en=command.name_en,
            default_unit=command.default_unit,
            sla_class=command.sla_class,
            actor=command.actor,
            at=at,
        )
        self._save_new(category, "category", command.code, command.command)
        return {"code": category.code, "sla_class": category.sla_class}

    @_handle.register
    def _(self, command: c.PublishSlaPolicy) -> Result:
        at = self._when(command)
        if self._exists(SLA_POLICY_ID):
            policy = self._load(SlaPolicy, SLA_POLICY_ID, "SLA policy", "sla", command.command)
        else:
            policy = SlaPolicy.start(command.actor, at)
        policy.publish(command.actor, command.version, command.rules, at)
        self._save(policy)
        return {"sla_policy_version": policy.current_version}

    @_handle.register
    def _(self, command: c.PublishCalendar) -> Result:
        at = self._when(command)
        if self._exists(CALENDAR_ID):
            calendar = self._load(HolidayCalendar, CALENDAR_ID, "calendar", "calendar", command.command)
        else:
            calendar = HolidayCalendar.start(command.actor, at)
        calendar.publish(command.actor, command.version, command.holidays, command.workdays, at)
        self._save(calendar)
        return {"calendar_version": calendar.calendar.version}

    # -- reading ----------------------------------------------------------------

    def case(self, number: str) -> Case:
        """The case as it stands now (its own number, not followed to a master)."""
        return self._case(number, "case.show")

    def worker_registered(self, code: str) -> bool:
        """Whether a worker with this code was ever registered (in the store or in the batch under way)."""
        return self._exists(worker_id(code))

    def resolve_number(self, number: str) -> str:
        """The number of the case a citizen's number leads to, following merges."""
        seen = {number}
        case = self._case(number, "case.lookup")
        while case.merged_into is not None and case.merged_into not in seen:
            seen.add(case.merged_into)
            case = self._case(case.merged_into, "case.lookup")
        return case.case_number

    def history(self, number: str, *, personal_data: bool = False) -> list[Result]:
        """Every event of a case, oldest first: type, actor, both clocks and what it carried.

        The reporter's personal data is masked unless ``personal_data`` is asked for.
        """
        self._case(number, "case.history")  # a clear error for an unknown number
        rows = []
        for domain_event in self.store.events.get(case_id(number)):
            data = cast("Any", domain_event).model_dump(mode="json")
            rows.append(
                {
                    "version": data.pop("originator_version"),
                    "event": type(domain_event).__name__,
                    "actor": data.pop("actor"),
                    "occurred_at": data.pop("occurred_at"),
                    "recorded_at": data.pop("timestamp"),
                    "data": {k: v for k, v in data.items() if k not in {"originator_id", "originator_topic"}},
                }
            )
            reporter = rows[-1]["data"].get("reporter")
            if reporter and not personal_data:
                rows[-1]["data"]["reporter"] = mask_contact(reporter)
        return rows


def replay_events(aggregate: Any, events: Iterable[Any]) -> Any:
    """Rebuild an aggregate from its events.

    The library's default projector asserts each event against a run-time
    Protocol, which costs a quarter of a command's time; our events are all
    the aggregate's own, so we apply them directly.
    """
    for domain_event in events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate


def mask_contact(contact: dict[str, str | None]) -> dict[str, str | None]:
    """Personal data as people without the right to it see it: 王*, 139****5678, 3702**********1234."""

    def mask(value: str | None, keep_start: int, keep_end: int) -> str | None:
        if not value:
            return value
        if len(value) <= keep_start + keep_end:
            return value[:1] + "*" * (len(value) - 1)
        return value[:keep_start] + "*" * (len(value) - keep_start - keep_end) + value[len(value) - keep_end :]

    return {
        "name": mask(contact.get("name"), 1, 0),
        "phone": mask(contact.get("phone"), 3, 4),
        "id_number": mask(contact.get("id_number"), 4, 4),
    }
