"""The projection runner applies every event exactly once: again, re-delivered, killed, leased, dead-lettered.

Every test compares the whole case-status read model (every table of
``CaseStatus.metadata``, all rows, sorted by key) with a clean build: the same
history applied once, in one pass, by a fresh runner into a fresh SQLite file.
The history is eight simulated days of thirty grids of the reference district:
about 4,700 events, half of them case events (with returns, escalations,
suspensions and reopenings, whose counters double if an event is applied twice),
the rest patrols, which the projection skips. The district's own registry events
are left out: no projection here reads them, they would only slow every test
down. It is simulated once per module and copied, event for event, into each
test's fresh database, SQLite or PostgreSQL, so all of them hold the very same
notification log.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from eventsourcing.persistence import StoredEvent
from sqlalchemy import select

from district.reference import load_reference_district, reference_commands
from district.simulator import SimulationConfig, Simulator, World
from projections.case_status import CaseStatus
from projections.runner import LeaseHeld, Runner
from projections.sql import bookkeeping, deadletters, leases, make_engine, positions
from tests.conftest import make_settings
from tests.support import App, make_app

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from eventsourcing.persistence import Notification
    from sqlalchemy import Connection, Engine

    from projections.events import ProjectedEvent

REFERENCE_AT = datetime.fromisoformat("2021-01-01T00:00:00+08:00")
CHILD = Path(__file__).with_name("runner_child.py")
ROOT = Path(__file__).resolve().parents[2]
#: Long enough for a slow machine, short enough that a broken test fails instead of hanging.
WAIT = 60.0

Rows = dict[str, list[tuple[Any, ...]]]


# -- the history and its clean build ----------------------------------------------------------------------------


@dataclass
class History:
    """A simulated notification log and the read model a clean build makes of it."""

    events: list[StoredEvent]
    expected: Rows
    types: list[str] = field(default_factory=list)  # event type of each position - 1

    @property
    def last(self) -> int:
        """The last position."""
        return len(self.events)

    def positions_of(self, event_type: str) -> list[int]:
        """Where the events of a type sit in the log, in order."""
        return [i + 1 for i, name in enumerate(self.types) if name == event_type]


def reader_of(app: App) -> Callable[[int, int], Sequence[Notification]]:
    """The store's notification log after a position, as the runner reads it."""
    recorder = app.store.recorder

    def read(after: int, limit: int) -> Sequence[Notification]:
        return recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False)

    return read


def snapshot(engine: Engine) -> Rows:
    """Every row of every case-status table, sorted by key."""
    with engine.connect() as connection:
        return {
            table.name: [tuple(row) for row in connection.execute(select(table).order_by(*table.primary_key.columns))]
            for table in CaseStatus.metadata.sorted_tables
        }


def differences(actual: Rows, expected: Rows, *, skip: Callable[[str, tuple[Any, ...]], bool] | None = None) -> str:
    """What differs, column by column for the first few rows ('' when nothing); rows where ``skip(table, row)``."""
    report = []
    for table in CaseStatus.metadata.sorted_tables:
        names = [column.name for column in table.columns]
        at = [names.index(column.name) for column in table.primary_key.columns]

        def keyed(rows: list[tuple[Any, ...]], name: str = table.name, at: list[int] = at) -> dict[Any, Any]:
            return {tuple(row[i] for i in at): row for row in rows if skip is None or not skip(name, row)}

        want, got = keyed(expected[table.name]), keyed(actual.get(table.name, []))
        missing, extra = sorted(want.keys() - got.keys(), key=repr), sorted(got.keys() - want.keys(), key=repr)
        changed = sorted((k for k in want.keys() & got.keys() if want[k] != got[k]), key=repr)
        if missing or extra or changed:
            detail = [
                f"{key}: " + ", ".join(f"{n} {w!r} -> {g!r}" for n, w, g in zip(names, want[key], got[key], strict=True)
                                       if w != g)
                for key in changed[:3]
            ]  # fmt: skip
            report.append(
                f"{table.name}: {len(missing)} rows missing {missing[:3]}, {len(extra)} unexpected {extra[:3]}, "
                f"{len(changed)} changed (expected -> got): " + "; ".join(detail)
            )
    return "\n".join(report)


def assert_clean(engine: Engine, expected: Rows, **options: Any) -> None:
    """The read model equals the clean build (rows ``options['skip']`` picks left out)."""
    found = differences(snapshot(engine), expected, **options)
    if found:
        pytest.fail(f"the read model differs from a clean build:\n{found}", pytrace=False)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """Simulate once, keep the simulated days' events, and build the read model from them once, in one pass."""
    folder = tmp_path_factory.mktemp("history")
    source = make_app(make_settings(f"sqlite:///{folder / 'source.db'}"))
    reader = source.reader
    load_reference_district(source, reader, REFERENCE_AT)
    registry = source.store.recorder.max_notification_id() or 0
    world = World(reference_commands(REFERENCE_AT), 30)
    totals = Simulator(source, reader, world, SimulationConfig(days=8, seed=11, grids=30, intensity=3.0)).run()
    assert totals.unexpected_refusals == 0, totals.refusal_reasons
    notifications = list(source.store.recorder.select_notifications(start=registry + 1, limit=1_000_000))
    source.close()
    events = [StoredEvent(n.originator_id, n.originator_version, n.topic, n.state) for n in notifications]

    clean = make_app(make_settings(f"sqlite:///{folder / 'clean.db'}"))
    store(clean, events)
    engine = make_engine(f"sqlite:///{folder / 'clean.db'}")
    assert runner(engine, reader_of(clean), batch_size=100_000).run_once().position == len(events)
    expected = snapshot(engine)
    engine.dispose()
    clean.close()

    types = [n.topic.rsplit(".", 1)[-1] for n in notifications]
    # The clean build itself is complete: one row per reported case, one timeline entry per case event.
    assert len(expected["case_status"]) == types.count("CaseReported") > 300
    assert len(expected["case_timeline"]) == sum(name in CaseStatus.handles for name in types)
    # Enough of the events whose counters would double if applied twice.
    for name in ("DispatchReturned", "CaseEscalated", "CaseResumed", "CaseReopened"):
        assert types.count(name) >= 5, name
    return History(events=events, expected=expected, types=types)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """The read models' engine on the test's database."""
    made = make_engine(database_url)
    yield made
    made.dispose()


def store(app: App, events: Sequence[StoredEvent]) -> None:
    """Append events to the test database's store, as the engine had written them.

    In transactions of 500: eventsourcing 9.5.6's PostgreSQL recorder hangs for good on one ``insert_events`` of
    some 4,000 events (its pipelined executemany never returns), with or without our gap-free recorder.
    """
    for start in range(0, len(events), 500):
        app.store.recorder.insert_events(list(events[start : start + 500]))


def runner(engine: Engine, read: Callable[[int, int], Sequence[Notification]], **options: Any) -> Runner:
    """A case-status runner (or with the projections given) with its tables created."""
    projections = options.pop("projections", None) or [CaseStatus()]
    made = Runner(engine, read, projections, **options)
    made.create_tables()
    return made


# -- 1. the same history twice ------------------------------------------------------------------------------------


def test_running_again_and_a_second_runner_change_nothing(app: App, engine: Engine, history: History) -> None:
    half = history.last // 2
    store(app, history.events[:half])
    first = runner(engine, reader_of(app), batch_size=97)
    assert first.run_once().position == half
    store(app, history.events[half:])  # the rest arrives later: a case's events straddle the two runs
    assert first.run_once().position == history.last
    again = first.run_once()
    assert (again.events, again.batches) == (0, 0)
    assert first.position("case_status") == history.last
    assert_clean(engine, history.expected)

    first.release()
    second = runner(engine, reader_of(app), batch_size=500)
    stats = second.run_once(lease_timeout=5)
    assert (stats.events, stats.batches) == (0, 0)
    assert_clean(engine, history.expected)


# -- 2. re-deliveries ---------------------------------------------------------------------------------------------


class Redelivering:
    """Wraps the real reader and delivers at least once, the way a consumer restarted from an old offset does.

    Calls go at random to: the batch it returned last time, again (all of it at
    or below the position by now); a batch that starts up to two batches before
    the position asked for; or the batch asked for. With ``duplicates`` some
    events of a batch are also delivered twice in a row (the order stays
    non-decreasing). With ``stragglers`` a few earlier events are appended at
    the end of some batches (out of order). Once the log is exhausted it returns
    nothing, so a run ends; a runner that keeps asking without getting anywhere
    is stopped after ``budget`` calls.
    """

    def __init__(self, read: Callable[[int, int], Sequence[Notification]], seed: int, *,
                 duplicates: bool = False, stragglers: bool = False, budget: int = 2000) -> None:  # fmt: skip
        self.read = read
        self.budget = budget
        self.calls = 0
        self.rng = random.Random(seed)
        self.duplicates = duplicates
        self.stragglers = stragglers
        self.previous: list[Notification] = []
        self.redelivered = 0

    def __call__(self, after: int, limit: int) -> list[Notification]:
        self.calls += 1
        if self.calls > self.budget:
            msg = f"{self.calls} reads and still not caught up (asked for events after {after})"
            raise RuntimeError(msg)
        fresh = list(self.read(after, limit))
        if not fresh:
            return []
        roll = self.rng.random()
        if roll < 0.2 and self.previous:
            batch = list(self.previous)
        elif roll < 0.5 and after > 0:
            batch = list(self.read(max(0, after - self.rng.randint(1, 2 * limit)), limit))
        else:
            batch = fresh
        if self.duplicates:
            twice = set(self.rng.sample(range(len(batch)), k=max(1, len(batch) // 10)))
            batch = [n for i, n in enumerate(batch) for _ in range(2 if i in twice else 1)]
        if self.stragglers and batch[0].id > 1 and self.rng.random() < 0.3:
            batch += list(self.read(max(0, batch[0].id - 1 - self.rng.randint(1, limit)), 3))
        self.redelivered += sum(n.id <= after for n in batch)
        self.previous = batch
        return batch


def test_redelivered_events_at_or_below_the_position_change_nothing(
    app: App, engine: Engine, history: History
) -> None:
    store(app, history.events)
    read = Redelivering(reader_of(app), seed=5)
    stats = runner(engine, read, batch_size=150).run_once()
    assert stats.position == history.last
    assert read.redelivered > 5 * history.last // 150  # plenty of events came more than once
    assert_clean(engine, history.expected)


def test_an_event_delivered_twice_in_one_batch_is_applied_once(app: App, engine: Engine, history: History) -> None:
    store(app, history.events)
    read = Redelivering(reader_of(app), seed=6, duplicates=True)
    assert runner(engine, read, batch_size=150).run_once().position == history.last
    assert_clean(engine, history.expected)


def test_a_batch_ending_in_an_earlier_event_still_moves_the_position_past_the_batch(
    app: App, engine: Engine, history: History
) -> None:
    store(app, history.events)
    read = Redelivering(reader_of(app), seed=7, stragglers=True)
    assert runner(engine, read, batch_size=150).run_once().position == history.last
    assert_clean(engine, history.expected)


# -- 3. crashes ---------------------------------------------------------------------------------------------------


@dataclass
class Child:
    """A runner process and what it said."""

    process: subprocess.Popen[bytes]
    out: Path

    def said(self) -> dict[str, Any]:
        """Everything it printed, merged (later keys win)."""
        merged: dict[str, Any] = {}
        for line in self.out.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a line cut short by SIGKILL
                merged.update(json.loads(line))
        return merged

    def error(self) -> str:
        """The end of what it wrote on stderr."""
        return self.out.with_suffix(".err").read_text()[-3000:]


@dataclass
class Kill:
    """One SIGKILL: when, how far the projection had got, and the lease the dead runner left behind."""

    at: float
    position: int
    lease_expires: float
    mid_run: bool


def wait_until(found: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Poll until ``found()`` returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while not (result := found()):
        if time.monotonic() > deadline:
            msg = "timed out"
            raise TimeoutError(msg)
        time.sleep(0.02)
    return result


class Crashes:
    """Runner processes on one database: two at a time, one working and one waiting; the worker gets SIGKILLed."""

    def __init__(self, database_url: str, engine: Engine, folder: Path, seed: int) -> None:
        self.database_url = database_url
        self.engine = engine
        self.folder = folder
        self.rng = random.Random(seed)
        self.children: list[Child] = []
        self.alive: list[Child] = []
        self.kills: list[Kill] = []

    def spawn(self) -> Child:
        """Start a runner process: batches of 10, a lease of one second, 8 ms inside each transaction that writes."""
        out = self.folder / f"child{len(self.children)}.out"
        options = ["--batch-size", "10", "--lease-seconds", "1.0", "--pause", "0.008"]
        with out.open("wb") as stdout, out.with_suffix(".err").open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, str(CHILD), self.database_url, *options], stdout=stdout, stderr=stderr, cwd=ROOT
            )
        child = Child(process, out)
        self.children.append(child)
        self.alive.append(child)
        return child

    def state(self) -> tuple[int, float]:
        """The projection's position and when its lease expires."""
        with self.engine.connect() as connection:
            position = connection.execute(select(positions.c.position)).scalar()
            expires = connection.execute(select(leases.c.expires_at)).scalar()
        return int(position or 0), float(expires or 0)

    def kill_the_holder(self, last: int) -> None:
        """Wait for a runner to hold the lease, let it work a random while, SIGKILL it, start another."""
        holder = wait_until(lambda: next((c for c in self.alive if "leased" in c.said()), None))
        time.sleep(self.rng.uniform(0.05, 1.5))
        working = holder.process.poll() is None and "done" not in holder.said()
        holder.process.send_signal(signal.SIGKILL)
        holder.process.wait(WAIT)
        at = time.time()
        position, expires = self.state()
        self.kills.append(Kill(at, position, expires, working and position < last))
        self.alive.remove(holder)
        self.spawn()

    def finish(self) -> None:
        """Let the runners still alive finish."""
        for child in self.alive:
            child.process.wait(WAIT)
            assert child.process.returncode == 0, child.error()

    def stop(self) -> None:
        """Kill whatever is left (after a failure)."""
        for child in self.children:
            if child.process.poll() is None:
                child.process.kill()
                child.process.wait()


@pytest.mark.slow
def test_killed_runners_are_taken_over_and_every_event_is_applied_once(
    database_url: str, app: App, engine: Engine, history: History, tmp_path: Path
) -> None:
    store(app, history.events)
    runner(engine, reader_of(app))  # the tables exist before two processes start
    crashes = Crashes(database_url, engine, tmp_path, seed=2021)
    crashes.spawn()
    crashes.spawn()  # one of the two works, the other waits for the lease
    try:
        for _ in range(4):
            crashes.kill_the_holder(history.last)
        crashes.finish()
    finally:
        crashes.stop()

    kills, said = crashes.kills, [child.said() for child in crashes.children]
    assert sum(kill.mid_run for kill in kills) >= 2, kills  # the kills landed while it was working
    assert [k.position for k in kills] == sorted(k.position for k in kills), kills  # committed work stays
    # A runner that found the lease taken waited (instead of failing) and took over once it had run out...
    assert any("standby" in s and "leased" in s for s in said), said
    for kill in kills:
        for s in said:
            if s.get("leased", 0) > kill.at:
                assert s["leased"] > kill.lease_expires, (kill, s)
    # ...from where the killed one had got.
    if kills[-1].mid_run:
        finisher = next(s for s in said if s.get("events"))
        assert finisher["events"] == history.last - kills[-1].position, (finisher, kills[-1])
    assert crashes.state()[0] == history.last
    assert_clean(engine, history.expected)


# -- 4. leases ----------------------------------------------------------------------------------------------------


def nothing(_after: int, _limit: int) -> list[Notification]:
    """A reader of an empty log."""
    return []


def test_a_second_runner_waits_for_the_lease_until_it_is_released_or_expires(engine: Engine) -> None:
    first = runner(engine, nothing, lease_seconds=30, owner="first")
    second = runner(engine, nothing, lease_seconds=30, owner="second")
    first.wait_for_leases(timeout=1)

    started = time.monotonic()
    with pytest.raises(LeaseHeld, match="case_status"):
        second.wait_for_leases(timeout=0.5, poll=0.1)
    assert 0.5 <= time.monotonic() - started < 5
    with pytest.raises(LeaseHeld):
        second.run_once(lease_timeout=0)
    first.wait_for_leases(timeout=0)  # the holder renews its own lease at once

    first.release()
    second.wait_for_leases(timeout=0.5, poll=0.1)
    with engine.connect() as connection:
        assert connection.execute(select(leases.c.name, leases.c.owner)).all() == [("case_status", "second")]
    with pytest.raises(LeaseHeld):
        first.wait_for_leases(timeout=0.2, poll=0.05)

    # A lease nobody renews runs out, and the waiting runner takes it then, not before.
    second.release()
    short = runner(engine, nothing, lease_seconds=0.6, owner="short")
    short.wait_for_leases(timeout=0)
    taken = time.monotonic()
    first.wait_for_leases(timeout=5, poll=0.05)
    assert time.monotonic() - taken >= 0.5


def test_a_runner_that_lost_its_lease_during_a_batch_does_not_apply_it_twice(
    app: App, engine: Engine, history: History
) -> None:
    store(app, history.events)
    paused, resume = threading.Event(), threading.Event()

    class Stalled(CaseStatus):
        """Stalls at the start of its second batch (a long GC pause, a frozen VM) until told to go on."""

        batches = 0

        def prepare(self, connection: Connection, events: list[ProjectedEvent]) -> None:
            self.batches += 1
            if self.batches == 2:
                paused.set()
                resume.wait(WAIT)
            super().prepare(connection, events)

    # Two batches that split the simulated cases: the second holds later events of cases reported in the first.
    handled = [i + 1 for i, name in enumerate(history.types) if name in CaseStatus.handles]
    size = handled[len(handled) // 2]
    stale = runner(engine, reader_of(app), projections=[Stalled()], batch_size=size, lease_seconds=0.5)
    successor = runner(engine, reader_of(app), batch_size=size, lease_seconds=30)
    failures: dict[str, BaseException] = {}

    def run(name: str, one: Runner) -> None:
        try:
            one.run_once(lease_timeout=WAIT)
        except BaseException as error:  # noqa: BLE001 - reported in the main thread
            failures[name] = error

    threads = {"stale": threading.Thread(target=run, args=("stale", stale))}
    threads["stale"].start()
    try:
        assert paused.wait(WAIT)
        successor.wait_for_leases(timeout=10, poll=0.05)  # the stalled runner's lease has run out
        threads["successor"] = threading.Thread(target=run, args=("successor", successor))
        threads["successor"].start()
        threads["successor"].join(2)  # it may finish, or wait for the stalled runner's transaction
    finally:
        resume.set()
        for thread in threads.values():
            thread.join(WAIT)
    # Either may notice it lost the race (raising LeaseHeld is fine); the events are applied once.
    assert all(isinstance(error, LeaseHeld) for error in failures.values()), failures
    assert Runner(engine, nothing, [CaseStatus()]).position("case_status") == history.last
    assert_clean(engine, history.expected)


def test_two_runners_starting_at_once_on_a_fresh_database_both_start(engine: Engine) -> None:
    def start(barrier: threading.Barrier, errors: list[BaseException]) -> None:
        made = Runner(engine, nothing, [CaseStatus()])
        barrier.wait(WAIT)
        try:
            made.create_tables()
        except Exception as error:  # noqa: BLE001 - reported in the main thread
            errors.append(error)

    for _ in range(3):  # before the fix one round almost always failed; three make a lucky pass unlikely
        barrier, errors = threading.Barrier(2), []
        threads = [threading.Thread(target=start, args=(barrier, errors)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert not errors, errors
        with engine.begin() as connection:  # a fresh database again
            CaseStatus.metadata.drop_all(connection)
            bookkeeping.drop_all(connection)


# -- 5. dead letters ----------------------------------------------------------------------------------------------


class Flaky(CaseStatus):
    """Case status with a bug that bites one event (by position) until it is fixed."""

    def __init__(self, poison: int) -> None:
        super().__init__()
        self.poison = poison
        self.broken = True

    def apply(self, connection: Connection, event: ProjectedEvent) -> None:
        """Fail on the poisoned event while broken."""
        if self.broken and event.position == self.poison:
            msg = f"simulated bug at position {event.position}"
            raise RuntimeError(msg)
        super().apply(connection, event)


def case_of(history: History, position: int) -> tuple[str, str]:
    """The case id and number of the case an event at a position belongs to."""
    case_id = history.events[position - 1].originator_id
    report = next(
        e for e, name in zip(history.events, history.types, strict=True)
        if e.originator_id == case_id and name == "CaseReported"
    )  # fmt: skip
    return str(case_id), json.loads(report.state)["case_number"]


def of_case(case_id: str, number: str) -> Callable[[str, tuple[Any, ...]], bool]:
    """Whether a row of a case-status table belongs to this case (its key starts with the case's number or id)."""
    return lambda _table, row: row[0] in (number, case_id)


def letters(engine: Engine) -> list[dict[str, Any]]:
    """The dead letters, oldest first."""
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(select(deadletters).order_by(deadletters.c.position)).mappings()]


def run_with_poison(app: App, engine: Engine, history: History, poison: int) -> tuple[Runner, Flaky]:
    """Run a case-status that fails on one event over the whole history; check it carried on past it."""
    store(app, history.events)
    flaky = Flaky(poison)
    dead = runner(engine, reader_of(app), projections=[flaky], batch_size=97)
    stats = dead.run_once()
    assert stats.position == history.last  # it did not stop at the failing event
    assert dead.position("case_status") == history.last
    return dead, flaky


def test_an_event_that_fails_is_dead_lettered_the_rest_applied_and_a_retry_applies_it_once(
    app: App, engine: Engine, history: History
) -> None:
    poison = history.positions_of("CaseAccepted")[2]
    case_id, number = case_of(history, poison)
    version = history.events[poison - 1].originator_version
    dead, flaky = run_with_poison(app, engine, history, poison)

    [letter] = letters(engine)
    assert (letter["projection"], letter["position"], letter["event_type"]) == ("case_status", poison, "CaseAccepted")
    assert (letter["originator_id"], letter["attempts"]) == (case_id, 1)
    assert f"simulated bug at position {poison}" in letter["error"]
    # Everything else is there: every other case as in a clean build, and all but this event of this case.
    without = {
        name: [row for row in rows if name != "case_timeline" or row[:2] != (number, version)]
        for name, rows in history.expected.items()
    }
    assert len(without["case_timeline"]) == len(history.expected["case_timeline"]) - 1
    status_of_case = lambda table, row: table == "case_status" and row[0] == number  # noqa: E731
    assert_clean(engine, without, skip=status_of_case)

    # Still broken: the retry keeps the letter and counts the attempt.
    assert dead.retry_deadletters() == (0, 1)
    assert [(x["position"], x["attempts"]) for x in letters(engine)] == [(poison, 2)]

    flaky.broken = False
    assert dead.retry_deadletters() == (1, 0)
    assert letters(engine) == []
    assert dead.retry_deadletters() == (0, 0)
    # Applied once: its timeline entry is back, and no other row but this case's status row differs.
    assert_clean(engine, history.expected, skip=status_of_case)
    # A later run finds nothing to do.
    assert dead.run_once().events == 0


def test_after_a_retried_dead_letter_the_read_model_equals_a_clean_build(
    app: App, engine: Engine, history: History
) -> None:
    poison = history.positions_of("CaseAccepted")[2]
    dead, flaky = run_with_poison(app, engine, history, poison)
    flaky.broken = False
    assert dead.retry_deadletters() == (1, 0)
    assert_clean(engine, history.expected)


def test_a_dead_lettered_report_takes_its_case_with_it_and_a_retry_restores_the_case_in_order(
    app: App, engine: Engine, history: History
) -> None:
    poison = history.positions_of("CaseReported")[2]
    case_id, number = case_of(history, poison)
    dead, flaky = run_with_poison(app, engine, history, poison)
    own = [
        i + 1
        for i, e in enumerate(history.events)
        if str(e.originator_id) == case_id and history.types[i] in CaseStatus.handles
    ]
    assert len(own) > 1
    assert [x["position"] for x in letters(engine)] == own  # the case's later events cannot be applied either
    assert_clean(engine, history.expected, skip=of_case(case_id, number))

    flaky.broken = False
    assert dead.retry_deadletters() == (len(own), 0)
    assert letters(engine) == []
    assert_clean(engine, history.expected)
