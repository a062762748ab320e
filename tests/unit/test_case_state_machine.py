from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from domain.errors import CommandRefused, DomainError
from tests.conftest import make_settings
from tests.support import (
    ADMIN,
    CALLBACK,
    DEPT_HANDLER,
    DISPATCHER,
    OPERATOR,
    OTHER_WORKER,
    T0,
    WORKER,
    make_app,
    report,
    run,
    seed_small_district,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from domain.case import Case

SHANGHAI = ZoneInfo("Asia/Shanghai")
OTHER_DEPT_HANDLER = {"id": "clerk-9", "role": "department_handler", "unit": "D-SW"}
AUDITOR = {"id": "aud-1", "role": "auditor"}
OVERDUE_POLICY = {"id": "policy:overdue", "role": "system"}
ACTORS = [
    ADMIN,
    OPERATOR,
    DISPATCHER,
    WORKER,
    OTHER_WORKER,
    DEPT_HANDLER,
    OTHER_DEPT_HANDLER,
    CALLBACK,
    AUDITOR,
    OVERDUE_POLICY,
]

W001 = {"kind": "worker", "id": "W001"}
D_CG = {"kind": "department", "id": "D-CG"}
UNKNOWN_WORKER = {"kind": "worker", "id": "W404"}
UNKNOWN_CASE = "SN-20210601-999999"

# -- the model: DESIGN.md's lifecycle table, written independently of domain/case.py ----------------

OPEN = frozenset({"reported", "accepted", "dispatched", "in_progress", "suspended", "resolved", "verified"})
DISPATCHING = frozenset({"dispatcher", "admin"})
ROLES: dict[str, frozenset[str]] = {
    "accept": DISPATCHING,
    "reject": DISPATCHING,
    "merge": frozenset({"intake_operator", "dispatcher", "admin"}),
    "dispatch": DISPATCHING,
    "escalate": DISPATCHING | {"system"},
    "extend": DISPATCHING,
    "suspend": DISPATCHING,
    "resume": DISPATCHING,
    "note": frozenset(
        {"grid_worker", "intake_operator", "dispatcher", "department_handler", "callback_operator", "admin", "system"}
    ),
    "verify": frozenset({"grid_worker"}),
    "reject-resolution": frozenset({"grid_worker"}),
    "close": DISPATCHING,
    "feedback": frozenset({"callback_operator", "intake_operator", "dispatcher", "admin"}),
    "reopen": DISPATCHING,
}
RANK = {"community": 0, "street": 1, "district": 2}
#: facility.manhole is SLA class A; a normal case signs within 2 hours and resolves within 24 (hours, wall time).
SIGN_WITHIN = timedelta(hours=2)
RESOLVE_WITHIN = timedelta(hours=24)

actors = st.sampled_from(ACTORS)
#: Mostly forward in time; a negative value means "before the case's last event".
minutes = st.integers(min_value=-5, max_value=240)
levels = st.sampled_from(["community", "street", "district"])
reasons = st.sampled_from(["a reason", "另一个原因", "rework needed", "   ", ""])
handlers = st.sampled_from([W001, D_CG, UNKNOWN_WORKER])
MASTER_FATES = ["reported", "accepted", "rejected", "closed"]


def actor_or(right: dict[str, str]) -> st.SearchStrategy[dict[str, str]]:
    """The right actor half the time, anyone the other half."""
    return st.one_of(st.just(right), actors)


#: Who is "the handler" for sign, return and resolve is decided at run time.
handler_or_anyone = st.one_of(st.just("handler"), actors)


def _progress_rule() -> Callable[[CaseLifecycle, st.DataObject], None]:
    @precondition(lambda self: self.model["state"] not in {"rejected", "merged"})
    @rule(data=st.data())
    def progress(self: CaseLifecycle, data: st.DataObject) -> None:
        self.drive(data)

    return progress


class CaseLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmpdir = tempfile.mkdtemp(prefix="gridcase-sm-")
        self.url = f"sqlite:///{self.tmpdir}/x.db"
        self.app = make_app(make_settings(self.url))
        seed_small_district(self.app)
        self.number = report(self.app)
        self.master = report(self.app, description="井盖缺失 same manhole, second caller")
        self.now = T0
        self.master_state = "reported"
        self.model: dict[str, Any] = {
            "state": "reported",
            "level": None,
            "handler": None,
            "sign_by": None,
            "resolve_by": None,
            "feedback": False,
            "last": T0,
            "events": 1,
        }

    def teardown(self) -> None:
        self.app.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------------

    def tick(self, advance: int) -> datetime:
        """A moment for the next command: later than everything so far, or (advance < 0) stale."""
        if advance < 0:
            return self.model["last"] + timedelta(minutes=advance)  # type: ignore[no-any-return]
        self.now += timedelta(minutes=advance)
        # Field devices send local times, servers UTC: the same instant either way.
        return self.now.astimezone(SHANGHAI) if advance % 2 else self.now

    def timely(self, at: datetime) -> bool:
        return at >= self.model["last"]  # type: ignore[no-any-return]

    def is_handler(self, actor: dict[str, str]) -> bool:
        handler = self.model["handler"]
        if handler is None:
            return False
        kind, code = handler
        if kind == "worker":
            return actor["role"] == "grid_worker" and actor["id"] == code
        return actor["role"] == "department_handler" and actor.get("unit") == code

    def handler_actor(self, who: str | dict[str, str]) -> dict[str, str]:
        if who != "handler":
            return who  # type: ignore[return-value]
        handler = self.model["handler"]
        if handler is None:
            return WORKER
        return WORKER if handler == ("worker", "W001") else DEPT_HANDLER

    def allowed(self, command: str, actor: dict[str, str], at: datetime, *states: str) -> bool:
        own_check = command in {"verify", "reject-resolution"} and actor["id"] == self.model.get("resolver")
        return (self.model["state"] in states and actor["role"] in ROLES[command] and self.timely(at)
                and self.in_scope(actor) and self.in_grid(actor, at) and not own_check)  # fmt: skip

    @staticmethod
    def in_grid(actor: dict[str, str], at: datetime) -> bool:
        """A grid worker acts only in grids they work that day: W001 works GRID, W002 covered it through 2021."""
        if actor["role"] != "grid_worker":
            return True
        day = at.astimezone(SHANGHAI).date()
        return actor["id"] == "W001" or (actor["id"] == "W002" and day.year <= 2021)

    def in_scope(self, actor: dict[str, str]) -> bool:
        """A department handler acts only on a case dispatched to their department (the rule in the core)."""
        return actor["role"] != "department_handler" or self.model["handler"] == ("department", actor.get("unit"))

    def attempt(self, fields: dict[str, Any], ok: bool, effect: Callable[[], None], events: int = 1) -> None:
        """Run the command; the service must take it exactly when the model does, and write nothing if not."""
        command = fields["command"]
        before = len(self.app.history(self.number))
        assert before == self.model["events"]
        refusal: DomainError | None = None
        try:
            run(self.app, case_number=self.number, **fields)
        except DomainError as error:
            refusal = error
        if refusal is not None:
            after = len(self.app.history(self.number))
            assert after == before, f"refused {command} wrote {after - before} event(s): {refusal}"
            assert not ok, f"{command} by {fields['actor']} refused but the model allows it: {refusal}"
            if isinstance(refusal, CommandRefused):
                message = str(refusal)
                assert self.number in message, message
                assert f"is {self.model['state']}" in message, message
                assert command.removeprefix("case.") in message, message
            return
        assert ok, f"{command} by {fields['actor']} at {fields['at']} taken in {self.model['state']}; model refuses"
        effect()
        self.model["events"] += events
        self.model["last"] = fields["at"]
        assert len(self.app.history(self.number)) == before + events

    # -- intake -------------------------------------------------------------------------------

    @rule(actor=actor_or(DISPATCHER), advance=minutes, level=levels)
    def accept(self, actor: dict[str, str], advance: int, level: str) -> None:
        at = self.tick(advance)
        self.attempt(
            {"command": "case.accept", "actor": actor, "at": at, "level": level},
            self.allowed("accept", actor, at, "reported"),
            lambda: self.model.update(state="accepted", level=level),
        )

    @rule(actor=actor_or(DISPATCHER), advance=minutes, reason=reasons)
    def reject(self, actor: dict[str, str], advance: int, reason: str) -> None:
        at = self.tick(advance)
        self.attempt(
            {"command": "case.reject", "actor": actor, "at": at, "reason": reason},
            self.allowed("reject", actor, at, "reported") and bool(reason.strip()),
            lambda: self.model.update(state="rejected"),
        )

    @rule(actor=actor_or(OPERATOR), advance=minutes, into=st.sampled_from(["master", "self", "unknown"]))
    def merge(self, actor: dict[str, str], advance: int, into: str) -> None:
        at = self.tick(advance)
        master = {"master": self.master, "self": self.number, "unknown": UNKNOWN_CASE}[into]
        self.attempt(
            {"command": "case.merge", "actor": actor, "at": at, "master_case_number": master},
            self.allowed("merge", actor, at, "reported") and into == "master" and self.master_state in OPEN,
            lambda: self.model.update(state="merged"),
        )

    @precondition(lambda self: self.master_state == "reported")
    @rule(advance=st.integers(0, 60))
    def reject_master(self, advance: int) -> None:
        at = self.tick(advance)
        run(self.app, command="case.reject", actor=DISPATCHER, at=at, case_number=self.master, reason="duplicate")
        self.master_state = "rejected"

    # -- dispatch -----------------------------------------------------------------------------

    @rule(actor=actor_or(DISPATCHER), advance=minutes, handler=handlers)
    def dispatch(self, actor: dict[str, str], advance: int, handler: dict[str, str]) -> None:
        at = self.tick(advance)
        self.attempt(
            {"command": "case.dispatch", "actor": actor, "at": at, "handler": handler},
            self.allowed("dispatch", actor, at, "accepted") and handler != UNKNOWN_WORKER,
            lambda: self.model.update(
                state="dispatched",
                handler=(handler["kind"], handler["id"]),
                sign_by=at + SIGN_WITHIN,
                resolve_by=at + RESOLVE_WITHIN,
            ),
        )

    @rule(who=handler_or_anyone, advance=minutes)
    def sign(self, who: str | dict[str, str], advance: int) -> None:
        actor, at = self.handler_actor(who), self.tick(advance)
        self.attempt(
            {"command": "case.sign", "actor": actor, "at": at},
            self.model["state"] == "dispatched" and self.is_handler(actor) and self.timely(at),
            lambda: self.model.update(state="in_progress"),
        )

    @rule(who=handler_or_anyone, advance=minutes, reason=reasons)
    def return_dispatch(self, who: str | dict[str, str], advance: int, reason: str) -> None:
        actor, at = self.handler_actor(who), self.tick(advance)
        self.attempt(
            {"command": "case.return", "actor": actor, "at": at, "reason": reason},
            self.model["state"] == "dispatched" and self.is_handler(actor) and self.timely(at) and bool(reason.strip()),
            lambda: self.model.update(state="accepted", handler=None),
        )

    @rule(
        actor=st.one_of(st.just(DISPATCHER), st.just(OVERDUE_POLICY), actors),
        advance=minutes,
        level=levels,
        reason=reasons,
    )
    def escalate(self, actor: dict[str, str], advance: int, level: str, reason: str) -> None:
        at = self.tick(advance)
        current = self.model["level"]
        ok = (
            self.allowed("escalate", actor, at, "accepted", "dispatched", "in_progress")
            and current is not None
            and RANK[level] > RANK[current]
            and bool(reason.strip())
        )
        self.attempt(
            {"command": "case.escalate", "actor": actor, "at": at, "to_level": level, "reason": reason},
            ok,
            lambda: self.model.update(state="accepted", level=level, handler=None),
        )

    # -- handling -----------------------------------------------------------------------------

    @rule(actor=actor_or(DISPATCHER), advance=minutes, hours=st.integers(-30, 72), reason=reasons)
    def extend(self, actor: dict[str, str], advance: int, hours: int, reason: str) -> None:
        at = self.tick(advance)
        current = self.model["resolve_by"]
        resolve_by = (current or at) + timedelta(hours=hours)
        ok = (
            self.allowed("extend", actor, at, "in_progress")
            and resolve_by > at
            and current is not None
            and resolve_by > current
            and bool(reason.strip())
        )
        self.attempt(
            {"command": "case.extend", "actor": actor, "at": at, "resolve_by": resolve_by, "reason": reason},
            ok,
            lambda: self.model.update(resolve_by=resolve_by),
        )

    @rule(actor=actor_or(DISPATCHER), advance=minutes, reason=reasons)
    def suspend(self, actor: dict[str, str], advance: int, reason: str) -> None:
        at = self.tick(advance)
        self.attempt(
            {"command": "case.suspend", "actor": actor, "at": at, "reason": reason},
            self.allowed("suspend", actor, at, "in_progress") and bool(reason.strip()),
            lambda: self.model.update(state="suspended"),
        )

    @rule(actor=actor_or(DISPATCHER), advance=minutes)
    def resume(self, actor: dict[str, str], advance: int) -> None:
        at = self.tick(advance)
        self.attempt(
            {"command": "case.resume", "actor": actor, "at": at},
            self.allowed("resume", actor, at, "suspended"),
            lambda: self.model.update(state="in_progress"),
        )

    @rule(actor=actors, advance=minutes, note=reasons)
    def note(self, actor: dict[str, str], advance: int, note: str) -> None:
        at = self.tick(advance)
        self.attempt(
            {"command": "case.note", "actor": actor, "at": at, "note": note},
            self.allowed("note", actor, at, *OPEN) and bool(note.strip()),
            lambda: None,
        )

    @rule(who=handler_or_anyone, advance=minutes, result=reasons)
    def resolve(self, who: str | dict[str, str], advance: int, result: str) -> None:
        actor, at = self.handler_actor(who), self.tick(advance)
        self.attempt(
            {"command": "case.resolve", "actor": actor, "at": at, "result": result, "evidence": ["photo-1.jpg"]},
            self.model["state"] == "in_progress"
            and self.is_handler(actor)
            and self.timely(at)
            and bool(result.strip()),
            lambda: self.model.update(state="resolved", resolver=actor["id"]),
        )

    @rule(actor=actor_or(OTHER_WORKER), advance=minutes)
    def verify(self, actor: dict[str, str], advance: int) -> None:
        at = self.tick(advance)
        self.attempt(
            {"command": "case.verify", "actor": actor, "at": at},
            self.allowed("verify", actor, at, "resolved"),
            lambda: self.model.update(state="verified"),
        )

    @rule(actor=actor_or(OTHER_WORKER), advance=minutes, reason=reasons)
    def reject_resolution(self, actor: dict[str, str], advance: int, reason: str) -> None:
        at = self.tick(advance)
        self.attempt(
            {"command": "case.reject-resolution", "actor": actor, "at": at, "reason": reason},
            self.allowed("reject-resolution", actor, at, "resolved") and bool(reason.strip()),
            lambda: self.model.update(state="in_progress"),
        )

    # -- closure ------------------------------------------------------------------------------

    @rule(actor=actor_or(DISPATCHER), advance=minutes)
    def close(self, actor: dict[str, str], advance: int) -> None:
        at = self.tick(advance)
        self.attempt(
            {"command": "case.close", "actor": actor, "at": at},
            self.allowed("close", actor, at, "verified"),
            lambda: self.model.update(state="closed", feedback=False),
        )

    @rule(
        actor=actor_or(CALLBACK),
        advance=minutes,
        satisfaction=st.sampled_from(["satisfied", "basically_satisfied", "dissatisfied"]),
        resolved=st.booleans(),
    )
    def feedback(self, actor: dict[str, str], advance: int, satisfaction: str, resolved: bool) -> None:
        at = self.tick(advance)

        def effect() -> None:
            self.model["feedback"] = True
            if not resolved:  # closed is not fixed: the callback policy reopens the case
                self.model.update(state="accepted", handler=None)

        self.attempt(
            {"command": "case.feedback", "actor": actor, "at": at, "satisfaction": satisfaction, "resolved": resolved},
            self.allowed("feedback", actor, at, "closed") and not self.model["feedback"],
            effect,
            events=1 if resolved else 2,
        )

    @rule(actor=actor_or(DISPATCHER), advance=minutes, reason=reasons)
    def reopen(self, actor: dict[str, str], advance: int, reason: str) -> None:
        at = self.tick(advance)
        self.attempt(
            {"command": "case.reopen", "actor": actor, "at": at, "reason": reason},
            self.allowed("reopen", actor, at, "closed") and bool(reason.strip()),
            lambda: self.model.update(state="accepted", handler=None),
        )

    # -- the happy path, so random runs get deep into the lifecycle ------------------------------

    def drive(self, data: st.DataObject) -> None:
        """Give a command the model allows now, by the right actor, so runs reach the late states."""
        state = self.model["state"]
        advance = data.draw(st.integers(0, 240), label="advance")
        options = {
            "reported": ["accept", "accept", "merge", "reject"],
            "accepted": ["dispatch", "dispatch", "dispatch", "escalate", "note"],
            "dispatched": ["sign", "sign", "sign", "return", "escalate"],
            "in_progress": ["resolve", "resolve", "resolve", "suspend", "extend", "escalate", "note"],
            "suspended": ["resume", "note"],
            "resolved": ["verify", "verify", "reject_resolution"],
            "verified": ["close", "close", "note"],
            "closed": ["reopen"] if self.model["feedback"] else ["feedback", "feedback", "feedback", "reopen"],
        }[state]
        name = data.draw(st.sampled_from(options), label="command")
        if name == "escalate" and self.model["level"] == "district":
            name = "note"
        calls: dict[str, Callable[[], None]] = {
            "accept": lambda: self.accept(DISPATCHER, advance, data.draw(levels, label="level")),
            "reject": lambda: self.reject(DISPATCHER, advance, "out of scope"),
            "merge": lambda: self.merge(OPERATOR, advance, "master"),
            "dispatch": lambda: self.dispatch(DISPATCHER, advance, data.draw(st.sampled_from([W001, D_CG]))),
            "sign": lambda: self.sign("handler", advance),
            "return": lambda: self.return_dispatch("handler", advance, "not ours"),
            "escalate": lambda: self.escalate(
                DISPATCHER, advance, "district" if self.model["level"] == "street" else "street", "too big"
            ),
            "note": lambda: self.note(ADMIN, advance, "progress"),
            "resolve": lambda: self.resolve("handler", advance, "fixed"),
            "suspend": lambda: self.suspend(DISPATCHER, advance, "waiting for parts"),
            "extend": lambda: self.extend(DISPATCHER, advance, data.draw(st.integers(1, 72)), "more time"),
            "resume": lambda: self.resume(DISPATCHER, advance),
            "verify": lambda: self.verify(OTHER_WORKER, advance),
            "reject_resolution": lambda: self.reject_resolution(OTHER_WORKER, advance, "still broken"),
            "close": lambda: self.close(DISPATCHER, advance),
            "feedback": lambda: self.feedback(
                CALLBACK,
                advance,
                data.draw(st.sampled_from(["satisfied", "basically_satisfied", "dissatisfied"])),
                data.draw(st.booleans(), label="resolved"),
            ),
            "reopen": lambda: self.reopen(DISPATCHER, advance, "called again"),
        }
        calls[name]()

    @initialize(data=st.data(), master=st.sampled_from(MASTER_FATES))
    def fast_forward(self, data: st.DataObject, master: str) -> None:
        """Start each run with the master case open or not, and the case somewhere along its lifecycle."""
        self.set_master(master)
        for _ in range(data.draw(st.integers(0, 10), label="depth")):
            if self.model["state"] in {"rejected", "merged"}:
                break
            self.drive(data)

    def set_master(self, fate: str) -> None:
        """Take the master case (reported at T0) to ``fate``."""
        to_closed: list[tuple[str, dict[str, Any]]] = [
            ("case.accept", {}),
            ("case.dispatch", {"handler": W001}),
            ("case.sign", {"actor": WORKER}),
            ("case.resolve", {"actor": WORKER, "result": "fixed"}),
            ("case.verify", {"actor": OTHER_WORKER}),
            ("case.close", {}),
        ]
        steps = {
            "reported": [],
            "accepted": to_closed[:1],
            "rejected": [("case.reject", {"reason": "duplicate"})],
            "closed": to_closed,
        }[fate]
        for command, fields in steps:
            run(self.app, **{"command": command, "actor": DISPATCHER, "at": T0, "case_number": self.master, **fields})
        self.master_state = fate

    # A third of the steps follow the happy path (hypothesis picks rules uniformly).
    progress_1 = _progress_rule()
    progress_2 = _progress_rule()
    progress_3 = _progress_rule()
    progress_4 = _progress_rule()
    progress_5 = _progress_rule()
    progress_6 = _progress_rule()
    progress_7 = _progress_rule()
    progress_8 = _progress_rule()

    # -- after every step -----------------------------------------------------------------------

    @invariant()
    def case_matches_the_model(self) -> None:
        live = self.app.case(self.number)
        model = self.model
        assert live.state.value == model["state"]
        assert (live.level.value if live.level else None) == model["level"]
        assert ((live.handler.kind.value, live.handler.id) if live.handler else None) == model["handler"]
        assert live.version == model["events"]
        assert len(self.app.history(self.number)) == model["events"]
        assert live.last_occurred_at == model["last"]
        if model["state"] in {"dispatched", "in_progress", "suspended", "resolved", "verified"}:
            assert live.sign_by == model["sign_by"]
            assert live.resolve_by == model["resolve_by"]
        assert self.app.case(self.master).state.value == self.master_state

    @invariant()
    def a_new_service_reloads_the_same_case(self) -> None:
        live = self.app.case(self.number)
        fresh_app = make_app(make_settings(self.url))
        try:
            fresh = fresh_app.case(self.number)
        finally:
            fresh_app.close()
        assert (fresh.state, fresh.level, fresh.handler, fresh.version) == (
            live.state,
            live.level,
            live.handler,
            live.version,
        )
        assert state_of(fresh) == state_of(live)


def state_of(case: Case) -> dict[str, Any]:
    return {k: v for k, v in vars(case).items() if k != "_pending_events"}


CaseLifecycle.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_case_lifecycle = CaseLifecycle.TestCase


# Runs the machine is sure to need but random runs may miss: a merge is refused, and writes nothing,
# unless the master case is open and another case.
MERGES = [(fate, into) for fate in MASTER_FATES for into in ("master", "self", "unknown")]


@pytest.mark.parametrize(("fate", "into"), MERGES, ids=[f"{into}-{fate}" for fate, into in MERGES])
def test_merge_needs_an_open_master_that_is_another_case(fate: str, into: str) -> None:
    machine = CaseLifecycle()
    try:
        machine.set_master(fate)
        machine.merge(OPERATOR, 5, into)
        machine.case_matches_the_model()
        machine.a_new_service_reloads_the_same_case()
        merged = into == "master" and fate in {"reported", "accepted"}
        assert machine.app.case(machine.number).state.value == ("merged" if merged else "reported")
        if merged:
            assert machine.app.resolve_number(machine.number) == machine.master
    finally:
        machine.teardown()

