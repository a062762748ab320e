"""Rebuilds and the determinism check, on SQLite and PostgreSQL.

A rebuild from position zero, into tables beside the live ones and swapped in,
must give exactly the read models the runner built incrementally, in small
batches, while the history was being written (hypothesis generates the
histories through the real application service).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from projections.case_status import case_status
from projections.catalogue import FACTORIES
from projections.performance import Performance
from projections.runner import Runner
from projections.sql import make_engine
from replay.build import outdated, rebuild, verify
from tests.integration.test_performance import Simulation, open_world
from tests.support import report

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Engine

    from tests.support import App

QINGDAO = ZoneInfo("Asia/Shanghai")
ALL = list(FACTORIES)


def reader(app: App) -> Any:
    """The store's notification log as a replay source."""
    recorder = app.store.recorder
    return lambda after, limit: recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False)


def live_runner(app: App, engine: Engine) -> Runner:
    """The live runner, in small batches so that batch boundaries fall everywhere."""
    runner = Runner(engine, reader(app), [FACTORIES[name](QINGDAO) for name in ALL], batch_size=29)
    runner.create_tables()
    return runner


def catch_up(runner: Runner) -> None:
    """Apply everything stored so far, then let others run."""
    assert runner.run_once(lease_timeout=5).deadlettered == 0
    runner.release()


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every read-model row and position, floats rounded (sums may group differently)."""
    tables = [table for name in ALL for table in FACTORIES[name](QINGDAO).metadata.sorted_tables]
    found = {}
    with engine.connect() as connection:
        for table in tables:
            rows = connection.execute(select(table)).all()
            # A counter of zero is the same as no counter (an incremental run may leave one; a rebuild writes none).
            if "value" in table.c:
                rows = [row for row in rows if row.value != 0]
            found[table.name] = sorted(tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in rows)
        found["positions"] = sorted(
            tuple(row) for row in connection.execute(text("SELECT name, position FROM projection_positions"))
        )
    return found


@pytest.mark.slow
def test_a_full_rebuild_equals_the_read_models_built_incrementally(fresh_url: Callable[[], str]) -> None:
    @settings(max_examples=3, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example, HealthCheck.function_scoped_fixture])  # fmt: skip
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        url = fresh_url()
        app = open_world(url)
        engine = make_engine(url)
        try:
            runner = live_runner(app, engine)
            simulation = Simulation(app, data, max_actions=12)
            simulation.plan(days=20)
            simulation.run(data.draw(st.integers(0, 150), label="steps before the first catch-up"))
            catch_up(runner)
            simulation.run()
            catch_up(runner)
            incremental = dump(engine)

            checked = verify(engine, reader(app), ALL, QINGDAO)
            assert checked.differences == []
            assert checked.rows["case_status"] == len(simulation.cases) + 1  # and the master case

            done = rebuild(engine, reader(app), ALL, QINGDAO, batch_size=1000)
            assert done.position == app.store.recorder.max_notification_id()
            assert dump(engine) == incremental
            assert verify(engine, reader(app), ALL, QINGDAO).differences == []
            catch_up(runner)  # the live runner carries on from the swapped position: nothing left to do
            assert dump(engine) == incremental
        finally:
            engine.dispose()
            app.close()

    check()


def test_the_live_tables_serve_until_the_swap_and_events_stored_meanwhile_are_in_the_new_ones(
    fresh_url: Callable[[], str],
) -> None:
    url = fresh_url()
    app = open_world(url)
    engine = make_engine(url)
    try:
        for _ in range(6):
            report(app)
        runner = live_runner(app, engine)
        catch_up(runner)
        seen_during_build: list[int] = []

        def meanwhile(_stats: object) -> None:
            # While the rebuild runs: the live table still answers, and a new complaint comes in.
            with engine.connect() as connection:
                seen_during_build.append(connection.execute(select(func.count()).select_from(case_status)).scalar_one())
            if len(seen_during_build) == 1:
                report(app)

        rebuild(engine, reader(app), ["case_status"], QINGDAO, batch_size=5, progress=meanwhile)
        assert seen_during_build[0] == 6
        assert set(seen_during_build) == {6}, "the live table kept serving, unchanged, until the swap"
        with engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(case_status)).scalar_one() == 7
        assert verify(engine, reader(app), ALL, QINGDAO).differences == []
    finally:
        engine.dispose()
        app.close()


def test_verify_prints_the_row_that_differs_from_a_rebuild(fresh_url: Callable[[], str]) -> None:
    url = fresh_url()
    app = open_world(url)
    engine = make_engine(url)
    try:
        number = report(app)
        report(app)
        catch_up(live_runner(app, engine))
        with engine.begin() as connection:
            connection.execute(case_status.update().where(case_status.c.case_number == number).values(state="closed"))
        checked = verify(engine, reader(app), ALL, QINGDAO)
        assert [(d.table, d.key, d.kind, d.changed()) for d in checked.differences] == [
            ("case_status", {"case_number": number}, "differs", {"state": ("closed", "reported")})
        ]
    finally:
        engine.dispose()
        app.close()


def test_a_projection_whose_code_version_changed_is_listed_and_rebuilt(
    fresh_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fresh_url()
    app = open_world(url)
    engine = make_engine(url)
    try:
        report(app)
        catch_up(live_runner(app, engine))
        assert outdated(engine, QINGDAO) == []
        monkeypatch.setattr(Performance, "version", 2)
        assert outdated(engine, QINGDAO) == ["performance"]
        rebuild(engine, reader(app), outdated(engine, QINGDAO), QINGDAO)
        assert outdated(engine, QINGDAO) == []
    finally:
        engine.dispose()
        app.close()
