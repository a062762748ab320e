"""The intake read model ("one window, one number"): figures against a naive oracle, on SQLite and PostgreSQL.

The oracle test drives a generated history through the real application
service, builds the read models with the real runner in small batches (part of
the way, then the rest), and checks every figure of every grouping over several
periods against a deliberately naive recount straight from the stored events.
The contract tests run one small hand-checked scenario on both backends.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.case_status import CaseStatus
from projections.intake import Intake
from projections.intake_queries import Grouping, intake_figures, lookup, possible_duplicates
from projections.runner import Runner
from projections.sql import make_engine
from tests.conftest import make_settings
from tests.support import (
    ADMIN,
    CATEGORY,
    DISPATCHER,
    GRID,
    OPERATOR,
    OTHER_GRID,
    T0,
    App,
    make_app,
    run,
    seed_small_district,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from eventsourcing.persistence import Notification
    from sqlalchemy import Engine

QINGDAO = ZoneInfo("Asia/Shanghai")
DISPUTE = "dispute.neighbour"
SECOND_STREET = "SN02"
SECOND_STREET_GRID = "SN02-C01-G001"
GRIDS = (GRID, OTHER_GRID, SECOND_STREET_GRID)
CATEGORIES = (CATEGORY, DISPUTE)
CHANNELS = ("hotline", "window", "app", "wechat", "letter_visit", "supervision")
GROUPINGS: tuple[Grouping, ...] = ("channel", "category", "street")
FIGURES = ("received", "accepted", "rejected", "merged", "mean_minutes_to_accept", "p90_minutes_to_accept")
INTAKE_EVENTS = {"CaseReported": "received", "CaseAccepted": "accepted", "CaseRejected": "rejected",
                 "DuplicateMerged": "merged"}  # fmt: skip
#: Generated histories start here: they cross local midnights, a month's end and a year's end.
START = datetime(2021, 12, 28, tzinfo=QINGDAO)
ORACLE_PERIODS = ("2021", "2022", "2021-12", "2022-01", "2020", "2021-11",
                  *((START + timedelta(days=n)).date().isoformat() for n in range(-1, 13)))  # fmt: skip


# -- the world ---------------------------------------------------------------------


def add_second_street(app: App) -> None:
    """A second street with one community and one grid, built through registry commands."""
    with app.batch():
        run(app, command="registry.org-unit", actor=ADMIN, at=T0, code=SECOND_STREET, kind="street",
            name="金门路街道", parent="SN")  # fmt: skip
        run(app, command="registry.org-unit", actor=ADMIN, at=T0, code="SN02-C01", kind="community",
            name="仙游路社区", parent=SECOND_STREET)  # fmt: skip
        run(app, command="registry.org-unit", actor=ADMIN, at=T0, code=SECOND_STREET_GRID, kind="grid",
            grid_kind="base", name="仙游路社区001网格", parent="SN02-C01", households=480, population=960,
            elderly=150)  # fmt: skip


def open_app(url: str) -> App:
    """The application on a database holding the small district and a second street."""
    app = make_app(make_settings(url))
    seed_small_district(app)
    add_second_street(app)
    return app


def make_runner(app: App, engine: Engine) -> Runner:
    """The real runner over the store's notification log, in small batches so batching is exercised."""

    def read(after: int, limit: int) -> Sequence[Notification]:
        return app.store.recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False)

    runner = Runner(engine, read, [CaseStatus(), Intake(QINGDAO)], batch_size=50)
    runner.create_tables()
    return runner


def catch_up(runner: Runner) -> None:
    """Apply everything stored so far; nothing may be dead-lettered."""
    stats = runner.run_once(lease_timeout=5)
    assert stats.deadlettered == 0
    with runner.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM projection_deadletters").scalar() == 0


def report_case(app: App, at: datetime, channel: str, category: str, grid: str,
                location: dict[str, float] | None = None) -> str:  # fmt: skip
    """Register a complaint; returns its number."""
    return str(
        run(app, command="case.report", actor=OPERATOR, at=at, channel=channel, category=category, grid=grid,
            location=location or {}, description="问题描述 something to fix", reporter={"phone": "13800000000"})[
            "case_number"
        ]
    )  # fmt: skip


def on_case(app: App, command: str, number: str, at: datetime, **fields: Any) -> None:
    """Run a dispatcher's command on a case."""
    run(app, command=command, case_number=number, actor=DISPATCHER, at=at, **fields)


# -- the oracle: a naive recount from the stored events -----------------------------


def stored_events(app: App) -> list[tuple[str, str, dict[str, Any]]]:
    """Every stored case event as (type, aggregate id, data), in store order, read straight from the recorder."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    position = 0
    while True:
        page = app.store.recorder.select_notifications(start=position, limit=500, inclusive_of_start=False)
        if not page:
            return out
        for notification in page:
            if notification.topic.startswith("domain.case:"):
                kind = notification.topic.rsplit(".", 1)[1]
                out.append((kind, str(notification.originator_id), json.loads(notification.state)))
        position = page[-1].id


def naive_figures(events: list[tuple[str, str, dict[str, Any]]], by: str, period: str) -> list[dict[str, Any]]:
    """What intake_figures should say, recounted event by event with nothing shared with the projection."""
    reports: dict[str, dict[str, Any]] = {}
    rows: dict[str, dict[str, Any]] = {}
    waits: dict[str, list[float]] = {}
    for kind, case, data in events:
        if kind == "CaseReported":
            reports[case] = data
        if kind not in INTAKE_EVENTS:
            continue
        report = reports[case]
        occurred = datetime.fromisoformat(data["occurred_at"])
        if not occurred.astimezone(QINGDAO).date().isoformat().startswith(period):
            continue
        group = report[by]
        row = rows.setdefault(group, {by: group, "received": 0, "accepted": 0, "rejected": 0, "merged": 0})
        row[INTAKE_EVENTS[kind]] += 1
        if kind == "CaseAccepted":
            reported = datetime.fromisoformat(report["occurred_at"])
            waits.setdefault(group, []).append((occurred - reported).total_seconds() / 60)
    for group, row in rows.items():
        minutes = sorted(waits.get(group, []))
        row["mean_minutes_to_accept"] = sum(minutes) / len(minutes) if minutes else None
        row["p90_minutes_to_accept"] = minutes[math.ceil(len(minutes) * 9 / 10) - 1] if minutes else None
    return [rows[group] for group in sorted(rows)]


def assert_same_figures(actual: list[dict[str, Any]], expected: list[dict[str, Any]], context: str) -> None:
    """Row by row, figure by figure; minutes within float rounding, None only where None is expected."""
    assert [row.keys() for row in actual] == [row.keys() for row in expected], context
    for got, want in zip(actual, expected, strict=True):
        for name, value in want.items():
            if isinstance(value, float):
                assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9), f"{context}: {name} of {got}"
            else:
                assert got[name] == value, f"{context}: {name} of {got}"


# -- (a) the oracle test --------------------------------------------------------------


@dataclass(frozen=True)
class CasePlan:
    """One generated case: when and how it comes in, and what the centre decides how long after."""

    report_after_us: int
    channel: str
    category: str
    grid: str
    outcome: str
    delay_us: int
    master_pick: int
    dispatch: bool


MICROSECONDS_PER_DAY = 86_400 * 10**6
case_plans = st.builds(
    CasePlan,
    report_after_us=st.integers(0, 8 * MICROSECONDS_PER_DAY),
    channel=st.sampled_from(CHANNELS),
    category=st.sampled_from(CATEGORIES),
    grid=st.sampled_from(GRIDS),
    outcome=st.sampled_from(("stays", "accept", "accept", "reject", "merge")),
    delay_us=st.one_of(st.just(0), st.integers(0, 10**6), st.integers(0, 3 * MICROSECONDS_PER_DAY)),
    master_pick=st.integers(0, 10**6),
    dispatch=st.booleans(),
)
#: Same-time actions: a case's report first, then the centre's decision, then its dispatch.
ACTION_ORDER = {"report": 0, "accept": 1, "reject": 1, "merge": 1, "dispatch": 2}
OPEN = ("reported", "accepted", "dispatched")


def play(app: App, plans: list[CasePlan], timeline: list[tuple[datetime, int, str]],
         numbers: dict[int, str], states: dict[int, str]) -> None:  # fmt: skip
    """Carry out timeline steps through the application service, keeping every command valid."""
    for at, index, action in timeline:
        plan = plans[index]
        if action == "report":
            numbers[index] = report_case(app, at, plan.channel, plan.category, plan.grid)
            states[index] = "reported"
        elif action == "merge":
            masters = sorted(other for other, state in states.items() if state in OPEN and other != index)
            if not masters:
                continue  # nobody to merge into yet: the case stays reported
            master = masters[plan.master_pick % len(masters)]
            on_case(app, "case.merge", numbers[index], at, master_case_number=numbers[master])
            states[index] = "merged"
        elif action == "accept":
            on_case(app, "case.accept", numbers[index], at, level="community")
            states[index] = "accepted"
        elif action == "reject":
            on_case(app, "case.reject", numbers[index], at, reason="不属于受理范围 out of scope")
            states[index] = "rejected"
        elif states[index] == "accepted":  # dispatch
            # To a department: a grid worker takes only cases of their own grids, and the plans span every grid.
            on_case(app, "case.dispatch", numbers[index], at, handler={"kind": "department", "id": "D-CG"})
            states[index] = "dispatched"


def timeline_of(plans: list[CasePlan]) -> list[tuple[datetime, int, str]]:
    """Every planned action at its moment, in the order they happen."""
    steps: list[tuple[datetime, int, str]] = []
    for index, plan in enumerate(plans):
        reported = START + timedelta(microseconds=plan.report_after_us)
        steps.append((reported, index, "report"))
        if plan.outcome != "stays":
            decided = reported + timedelta(microseconds=plan.delay_us)
            steps.append((decided, index, plan.outcome))
            if plan.outcome == "accept" and plan.dispatch:
                steps.append((decided + timedelta(hours=1), index, "dispatch"))
    return sorted(steps, key=lambda step: (step[0], step[1], ACTION_ORDER[step[2]]))


@pytest.mark.slow
@settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans=st.lists(case_plans, min_size=100, max_size=180), split=st.integers(0, 10**6))
def test_every_figure_equals_a_naive_recount_of_the_events(plans: list[CasePlan], split: int) -> None:
    with tempfile.TemporaryDirectory(prefix="gridcase-intake-") as folder:
        url = f"sqlite:///{Path(folder) / 'gridcase.db'}"
        app = open_app(url)
        engine = make_engine(url)
        try:
            runner = make_runner(app, engine)
            timeline = timeline_of(plans)
            cut = split % (len(timeline) + 1)
            numbers: dict[int, str] = {}
            states: dict[int, str] = {}
            # Part of the history, projected; then the rest: later events must find their cases in the table.
            play(app, plans, timeline[:cut], numbers, states)
            catch_up(runner)
            play(app, plans, timeline[cut:], numbers, states)
            catch_up(runner)
            runner.release()

            events = stored_events(app)
            assert sum(kind == "CaseReported" for kind, _, _ in events) == len(plans)
            with engine.connect() as connection:
                for by in GROUPINGS:
                    for period in ORACLE_PERIODS:
                        expected = naive_figures(events, by, period)
                        assert_same_figures(intake_figures(connection, by, period), expected, f"{by} {period}")
                totals = intake_figures(connection, "street", "2022") + intake_figures(connection, "street", "2021")
            assert sum(row["received"] for row in totals) == len(plans)
        finally:
            engine.dispose()
            app.close()


# -- (b) contract tests: the same small scenario on SQLite and PostgreSQL --------------

#: Somewhere on Yongjia Road; the other points are measured from it.
HERE = {"lat": 36.0555, "lon": 120.3521}
METRES_PER_DEGREE_LAT = 111_195.0
NEAR = {"lat": HERE["lat"] + 100 / METRES_PER_DEGREE_LAT, "lon": HERE["lon"]}  # 100 m north
FAR = {"lat": HERE["lat"] + 2_000 / METRES_PER_DEGREE_LAT, "lon": HERE["lon"]}  # 2 km north


def june(day: int, hour: int, minute: int = 0) -> datetime:
    """A local moment in June 2021."""
    return datetime(2021, 6, day, hour, minute, tzinfo=QINGDAO)


@dataclass
class Scenario:
    """The small scenario's case numbers by the letter the test uses for them, and its runner."""

    app: App
    runner: Runner
    cases: dict[str, str]

    def figures(self, by: Grouping, period: str) -> list[dict[str, Any]]:
        """intake_figures on the scenario's read model."""
        with self.runner.engine.connect() as connection:
            return intake_figures(connection, by, period)


@pytest.fixture
def scenario(database_url: str) -> Iterator[Scenario]:
    """Eleven cases on 1-4 June 2021, projected before the merges (for duplicates), merges still to come."""
    app = open_app(database_url)
    engine = make_engine(database_url)
    runner = make_runner(app, engine)
    cases = {
        "F": report_case(app, june(1, 8), "hotline", CATEGORY, GRID),  # no coordinates
        "A": report_case(app, june(1, 9), "hotline", CATEGORY, GRID, HERE),
        "C": report_case(app, june(1, 9, 20), "window", CATEGORY, GRID, FAR),
        "D": report_case(app, june(1, 9, 40), "wechat", DISPUTE, GRID, HERE),  # another category
        "E": report_case(app, june(1, 9, 50), "hotline", CATEGORY, SECOND_STREET_GRID, HERE),  # another grid
        "B": report_case(app, june(1, 10), "app", CATEGORY, GRID, NEAR),
        "H": report_case(app, june(1, 11), "hotline", CATEGORY, GRID, HERE),  # rejected: not open
        "K": report_case(app, june(1, 12), "letter_visit", DISPUTE, OTHER_GRID),
        "L": report_case(app, june(1, 12, 30), "letter_visit", DISPUTE, OTHER_GRID),
        "M": report_case(app, june(1, 23, 50), "window", DISPUTE, OTHER_GRID),  # accepted after local midnight
        "G": report_case(app, june(4, 9), "hotline", CATEGORY, GRID, HERE),  # three days later
    }
    on_case(app, "case.accept", cases["A"], june(1, 9, 30), level="street")  # 30 minutes
    on_case(app, "case.accept", cases["C"], june(1, 11, 20))  # 120 minutes
    on_case(app, "case.reject", cases["H"], june(1, 11, 30), reason="信息不足 insufficient information")
    on_case(app, "case.accept", cases["M"], june(2, 0, 10))  # 20 minutes, on the 2nd
    catch_up(runner)
    yield Scenario(app, runner, cases)
    runner.release()
    engine.dispose()
    app.close()


def merge_all(s: Scenario) -> None:
    """B into A; L into K, then K into A (a chain); projected."""
    on_case(s.app, "case.merge", s.cases["L"], june(2, 8), master_case_number=s.cases["K"])
    on_case(s.app, "case.merge", s.cases["K"], june(2, 8, 30), master_case_number=s.cases["A"])
    on_case(s.app, "case.merge", s.cases["B"], june(2, 9), master_case_number=s.cases["A"])
    catch_up(s.runner)


def row(group: str, value: str, received: int = 0, accepted: int = 0, rejected: int = 0, merged: int = 0,
        mean: float | None = None, p90: float | None = None) -> dict[str, Any]:  # fmt: skip
    """An expected row of intake_figures."""
    return {group: value, "received": received, "accepted": accepted, "rejected": rejected, "merged": merged,
            "mean_minutes_to_accept": mean, "p90_minutes_to_accept": p90}  # fmt: skip


def test_figures_per_channel_category_and_street_by_local_day(scenario: Scenario) -> None:
    merge_all(scenario)
    figures = scenario.figures

    assert figures("channel", "2021-06") == [
        row("channel", "app", received=1, merged=1),
        row("channel", "hotline", received=5, accepted=1, rejected=1, mean=30.0, p90=30.0),
        row("channel", "letter_visit", received=2, merged=2),
        row("channel", "wechat", received=1),
        row("channel", "window", received=2, accepted=2, mean=70.0, p90=120.0),
    ]
    assert figures("channel", "2021-06-01") == [
        row("channel", "app", received=1),
        row("channel", "hotline", received=4, accepted=1, rejected=1, mean=30.0, p90=30.0),
        row("channel", "letter_visit", received=2),
        row("channel", "wechat", received=1),
        row("channel", "window", received=2, accepted=1, mean=120.0, p90=120.0),
    ]
    # M came in before local midnight and was accepted after it; merges count on the day of the merge.
    assert figures("channel", "2021-06-02") == [
        row("channel", "app", merged=1),
        row("channel", "letter_visit", merged=2),
        row("channel", "window", accepted=1, mean=20.0, p90=20.0),
    ]
    assert figures("category", "2021-06") == [
        row("category", DISPUTE, received=4, accepted=1, merged=2, mean=20.0, p90=20.0),
        row("category", CATEGORY, received=7, accepted=2, rejected=1, merged=1, mean=75.0, p90=120.0),
    ]
    assert figures("street", "2021") == [
        row("street", "SN01", received=10, accepted=3, rejected=1, merged=3, mean=170 / 3, p90=120.0),
        row("street", SECOND_STREET, received=1),
    ]
    assert figures("street", "2021-06-03") == []
    assert figures("street", "2021-05") == []
    assert figures("category", "2022") == []
    # …and the naive recount agrees on every grouping and period.
    events = stored_events(scenario.app)
    for by in GROUPINGS:
        for period in ("2021", "2021-06", "2021-06-01", "2021-06-02", "2021-06-04"):
            assert_same_figures(figures(by, period), naive_figures(events, by, period), f"{by} {period}")


def test_a_period_must_be_a_year_a_month_or_a_day(scenario: Scenario) -> None:
    for period in ("2021-6", "21", "2021-06-01T00", "June"):
        with pytest.raises(ValueError, match="period"):
            scenario.figures("channel", period)
    with pytest.raises(ValueError, match="by must be"):
        scenario.figures("grid", "2021")  # type: ignore[arg-type]


def test_possible_duplicates_are_open_near_and_recent_of_the_same_category_and_grid(scenario: Scenario) -> None:
    cases = scenario.cases
    with scenario.runner.engine.connect() as connection:
        found = possible_duplicates(connection, cases["A"])
        from_b = possible_duplicates(connection, cases["B"])
        from_g = possible_duplicates(connection, cases["G"])
        unknown = possible_duplicates(connection, "SN-20210601-999999")

    # Not C (2 km away), D (another category), E (another grid), G (three days later), H (rejected), A itself.
    assert [d["case_number"] for d in found] == [cases["B"], cases["F"]]
    near, unplaced = found
    assert near["distance_m"] == pytest.approx(100, abs=1)
    assert near["state"] == "reported"
    assert near["reported_at"] == june(1, 10)
    assert unplaced["distance_m"] is None  # F has no coordinates: kept, distance unknown
    assert unplaced["reported_at"] == june(1, 8)  # 48 hours either way: F came in before A
    assert set(near) == {"case_number", "state", "reported_at", "distance_m"}

    # A accepted is still open, so it is B's likely master.
    assert [d["case_number"] for d in from_b] == [cases["A"], cases["F"]]
    assert from_b[0]["state"] == "accepted"
    assert from_g == []
    assert unknown == []

    merge_all(scenario)
    with scenario.runner.engine.connect() as connection:
        # B is merged now: no longer a candidate.
        assert [d["case_number"] for d in possible_duplicates(connection, cases["A"])] == [cases["F"]]


def test_lookup_resolves_a_citizens_number_through_merges(scenario: Scenario) -> None:
    cases = scenario.cases
    with scenario.runner.engine.connect() as connection:
        assert lookup(connection, cases["L"]) == {
            "case_number": cases["L"], "state": "reported", "level": None,
            "reported_at": june(1, 12, 30), "asked_for": cases["L"],
        }  # fmt: skip
    merge_all(scenario)
    master = {"case_number": cases["A"], "state": "accepted", "level": "street", "reported_at": june(1, 9)}
    with scenario.runner.engine.connect() as connection:
        assert lookup(connection, cases["B"]) == {**master, "asked_for": cases["B"]}
        assert lookup(connection, cases["L"]) == {**master, "asked_for": cases["L"]}  # L → K → A
        assert lookup(connection, cases["A"]) == {**master, "asked_for": cases["A"]}
        assert lookup(connection, "SN-20210601-999999") is None
        answer = lookup(connection, cases["B"])
    assert answer is not None
    assert not {"reporter", "phone", "name", "description", "address"} & set(answer)
    assert answer["reported_at"].tzinfo is not None
