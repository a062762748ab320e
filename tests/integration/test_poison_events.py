"""A stored event whose rows cannot be written is set aside like one that cannot be applied (issue 13, item 2).

The poison is a real stored event, as an engine without input bounds wrote it: a ``PatrolEnded`` with a
distance of 10^20 metres, which neither SQLite's INTEGER (64-bit) nor PostgreSQL's numbers take. It goes into
the store directly, beside the events the service writes (the service now refuses such a distance). Every
projection must dead-letter it with the error, write the rest of the batch, move its position past it, and
apply nothing twice; ``gridcase deadletters`` shows it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from eventsourcing.persistence import StoredEvent
from sqlalchemy import func, select

from projections.catalogue import all_projections
from projections.performance import Performance, performance_counts
from projections.runner import Runner
from projections.sql import deadletters, make_engine, stored_position
from tests.conftest import KEY_VAR, make_settings
from tests.support import ADMIN, GRID, OTHER_GRID, T0, WORKER, make_app, report, run, seed_small_district

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy import Connection, Engine

    from projections.events import ProjectedEvent
    from tests.support import App

#: Too big for any integer column of either backend.
HUGE = 10**20
#: Per backend, the smallest poison the issue met: SQLite's INTEGER is 64-bit (a float column takes 10^20 as an
#: integer too, and overflows); PostgreSQL's INTEGER is 32-bit (its float columns take 10^20).
POISON = {
    "sqlite": ("PatrolEnded", {"distance_m": HUGE}),
    "postgresql": ("GridFiguresUpdated", {"population": 3_000_000_000}),
}


def stored_rows(app: App) -> list[Any]:
    """Every notification of the store, in order."""
    return list(app.reader.read(0, 1_000_000))


def store_poison(app: App, event_type: str, **changes: Any) -> int:
    """Store again the last real ``event_type`` event, as the next event of its aggregate, with ``changes``.

    The stored JSON is the one the engine wrote, with a field changed: exactly what an engine without bounds
    would have written. Returns its position.
    """
    model = next(n for n in reversed(stored_rows(app)) if n.topic.endswith(f".{event_type}"))
    last = max(n.originator_version for n in stored_rows(app) if n.originator_id == model.originator_id)
    state = json.loads(model.state) | changes
    app.store.recorder.insert_events(
        [StoredEvent(model.originator_id, last + 1, model.topic, json.dumps(state, sort_keys=True).encode())]
    )
    return app.reader.last_position()


def backend(database_url: str) -> str:
    """sqlite or postgresql."""
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


@pytest.fixture
def poisoned(database_url: str) -> Iterator[tuple[App, Engine, int]]:
    """A small district, a patrol, the backend's poison after it, and a case reported after that."""
    app = make_app(make_settings(database_url))
    seed_small_district(app)
    patrol = str(run(app, command="patrol.start", actor=WORKER, at=T0, worker="W001", grid=GRID)["patrol_number"])
    run(app, command="patrol.end", patrol_number=patrol, actor=WORKER, at=T0 + timedelta(hours=1), distance_m=800)
    run(app, command="registry.grid-figures", actor=ADMIN, at=T0 + timedelta(hours=1), grid=GRID, households=510,
        population=1010, elderly=181)  # fmt: skip
    event_type, changes = POISON[backend(database_url)]
    poison = store_poison(app, event_type, **changes)
    # In the other grid: the poisoned grid itself no longer loads on the write side (its event breaks the bounds).
    report(app, at=T0 + timedelta(hours=4), grid=OTHER_GRID)
    engine = make_engine(database_url)
    yield app, engine, poison
    engine.dispose()
    app.close()


def letters(engine: Engine) -> list[dict[str, Any]]:
    """The dead letters, oldest first."""
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(select(deadletters).order_by(deadletters.c.position)).mappings()]


def test_an_event_whose_rows_cannot_be_written_is_dead_lettered_and_the_rest_goes_on(
    poisoned: tuple[App, Engine, int],
) -> None:
    app, engine, poison = poisoned
    last = app.reader.last_position()
    read = app.engine.read_side(batch_size=1000)
    stats = read.runner.run_once(lease_timeout=5)
    read.runner.release()

    assert stats.position == last
    with engine.connect() as connection:
        for projection in read.runner.projections:
            assert stored_position(connection, projection.name) == last, projection.name
    [letter] = letters(engine)
    event_type = POISON[engine.dialect.name][0]
    assert (letter["projection"], letter["position"], letter["event_type"]) == ("performance", poison, event_type)
    assert letter["attempts"] == 1
    assert "could not write" in letter["error"]
    assert "OverflowError" in letter["error"] or "out of range" in letter["error"], letter["error"]
    # The rest of the batch is written: the good patrol's metres, and the case reported after the poison.
    with engine.connect() as connection:
        metres = connection.execute(
            select(func.sum(performance_counts.c.value)).where(
                performance_counts.c.metric == "patrol_metres", performance_counts.c.kind == "worker"
            )
        ).scalar()
    assert metres == 800
    assert read.case(report_number(app)) is not None
    # Exactly once: running again changes nothing and dead-letters nothing more.
    again = read.runner.run_once(lease_timeout=5)
    read.runner.release()
    assert again.events == 0
    assert len(letters(engine)) == 1


def report_number(app: App) -> str:
    """The number of the last case reported."""
    case = next(n for n in reversed(stored_rows(app)) if n.topic.endswith(".CaseReported"))
    return str(json.loads(case.state)["case_number"])


def gridcase(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``gridcase`` program on this database, as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_") or k == KEY_VAR}
    env |= {"GRIDCASE_DATABASE_URL": database_url, "GRIDCASE_TIMEZONE": "Asia/Shanghai"}
    program = Path(sys.executable).parent / "gridcase"
    return subprocess.run([str(program), *args], capture_output=True, text=True, env=env, timeout=300, check=False)


def test_a_query_answers_at_once_and_deadletters_shows_the_unwritable_event(
    database_url: str, poisoned: tuple[App, Engine, int]
) -> None:
    app, _, poison = poisoned
    number = report_number(app)
    started = time.monotonic()
    shown = gridcase(database_url, "case", "show", number, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["case_number"] == number
    assert time.monotonic() - started < 30, "the query waited for read models that never caught up"
    listed = gridcase(database_url, "deadletters")
    assert listed.returncode == 0, listed.stderr
    assert "performance" in listed.stdout
    assert str(poison) in listed.stdout
    assert "could not write its rows" in listed.stdout
    [letter] = json.loads(gridcase(database_url, "deadletters", "--json").stdout)
    assert (letter["projection"], letter["position"]) == ("performance", poison)
    assert letter["error"].strip().splitlines()[-1].startswith("could not write its rows: ")
    retried = gridcase(database_url, "deadletters", "--retry")
    assert retried.returncode == 0, retried.stderr
    assert "retried: 0 applied, 1 still failing" in retried.stdout


class Clamping(Performance):
    """Performance as a fixed release might count: metres and residents held to what a column takes."""

    def apply(self, connection: Connection, event: ProjectedEvent) -> None:
        """Clamp the poisoned figures, then count as ever."""
        data = dict(event.data)
        if "distance_m" in data:
            data["distance_m"] = min(data["distance_m"], 10**9)
        if "population" in data:
            data["population"] = min(data["population"], 10_000_000)
        super().apply(connection, replace(event, data=data))


def counts(engine: Engine) -> list[tuple[Any, ...]]:
    """Every performance count, in key order."""
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(select(performance_counts).order_by(
            *performance_counts.primary_key.columns))]  # fmt: skip


def test_retrying_an_unwritable_event_rebuilds_the_figures_and_keeps_the_letter_until_fixed(
    poisoned: tuple[App, Engine, int],
) -> None:
    app, engine, poison = poisoned
    tz = app.engine.settings.tz
    broken = Runner(engine, app.reader.read, all_projections(tz), batch_size=7)
    broken.create_tables()
    broken.run_once()
    before = counts(engine)
    assert [x["position"] for x in letters(engine)] == [poison]

    # Still unwritable: the figures are rebuilt from position zero, the same; the letter stays, one attempt more.
    assert broken.retry_deadletters() == (0, 1)
    assert counts(engine) == before
    [letter] = letters(engine)
    assert (letter["position"], letter["attempts"]) == (poison, 2)
    assert "could not write its rows" in letter["error"]

    # Fixed: the retry writes it, once, and the letter goes.
    fixed = Runner(engine, app.reader.read, [Clamping(tz)], batch_size=7)
    assert fixed.retry_deadletters() == (1, 0)
    assert letters(engine) == []
    after = counts(engine)
    assert len(after) >= len(before)
    if POISON[engine.dialect.name][0] == "PatrolEnded":
        metres = sum(r[-1] for r in after if r[0] == "worker" and r[5] == "patrol_metres")
        assert metres == 800 + 10**9
    with engine.connect() as connection:
        assert stored_position(connection, "performance") == app.reader.last_position()
    assert fixed.run_once().events == 0


def test_replay_verify_lists_the_dead_letter_and_finds_the_rebuild_equal(
    database_url: str, poisoned: tuple[App, Engine, int]
) -> None:
    checked = gridcase(database_url, "replay", "verify")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "performance: 1 dead letter (see gridcase deadletters)" in checked.stdout
    assert "0 rows differ" in checked.stdout
    assert "stuck" not in checked.stdout
    report = json.loads(gridcase(database_url, "replay", "verify", "--json").stdout)
    assert report["projections"]["performance"]["deadletters"] == 1
    assert report["projections"]["performance"]["stuck"] is False
    assert report["projections"]["performance"]["position"] == report["head"]
