"""Reproducible performance reviews, on SQLite and PostgreSQL.

The story: June 2021 in the small district, every command recorded a minute
after it happened. On 30 June at 23:00 the review of June is run. On 1 July a
grid worker uploads three patrol logs from 29 June (recorded a day late), and
more cases close. The occurred-time figures of June change; a review as of
what the system knew on 30 June at 23:00 gives the first run's bytes again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from domain.base import RECORDING_CLOCK
from projections.sql import make_engine
from replay.review import BadRules, load_rules, render, run_review
from tests.integration.test_performance import open_world
from tests.support import CALLBACK, DISPATCHER, GRID, OPERATOR, OTHER_GRID, run

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support import App

QINGDAO = ZoneInfo("Asia/Shanghai")
RULES = Path(__file__).resolve().parents[3] / "rules" / "2021.toml"
SMALL_RULES = """\
name = "test review"
version = "t.1"

[worker]
title = "excellent grid worker"
top = 1
[worker.weights]
satisfaction_rate = 0.5
patrols = 0.3
households_visited = 0.2
[worker.minimum]
handled = 1

[grid]
title = "excellent grid"
top = 1
[grid.weights]
response_rate = 0.5
satisfaction_rate = 0.5

[street]
title = "excellent centre"
top = 1
[street.weights]
closure_rate = 1.0
"""


def local(day: int, hour: int, minute: int = 0, month: int = 6) -> datetime:
    return datetime(2021, month, day, hour, minute, tzinfo=QINGDAO)


class June:
    """The application with a recording clock the test moves: what the store learns, and when."""

    def __init__(self, url: str) -> None:
        self.now = local(1, 8)
        self.token = RECORDING_CLOCK.set(lambda: self.now.astimezone(UTC))
        self.app: App = open_world(url)
        self.engine = make_engine(url)
        self.rules = load_rules(RULES)

    def close(self) -> None:
        RECORDING_CLOCK.reset(self.token)
        self.engine.dispose()
        self.app.close()

    def do(self, at: datetime, recorded: datetime | None = None, **fields: Any) -> Any:
        self.now = recorded or at + timedelta(minutes=1)
        return run(self.app, at=at, **fields)

    def read(self, after: int, limit: int) -> Any:
        return self.app.store.recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False)

    def review(self, rules: Any = None, **cut: Any) -> Any:
        return run_review(self.read, self.engine, "2021-06", rules or self.rules, QINGDAO, **cut)

    def case(
        self, day: int, worker: str, grid: str, *, satisfied: bool = True, recorded: datetime | None = None
    ) -> None:
        # The on-site check is by another worker of the grid (a grid worker acts only in their grids, and never
        # verifies what they resolved themselves).
        verifier = "W002" if grid == GRID else "W003"
        number = self.do(local(day, 9), recorded, command="case.report", actor=OPERATOR, channel="hotline",
                         category="facility.manhole", grid=grid, description="井盖 manhole")["case_number"]  # fmt: skip
        steps: list[tuple[str, dict[str, str], dict[str, Any]]] = [
            ("case.accept", DISPATCHER, {"level": "community"}),
            ("case.dispatch", DISPATCHER, {"handler": {"kind": "worker", "id": worker}}),
            ("case.sign", {"id": worker, "role": "grid_worker"}, {}),
            ("case.resolve", {"id": worker, "role": "grid_worker"}, {"result": "已修 fixed"}),
            ("case.verify", {"id": verifier, "role": "grid_worker"}, {}),
            ("case.close", DISPATCHER, {}),
            ("case.feedback", CALLBACK, {"satisfaction": "satisfied" if satisfied else "dissatisfied",
                                         "resolved": True}),
        ]  # fmt: skip
        for minutes, (command, actor, fields) in enumerate(steps, start=1):
            self.do(local(day, 9, minutes * 5), recorded, command=command, case_number=number, actor=actor, **fields)

    def patrol(self, day: int, worker: str, grid: str, visits: int, recorded: datetime | None = None) -> None:
        actor = {"id": worker, "role": "grid_worker"}
        number = self.do(local(day, 14), recorded, command="patrol.start", actor=actor, worker=worker,
                         grid=grid)["patrol_number"]  # fmt: skip
        for visit in range(visits):
            self.do(local(day, 14, 10 + visit), recorded, command="patrol.checkpoint", patrol_number=number,
                    actor=actor, kind="household_visit", target=f"H-{visit}", elderly_visit=False)  # fmt: skip
        self.do(local(day, 16), recorded, command="patrol.end", patrol_number=number, actor=actor, distance_m=800)


@pytest.fixture
def june(database_url: str) -> Iterator[June]:
    story = June(database_url)
    try:  # the recording clock is the story's until it closes, even when the story itself fails
        story.case(3, "W001", GRID)
        story.case(5, "W002", OTHER_GRID, satisfied=False)
        story.case(12, "W002", OTHER_GRID)
        story.patrol(10, "W001", GRID, 3)
        story.patrol(11, "W002", OTHER_GRID, 1)
        story.now = local(30, 23)
        yield story
    finally:
        story.close()


def test_a_review_run_twice_is_byte_identical_in_every_format(june: June) -> None:
    first, second = june.review(), june.review()
    for output in ("table", "csv", "json"):
        assert render(first, output) == render(second, output)
    text = render(first, "table")
    assert f"rule version: {june.rules.version}" in text
    assert f"last event position: {june.app.store.recorder.max_notification_id()}" in text
    assert "inputs digest: sha256:" in text
    assert "cutoff recorded: 2021-06-12T01:" in text, "the cut-off is the commit time of the last event read"
    assert "2026" not in text and str(datetime.now(UTC).year) not in text, "no wall-clock time in the output"


def test_late_patrol_logs_change_june_but_a_review_as_of_what_was_known_reproduces_the_first(
    june: June, tmp_path: Path
) -> None:
    (tmp_path / "small.toml").write_text(SMALL_RULES, encoding="utf-8")
    small = load_rules(tmp_path / "small.toml")
    first = june.review(small)
    published = {output: render(first, output) for output in ("table", "csv", "json")}
    ranking = {r.subject: r for award, rows in first.rankings if award.kind == "worker" for r in rows}
    assert ranking["W001"].awarded and ranking["W001"].figures["patrols"] == 1

    # 1 July: W002 uploads three patrol logs of 29 June, a day late; and a case of 29 June is entered late too.
    late = local(1, 10, month=7)
    for _ in range(3):
        june.patrol(29, "W002", OTHER_GRID, 4, recorded=late)
    june.case(29, "W002", OTHER_GRID, recorded=late)

    now = june.review(small)
    assert render(now, "json") != published["json"]
    ranking = {r.subject: r for award, rows in now.rankings if award.kind == "worker" for r in rows}
    assert ranking["W002"].figures["patrols"] == 4, "the late logs count in June, the month they happened"
    assert ranking["W002"].awarded, "and they change who is the excellent grid worker"

    cutoff = first.cutoff["recorded"]
    assert cutoff is not None
    again = june.review(small, as_of_recorded=datetime.fromisoformat(cutoff))
    for output, text in published.items():
        assert render(again, output) == text

    happened = june.review(small, as_of_occurred=local(30, 23, 59))
    ranking = {r.subject: r for award, rows in happened.rankings if award.kind == "worker" for r in rows}
    assert ranking["W002"].figures["patrols"] == 4, "as it happened: the late logs are in"
    assert happened.cutoff["occurred"] == "2021-06-30T15:59:00.000000Z"


def test_changing_one_weight_changes_the_rule_version(june: June, tmp_path: Path) -> None:
    text = RULES.read_text(encoding="utf-8")
    changed = tmp_path / "2021.toml"
    changed.write_text(text.replace("satisfaction_rate = 0.25", "satisfaction_rate = 0.26", 1), encoding="utf-8")
    other = load_rules(changed)
    assert other.declared == june.rules.declared
    assert other.version != june.rules.version
    assert f"rule version: {other.version}" in render(june.review(other), "table")
    assert load_rules(RULES).version == june.rules.version, "the same file, the same version"


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("version = '1'\n[worker]\ntitle='x'\n[worker.weights]\npatrols=1\n", "name"),
        ("name='n'\nversion='1'\n[worker]\ntitle='x'\n[worker.weights]\nhappiness=1\n", "worker.weights.happiness"),
        ("name='n'\nversion='1'\n[worker]\ntitle='x'\n[worker.weights]\npatrols='a lot'\n", "worker.weights.patrols"),
        ("name='n'\nversion='1'\n[school]\ntitle='x'\n", "unknown section school"),
        ("name='n'\nversion='1'\n[worker]\ntitle='x'\n", "worker.weights"),
        ("name = \n", "not valid TOML"),
    ],
)
def test_a_bad_rule_file_is_refused_naming_the_field(tmp_path: Path, content: str, named: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BadRules, match=named.replace(".", r"\.")):
        load_rules(path)
