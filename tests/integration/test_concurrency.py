"""Optimistic concurrency on SQLite and PostgreSQL: two processes, one case, one winner.

Each side is its own ``App`` on the same database, as two API workers would
be. A barrier in front of the store's ``save`` holds both until each has loaded
the case and decided, so they really race for the same version.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from domain.base import ActorRef
from domain.case import CaseState, Level, case_id
from domain.errors import CommandRefused
from service import ConcurrentChange
from tests.conftest import make_settings
from tests.support import DISPATCHER, T0, App, make_app, report, run, seed_small_district

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

DISPATCHER_REF = ActorRef.model_validate(DISPATCHER)
#: Long enough for a slow CI machine, short enough that a broken test fails instead of hanging.
WAIT = 20.0


@pytest.fixture
def open_app(database_url: str) -> Iterator[Callable[[], App]]:
    """Opens more application instances on the test's database; closes them all at the end."""
    opened: list[App] = []

    def open_one() -> App:
        app = make_app(make_settings(database_url))
        opened.append(app)
        return app

    yield open_one
    for app in opened:
        app.close()


def hold_saves_at(app: App, barrier: threading.Barrier, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``app`` wait at the barrier just before it writes, i.e. after it has loaded and decided."""
    save = app.store.save

    def save_when_both_are_ready(*objs: Any, **kwargs: Any) -> Any:
        barrier.wait(WAIT)
        return save(*objs, **kwargs)

    monkeypatch.setattr(app.store, "save", save_when_both_are_ready)


def outcome(act: Callable[[], object]) -> str:
    """``ok`` or ``conflict``; anything else is a test failure, re-raised in the main thread."""
    try:
        act()
    except ConcurrentChange:
        return "conflict"
    return "ok"


ACCEPT = {"command": "case.accept", "actor": DISPATCHER, "level": "community"}
ACCEPT_AT_STREET = {"command": "case.accept", "actor": DISPATCHER, "level": "street"}
REJECT = {"command": "case.reject", "actor": DISPATCHER, "reason": "重复投诉 repeated complaint"}


@pytest.mark.parametrize(
    ("first", "second"),
    [(ACCEPT, REJECT), (ACCEPT, ACCEPT_AT_STREET)],
    ids=["accept-vs-reject", "accept-vs-accept"],
)
def test_two_processes_changing_one_case_one_wins_the_other_is_told(
    app: App,
    open_app: Callable[[], App],
    monkeypatch: pytest.MonkeyPatch,
    first: dict[str, Any],
    second: dict[str, Any],
) -> None:
    seed_small_district(app)
    number = report(app)
    apps = [open_app(), open_app()]
    barrier = threading.Barrier(2)
    for each in apps:
        hold_saves_at(each, barrier, monkeypatch)

    commands = [{**first, "case_number": number, "at": T0 + timedelta(minutes=5)},
                {**second, "case_number": number, "at": T0 + timedelta(minutes=6)}]  # fmt: skip
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(outcome, lambda a=each, c=command: run(a, **c))
            for each, command in zip(apps, commands, strict=True)
        ]
        results = [future.result(timeout=WAIT) for future in futures]

    assert sorted(results) == ["conflict", "ok"]
    winner = commands[results.index("ok")]
    history = app.history(number)
    expected = "CaseAccepted" if winner["command"] == "case.accept" else "CaseRejected"
    assert [row["event"] for row in history] == ["CaseReported", expected]
    assert datetime.fromisoformat(history[1]["occurred_at"]) == winner["at"]
    if winner["command"] == "case.accept":
        assert history[1]["data"]["level"] == winner["level"]
    # The loser reloads and sees the winner's decision: its command is now refused by the domain.
    loser = results.index("conflict")
    case = apps[loser].case(number)
    assert case.version == 2
    assert case.state is (CaseState.ACCEPTED if winner["command"] == "case.accept" else CaseState.REJECTED)
    with pytest.raises(CommandRefused, match=r"command (accept|reject) refused"):
        run(apps[loser], **commands[loser])
    assert len(app.store.recorder.select_events(case_id(number))) == 2


def test_the_domain_method_and_save_race_directly(app: App, open_app: Callable[[], App]) -> None:
    """The same race without the command layer: load, decide, wait, save."""
    seed_small_district(app)
    number = report(app)
    barrier = threading.Barrier(2)
    at = T0 + timedelta(minutes=5)

    def accept(each: App) -> None:
        case = each.load_case(number)
        case.accept(DISPATCHER_REF, Level.STREET, at)
        barrier.wait(WAIT)
        each.save(case)

    def reject(each: App) -> None:
        case = each.load_case(number)
        case.reject(DISPATCHER_REF, "信息不足 insufficient information", at)
        barrier.wait(WAIT)
        each.save(case)

    apps = [open_app(), open_app()]
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(outcome, lambda: accept(apps[0])), pool.submit(outcome, lambda: reject(apps[1]))]
        results = [future.result(timeout=WAIT) for future in futures]

    assert sorted(results) == ["conflict", "ok"]
    expected = "CaseAccepted" if results[0] == "ok" else "CaseRejected"
    assert [row["event"] for row in app.history(number)] == ["CaseReported", expected]


def test_concurrent_reports_on_one_day_never_share_a_number(app: App, open_app: Callable[[], App]) -> None:
    seed_small_district(app)
    threads, per_thread = 2, 20
    apps = [open_app() for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def report_many(each: App, offset: int) -> list[str]:
        barrier.wait(WAIT)
        return [report(each, at=T0 + timedelta(seconds=offset + 2 * i)) for i in range(per_thread)]

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(report_many, each, n) for n, each in enumerate(apps)]
        numbers = [number for future in futures for number in future.result(timeout=4 * WAIT)]

    assert len(numbers) == threads * per_thread
    assert len(set(numbers)) == len(numbers), "a number was handed out twice"
    # Gap-free as well: every number of the day up to the count, each stored exactly once.
    assert sorted(numbers) == [f"SN-20210601-{n:06d}" for n in range(1, threads * per_thread + 1)]
    for number in numbers:
        assert len(app.store.recorder.select_events(case_id(number))) == 1
    # And a third process carries on after them.
    assert report(open_app(), at=T0 + timedelta(minutes=10)) == f"SN-20210601-{threads * per_thread + 1:06d}"


def test_a_lost_race_leaves_no_gap_in_the_notification_log(
    request: pytest.FixtureRequest, app: App, open_app: Callable[[], App]
) -> None:
    seed_small_district(app)
    number = report(app)
    winner, loser = open_app(), open_app()
    won, lost = winner.load_case(number), loser.load_case(number)
    won.accept(DISPATCHER_REF, Level.COMMUNITY, T0 + timedelta(minutes=5))
    lost.reject(DISPATCHER_REF, "信息不足", T0 + timedelta(minutes=5))
    winner.save(won)
    with pytest.raises(ConcurrentChange):
        loser.save(lost)
    report(app, at=T0 + timedelta(minutes=6))

    ids = [n.id for n in app.store.recorder.select_notifications(start=1, limit=1000)]
    assert ids == list(range(1, len(ids) + 1))
