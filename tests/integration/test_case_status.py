"""Case status (DESIGN.md, "Projections and their figures", item 1) against a naive fold of the events.

The oracle tests drive a generated history through the real application
service (the generator of test_performance.py: many cases over five weeks,
returns, escalations, parking, rework, callbacks and reopenings), build the
read model with the real runner in small batches, and compare every column of
every case with a fold of the stored events written here from DESIGN.md, and
the overdue flag with the SLA clock (time since the dispatch, parked time
removed) at moments around each deadline. The contract test runs one fixed
scenario on SQLite and PostgreSQL; the public timeline shows no personal data.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from domain.masking import mask_personal_text
from domain.personal import Sealed, is_sealed
from projections.case_status import case_status, case_timeline, is_overdue
from projections.sql import make_engine
from tests.integration.test_performance import (
    CLERK,
    Simulation,
    Stored,
    case_command,
    catch_up,
    fixed_scenario,
    local,
    make_runner,
    open_world,
    stored_events,
    worker,
)
from tests.support import CATEGORY, DISPATCHER, GRID, OPERATOR, OTHER_GRID, run

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy import Engine

    from tests.support import App

LEVELS = ("community", "street", "district")
#: DESIGN.md's lifecycle table: the state after each event (events not listed leave the state as it was).
STATE_AFTER = {
    "CaseReported": "reported", "CaseAccepted": "accepted", "CaseRejected": "rejected",
    "DuplicateMerged": "merged", "CaseDispatched": "dispatched", "DispatchSigned": "in_progress",
    "DispatchReturned": "accepted", "CaseEscalated": "accepted", "CaseSuspended": "suspended",
    "CaseResumed": "in_progress", "CaseResolved": "resolved", "ResolutionVerified": "verified",
    "ResolutionRejected": "in_progress", "CaseClosed": "closed", "CaseReopened": "accepted",
}  # fmt: skip
#: Where the SLA clock runs: the case is with a handler and not yet resolved.
CLOCK_STATES = ("dispatched", "in_progress", "suspended")


def _masked(text: str | None) -> str | None:
    """The address as the public sees it: masked (domain.masking)."""
    return None if text is None else mask_personal_text(text)


def naive_utc(at: datetime | None) -> datetime | None:
    """How the read model stores times: naive UTC."""
    return None if at is None else at.astimezone(UTC).replace(tzinfo=None)


# -- the oracle: a fold of the events, one dict per case -------------------------------------


@dataclass
class Folded:
    """The expected row of a case, and what the overdue flag needs that the row does not say."""

    row: dict[str, Any]
    #: Parked seconds since the latest dispatch (suspensions closed by a resume).
    parked_since_dispatch: float = 0.0
    suspended_at: datetime | None = None
    dispatched_at: datetime | None = None
    events: list[str] = field(default_factory=list)


def fold_cases(events: list[Stored]) -> dict[str, Folded]:  # noqa: C901, PLR0912, PLR0915
    """Every case's row as DESIGN.md describes it, folded event by event in store order."""
    cases: dict[str, Folded] = {}
    for e in events:
        if e.aggregate != "Case":
            continue
        d, at = e.data, e.at
        if e.type == "CaseReported":
            location = d["location"]
            cases[e.originator] = Folded({
                "case_number": d["case_number"], "case_id": e.originator, "level": None, "max_level": None,
                "channel": d["channel"], "category": d["category"], "grid": d["grid"], "community": d["community"],
                "street": d["street"], "urgency": d["urgency"], "patrol_number": d["patrol_id"],
                "address": _masked(location["address"]), "description": mask_personal_text(d["description"]),
                "lat": location["lat"], "lon": location["lon"], "handler_kind": None, "handler_id": None,
                "reported_at": at, "accepted_at": None,
                "dispatched_at": None, "signed_at": None, "sign_by": None, "resolve_by": None,
                "suspended_since": None, "suspended_seconds": 0, "suspended_at_dispatch": 0, "resolved_at": None,
                "closed_at": None,
                "merged_into": None, "returns": 0, "escalations": 0, "reopenings": 0, "satisfaction": None,
                "feedback_resolved": None,
            })  # fmt: skip
        case = cases[e.originator]
        row = case.row
        case.events.append(e.type)
        match e.type:
            case "CaseAccepted":
                row["accepted_at"] = row["accepted_at"] or at
                row["level"] = d["level"]
            case "DuplicateMerged":
                row["merged_into"] = d["master_case_number"]
            case "CaseDispatched":
                row["handler_kind"], row["handler_id"] = d["handler"]["kind"], d["handler"]["id"]
                row["dispatched_at"] = case.dispatched_at = at
                row["sign_by"], row["resolve_by"] = moment(d["sign_by"]), moment(d["resolve_by"])
                case.parked_since_dispatch = 0.0
                row["suspended_at_dispatch"] = row["suspended_seconds"]
            case "DispatchSigned":
                row["signed_at"] = at
            case "DispatchReturned":
                row["returns"] += 1
            case "CaseEscalated":
                row["escalations"] += 1
                row["level"] = d["to_level"]
            case "CaseReopened":
                row["reopenings"] += 1
                row["closed_at"] = None
            case "DeadlineExtended":
                row["resolve_by"] = moment(d["resolve_by"])
            case "CaseSuspended":
                row["suspended_since"] = case.suspended_at = at
            case "CaseResumed":
                assert case.suspended_at is not None
                parked = (at - case.suspended_at).total_seconds()
                row["suspended_seconds"] += int(parked)
                case.parked_since_dispatch += parked
                row["suspended_since"] = case.suspended_at = None
            case "CaseResolved":
                row["resolved_at"] = at
            case "CaseClosed":
                row["closed_at"] = at
            case "CitizenFeedbackRecorded":
                row["satisfaction"], row["feedback_resolved"] = d["satisfaction"], 1 if d["resolved"] else 0
        if e.type in {"DispatchReturned", "CaseEscalated", "CaseReopened"}:
            # Back with the centre: nobody holds the case and its deadlines no longer run.
            row["handler_kind"] = row["handler_id"] = row["sign_by"] = row["resolve_by"] = None
        if row["level"] is not None and LEVELS.index(row["level"]) > LEVELS.index(row["max_level"] or "community"):
            row["max_level"] = row["level"]  # the highest level the case has been at
        row["max_level"] = row["max_level"] or row["level"]
        row["state"] = STATE_AFTER.get(e.type, row.get("state"))
        row["last_event"], row["last_event_at"], row["version"] = e.type, at, len(case.events)
    for case in cases.values():
        for name, value in case.row.items():
            if isinstance(value, datetime):
                case.row[name] = naive_utc(value)
    return cases


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def expected_overdue(case: Folded, now: datetime) -> bool:
    """Past resolve-by on the SLA clock: the time since the (latest) dispatch, less the time parked since."""
    row = case.row
    if row["state"] not in CLOCK_STATES or row["resolve_by"] is None:
        return False
    parked = timedelta(seconds=case.parked_since_dispatch)
    if case.suspended_at is not None:
        parked += now - naive_utc(case.suspended_at)  # type: ignore[operator]
    return now - parked > row["resolve_by"]


def moments_around(case: Folded) -> list[datetime]:
    """Moments after the case's last event at which to ask: just before and after its deadline, and later."""
    row = case.row
    last = row["last_event_at"]
    candidates = [last, last + timedelta(hours=1), last + timedelta(days=40)]
    if row["resolve_by"] is not None:
        deadline = row["resolve_by"] + timedelta(seconds=case.parked_since_dispatch)
        candidates += [deadline + step for step in (timedelta(minutes=-1), timedelta(minutes=1), timedelta(hours=1))]
    return sorted({c for c in candidates if c >= last})


def read_rows(engine: Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        return {row.case_number: row for row in connection.execute(select(case_status))}


def column_differences(rows: dict[str, Any], folded: dict[str, Folded]) -> list[str]:
    """Every column of every case that is not what the fold says; and cases missing or extra."""
    expected = {case.row["case_number"]: case.row for case in folded.values()}
    problems = [f"cases on one side only: {sorted(set(rows) ^ set(expected))}"] if set(rows) != set(expected) else []
    for number, want in expected.items():
        got = rows.get(number)
        if got is None:
            continue
        mapping = dict(got._mapping)
        if set(mapping) - set(want):
            problems.append(f"{number}: columns the oracle does not know: {sorted(set(mapping) - set(want))}")
        for name, value in want.items():
            shown = mapping.get(name)
            if name == "case_id":
                shown = str(shown)
            if shown != value:
                history = folded_events(folded, number)
                problems.append(f"{number}.{name}: shown {shown!r}, expected {value!r} ({history})")
    return problems


def folded_events(folded: dict[str, Folded], number: str) -> list[str]:
    return next(case.events for case in folded.values() if case.row["case_number"] == number)


# -- generated histories ----------------------------------------------------------------------


def generated_history(data: st.DataObject, folder: str, *, with_sentinel: bool) -> tuple[App, Engine, Any]:
    """A generated history, projected part way and then fully; the caller closes app and engine."""
    url = f"sqlite:///{Path(folder) / 'gridcase.db'}"
    app = open_world(url)
    engine = make_engine(url)
    runner = make_runner(app, engine)
    if with_sentinel:
        parked_then_escalated(app)
    simulation = Simulation(app, data)
    simulation.plan()
    simulation.run(data.draw(st.integers(0, 200), label="steps before the first catch-up"))
    catch_up(runner)
    simulation.run()
    catch_up(runner)
    runner.release()
    return app, engine, simulation


def parked_then_escalated(app: App) -> str:
    """A case parked 10 h under its first dispatch, then escalated and dispatched again (resolve-by 2 June 22:10)."""
    number = str(run(app, command="case.report", actor=OPERATOR, at=local(1, 10), channel="hotline", category=CATEGORY,
                     grid=GRID, description="井盖破损 broken cover")["case_number"])  # fmt: skip
    case_command(app, "case.accept", number, DISPATCHER, local(1, 10, 5), level="community")
    case_command(app, "case.dispatch", number, DISPATCHER, local(1, 10, 10), handler={"kind": "worker", "id": "W001"})
    case_command(app, "case.sign", number, worker("W001"), local(1, 10, 20))
    case_command(app, "case.suspend", number, DISPATCHER, local(1, 11), reason="等待配件 waiting for a part")
    case_command(app, "case.resume", number, DISPATCHER, local(1, 21))
    case_command(app, "case.escalate", number, DISPATCHER, local(1, 22), to_level="street", reason="需要街道协调")
    case_command(app, "case.dispatch", number, DISPATCHER, local(1, 22, 10), handler={"kind": "worker", "id": "W001"})
    return number


SETTINGS: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
}


@pytest.mark.slow
@settings(max_examples=10, **SETTINGS)
@given(data=st.data())
def test_every_column_of_every_case_equals_a_fold_of_its_events(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory(prefix="gridcase-status-") as folder:
        app, engine, simulation = generated_history(data, folder, with_sentinel=False)
        try:
            folded = fold_cases(stored_events(app))
            assert len(folded) == len(simulation.cases) + 1  # and the master case
            problems = column_differences(read_rows(engine), folded)
            assert not problems, "\n".join(problems[:40])
        finally:
            engine.dispose()
            app.close()


@settings(max_examples=4, phases=[Phase.explicit, Phase.generate], **SETTINGS)
@given(data=st.data())
def test_the_overdue_flag_follows_the_sla_clock_of_the_current_dispatch(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory(prefix="gridcase-overdue-") as folder:
        app, engine, _ = generated_history(data, folder, with_sentinel=True)
        try:
            folded = {case.row["case_number"]: case for case in fold_cases(stored_events(app)).values()}
            problems = [
                f"{number} at {now}: shown {is_overdue(row, now)} ({folded[number].events})"
                for number, row in read_rows(engine).items()
                for now in moments_around(folded[number])
                if is_overdue(row, now) != expected_overdue(folded[number], now)
            ]
            assert not problems, "\n".join(problems[:20])
        finally:
            engine.dispose()
            app.close()


def test_a_case_parked_under_an_earlier_dispatch_is_overdue_on_the_clock_of_the_current_one(sqlite_url: str) -> None:
    app = open_world(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        number = parked_then_escalated(app)
        runner = make_runner(app, engine)
        catch_up(runner)
        runner.release()
        row = read_rows(engine)[number]
        assert (row.state, row.suspended_seconds, row.suspended_since) == ("dispatched", 36_000, None)
        assert row.resolve_by == naive_utc(local(2, 22, 10))
        assert not is_overdue(row, naive_utc(local(2, 22, 9)))  # this part holds
        # Never parked since its dispatch: at 23:10 on 2 June it is an hour late.
        assert is_overdue(row, naive_utc(local(2, 23, 10)))
    finally:
        engine.dispose()
        app.close()


# -- the contract: one fixed scenario on SQLite and PostgreSQL -------------------------------------


def overdue_cases(app: App) -> dict[str, str]:
    """Three cases on 5 June: parked and still parked, running, and running after an extension."""
    numbers = {}
    for name, grid in (("parked", GRID), ("running", OTHER_GRID), ("extended", OTHER_GRID)):
        number = str(run(app, command="case.report", actor=OPERATOR, at=local(5, 9), channel="window",
                         category=CATEGORY, grid=grid, description=f"{name} 井盖 赵大娘 13700001111",
                         location={"lat": 36.06, "lon": 120.35},
                         reporter={"name": "赵大娘", "phone": "13700001111", "id_number": "370202195001011234"},
                         urgency="urgent" if name == "running" else "normal")["case_number"])  # fmt: skip
        numbers[name] = number
        case_command(app, "case.accept", number, DISPATCHER, local(5, 9, 30), level="community")
        case_command(app, "case.dispatch", number, DISPATCHER, local(5, 10), handler={"kind": "department",
                                                                                      "id": "D-CG"})  # fmt: skip
        case_command(app, "case.sign", number, CLERK["D-CG"], local(5, 10, 30))
        case_command(app, "case.note", number, DISPATCHER, local(5, 11), note="联系了赵大娘 13700001111 called her")
    case_command(app, "case.suspend", numbers["parked"], DISPATCHER, local(5, 12), reason="等待天气 赵大娘不在家")
    case_command(app, "case.extend", numbers["extended"], DISPATCHER, local(5, 12), resolve_by=local(7, 10),
                 reason="需要配件 parts")  # fmt: skip
    return numbers


@pytest.fixture
def scenario(database_url: str) -> Iterator[tuple[App, Engine, dict[str, str]]]:
    """The fixed scenario of test_performance.py and three more cases, projected, on each backend."""
    app = open_world(database_url)
    engine = make_engine(database_url)
    fixed_scenario(app)
    numbers = overdue_cases(app)
    runner = make_runner(app, engine, batch_size=5)
    catch_up(runner)
    runner.release()
    yield app, engine, numbers
    engine.dispose()
    app.close()


def test_the_fixed_scenario_gives_the_same_rows_and_flags_on_sqlite_and_postgresql(
    scenario: tuple[App, Engine, dict[str, str]],
) -> None:
    app, engine, numbers = scenario
    rows = read_rows(engine)
    folded = fold_cases(stored_events(app))
    problems = column_differences(rows, folded)
    assert not problems, "\n".join(problems)
    by_number = sorted(rows)
    b, d, e = by_number[1], by_number[3], by_number[4]  # the order of fixed_scenario's reports: A B C D E
    # B: bounced once, reopened by the callback: back with the centre, nobody holds it, no deadlines.
    assert (rows[b].state, rows[b].returns, rows[b].reopenings, rows[b].handler_id, rows[b].resolve_by) == (
        "accepted", 1, 1, None, None)  # fmt: skip
    assert (rows[b].satisfaction, rows[b].feedback_resolved, rows[b].last_event) == ("dissatisfied", 0, "CaseReopened")
    # D: taken at street level, escalated to the district, D-CG resolved it by the extended deadline.
    assert (rows[d].state, rows[d].level, rows[d].max_level, rows[d].escalations) == (
        "closed", "district", "district", 1)  # fmt: skip
    assert (rows[d].handler_kind, rows[d].handler_id) == ("department", "D-CG")
    assert rows[d].resolve_by == naive_utc(local(30, 10))
    assert rows[e].closed_at is None  # reopened
    # The overdue flag on the SLA clock (dispatched 5 June 10:00, 24 h; urgent: 4 h).
    parked, running, extended = rows[numbers["parked"]], rows[numbers["running"]], rows[numbers["extended"]]
    assert parked.suspended_since == naive_utc(local(5, 12))
    for at, flags in (
        (local(5, 13, 59), (False, False, False)),
        (local(5, 14, 1), (False, True, False)),  # the urgent one is due at 14:00
        (local(6, 10, 1), (False, True, False)),  # the parked one's clock stopped at 12:00; the other was extended
        (local(20, 10), (False, True, True)),
    ):
        now = naive_utc(at)
        assert (is_overdue(parked, now), is_overdue(running, now), is_overdue(extended, now)) == flags, at
    # …and every row in every state agrees with the oracle at moments around its deadline.
    by_case = {case.row["case_number"]: case for case in folded.values()}
    for number, row in rows.items():
        for now in moments_around(by_case[number]):
            assert is_overdue(row, now) == expected_overdue(by_case[number], now), (number, now)


def test_the_public_timeline_shows_no_personal_data(scenario: tuple[App, Engine, dict[str, str]]) -> None:
    app, engine, _ = scenario
    personal = set()
    for e in stored_events(app):
        if e.type == "CaseReported" and e.data["reporter"]:
            assert is_sealed(e.data["reporter"])  # stored sealed: opened here through the vault
            clear = app.store.vault.reveal(Sealed.model_validate(e.data["reporter"])) or {}
            personal |= {value for value in clear.values() if value}
    assert {"王小明", "13912345678", "赵大娘", "13700001111", "370202195001011234"} <= personal
    with engine.connect() as connection:
        entries = connection.execute(select(case_timeline)).mappings().all()
    assert len(entries) == sum(1 for e in stored_events(app) if e.aggregate == "Case")
    text = "\n".join(" ".join(str(value) for value in entry.values()) for entry in entries)
    assert [secret for secret in personal if secret in text] == []
    # The operator's free text (descriptions, notes, reasons) named the reporter too: none of it is public.
    assert "called her" not in text
    assert "赵" not in text
    assert {entry["note"] for entry in entries} <= {
        "", "callback recorded", "registered via hotline", "registered via window", "registered via app",
        "accepted at community level", "accepted at street level", "escalated to district level",
        "dispatched to a grid worker", "dispatched to department D-CG", "dispatched to department D-SW",
    }  # fmt: skip
