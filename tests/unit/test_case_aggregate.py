from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from domain.base import ActorRef, Aggregate, Role
from domain.case import (
    CALLBACK_POLICY,
    Case,
    CaseState,
    Channel,
    HandlerKind,
    HandlerRef,
    Level,
    Location,
    ReporterContact,
    Satisfaction,
    Urgency,
    case_id,
)
from domain.errors import CommandRefused
from domain.patrol import CheckpointKind, Patrol, PatrolState, patrol_id
from domain.registry import (
    CALENDAR_ID,
    SLA_POLICY_ID,
    Category,
    GridKind,
    HolidayCalendar,
    OrgKind,
    OrgUnit,
    SlaPolicy,
    Worker,
    WorkerKind,
    org_unit_id,
    worker_id,
)
from domain.sla import SlaDuration, SlaRule, WorkingCalendar, add_duration, default_policy_rules, rule_for

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2021, 6, 1, 1, 0, tzinfo=UTC)  # Tuesday 09:00 in Qingdao
NUMBER = "SN-20210601-000001"
MASTER = "SN-20210601-000002"

OPERATOR = ActorRef(id="op-1", role=Role.INTAKE_OPERATOR)
DISPATCHER = ActorRef(id="disp-1", role=Role.DISPATCHER)
ADMIN = ActorRef(id="admin", role=Role.ADMIN)
SYSTEM = ActorRef(id="policy:overdue", role=Role.SYSTEM)
W001 = ActorRef(id="W001", role=Role.GRID_WORKER)
W002 = ActorRef(id="W002", role=Role.GRID_WORKER)
CLERK = ActorRef(id="clerk-1", role=Role.DEPARTMENT_HANDLER, unit="D-CG")
OTHER_CLERK = ActorRef(id="clerk-1", role=Role.DEPARTMENT_HANDLER, unit="D-SW")
UNITLESS_CLERK = ActorRef(id="clerk-2", role=Role.DEPARTMENT_HANDLER)
CALLBACK = ActorRef(id="cb-1", role=Role.CALLBACK_OPERATOR)
AUDITOR = ActorRef(id="aud-1", role=Role.AUDITOR)

TO_W001 = HandlerRef(kind=HandlerKind.WORKER, id="W001")
TO_DCG = HandlerRef(kind=HandlerKind.DEPARTMENT, id="D-CG")


# -- given / when / then -------------------------------------------------------------------------


def later(case: Case, minutes: int = 10) -> datetime:
    """A moment after the case's last event, so every step of a scenario moves time forward."""
    return case.last_occurred_at + timedelta(minutes=minutes)


def reported(**overrides: Any) -> Case:
    fields: dict[str, Any] = {
        "case_number": NUMBER,
        "channel": Channel.HOTLINE,
        "category": "facility.manhole",
        "grid": "SN01-C01-G001",
        "community": "SN01-C01",
        "street": "SN01",
        "location": Location(address="永嘉路12号", lat=36.06, lon=120.37),
        "description": "  井盖缺失 manhole cover missing  ",
        "reporter": ReporterContact(name="李四", phone="13800000000"),
        "urgency": Urgency.NORMAL,
        "patrol_id": None,
        "actor": OPERATOR,
        "at": T0,
    }
    fields.update(overrides)
    return Case.report(**fields)


def given(*steps: Callable[[Case], None]) -> Case:
    """A case reported at T0 and taken through ``steps``; its past events are already collected."""
    case = reported()
    for step in steps:
        step(case)
    case.collect_events()
    return case


def when(case: Case, action: Callable[[Case], None]) -> list[Any]:
    """Run one command; return the events it decided (numbered right after the case's version)."""
    version = case.version
    action(case)
    events = list(case.collect_events())
    assert [e.originator_version for e in events] == list(range(version + 1, version + 1 + len(events)))
    assert all(e.originator_id == case.id for e in events)
    assert case.version == version + len(events)
    return events


def then(events: Sequence[Any], *expected: str | tuple[str, dict[str, Any]]) -> None:
    """The events are of these types, in order, and carry these field values."""
    wanted = [(e, {}) if isinstance(e, str) else e for e in expected]
    assert [type(e).__name__ for e in events] == [name for name, _ in wanted]
    for event, (name, fields) in zip(events, wanted, strict=True):
        for key, value in fields.items():
            assert getattr(event, key) == value, f"{name}.{key}: {getattr(event, key)!r} != {value!r}"


def snapshot(aggregate: Aggregate) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def refused(case: Case, action: Callable[[Case], None], *, command: str, rule: str | None = None) -> CommandRefused:
    """The command is refused with a sentence naming case, state and command; nothing changes."""
    before = snapshot(case)
    state, version = case.state, case.version
    assert case.pending_events == []
    with pytest.raises(CommandRefused) as info:
        action(case)
    error = info.value
    message = str(error)
    assert NUMBER in message
    assert case.case_number in message
    assert state.value in message
    assert command in message
    assert error.subject == f"case {case.case_number}"
    assert error.state == state.value
    assert error.command == command
    if rule is not None:
        assert error.rule == rule
        assert message.startswith(f"{rule}: ")
    assert case.pending_events == []
    assert case.state is state
    assert case.version == version
    assert snapshot(case) == before
    return error


# -- steps (each at a moment after the case's last event) ----------------------------------------


def accept(level: Level = Level.COMMUNITY, actor: ActorRef = DISPATCHER) -> Callable[[Case], None]:
    return lambda c: c.accept(actor, level, later(c))


def reject() -> Callable[[Case], None]:
    return lambda c: c.reject(DISPATCHER, "out of scope", later(c))


def merge(master: str = MASTER) -> Callable[[Case], None]:
    return lambda c: c.merge_into(OPERATOR, master, later(c))


def dispatch(handler: HandlerRef = TO_W001) -> Callable[[Case], None]:
    def step(c: Case) -> None:
        at = later(c)
        c.dispatch(DISPATCHER, handler, at + timedelta(hours=2), at + timedelta(hours=24), 1, 0, at)

    return step


def sign(actor: ActorRef = W001) -> Callable[[Case], None]:
    return lambda c: c.sign(actor, later(c))


def return_(actor: ActorRef = W001) -> Callable[[Case], None]:
    return lambda c: c.return_dispatch(actor, "not ours", later(c))


def escalate(to: Level = Level.STREET, actor: ActorRef = DISPATCHER) -> Callable[[Case], None]:
    return lambda c: c.escalate(actor, to, "too big for the community", later(c))


def suspend() -> Callable[[Case], None]:
    return lambda c: c.suspend(DISPATCHER, "waiting for spare parts", later(c))


def resume(minutes: int = 10) -> Callable[[Case], None]:
    return lambda c: c.resume(DISPATCHER, later(c, minutes))


def resolve(actor: ActorRef = W001) -> Callable[[Case], None]:
    return lambda c: c.resolve(actor, "cover replaced", ("photo-1.jpg",), later(c))


def verify(actor: ActorRef = W002) -> Callable[[Case], None]:
    return lambda c: c.verify(actor, later(c))


def rework(actor: ActorRef = W002) -> Callable[[Case], None]:
    return lambda c: c.reject_resolution(actor, "cover still loose", later(c))


def close() -> Callable[[Case], None]:
    return lambda c: c.close(DISPATCHER, later(c))


def feedback(satisfaction: Satisfaction = Satisfaction.SATISFIED, resolved: bool = True) -> Callable[[Case], None]:
    return lambda c: c.record_feedback(CALLBACK, satisfaction, resolved, later(c))


def reopen() -> Callable[[Case], None]:
    return lambda c: c.reopen(DISPATCHER, "the citizen called again", later(c))


#: How to reach every state, with the case dispatched to grid worker W001.
PATHS: dict[CaseState, tuple[Callable[[Case], None], ...]] = {
    CaseState.REPORTED: (),
    CaseState.ACCEPTED: (accept(),),
    CaseState.REJECTED: (reject(),),
    CaseState.MERGED: (merge(),),
    CaseState.DISPATCHED: (accept(), dispatch()),
    CaseState.IN_PROGRESS: (accept(), dispatch(), sign()),
    CaseState.SUSPENDED: (accept(), dispatch(), sign(), suspend()),
    CaseState.RESOLVED: (accept(), dispatch(), sign(), resolve()),
    CaseState.VERIFIED: (accept(), dispatch(), sign(), resolve(), verify()),
    CaseState.CLOSED: (accept(), dispatch(), sign(), resolve(), verify(), close()),
}


def in_state(state: CaseState) -> Case:
    case = given(*PATHS[state])
    assert case.state is state
    return case


# -- transitions ---------------------------------------------------------------------------------


def test_report_registers_the_case_under_its_number() -> None:
    case = reported()
    events = case.collect_events()
    then(
        events,
        (
            "CaseReported",
            {
                "case_number": NUMBER,
                "originator_id": case_id(NUMBER),
                "originator_version": 1,
                "channel": Channel.HOTLINE,
                "category": "facility.manhole",
                "grid": "SN01-C01-G001",
                "community": "SN01-C01",
                "street": "SN01",
                "description": "井盖缺失 manhole cover missing",
                "reporter": ReporterContact(name="李四", phone="13800000000"),
                "urgency": Urgency.NORMAL,
                "patrol_id": None,
                "actor": OPERATOR,
                "occurred_at": T0,
            },
        ),
    )
    assert case.id == case_id(NUMBER)
    assert case.state is CaseState.REPORTED
    assert case.level is None
    assert case.handler is None
    assert case.version == 1
    assert case.is_open


def test_a_patrol_finding_is_reported_with_its_patrol() -> None:
    case = reported(channel=Channel.PATROL, patrol_id="PT-20210601-000001", actor=W001, reporter=None)
    then(case.collect_events(), ("CaseReported", {"channel": Channel.PATROL, "patrol_id": "PT-20210601-000001"}))
    assert not case.has_reporter_contact


@pytest.mark.parametrize("actor", [OPERATOR, W001, DISPATCHER, ADMIN, SYSTEM], ids=lambda a: a.role.value)
def test_intake_roles_may_report(actor: ActorRef) -> None:
    assert reported(actor=actor).state is CaseState.REPORTED


def test_accept() -> None:
    case = given()
    then(when(case, accept(Level.STREET)), ("CaseAccepted", {"level": Level.STREET, "actor": DISPATCHER}))
    assert case.state is CaseState.ACCEPTED
    assert case.level is Level.STREET


def test_reject() -> None:
    case = given()
    then(
        when(case, lambda c: c.reject(DISPATCHER, "  insufficient information ", later(c))),
        ("CaseRejected", {"reason": "insufficient information"}),
    )
    assert case.state is CaseState.REJECTED
    assert not case.is_open


def test_merge_into_a_master() -> None:
    case = given()
    then(when(case, merge()), ("DuplicateMerged", {"master_case_number": MASTER, "actor": OPERATOR}))
    assert case.state is CaseState.MERGED
    assert case.merged_into == MASTER
    assert not case.is_open


@pytest.mark.parametrize("handler", [TO_W001, TO_DCG], ids=str)
def test_dispatch_records_handler_level_deadlines_and_policy_versions(handler: HandlerRef) -> None:
    case = given(accept(Level.STREET))
    at = later(case)
    events = when(
        case, lambda c: c.dispatch(DISPATCHER, handler, at + timedelta(hours=2), at + timedelta(days=5), 3, 7, at)
    )
    then(
        events,
        (
            "CaseDispatched",
            {
                "handler": handler,
                "level": Level.STREET,
                "sign_by": at + timedelta(hours=2),
                "resolve_by": at + timedelta(days=5),
                "sla_policy_version": 3,
                "calendar_version": 7,
                "occurred_at": at,
            },
        ),
    )
    assert case.state is CaseState.DISPATCHED
    assert case.handler == handler
    assert case.resolve_by == at + timedelta(days=5)
    assert case.sign_by == at + timedelta(hours=2)
    assert case.sla_policy_version == 3


def test_the_grid_worker_handler_signs() -> None:
    case = given(accept(), dispatch(TO_W001))
    then(when(case, sign(W001)), ("DispatchSigned", {"actor": W001}))
    assert case.state is CaseState.IN_PROGRESS


@pytest.mark.parametrize("clerk", [CLERK, CLERK.model_copy(update={"id": "clerk-9"})], ids=["clerk-1", "clerk-9"])
def test_anyone_on_the_departments_desk_signs_for_a_referral(clerk: ActorRef) -> None:
    case = given(accept(), dispatch(TO_DCG))
    then(when(case, sign(clerk)), ("DispatchSigned", {"actor": clerk}))
    assert case.state is CaseState.IN_PROGRESS


def test_return_sends_the_case_back_to_the_centre() -> None:
    case = given(accept(), dispatch(TO_DCG))
    then(
        when(case, lambda c: c.return_dispatch(CLERK, " not ours ", later(c))),
        ("DispatchReturned", {"reason": "not ours", "actor": CLERK}),
    )
    assert case.state is CaseState.ACCEPTED
    assert case.handler is None
    assert case.returns == 1
    then(when(case, dispatch(TO_W001)), "CaseDispatched")
    then(when(case, return_(W001)), "DispatchReturned")
    assert case.returns == 2


@pytest.mark.parametrize(
    "path",
    [PATHS[CaseState.ACCEPTED], PATHS[CaseState.DISPATCHED], PATHS[CaseState.IN_PROGRESS]],
    ids=["accepted", "dispatched", "in_progress"],
)
def test_escalate_moves_the_case_up_and_back_to_the_centre(path: tuple[Callable[[Case], None], ...]) -> None:
    case = given(*path)
    then(
        when(case, escalate(Level.STREET)),
        (
            "CaseEscalated",
            {"from_level": Level.COMMUNITY, "to_level": Level.STREET, "reason": "too big for the community"},
        ),
    )
    assert (case.state, case.level, case.handler, case.escalations) == (CaseState.ACCEPTED, Level.STREET, None, 1)
    then(when(case, escalate(Level.DISTRICT)), ("CaseEscalated", {"from_level": Level.STREET}))
    assert (case.state, case.level, case.escalations) == (CaseState.ACCEPTED, Level.DISTRICT, 2)


def test_the_overdue_policy_may_escalate() -> None:
    case = given(*PATHS[CaseState.DISPATCHED])
    then(when(case, escalate(Level.DISTRICT, actor=SYSTEM)), ("CaseEscalated", {"actor": SYSTEM}))
    assert case.level is Level.DISTRICT


def test_extend_moves_resolve_by_later() -> None:
    case = given(*PATHS[CaseState.IN_PROGRESS])
    assert case.resolve_by is not None
    new = case.resolve_by + timedelta(days=3)
    then(
        when(case, lambda c: c.extend_deadline(DISPATCHER, new, " parts on order ", later(c))),
        ("DeadlineExtended", {"resolve_by": new, "reason": "parts on order"}),
    )
    assert case.resolve_by == new
    assert case.state is CaseState.IN_PROGRESS


def test_suspend_and_resume_record_the_time_parked() -> None:
    case = given(*PATHS[CaseState.IN_PROGRESS])
    then(when(case, suspend()), ("CaseSuspended", {"reason": "waiting for spare parts"}))
    assert (case.state, case.suspended_since) == (CaseState.SUSPENDED, case.last_occurred_at)
    then(when(case, resume(minutes=90)), ("CaseResumed", {"suspended_seconds": 90 * 60}))
    assert (case.state, case.suspended_seconds) == (CaseState.IN_PROGRESS, 90 * 60)
    then(when(case, suspend()), "CaseSuspended")
    then(when(case, resume(minutes=30)), ("CaseResumed", {"suspended_seconds": 30 * 60}))
    assert case.suspended_seconds == 120 * 60
    assert case.suspended_since is None


OPEN = [s for s in CaseState if s not in {CaseState.REJECTED, CaseState.MERGED, CaseState.CLOSED}]


@pytest.mark.parametrize("state", OPEN, ids=str)
def test_note_in_every_open_state_keeps_the_state(state: CaseState) -> None:
    case = in_state(state)
    then(
        when(case, lambda c: c.note(W002, " called the property office ", later(c))),
        ("ProgressNoted", {"note": "called the property office", "actor": W002}),
    )
    assert case.state is state


def test_resolve() -> None:
    case = given(*PATHS[CaseState.IN_PROGRESS])
    then(when(case, resolve()), ("CaseResolved", {"result": "cover replaced", "evidence": ("photo-1.jpg",)}))
    assert case.state is CaseState.RESOLVED
    assert case.resolved_by == TO_W001


def test_department_resolves_a_referral() -> None:
    case = given(accept(), dispatch(TO_DCG), sign(CLERK))
    then(when(case, resolve(CLERK.model_copy(update={"id": "clerk-7"}))), "CaseResolved")
    assert case.resolved_by == TO_DCG


def test_verify() -> None:
    case = given(*PATHS[CaseState.RESOLVED])
    then(when(case, verify(W002)), ("ResolutionVerified", {"actor": W002}))
    assert case.state is CaseState.VERIFIED


def test_rejected_resolution_goes_back_to_the_handler_for_rework() -> None:
    case = given(*PATHS[CaseState.RESOLVED])
    then(when(case, rework()), ("ResolutionRejected", {"reason": "cover still loose"}))
    assert case.state is CaseState.IN_PROGRESS
    assert case.handler == TO_W001
    then(when(case, resolve()), "CaseResolved")


def test_close() -> None:
    case = given(*PATHS[CaseState.VERIFIED])
    then(when(case, close()), ("CaseClosed", {"actor": DISPATCHER}))
    assert case.state is CaseState.CLOSED
    assert not case.is_open


@pytest.mark.parametrize(
    "satisfaction", [Satisfaction.SATISFIED, Satisfaction.BASICALLY_SATISFIED, Satisfaction.DISSATISFIED], ids=str
)
def test_feedback_resolved_keeps_the_case_closed(satisfaction: Satisfaction) -> None:
    case = in_state(CaseState.CLOSED)
    then(
        when(case, feedback(satisfaction, resolved=True)),
        ("CitizenFeedbackRecorded", {"satisfaction": satisfaction, "resolved": True, "actor": CALLBACK}),
    )
    assert case.state is CaseState.CLOSED
    assert case.feedback_recorded


@pytest.mark.parametrize("satisfaction", list(Satisfaction), ids=str)
def test_feedback_not_resolved_reopens_the_case_by_policy(satisfaction: Satisfaction) -> None:
    case = in_state(CaseState.CLOSED)
    at = later(case)
    events = when(case, lambda c: c.record_feedback(CALLBACK, satisfaction, False, at))
    then(
        events,
        ("CitizenFeedbackRecorded", {"satisfaction": satisfaction, "resolved": False, "actor": CALLBACK}),
        ("CaseReopened", {"actor": CALLBACK_POLICY, "occurred_at": at}),
    )
    assert CALLBACK_POLICY.role is Role.SYSTEM
    assert events[1].reason
    assert case.state is CaseState.ACCEPTED
    assert case.handler is None
    assert case.level is Level.COMMUNITY


def test_reopen() -> None:
    case = in_state(CaseState.CLOSED)
    then(when(case, reopen()), ("CaseReopened", {"reason": "the citizen called again", "actor": DISPATCHER}))
    assert case.state is CaseState.ACCEPTED
    assert case.handler is None


def test_a_reopened_case_runs_the_whole_lifecycle_again_with_a_new_callback() -> None:
    case = given(*PATHS[CaseState.CLOSED], feedback(Satisfaction.DISSATISFIED, resolved=False))
    assert (case.state, case.feedback_recorded) == (CaseState.ACCEPTED, True)
    for step in (dispatch(TO_DCG), sign(CLERK), resolve(CLERK), verify(), close()):
        when(case, step)
    assert case.state == CaseState.CLOSED
    assert not case.feedback_recorded
    then(when(case, feedback()), "CitizenFeedbackRecorded")


def test_a_case_dispatched_twice_takes_the_new_handler_and_deadlines() -> None:
    case = given(accept(), dispatch(TO_W001), return_(W001))
    when(case, dispatch(TO_DCG))
    assert case.handler == TO_DCG
    refused(case, sign(W001), command="sign", rule="OnlyTheCurrentHandlerMayDoThis")
    then(when(case, sign(CLERK)), "DispatchSigned")


# -- commands × states ---------------------------------------------------------------------------


def _extend(c: Case, at: datetime, actor: ActorRef) -> None:
    c.extend_deadline(actor, max(c.resolve_by or at, at) + timedelta(days=1), "more time", at)


#: Every case command, with the actor who may give it in the scenarios of PATHS.
ACTIONS: dict[str, tuple[Callable[[Case, datetime, ActorRef], None], ActorRef]] = {
    "accept": (lambda c, at, a: c.accept(a, Level.COMMUNITY, at), DISPATCHER),
    "reject": (lambda c, at, a: c.reject(a, "out of scope", at), DISPATCHER),
    "merge": (lambda c, at, a: c.merge_into(a, MASTER, at), OPERATOR),
    "dispatch": (
        lambda c, at, a: c.dispatch(a, TO_W001, at + timedelta(hours=2), at + timedelta(hours=24), 1, 0, at),
        DISPATCHER,
    ),
    "sign": (lambda c, at, a: c.sign(a, at), W001),
    "return": (lambda c, at, a: c.return_dispatch(a, "not ours", at), W001),
    "escalate": (lambda c, at, a: c.escalate(a, Level.DISTRICT, "too big", at), DISPATCHER),
    "extend": (_extend, DISPATCHER),
    "suspend": (lambda c, at, a: c.suspend(a, "parked", at), DISPATCHER),
    "resume": (lambda c, at, a: c.resume(a, at), DISPATCHER),
    "note": (lambda c, at, a: c.note(a, "called the resident", at), W001),
    "resolve": (lambda c, at, a: c.resolve(a, "fixed", (), at), W001),
    "verify": (lambda c, at, a: c.verify(a, at), W002),
    "reject-resolution": (lambda c, at, a: c.reject_resolution(a, "still broken", at), W002),
    "close": (lambda c, at, a: c.close(a, at), DISPATCHER),
    "feedback": (lambda c, at, a: c.record_feedback(a, Satisfaction.SATISFIED, True, at), CALLBACK),
    "reopen": (lambda c, at, a: c.reopen(a, "called again", at), DISPATCHER),
}

#: The lifecycle table of DESIGN.md, written out independently of domain/case.py:
#: command → (states it is allowed in, state it leads to; None keeps the state).
LIFECYCLE: dict[str, tuple[frozenset[CaseState], CaseState | None]] = {
    "accept": (frozenset({CaseState.REPORTED}), CaseState.ACCEPTED),
    "reject": (frozenset({CaseState.REPORTED}), CaseState.REJECTED),
    "merge": (frozenset({CaseState.REPORTED}), CaseState.MERGED),
    "dispatch": (frozenset({CaseState.ACCEPTED}), CaseState.DISPATCHED),
    "sign": (frozenset({CaseState.DISPATCHED}), CaseState.IN_PROGRESS),
    "return": (frozenset({CaseState.DISPATCHED}), CaseState.ACCEPTED),
    "escalate": (frozenset({CaseState.ACCEPTED, CaseState.DISPATCHED, CaseState.IN_PROGRESS}), CaseState.ACCEPTED),
    "extend": (frozenset({CaseState.IN_PROGRESS}), None),
    "suspend": (frozenset({CaseState.IN_PROGRESS}), CaseState.SUSPENDED),
    "resume": (frozenset({CaseState.SUSPENDED}), CaseState.IN_PROGRESS),
    "note": (frozenset(OPEN), None),
    "resolve": (frozenset({CaseState.IN_PROGRESS}), CaseState.RESOLVED),
    "verify": (frozenset({CaseState.RESOLVED}), CaseState.VERIFIED),
    "reject-resolution": (frozenset({CaseState.RESOLVED}), CaseState.IN_PROGRESS),
    "close": (frozenset({CaseState.VERIFIED}), CaseState.CLOSED),
    "feedback": (frozenset({CaseState.CLOSED}), None),
    "reopen": (frozenset({CaseState.CLOSED}), CaseState.ACCEPTED),
}

EVENT_OF = {
    "accept": "CaseAccepted",
    "reject": "CaseRejected",
    "merge": "DuplicateMerged",
    "dispatch": "CaseDispatched",
    "sign": "DispatchSigned",
    "return": "DispatchReturned",
    "escalate": "CaseEscalated",
    "extend": "DeadlineExtended",
    "suspend": "CaseSuspended",
    "resume": "CaseResumed",
    "note": "ProgressNoted",
    "resolve": "CaseResolved",
    "verify": "ResolutionVerified",
    "reject-resolution": "ResolutionRejected",
    "close": "CaseClosed",
    "feedback": "CitizenFeedbackRecorded",
    "reopen": "CaseReopened",
}


def test_the_tables_cover_every_command_and_state() -> None:
    assert set(ACTIONS) == set(LIFECYCLE) == set(EVENT_OF)
    assert set(PATHS) == set(CaseState)


def act(command: str, actor: ActorRef | None = None, at: datetime | None = None) -> Callable[[Case], None]:
    action, default = ACTIONS[command]
    return lambda c: action(c, later(c) if at is None else at, default if actor is None else actor)


ALLOWED = [(cmd, s) for cmd, (states, _) in LIFECYCLE.items() for s in CaseState if s in states]
NOT_ALLOWED = [(cmd, s) for cmd, (states, _) in LIFECYCLE.items() for s in CaseState if s not in states]


@pytest.mark.parametrize(("command", "state"), ALLOWED, ids=[f"{c}-in-{s}" for c, s in ALLOWED])
def test_command_is_taken_in_every_state_the_lifecycle_allows(command: str, state: CaseState) -> None:
    case = in_state(state)
    events = when(case, act(command))
    then(events, EVENT_OF[command])
    _, target = LIFECYCLE[command]
    assert case.state is (state if target is None else target)


@pytest.mark.parametrize(("command", "state"), NOT_ALLOWED, ids=[f"{c}-in-{s}" for c, s in NOT_ALLOWED])
def test_command_is_refused_in_every_other_state(command: str, state: CaseState) -> None:
    case = in_state(state)
    error = refused(case, act(command), command=command, rule="CommandNotAllowedInState")
    assert "must be" in error.message


def first_allowed_state(command: str) -> CaseState:
    states, _ = LIFECYCLE[command]
    return next(s for s in CaseState if s in states)


# -- wrong role / wrong actor --------------------------------------------------------------------

DISPATCHING = frozenset({Role.DISPATCHER, Role.ADMIN})
#: Who may give each command that is decided by role (DESIGN.md "by" column, admins included).
ROLES: dict[str, frozenset[Role]] = {
    "accept": DISPATCHING,
    "reject": DISPATCHING,
    "merge": frozenset({Role.INTAKE_OPERATOR, Role.DISPATCHER, Role.ADMIN}),
    "dispatch": DISPATCHING,
    "escalate": DISPATCHING | {Role.SYSTEM},
    "extend": DISPATCHING,
    "suspend": DISPATCHING,
    "resume": DISPATCHING,
    "note": frozenset(Role) - {Role.AUDITOR},
    "verify": frozenset({Role.GRID_WORKER}),
    "reject-resolution": frozenset({Role.GRID_WORKER}),
    "close": DISPATCHING,
    "feedback": frozenset({Role.CALLBACK_OPERATOR, Role.INTAKE_OPERATOR, Role.DISPATCHER, Role.ADMIN}),
    "reopen": DISPATCHING,
}
BY_ROLE = [(cmd, role) for cmd in ROLES for role in Role]


def actor_in(role: Role) -> ActorRef:
    return ActorRef(id=f"{role.value}-9", role=role, unit="D-CG" if role is Role.DEPARTMENT_HANDLER else None)


@pytest.mark.parametrize(("command", "role"), BY_ROLE, ids=[f"{c}-by-{r}" for c, r in BY_ROLE])
def test_commands_decided_by_role(command: str, role: Role) -> None:
    case = in_state(first_allowed_state(command))
    if role in ROLES[command]:
        then(when(case, act(command, actor_in(role))), EVENT_OF[command])
    else:
        error = refused(case, act(command, actor_in(role)), command=command, rule="ActorRoleNotAllowed")
        assert role.value in error.message


HANDLER_COMMANDS = ["sign", "return", "resolve"]
WRONG_FOR_WORKER = [W002, ActorRef(id="W001", role=Role.DISPATCHER), CLERK, ADMIN, SYSTEM]
WRONG_FOR_DEPARTMENT = [OTHER_CLERK, UNITLESS_CLERK, ActorRef(id="D-CG", role=Role.GRID_WORKER), DISPATCHER, ADMIN]


def _handler_case(command: str, handler: HandlerRef, handler_actor: ActorRef) -> Case:
    if command == "resolve":
        return given(accept(), dispatch(handler), sign(handler_actor))
    return given(accept(), dispatch(handler))


@pytest.mark.parametrize("command", HANDLER_COMMANDS)
@pytest.mark.parametrize("actor", WRONG_FOR_WORKER, ids=lambda a: f"{a.role.value}-{a.id}")
def test_only_the_worker_the_case_was_dispatched_to_handles_it(command: str, actor: ActorRef) -> None:
    case = _handler_case(command, TO_W001, W001)
    error = refused(case, act(command, actor), command=command, rule="OnlyTheCurrentHandlerMayDoThis")
    assert "worker:W001" in error.message
    then(when(case, act(command, W001)), EVENT_OF[command])


@pytest.mark.parametrize("command", HANDLER_COMMANDS)
@pytest.mark.parametrize("actor", WRONG_FOR_DEPARTMENT, ids=lambda a: f"{a.role.value}-{a.unit or a.id}")
def test_only_the_department_the_case_was_referred_to_handles_it(command: str, actor: ActorRef) -> None:
    case = _handler_case(command, TO_DCG, CLERK)
    error = refused(case, act(command, actor), command=command, rule="OnlyTheCurrentHandlerMayDoThis")
    assert "department:D-CG" in error.message
    then(when(case, act(command, CLERK)), EVENT_OF[command])


def test_a_returned_case_cannot_be_signed_by_its_former_handler_after_redispatch() -> None:
    case = given(accept(), dispatch(TO_W001), return_(W001), dispatch(TO_DCG))
    refused(case, sign(W001), command="sign", rule="OnlyTheCurrentHandlerMayDoThis")
    refused(case, return_(W001), command="return", rule="OnlyTheCurrentHandlerMayDoThis")


# -- business rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "to"),
    [
        (Level.COMMUNITY, Level.COMMUNITY),
        (Level.STREET, Level.STREET),
        (Level.STREET, Level.COMMUNITY),
        (Level.DISTRICT, Level.DISTRICT),
        (Level.DISTRICT, Level.STREET),
        (Level.DISTRICT, Level.COMMUNITY),
    ],
    ids=lambda v: v.value,
)
def test_escalation_must_go_up(level: Level, to: Level) -> None:
    case = given(accept(level))
    error = refused(case, escalate(to), command="escalate", rule="EscalationMustGoUp")
    assert level.value in error.message


@pytest.mark.parametrize("delta", [timedelta(0), -timedelta(minutes=1), -timedelta(hours=12)], ids=str)
def test_extension_must_move_the_deadline_later(delta: timedelta) -> None:
    case = given(*PATHS[CaseState.IN_PROGRESS])
    assert case.resolve_by is not None
    new = case.resolve_by + delta
    refused(
        case,
        lambda c: c.extend_deadline(DISPATCHER, new, "more time", later(c)),
        command="extend",
        rule="ExtensionMustMoveDeadlineLater",
    )


@pytest.mark.parametrize("delta", [timedelta(0), -timedelta(seconds=1), -timedelta(days=2)], ids=str)
def test_extended_deadline_must_be_in_the_future(delta: timedelta) -> None:
    case = given(*PATHS[CaseState.IN_PROGRESS])
    assert case.resolve_by is not None
    at = case.resolve_by + timedelta(hours=6)  # already overdue
    refused(
        case,
        lambda c: c.extend_deadline(DISPATCHER, at + delta, "more time", at),
        command="extend",
        rule="DeadlineMustBeInTheFuture",
    )


@pytest.mark.parametrize(
    ("sign_by", "resolve_by", "rule"),
    [
        (timedelta(0), timedelta(hours=24), "DeadlineMustBeInTheFuture"),
        (-timedelta(hours=1), timedelta(hours=24), "DeadlineMustBeInTheFuture"),
        (timedelta(hours=2), timedelta(0), "DeadlineMustBeInTheFuture"),
        (timedelta(hours=2), -timedelta(hours=1), "DeadlineMustBeInTheFuture"),
        (timedelta(hours=5), timedelta(hours=4), "ResolveByMustNotPrecedeSignBy"),
    ],
)
def test_dispatch_deadlines_must_be_in_the_future_and_in_order(
    sign_by: timedelta, resolve_by: timedelta, rule: str
) -> None:
    case = given(accept())
    at = later(case)
    refused(
        case,
        lambda c: c.dispatch(DISPATCHER, TO_W001, at + sign_by, at + resolve_by, 1, 0, at),
        command="dispatch",
        rule=rule,
    )


def test_sign_by_may_equal_resolve_by() -> None:
    case = given(accept())
    at = later(case)
    then(
        when(
            case, lambda c: c.dispatch(DISPATCHER, TO_W001, at + timedelta(hours=4), at + timedelta(hours=4), 1, 0, at)
        ),
        "CaseDispatched",
    )


#: Commands that carry a reason (or note, or result), with a way to give it.
WITH_TEXT: dict[str, Callable[[str], Callable[[Case], None]]] = {
    "reject": lambda text: lambda c: c.reject(DISPATCHER, text, later(c)),
    "return": lambda text: lambda c: c.return_dispatch(W001, text, later(c)),
    "escalate": lambda text: lambda c: c.escalate(DISPATCHER, Level.STREET, text, later(c)),
    "extend": lambda text: lambda c: c.extend_deadline(DISPATCHER, later(c, 60 * 24 * 30), text, later(c)),
    "suspend": lambda text: lambda c: c.suspend(DISPATCHER, text, later(c)),
    "note": lambda text: lambda c: c.note(DISPATCHER, text, later(c)),
    "resolve": lambda text: lambda c: c.resolve(W001, text, (), later(c)),
    "reject-resolution": lambda text: lambda c: c.reject_resolution(W002, text, later(c)),
    "reopen": lambda text: lambda c: c.reopen(DISPATCHER, text, later(c)),
}
EMPTY_TEXT = [(cmd, text) for cmd in WITH_TEXT for text in ("", "   ", "\n\t")]


@pytest.mark.parametrize(("command", "text"), EMPTY_TEXT, ids=[f"{c}-{t!r}" for c, t in EMPTY_TEXT])
def test_a_reason_must_be_given(command: str, text: str) -> None:
    case = in_state(first_allowed_state(command))
    refused(case, WITH_TEXT[command](text), command=command, rule="ReasonMustBeGiven")
    then(when(case, WITH_TEXT[command]("x")), EVENT_OF[command])


@pytest.mark.parametrize("command", list(ACTIONS))
def test_occurred_at_must_not_precede_the_last_event(command: str) -> None:
    case = in_state(first_allowed_state(command))
    error = refused(
        case,
        act(command, at=case.last_occurred_at - timedelta(seconds=1)),
        command=command,
        rule="OccurredAtMustNotPrecedeLastEvent",
    )
    assert case.last_occurred_at.isoformat() in error.message


@pytest.mark.parametrize("command", list(ACTIONS))
def test_occurred_at_may_equal_the_last_event(command: str) -> None:
    case = in_state(first_allowed_state(command))
    then(when(case, act(command, at=case.last_occurred_at)), EVENT_OF[command])


def test_occurred_at_is_compared_across_time_zones() -> None:
    case = given(accept())
    local = case.last_occurred_at.astimezone(SHANGHAI)
    refused(
        case,
        act("dispatch", at=local - timedelta(seconds=1)),
        command="dispatch",
        rule="OccurredAtMustNotPrecedeLastEvent",
    )
    then(when(case, act("dispatch", at=local)), "CaseDispatched")


@pytest.mark.parametrize("resolved", [True, False])
def test_only_one_callback_per_closure(resolved: bool) -> None:
    case = given(*PATHS[CaseState.CLOSED], feedback(Satisfaction.SATISFIED, resolved=True))
    refused(
        case, feedback(Satisfaction.DISSATISFIED, resolved=resolved), command="feedback", rule="OneCallbackPerClosure"
    )
    assert case.state is CaseState.CLOSED


def test_a_reopened_and_closed_case_takes_a_callback_again_but_only_one() -> None:
    case = given(*PATHS[CaseState.CLOSED], feedback(), reopen(), dispatch(), sign(), resolve(), verify(), close())
    then(when(case, feedback(Satisfaction.BASICALLY_SATISFIED)), "CitizenFeedbackRecorded")
    refused(case, feedback(), command="feedback", rule="OneCallbackPerClosure")


def test_a_case_cannot_be_merged_into_itself() -> None:
    case = given()
    refused(case, merge(NUMBER), command="merge", rule="CaseCannotBeMergedIntoItself")


@pytest.mark.parametrize("description", ["", "   ", "\n"], ids=repr)
def test_the_description_must_not_be_empty(description: str) -> None:
    with pytest.raises(CommandRefused) as info:
        reported(description=description)
    error = info.value
    assert error.rule == "DescriptionMustNotBeEmpty"
    assert NUMBER in str(error)
    assert "new" in str(error)
    assert "report" in str(error)
    assert (error.subject, error.state, error.command) == (f"case {NUMBER}", "new", "report")


@pytest.mark.parametrize(
    "actor", [CLERK, CALLBACK, AUDITOR, ActorRef(id="x", role=Role.DEPARTMENT_HANDLER)], ids=lambda a: a.role.value
)
def test_only_intake_reports(actor: ActorRef) -> None:
    with pytest.raises(CommandRefused) as info:
        reported(actor=actor)
    assert info.value.rule == "ReportMustComeFromIntake"
    assert NUMBER in str(info.value)
    assert (info.value.state, info.value.command) == ("new", "report")


@pytest.mark.parametrize(
    ("channel", "patrol"),
    [(Channel.PATROL, None), (Channel.HOTLINE, "PT-20210601-000001")],
    ids=["no-patrol", "not-patrol"],
)
def test_a_patrol_finding_names_its_patrol_and_only_it_does(channel: Channel, patrol: str | None) -> None:
    with pytest.raises(CommandRefused) as info:
        reported(channel=channel, patrol_id=patrol)
    assert info.value.rule == "PatrolFindingMustNamePatrol"
    assert NUMBER in str(info.value)


# -- patrol ----------------------------------------------------------------------------------------

PATROL = "PT-20210601-000001"


def started(actor: ActorRef = W001, worker: str = "W001") -> Patrol:
    return Patrol.start(
        patrol_number=PATROL,
        worker=worker,
        grid="SN01-C01-G001",
        community="SN01-C01",
        street="SN01",
        actor=actor,
        at=T0,
    )


def patrol_refused(patrol: Patrol, action: Callable[[Patrol], None], *, command: str, rule: str) -> CommandRefused:
    before, state, version = snapshot(patrol), patrol.state, patrol.version
    patrol.collect_events()
    with pytest.raises(CommandRefused) as info:
        action(patrol)
    error = info.value
    assert PATROL in str(error)
    assert state.value in str(error)
    assert command in str(error)
    assert (error.rule, error.command, error.state) == (rule, command, state.value)
    assert patrol.pending_events == []
    assert (patrol.state, patrol.version) == (state, version)
    assert snapshot(patrol) == before
    return error


def test_patrol_start() -> None:
    patrol = started()
    then(
        patrol.collect_events(),
        (
            "PatrolStarted",
            {
                "patrol_number": PATROL,
                "worker": "W001",
                "grid": "SN01-C01-G001",
                "actor": W001,
                "occurred_at": T0,
                "originator_id": patrol_id(PATROL),
            },
        ),
    )
    assert patrol.state is PatrolState.STARTED
    assert patrol.checkpoints == 0


@pytest.mark.parametrize("actor", [SYSTEM, ADMIN], ids=lambda a: a.role.value)
def test_an_import_may_log_a_workers_patrol(actor: ActorRef) -> None:
    assert started(actor=actor).worker == "W001"


@pytest.mark.parametrize("actor", [W002, DISPATCHER, CLERK, OPERATOR], ids=lambda a: f"{a.role.value}-{a.id}")
def test_a_patrol_is_started_by_its_worker(actor: ActorRef) -> None:
    with pytest.raises(CommandRefused) as info:
        started(actor=actor)
    assert info.value.rule == "PatrolIsLoggedByItsWorker"
    assert (info.value.state, info.value.command) == ("new", "patrol-start")
    assert PATROL in str(info.value)


def test_patrol_checkpoints_and_elderly_visits() -> None:
    patrol = started()
    patrol.collect_events()
    patrol.log_checkpoint(
        W001, CheckpointKind.HOUSEHOLD_VISIT, "永嘉路12号-301", " 独居老人 ", True, T0 + timedelta(minutes=10)
    )
    patrol.log_checkpoint(W001, CheckpointKind.PLACE_INSPECTION, "永嘉路菜市场", "", False, T0 + timedelta(minutes=20))
    then(
        patrol.collect_events(),
        (
            "PatrolCheckpointLogged",
            {
                "kind": CheckpointKind.HOUSEHOLD_VISIT,
                "target": "永嘉路12号-301",
                "notes": "独居老人",
                "elderly_visit": True,
                "originator_version": 2,
            },
        ),
        ("PatrolCheckpointLogged", {"kind": CheckpointKind.PLACE_INSPECTION, "elderly_visit": False}),
    )
    assert patrol.checkpoints == 2


def test_an_elderly_visit_is_a_household_visit() -> None:
    patrol = started()
    patrol_refused(
        patrol,
        lambda p: p.log_checkpoint(
            W001, CheckpointKind.PLACE_INSPECTION, "菜市场", "", True, T0 + timedelta(minutes=5)
        ),
        command="patrol-checkpoint",
        rule="ElderlyVisitIsAHouseholdVisit",
    )


def test_patrol_end_computes_its_duration() -> None:
    patrol = started()
    patrol.log_checkpoint(W001, CheckpointKind.HOUSEHOLD_VISIT, "h-1", "", False, T0 + timedelta(minutes=30))
    patrol.collect_events()
    patrol.end(W001, 3200, T0 + timedelta(hours=2, minutes=30))
    then(
        patrol.collect_events(),
        ("PatrolEnded", {"duration_seconds": 9000, "distance_m": 3200, "checkpoints": 1, "actor": W001}),
    )
    assert patrol.state is PatrolState.ENDED


def test_patrol_duration_is_wall_time_across_time_zones() -> None:
    patrol = started()
    patrol.end(W001, 0, (T0 + timedelta(minutes=45)).astimezone(SHANGHAI))
    assert patrol.collect_events()[-1].duration_seconds == 45 * 60  # type: ignore[attr-defined]


@pytest.mark.parametrize("actor", [W002, DISPATCHER, CLERK], ids=lambda a: f"{a.role.value}-{a.id}")
@pytest.mark.parametrize("command", ["patrol-checkpoint", "patrol-end"])
def test_only_the_patrols_worker_logs_it(actor: ActorRef, command: str) -> None:
    patrol = started()
    at = T0 + timedelta(minutes=5)
    action: Callable[[Patrol], None] = (
        (lambda p: p.log_checkpoint(actor, CheckpointKind.HOUSEHOLD_VISIT, "h-1", "", False, at))
        if command == "patrol-checkpoint"
        else (lambda p: p.end(actor, 100, at))
    )
    patrol_refused(patrol, action, command=command, rule="PatrolIsLoggedByItsWorker")


@pytest.mark.parametrize("command", ["patrol-checkpoint", "patrol-end"])
def test_nothing_is_logged_on_an_ended_patrol(command: str) -> None:
    patrol = started()
    patrol.end(W001, 100, T0 + timedelta(hours=1))
    at = T0 + timedelta(hours=2)
    action: Callable[[Patrol], None] = (
        (lambda p: p.log_checkpoint(W001, CheckpointKind.HOUSEHOLD_VISIT, "h-1", "", False, at))
        if command == "patrol-checkpoint"
        else (lambda p: p.end(W001, 100, at))
    )
    error = patrol_refused(patrol, action, command=command, rule="CommandNotAllowedInState")
    assert "ended" in str(error)


@pytest.mark.parametrize("command", ["patrol-checkpoint", "patrol-end"])
def test_patrol_events_do_not_go_back_in_time(command: str) -> None:
    patrol = started()
    patrol.log_checkpoint(W001, CheckpointKind.HOUSEHOLD_VISIT, "h-1", "", False, T0 + timedelta(hours=1))
    at = T0 + timedelta(minutes=59)
    action: Callable[[Patrol], None] = (
        (lambda p: p.log_checkpoint(W001, CheckpointKind.HOUSEHOLD_VISIT, "h-2", "", False, at))
        if command == "patrol-checkpoint"
        else (lambda p: p.end(W001, 100, at))
    )
    patrol_refused(patrol, action, command=command, rule="OccurredAtMustNotPrecedeLastEvent")


# -- registry --------------------------------------------------------------------------------------


def unit(code: str, kind: OrgKind, parent: OrgUnit | None, **overrides: Any) -> OrgUnit:
    fields: dict[str, Any] = {
        "code": code,
        "kind": kind,
        "name": f"{code} 名",
        "name_en": None,
        "parent": parent,
        "grid_kind": GridKind.BASE if kind is OrgKind.GRID else None,
        "households": 0,
        "population": 0,
        "elderly": 0,
        "actor": ADMIN,
        "at": T0,
    }
    fields.update(overrides)
    return OrgUnit.create(**fields)


@pytest.fixture
def hierarchy() -> dict[OrgKind, OrgUnit]:
    district = unit("SN", OrgKind.DISTRICT, None)
    street = unit("SN01", OrgKind.STREET, district)
    community = unit("SN01-C01", OrgKind.COMMUNITY, street)
    grid = unit("SN01-C01-G001", OrgKind.GRID, community, households=500, population=1000, elderly=180)
    department = unit("D-CG", OrgKind.DEPARTMENT, district)
    return {u.kind: u for u in (district, street, community, grid, department)}


def registry_refused(action: Callable[[], object], *, rule: str, subject: str, state: str, command: str) -> None:
    with pytest.raises(CommandRefused) as info:
        action()
    error = info.value
    assert (error.rule, error.subject, error.state, error.command) == (rule, subject, state, command)
    assert subject in str(error)
    assert state in str(error)
    assert command in str(error)


def test_org_hierarchy_builds_down_from_the_district(hierarchy: dict[OrgKind, OrgUnit]) -> None:
    grid = hierarchy[OrgKind.GRID]
    then(
        grid.collect_events(),
        (
            "OrgUnitCreated",
            {
                "code": "SN01-C01-G001",
                "kind": OrgKind.GRID,
                "parent": "SN01-C01",
                "grid_kind": GridKind.BASE,
                "households": 500,
                "population": 1000,
                "elderly": 180,
                "originator_id": org_unit_id("SN01-C01-G001"),
            },
        ),
    )
    assert hierarchy[OrgKind.STREET].parent == "SN"
    assert hierarchy[OrgKind.DEPARTMENT].parent == "SN"
    assert hierarchy[OrgKind.DISTRICT].parent is None
    dedicated = unit("SN01-C01-Z01", OrgKind.GRID, hierarchy[OrgKind.COMMUNITY], grid_kind=GridKind.DEDICATED)
    assert dedicated.grid_kind is GridKind.DEDICATED


WRONG_PARENTS = [
    (OrgKind.STREET, None),
    (OrgKind.STREET, OrgKind.STREET),
    (OrgKind.STREET, OrgKind.COMMUNITY),
    (OrgKind.COMMUNITY, OrgKind.DISTRICT),
    (OrgKind.COMMUNITY, None),
    (OrgKind.GRID, OrgKind.STREET),
    (OrgKind.GRID, OrgKind.GRID),
    (OrgKind.GRID, None),
    (OrgKind.DEPARTMENT, OrgKind.STREET),
    (OrgKind.DEPARTMENT, None),
]


@pytest.mark.parametrize(("kind", "parent"), WRONG_PARENTS, ids=[f"{k}-under-{p}" for k, p in WRONG_PARENTS])
def test_a_unit_hangs_under_the_right_kind(
    hierarchy: dict[OrgKind, OrgUnit], kind: OrgKind, parent: OrgKind | None
) -> None:
    registry_refused(
        lambda: unit("X1", kind, hierarchy[parent] if parent else None),
        rule="UnitMustHangUnderTheRightKind",
        subject=f"{kind.value} X1",
        state="new",
        command="registry.org-unit",
    )


def test_a_district_hangs_under_nothing(hierarchy: dict[OrgKind, OrgUnit]) -> None:
    registry_refused(
        lambda: unit("QD", OrgKind.DISTRICT, hierarchy[OrgKind.DISTRICT]),
        rule="DistrictHasNoParent",
        subject="district QD",
        state="new",
        command="registry.org-unit",
    )


@pytest.mark.parametrize(
    ("kind", "parent", "grid_kind"),
    [
        (OrgKind.GRID, OrgKind.COMMUNITY, None),
        (OrgKind.COMMUNITY, OrgKind.STREET, GridKind.BASE),
        (OrgKind.DEPARTMENT, OrgKind.DISTRICT, GridKind.DEDICATED),
    ],
)
def test_grids_and_only_grids_have_a_grid_kind(
    hierarchy: dict[OrgKind, OrgUnit], kind: OrgKind, parent: OrgKind, grid_kind: GridKind | None
) -> None:
    registry_refused(
        lambda: unit("X1", kind, hierarchy[parent], grid_kind=grid_kind),
        rule="GridKindIsForGrids",
        subject=f"{kind.value} X1",
        state="new",
        command="registry.org-unit",
    )


def test_elderly_are_residents(hierarchy: dict[OrgKind, OrgUnit]) -> None:
    community = hierarchy[OrgKind.COMMUNITY]
    registry_refused(
        lambda: unit("G9", OrgKind.GRID, community, population=100, elderly=101),
        rule="ElderlyAreResidents",
        subject="grid G9",
        state="new",
        command="registry.org-unit",
    )
    assert unit("G9", OrgKind.GRID, community, population=100, elderly=100).elderly == 100


@pytest.mark.parametrize("actor", [DISPATCHER, OPERATOR, W001, AUDITOR], ids=lambda a: a.role.value)
def test_only_administrators_change_the_registry(actor: ActorRef, hierarchy: dict[OrgKind, OrgUnit]) -> None:
    rule, new = "OnlyAdministratorsChangeTheRegistry", "new"
    registry_refused(
        lambda: unit("SN02", OrgKind.STREET, hierarchy[OrgKind.DISTRICT], actor=actor),
        rule=rule,
        subject="street SN02",
        state=new,
        command="registry.org-unit",
    )
    grid = hierarchy[OrgKind.GRID]
    registry_refused(
        lambda: grid.update_figures(actor, 1, 1, 0, T0),
        rule=rule,
        subject="grid SN01-C01-G001",
        state="active",
        command="registry.grid-figures",
    )
    registry_refused(
        lambda: grid.appoint_leader(actor, "W001", T0),
        rule=rule,
        subject="grid SN01-C01-G001",
        state="active",
        command="registry.grid-leader",
    )
    registry_refused(
        lambda: Worker.register(code="W9", name="x", kind=WorkerKind.FULL_TIME, department=None, actor=actor, at=T0),
        rule=rule,
        subject="worker W9",
        state=new,
        command="registry.worker",
    )
    registry_refused(
        lambda: SlaPolicy.start(actor, T0), rule=rule, subject="SLA policy", state=new, command="registry.sla-policy"
    )
    registry_refused(
        lambda: HolidayCalendar.start(actor, T0),
        rule=rule,
        subject="holiday calendar",
        state=new,
        command="registry.calendar",
    )
    registry_refused(
        lambda: Category.define(
            code="c",
            group="g",
            group_name="组",
            group_name_en="G",
            name="名",
            name_en="N",
            default_unit="grid",
            sla_class="A",
            actor=actor,
            at=T0,
        ),
        rule=rule,
        subject="category c",
        state=new,
        command="registry.category",
    )


def test_grid_figures_and_leader(hierarchy: dict[OrgKind, OrgUnit]) -> None:
    grid = hierarchy[OrgKind.GRID]
    grid.collect_events()
    grid.update_figures(ADMIN, 520, 1040, 200, T0)
    grid.appoint_leader(ADMIN, "W001", T0)
    then(
        grid.collect_events(),
        ("GridFiguresUpdated", {"households": 520, "population": 1040, "elderly": 200}),
        ("GridLeaderAppointed", {"worker": "W001"}),
    )
    assert (grid.households, grid.population, grid.elderly, grid.leader) == (520, 1040, 200, "W001")
    registry_refused(
        lambda: grid.update_figures(ADMIN, 1, 10, 11, T0),
        rule="ElderlyAreResidents",
        subject="grid SN01-C01-G001",
        state="active",
        command="registry.grid-figures",
    )
    assert grid.pending_events == []
    assert grid.population == 1040


@pytest.mark.parametrize("kind", [OrgKind.DISTRICT, OrgKind.STREET, OrgKind.COMMUNITY, OrgKind.DEPARTMENT], ids=str)
def test_figures_and_leaders_belong_to_grids(hierarchy: dict[OrgKind, OrgUnit], kind: OrgKind) -> None:
    other = hierarchy[kind]
    other.collect_events()
    subject = f"{kind.value} {other.code}"
    registry_refused(
        lambda: other.update_figures(ADMIN, 1, 1, 0, T0),
        rule="FiguresAreKeptPerGrid",
        subject=subject,
        state="active",
        command="registry.grid-figures",
    )
    registry_refused(
        lambda: other.appoint_leader(ADMIN, "W001", T0),
        rule="LeadersLeadGrids",
        subject=subject,
        state="active",
        command="registry.grid-leader",
    )
    assert other.pending_events == []


def worker(code: str = "W001") -> Worker:
    w = Worker.register(code=code, name="网格员", kind=WorkerKind.FULL_TIME, department=None, actor=ADMIN, at=T0)
    w.collect_events()
    return w


def test_worker_assignments() -> None:
    w = worker()
    assert w.id == worker_id("W001")
    w.assign(ADMIN, "G1", date(2021, 1, 1), T0)
    w.assign(ADMIN, "G2", date(2021, 3, 1), T0)
    then(
        w.collect_events(),
        ("WorkerAssigned", {"grid": "G1", "start": date(2021, 1, 1)}),
        ("WorkerAssigned", {"grid": "G2"}),
    )
    assert w.assignments == {"G1": date(2021, 1, 1), "G2": date(2021, 3, 1)}
    w.unassign(ADMIN, "G1", date(2021, 1, 1), T0)  # a one-day assignment
    then(w.collect_events(), ("WorkerAssignmentEnded", {"grid": "G1", "end": date(2021, 1, 1)}))
    assert w.assignments == {"G2": date(2021, 3, 1)}
    w.assign(ADMIN, "G1", date(2021, 6, 1), T0)
    assert w.assignments["G1"] == date(2021, 6, 1)


def test_worker_assignment_rules() -> None:
    w = worker()
    w.assign(ADMIN, "G1", date(2021, 3, 1), T0)
    w.collect_events()
    before = snapshot(w)
    subject = "worker W001"
    registry_refused(
        lambda: w.assign(ADMIN, "G1", date(2021, 4, 1), T0),
        rule="OneAssignmentPerGridAtATime",
        subject=subject,
        state="active",
        command="registry.assign",
    )
    registry_refused(
        lambda: w.unassign(ADMIN, "G2", date(2021, 4, 1), T0),
        rule="AssignmentMustBeInForce",
        subject=subject,
        state="active",
        command="registry.unassign",
    )
    registry_refused(
        lambda: w.unassign(ADMIN, "G1", date(2021, 2, 28), T0),
        rule="AssignmentMustEndAfterItStarts",
        subject=subject,
        state="active",
        command="registry.unassign",
    )
    registry_refused(
        lambda: w.assign(DISPATCHER, "G3", date(2021, 4, 1), T0),
        rule="OnlyAdministratorsChangeTheRegistry",
        subject=subject,
        state="active",
        command="registry.assign",
    )
    assert w.pending_events == []
    assert snapshot(w) == before


def test_category_definition() -> None:
    category = Category.define(
        code="facility.manhole",
        group="facility",
        group_name="公共设施",
        group_name_en="Public facilities",
        name="井盖",
        name_en="Manhole cover",
        default_unit="grid",
        sla_class="A",
        actor=SYSTEM,
        at=T0,
    )
    then(category.collect_events(), ("CategoryDefined", {"code": "facility.manhole", "sla_class": "A"}))


def _rules(*, drop: tuple[str, str] | None = None, duplicate: bool = False) -> tuple[SlaRule, ...]:
    rules = tuple(r for r in default_policy_rules() if (r.sla_class, r.urgency) != drop)
    return rules + rules[:1] if duplicate else rules


def test_sla_policy_versions_follow_one_another() -> None:
    policy = SlaPolicy.start(ADMIN, T0)
    assert policy.id == SLA_POLICY_ID
    assert policy.current_version == 0
    policy.publish(ADMIN, 1, _rules(), T0)
    policy.publish(SYSTEM, 2, _rules(), T0)
    then(
        policy.collect_events(),
        "SlaPolicyStarted",
        ("SlaPolicyPublished", {"version": 1}),
        ("SlaPolicyPublished", {"version": 2, "rules": _rules()}),
    )
    assert policy.current_version == 2
    for version in (1, 2, 4):
        registry_refused(
            lambda v=version: policy.publish(ADMIN, v, _rules(), T0),  # type: ignore[misc]
            rule="PolicyVersionsFollowOneAnother",
            subject="SLA policy",
            state="at version 2",
            command="registry.sla-policy",
        )
    assert policy.pending_events == []
    assert policy.current_version == 2


@pytest.mark.parametrize("drop", [(c, u) for c in "ABC" for u in ("normal", "urgent")], ids=str)
def test_sla_policy_covers_every_class_and_urgency(drop: tuple[str, str]) -> None:
    policy = SlaPolicy.start(ADMIN, T0)
    policy.collect_events()
    registry_refused(
        lambda: policy.publish(ADMIN, 1, _rules(drop=drop), T0),
        rule="EveryClassAndUrgencyHasARule",
        subject="SLA policy",
        state="at version 0",
        command="registry.sla-policy",
    )
    assert policy.pending_events == []
    assert policy.current_version == 0


def test_sla_policy_has_one_rule_per_class_and_urgency() -> None:
    policy = SlaPolicy.start(ADMIN, T0)
    policy.collect_events()
    registry_refused(
        lambda: policy.publish(ADMIN, 1, _rules(duplicate=True), T0),
        rule="OneRulePerClassAndUrgency",
        subject="SLA policy",
        state="at version 0",
        command="registry.sla-policy",
    )
    assert policy.pending_events == []


def test_sla_policy_is_published_by_administrators() -> None:
    policy = SlaPolicy.start(ADMIN, T0)
    policy.collect_events()
    registry_refused(
        lambda: policy.publish(DISPATCHER, 1, _rules(), T0),
        rule="OnlyAdministratorsChangeTheRegistry",
        subject="SLA policy",
        state="at version 0",
        command="registry.sla-policy",
    )
    assert policy.pending_events == []


DRAGON_BOAT = date(2021, 6, 14)
NATIONAL_DAY = tuple(date(2021, 10, d) for d in range(1, 8))
MAKE_UP = (date(2021, 9, 18), date(2021, 9, 26), date(2021, 10, 9))
MID_AUTUMN = (date(2021, 9, 20), date(2021, 9, 21))


def test_holiday_calendar_versions() -> None:
    calendar = HolidayCalendar.start(ADMIN, T0)
    assert calendar.id == CALENDAR_ID
    assert calendar.calendar == WorkingCalendar()
    calendar.publish(ADMIN, 1, (DRAGON_BOAT,), (), T0)
    calendar.publish(ADMIN, 2, (DRAGON_BOAT, *MID_AUTUMN, *NATIONAL_DAY), MAKE_UP, T0)
    then(
        calendar.collect_events(),
        "CalendarStarted",
        ("CalendarPublished", {"version": 1}),
        ("CalendarPublished", {"version": 2, "workdays": MAKE_UP}),
    )
    assert calendar.calendar.version == 2
    assert not calendar.calendar.is_working_day(date(2021, 10, 4))
    assert calendar.calendar.is_working_day(date(2021, 10, 9))
    registry_refused(
        lambda: calendar.publish(ADMIN, 2, (), (), T0),
        rule="CalendarVersionsFollowOneAnother",
        subject="holiday calendar",
        state="at version 2",
        command="registry.calendar",
    )
    registry_refused(
        lambda: calendar.publish(ADMIN, 4, (), (), T0),
        rule="CalendarVersionsFollowOneAnother",
        subject="holiday calendar",
        state="at version 2",
        command="registry.calendar",
    )
    registry_refused(
        lambda: calendar.publish(ADMIN, 3, (DRAGON_BOAT,), (DRAGON_BOAT,), T0),
        rule="ADayIsAHolidayOrAWorkday",
        subject="holiday calendar",
        state="at version 2",
        command="registry.calendar",
    )
    registry_refused(
        lambda: calendar.publish(DISPATCHER, 3, (), (), T0),
        rule="OnlyAdministratorsChangeTheRegistry",
        subject="holiday calendar",
        state="at version 2",
        command="registry.calendar",
    )
    assert calendar.pending_events == []
    assert calendar.calendar.version == 2


# -- SLA clocks ------------------------------------------------------------------------------------

CALENDAR_2021 = WorkingCalendar(
    version=1, holidays=frozenset({DRAGON_BOAT, *MID_AUTUMN, *NATIONAL_DAY}), workdays=frozenset(MAKE_UP)
)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def hours(n: int) -> SlaDuration:
    return SlaDuration(amount=n, unit="hours")


def working_days(n: int) -> SlaDuration:
    return SlaDuration(amount=n, unit="working_days")


@pytest.mark.parametrize(
    ("start", "duration", "due"),
    [
        (local(2021, 6, 1, 9), hours(24), local(2021, 6, 2, 9)),
        (local(2021, 6, 4, 15), hours(4), local(2021, 6, 4, 19)),
        # hours are wall time: weekends and holidays do not stop them
        (local(2021, 6, 4, 15), hours(72), local(2021, 6, 7, 15)),
        (local(2021, 6, 13, 20), hours(6), local(2021, 6, 14, 2)),
    ],
    ids=["1-day", "same-day", "over-weekend", "into-holiday"],
)
def test_hours_are_wall_time(start: datetime, duration: SlaDuration, due: datetime) -> None:
    assert add_duration(start, duration, CALENDAR_2021, SHANGHAI) == due
    assert add_duration(start.astimezone(UTC), duration, CALENDAR_2021, SHANGHAI) == due


@pytest.mark.parametrize(
    ("start", "amount", "due"),
    [
        (local(2021, 6, 1, 9), 1, local(2021, 6, 2, 9)),  # Tuesday → Wednesday
        (local(2021, 6, 1, 9), 5, local(2021, 6, 8, 9)),  # over one weekend
        (local(2021, 6, 4, 15), 1, local(2021, 6, 7, 15)),  # Friday → Monday
        (local(2021, 6, 5, 10), 1, local(2021, 6, 7, 10)),  # dispatched on a Saturday
        (local(2021, 6, 6, 10), 1, local(2021, 6, 7, 10)),  # dispatched on a Sunday
        (local(2021, 6, 11, 15), 1, local(2021, 6, 15, 15)),  # Friday, Dragon Boat Monday → Tuesday
        (local(2021, 6, 11, 15), 2, local(2021, 6, 16, 15)),
        (local(2021, 6, 1, 9), 15, local(2021, 6, 23, 9)),  # three weekends and the holiday
        (local(2021, 9, 17, 10), 1, local(2021, 9, 18, 10)),  # Friday → make-up Saturday
        (local(2021, 9, 18, 10), 1, local(2021, 9, 22, 10)),  # Sat → Sun, Mid-Autumn Mon/Tue off
        (local(2021, 9, 24, 10), 1, local(2021, 9, 26, 10)),  # Friday → make-up Sunday
        (local(2021, 9, 30, 10), 1, local(2021, 10, 8, 10)),  # Golden Week
        (local(2021, 9, 30, 10), 2, local(2021, 10, 9, 10)),  # ... then the make-up Saturday
        (local(2021, 10, 1, 10), 1, local(2021, 10, 8, 10)),  # dispatched on a holiday
    ],
)
def test_working_days_skip_weekends_and_holidays_and_count_make_up_days(
    start: datetime, amount: int, due: datetime
) -> None:
    got = add_duration(start, working_days(amount), CALENDAR_2021, SHANGHAI)
    assert got == due
    assert got.astimezone(SHANGHAI).time() == start.astimezone(SHANGHAI).time()


def test_working_days_count_from_the_local_day_not_the_utc_day() -> None:
    # Friday 23:30 UTC is already Saturday 07:30 in Qingdao: one working day is Monday 07:30 local.
    start = datetime(2021, 6, 4, 23, 30, tzinfo=UTC)
    due = add_duration(start, working_days(1), CALENDAR_2021, SHANGHAI)
    assert due == local(2021, 6, 7, 7, 30)
    assert due.tzinfo is UTC
    # Monday 23:00 UTC is Tuesday 07:00 local: one working day is Wednesday, not Tuesday.
    assert add_duration(datetime(2021, 6, 7, 23, tzinfo=UTC), working_days(1), CALENDAR_2021, SHANGHAI) == local(
        2021, 6, 9, 7
    )


def test_without_a_calendar_only_weekends_are_off() -> None:
    assert add_duration(local(2021, 6, 11, 15), working_days(1), WorkingCalendar(), SHANGHAI) == local(2021, 6, 14, 15)


def test_working_calendar_days() -> None:
    assert CALENDAR_2021.is_working_day(date(2021, 6, 1))
    assert not CALENDAR_2021.is_working_day(date(2021, 6, 5))  # Saturday
    assert not CALENDAR_2021.is_working_day(date(2021, 6, 6))  # Sunday
    assert not CALENDAR_2021.is_working_day(DRAGON_BOAT)  # a Monday
    assert CALENDAR_2021.is_working_day(date(2021, 9, 26))  # a Sunday worked
    assert not WorkingCalendar().is_working_day(date(2021, 9, 26))


def test_the_default_policy_has_one_rule_per_class_and_urgency() -> None:
    rules = default_policy_rules()
    for sla_class in "ABC":
        for urgency in ("normal", "urgent"):
            rule = rule_for(rules, sla_class, urgency)
            assert rule is not None
            assert (rule.sla_class, rule.urgency) == (sla_class, urgency)
    assert len(rules) == 6
    assert rule_for(rules, "A", "urgent").resolve_within == hours(4)  # type: ignore[union-attr]
    assert rule_for(rules, "D", "normal") is None


@pytest.mark.parametrize("amount", [0, -1, 10_001])
def test_sla_durations_are_bounded(amount: int) -> None:
    with pytest.raises(ValueError, match="amount"):
        SlaDuration(amount=amount, unit="hours")
