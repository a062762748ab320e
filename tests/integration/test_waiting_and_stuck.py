"""Runners as processes: one waiting for another's lease says so and stops on a signal; ``replay verify`` runs
beside a follower and names a projection that is stuck behind the store (issue 13, items 2 and 8).

Every runner here is the installed ``gridcase`` program in a process of its own, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from projections.catalogue import all_projections
from projections.runner import Runner
from projections.sql import leases, make_engine, stored_position
from tests.conftest import KEY_VAR, make_settings
from tests.support import T0, make_app, report, seed_small_district

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy import Engine

    from tests.support import App

PROGRAM = Path(sys.executable).parent / "gridcase"
#: Long enough for a slow, shared machine; short enough that a broken test fails instead of hanging.
WAIT = 60.0


def environment(database_url: str) -> dict[str, str]:
    """The environment a ``gridcase`` process gets: this database, no other GRIDCASE_ setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_") or k == KEY_VAR}
    return env | {"GRIDCASE_DATABASE_URL": database_url, "GRIDCASE_TIMEZONE": "Asia/Shanghai"}


@dataclass
class Process:
    """A ``gridcase`` process and the files its output goes to."""

    process: subprocess.Popen[bytes]
    out: Path
    err: Path

    def stderr(self) -> str:
        """What it wrote on stderr so far."""
        return self.err.read_text(errors="replace")

    def stdout(self) -> str:
        """What it wrote on stdout so far."""
        return self.out.read_text(errors="replace")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send a signal and wait for it to end; its exit code."""
        self.process.send_signal(signum)
        return self.process.wait(WAIT)


@pytest.fixture
def started(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Process]]:
    """Start ``gridcase`` processes on the test database; any left running are killed at the end."""
    processes: list[Process] = []

    def start(*args: str) -> Process:
        out, err = tmp_path / f"p{len(processes)}.out", tmp_path / f"p{len(processes)}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen([str(PROGRAM), *args], stdout=stdout, stderr=stderr,
                                       env=environment(database_url))  # fmt: skip
        processes.append(Process(process, out, err))
        return processes[-1]

    yield start
    for each in processes:
        if each.process.poll() is None:
            each.process.kill()
            each.process.wait()


@pytest.fixture
def world(database_url: str) -> Iterator[tuple[App, Engine]]:
    """A small district with a few complaints, and the read models' engine."""
    app = make_app(make_settings(database_url))
    seed_small_district(app)
    for minute in range(3):
        report(app, at=T0.replace(minute=minute))
    app.engine.read_side()  # the read models' tables, as any query creates them
    engine = make_engine(database_url)
    yield app, engine
    engine.dispose()
    app.close()


def wait_until(found: Callable[[], Any], what: str) -> Any:
    """Poll until ``found()`` is truthy; its value."""
    deadline = time.monotonic() + WAIT
    while not (result := found()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)
    return result


def lease_owners(engine: Engine) -> set[str]:
    """Who holds a live projection lease now."""
    with engine.connect() as connection:
        rows = connection.execute(select(leases.c.owner, leases.c.expires_at)).all()
    return {row.owner for row in rows if row.expires_at > time.time()}


def caught_up(app: App, engine: Engine) -> bool:
    """Every projection is at the store's head."""
    head = app.reader.last_position()
    with engine.connect() as connection:
        return all(stored_position(connection, p.name) == head for p in all_projections(app.tz))


def following(start: Callable[..., Process], app: App, engine: Engine) -> Process:
    """A ``project --follow`` process that holds the leases and has caught up."""
    follower = start("project", "--follow")
    wait_until(lambda: any(f":{follower.process.pid}:" in owner for owner in lease_owners(engine)), "the lease")
    wait_until(lambda: caught_up(app, engine), "the follower to catch up")
    return follower


@pytest.mark.parametrize("args", [("project", "--follow"), ("project",)], ids=["follow", "once"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_runner_waiting_for_a_lease_says_for_whom_and_since_when_and_stops_on_a_signal(
    world: tuple[App, Engine], started: Callable[..., Process], args: tuple[str, ...], signum: int
) -> None:
    app, engine = world
    follower = following(started, app, engine)
    waiting = started(*args)
    said = wait_until(lambda: "waiting since" in waiting.stderr() and waiting.stderr(), "the waiting line")
    line = next(x for x in said.splitlines() if "waiting since" in x)
    assert f":{follower.process.pid}:" in line, line  # for whom: the holder's host:pid
    assert "case_status" in line
    assert "+08:00" in line  # since when, in district local time
    assert waiting.process.poll() is None, "it waits instead of failing"

    stopped_at = time.monotonic()
    assert waiting.stop(signum) == 0, waiting.stderr()
    assert time.monotonic() - stopped_at < 10, "it stopped at once, not after the lease"
    assert "Traceback" not in waiting.stderr()
    if signum == signal.SIGTERM:
        assert "stopped while waiting for the lease" in waiting.stderr()
    assert follower.process.poll() is None, "the holder runs on"
    assert follower.stop() == 0, follower.stderr()


def test_replay_verify_runs_beside_a_follower_without_taking_its_lease(
    world: tuple[App, Engine], started: Callable[..., Process], database_url: str
) -> None:
    app, engine = world
    follower = following(started, app, engine)
    report(app, at=T0.replace(minute=30))
    checked = subprocess.run([str(PROGRAM), "replay", "verify"], capture_output=True, text=True, timeout=WAIT * 5,
                             env=environment(database_url), check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Traceback" not in checked.stderr
    assert "0 rows differ" in checked.stdout
    assert "stuck" not in checked.stdout
    assert follower.process.poll() is None, "the follower runs on"
    assert follower.stop() == 0, follower.stderr()


def test_replay_verify_names_a_projection_stuck_behind_the_store_and_exits_1(
    world: tuple[App, Engine], database_url: str
) -> None:
    app, engine = world
    app.engine.read_side().catch_up()
    assert caught_up(app, engine)
    # A runner that took the leases and froze (a stopped process, a hung transaction): it renews nothing.
    frozen = Runner(engine, app.reader.read, all_projections(app.tz), lease_seconds=600, owner="frozen-runner")
    frozen.create_tables()
    assert frozen.wait_for_leases(timeout=5)
    try:
        for minute in range(30, 34):
            report(app, at=T0.replace(minute=minute))
        checked = subprocess.run([str(PROGRAM), "replay", "verify", "--wait", "1"], capture_output=True, text=True,
                                 timeout=WAIT * 5, env=environment(database_url), check=False)  # fmt: skip
    finally:
        frozen.release()
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "Traceback" not in checked.stderr
    lines = {line.split(":", 1)[0]: line for line in checked.stdout.splitlines()}
    head = app.reader.last_position()
    for name in ("case_status", "performance", "intake"):
        assert name in lines, checked.stdout
        assert "stuck" in lines[name], lines[name]
        assert "frozen-runner holds the lease" in lines[name], lines[name]
    # case_status, performance and intake all read reports: four events they never got.
    assert f"stuck 4 events behind the store's head {head}" in lines["case_status"], lines["case_status"]
    assert "0 rows differ" in checked.stdout, "what they hold is right; they are behind"
