"""Additive figures come out the same however the events are cut into batches (a real SQLite file)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from projections.performance import performance_counts
from projections.sql import Counters, make_engine

if TYPE_CHECKING:
    from pathlib import Path

KEY = ("grid", "SN01-C01-G001", "SN01-C01", "SN01", "2021-06-01")


def _table_after(path: Path, batches: list[list[tuple[str, int]]]) -> dict[tuple[object, ...], float]:
    engine = make_engine(f"sqlite:///{path}")
    performance_counts.metadata.drop_all(engine, tables=[performance_counts])
    performance_counts.metadata.create_all(engine, tables=[performance_counts])
    counters = Counters(performance_counts)
    for batch in batches:
        with engine.begin() as connection:
            for metric, amount in batch:
                counters.add((*KEY, metric), amount)
            counters.flush(connection)
    with engine.connect() as connection:
        rows = {tuple(row[:-1]): row[-1] for row in connection.execute(select(performance_counts))}
    engine.dispose()
    return rows


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["due", "due_closed"]), st.sampled_from([1, -1])), max_size=12),
       st.data())  # fmt: skip
def test_a_figure_is_the_same_in_one_batch_or_many_and_zero_leaves_no_row(
    tmp_path_factory: object, amounts: list[tuple[str, int]], data: st.DataObject
) -> None:
    # A count is never taken below zero (an undo follows what it undoes): keep the generated steps that are so.
    running: dict[str, int] = {}
    steps = []
    for metric, amount in amounts:
        if running.get(metric, 0) + amount >= 0:
            running[metric] = running.get(metric, 0) + amount
            steps.append((metric, amount))
    amounts = steps
    folder = tmp_path_factory.mktemp("counters")  # type: ignore[attr-defined]
    cuts = sorted(data.draw(st.sets(st.integers(0, len(amounts)), max_size=4)))
    batches = [amounts[a:b] for a, b in zip([0, *cuts], [*cuts, len(amounts)], strict=True)]
    whole = _table_after(folder / "one.db", [amounts])
    assert _table_after(folder / "many.db", batches) == whole
    assert 0 not in whole.values()
