"""Command handlers of the case (Case): intake, dispatch, handling, verification, closure, feedback."""

from __future__ import annotations

from typing import TYPE_CHECKING

from domain import commands as c
from domain.base import Role
from domain.case import Case, CaseState, Channel, HandlerKind, case_id
from domain.errors import AlreadyExists, CommandRefused, UnknownReference
from domain.numbers import old_number_problem
from domain.registry import (
    CALENDAR_ID,
    SLA_POLICY_ID,
    Category,
    HolidayCalendar,
    SlaPolicy,
    Worker,
    category_id,
    worker_id,
)
from domain.sla import WorkingCalendar, add_duration, rule_for
from service.errors import BadInput, ConcurrentChange
from service.handling import Handlers, Handling, Result

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

handlers = Handlers()


def load_case(handling: Handling, number: str, command: str) -> Case:
    """A case by its own number."""
    return handling.load(Case, case_id(number), "case", number, command)


#: Who may keep a case's old number (a migration from an older system): never intake.
MIGRATORS = frozenset({Role.SYSTEM, Role.ADMIN})


def report(handling: Handling, command: c.ReportCase | c.ReportHazard, *, channel: Channel, grid_code: str,
           patrol_number: str | None, at: datetime | None = None, given: str | None = None) -> Result:  # fmt: skip
    """File a new case under the next number of its day (or, ``given``, the old number a migration keeps)."""
    at = at or handling.when(command)
    if getattr(command, "external", None) is not None and command.actor.role not in MIGRATORS:
        raise CommandRefused(
            subject=f"a case in grid {grid_code}",
            state="new",
            command="report",
            rule="OnlyAMigrationKeepsAnExternalReference",
            reason=f"role {command.actor.role.value} may not file a case as another system's; an import does",
        )
    handling.check_works_grid(
        command.actor, grid_code, at, subject=f"a case in grid {grid_code}", state="new", command=command.command
    )
    handling.load(Category, category_id(command.category), "category", command.category, command.command)
    grid, community, street = handling.place(grid_code, command.command)

    def make(number: str) -> Case:
        return Case.report(
            case_number=number,
            channel=channel,
            category=command.category,
            grid=grid,
            community=community,
            street=street,
            location=command.location,
            description=command.description,
            reporter=getattr(command, "reporter", None),
            urgency=command.urgency,
            patrol_id=patrol_number,
            actor=command.actor,
            at=at,
            external=getattr(command, "external", None),
        )

    if given is not None:
        if handling.work.exists(case_id(given)):
            raise AlreadyExists("case", given, command=command.command)
        case = make(given)
        try:
            handling.work.save(case)
        except ConcurrentChange:
            raise AlreadyExists("case", given, command=command.command) from None
    else:
        day = at.astimezone(handling.tz).date()
        case = handling.numbers.create(handling.case_prefix, day, case_id, make)
    return {"case_number": case.case_number, "state": case.state.value}


@handlers.of(c.ReportCase)
def _report(handling: Handling, command: c.ReportCase) -> Result:
    return report(handling, command, channel=command.channel, grid_code=command.grid, patrol_number=None)


def migrate(handling: Handling, command: c.ReportCase, case_number: str) -> Result:
    """File a case an older system numbered under its old number (a migration, not intake; docs/decisions.md).

    Only the ``system`` or ``admin`` role (OnlyAMigrationKeepsAnOldNumber); the number must be one this engine
    could have issued (the district's prefix, a real day in the window, a sequence from 000001) and unused.
    """
    if command.actor.role not in MIGRATORS:
        raise CommandRefused(
            subject=f"case {case_number}",
            state="new",
            command="migrate",
            rule="OnlyAMigrationKeepsAnOldNumber",
            reason=f"role {command.actor.role.value} may not keep an old case number; intake gets the next number",
        )
    problem = old_number_problem(case_number, handling.case_prefix)
    if problem is not None:
        msg = f"case_number: {problem}"
        raise BadInput(msg)
    return report(
        handling, command, channel=command.channel, grid_code=command.grid, patrol_number=None, given=case_number
    )


def on_case(handling: Handling, command: c.CaseCommand, act: Callable[[Case, datetime], None]) -> Result:
    """Load the case, let the domain decide, save what it decided."""
    at = handling.when(command)
    case = load_case(handling, command.case_number, command.command)
    verb = command.command.removeprefix("case.")
    handling.check_works_grid(command.actor, case.grid, at, subject=f"case {case.case_number}",
                              state=case.state.value, command=verb)  # fmt: skip
    case.check_department_scope(verb, command.actor)
    try:
        act(case, at)
    except UnknownReference as error:
        # Name the case and its state too, like every other refusal of a case command.
        raise CommandRefused(
            subject=f"case {case.case_number}",
            state=case.state.value,
            command=verb,
            rule=error.rule,
            reason=f"unknown {error.kind} {error.code!r}",
        ) from None
    handling.work.save(case)
    return {"case_number": case.case_number, "state": case.state.value}


@handlers.of(c.AcceptCase)
def _accept(handling: Handling, command: c.AcceptCase) -> Result:
    return on_case(handling, command, lambda case, at: case.accept(command.actor, command.level, at))


@handlers.of(c.RejectCase)
def _reject(handling: Handling, command: c.RejectCase) -> Result:
    return on_case(handling, command, lambda case, at: case.reject(command.actor, command.reason, at))


@handlers.of(c.MergeDuplicate)
def _merge(handling: Handling, command: c.MergeDuplicate) -> Result:
    def act(case: Case, at: datetime) -> None:
        master = load_case(handling, command.master_case_number, command.command)
        if master.state is CaseState.MERGED or not master.is_open:
            raise CommandRefused(
                subject=f"case {case.case_number}",
                state=case.state.value,
                command="merge",
                rule="MasterCaseMustBeOpen",
                reason=f"master case {master.case_number} is {master.state.value}",
            )
        case.merge_into(command.actor, master.case_number, at)

    return on_case(handling, command, act)


@handlers.of(c.DispatchCase)
def _dispatch(handling: Handling, command: c.DispatchCase) -> Result:
    def act(case: Case, at: datetime) -> None:
        handler = command.handler
        if handler.kind is HandlerKind.WORKER:
            worker = handling.load(Worker, worker_id(handler.id), "worker", handler.id, command.command)
            day = at.astimezone(handling.tz).date()
            if not worker.works_grid(case.grid, day):
                raise CommandRefused(
                    subject=f"case {case.case_number}",
                    state=case.state.value,
                    command="dispatch",
                    rule="CaseIsDispatchedToAWorkerOfItsGrid",
                    reason=f"worker {handler.id} does not work grid {case.grid} on {day.isoformat()}",
                )
        else:
            handling.department(handler.id, command.command)
        if command.resolve_by is not None:  # decided elsewhere (an import): no policy asked, versions 0
            if command.actor.role not in MIGRATORS:  # else a dispatcher could give any deadline it likes
                raise CommandRefused(
                    subject=f"case {case.case_number}",
                    state=case.state.value,
                    command="dispatch",
                    rule="OnlyAMigrationGivesItsOwnDeadline",
                    reason=f"role {command.actor.role.value} may not set a deadline; the SLA policy sets it",
                )
            case.dispatch(command.actor, handler, sign_by=command.resolve_by, resolve_by=command.resolve_by,
                          sla_policy_version=0, calendar_version=0, at=at)  # fmt: skip
            return
        category = handling.load(Category, category_id(case.category), "category", case.category, command.command)
        policy = handling.load(SlaPolicy, SLA_POLICY_ID, "SLA policy", "sla", command.command)
        rule = rule_for(policy.rules, category.sla_class, case.urgency.value)
        if rule is None:
            raise UnknownReference("SLA rule", f"{category.sla_class}/{case.urgency.value}", command=command.command)
        calendar = _calendar(handling)
        case.dispatch(
            command.actor,
            handler,
            sign_by=add_duration(at, rule.sign_within, calendar, handling.tz),
            resolve_by=add_duration(at, rule.resolve_within, calendar, handling.tz),
            sla_policy_version=policy.current_version,
            calendar_version=calendar.version,
            at=at,
        )

    return on_case(handling, command, act)


def _calendar(handling: Handling) -> WorkingCalendar:
    if not handling.work.exists(CALENDAR_ID):
        return WorkingCalendar()
    return handling.load(HolidayCalendar, CALENDAR_ID, "calendar", "calendar", "dispatch").calendar


@handlers.of(c.SignDispatch)
def _sign(handling: Handling, command: c.SignDispatch) -> Result:
    return on_case(handling, command, lambda case, at: case.sign(command.actor, at))


@handlers.of(c.ReturnDispatch)
def _return(handling: Handling, command: c.ReturnDispatch) -> Result:
    return on_case(handling, command, lambda case, at: case.return_dispatch(command.actor, command.reason, at))


@handlers.of(c.EscalateCase)
def _escalate(handling: Handling, command: c.EscalateCase) -> Result:
    return on_case(
        handling, command, lambda case, at: case.escalate(command.actor, command.to_level, command.reason, at)
    )


@handlers.of(c.ExtendDeadline)
def _extend(handling: Handling, command: c.ExtendDeadline) -> Result:
    return on_case(
        handling, command, lambda case, at: case.extend_deadline(command.actor, command.resolve_by, command.reason, at)
    )


@handlers.of(c.SuspendCase)
def _suspend(handling: Handling, command: c.SuspendCase) -> Result:
    return on_case(handling, command, lambda case, at: case.suspend(command.actor, command.reason, at))


@handlers.of(c.ResumeCase)
def _resume(handling: Handling, command: c.ResumeCase) -> Result:
    return on_case(handling, command, lambda case, at: case.resume(command.actor, at))


@handlers.of(c.NoteProgress)
def _note(handling: Handling, command: c.NoteProgress) -> Result:
    return on_case(handling, command, lambda case, at: case.note(command.actor, command.note, at))


@handlers.of(c.ResolveCase)
def _resolve(handling: Handling, command: c.ResolveCase) -> Result:
    return on_case(
        handling, command, lambda case, at: case.resolve(command.actor, command.result, command.evidence, at)
    )


@handlers.of(c.VerifyResolution)
def _verify(handling: Handling, command: c.VerifyResolution) -> Result:
    return on_case(handling, command, lambda case, at: case.verify(command.actor, at))


@handlers.of(c.RejectResolution)
def _reject_resolution(handling: Handling, command: c.RejectResolution) -> Result:
    return on_case(handling, command, lambda case, at: case.reject_resolution(command.actor, command.reason, at))


@handlers.of(c.CloseCase)
def _close(handling: Handling, command: c.CloseCase) -> Result:
    return on_case(handling, command, lambda case, at: case.close(command.actor, at))


@handlers.of(c.RecordFeedback)
def _feedback(handling: Handling, command: c.RecordFeedback) -> Result:
    return on_case(
        handling,
        command,
        lambda case, at: case.record_feedback(command.actor, command.satisfaction, command.resolved, at),
    )


@handlers.of(c.ReopenCase)
def _reopen(handling: Handling, command: c.ReopenCase) -> Result:
    return on_case(handling, command, lambda case, at: case.reopen(command.actor, command.reason, at))
