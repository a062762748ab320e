"""The reference sink, fed through a real broker into real DuckDB files: every event once, the engine's figures.

The sink runs as a reporting team runs it (``python -m sink``, a process of its own, killed with SIGKILL at
random points and started again); the engine's side is the ``gridcase`` program.
"""

from __future__ import annotations

import json
import math
import random
import sqlite3
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import duckdb
import pytest

from tests.integration.kafka.support import Engine

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow


def sink(into: Path, broker: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sink", "--into", str(into), "--bootstrap", broker, *args],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


def rows(into: Path, query: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(into), read_only=True) as connection:
        return connection.execute(query).fetchall()


def engine_counts(store: str) -> dict[tuple[str, ...], float]:
    """The engine's performance read model: every non-zero daily count."""
    with sqlite3.connect(store.removeprefix("sqlite:///")) as connection:
        found = connection.execute(
            "SELECT kind, subject, community, street, day, metric, value FROM performance_counts WHERE value != 0"
        ).fetchall()
    return {tuple(row[:6]): float(row[6]) for row in found}


def kill_at_random_points(into: Path, broker: str, rng: random.Random) -> None:
    """Start the sink four times, each killed (SIGKILL) after 1-5 committed batches, at a random moment of the next."""
    for _ in range(4):
        # A progress line on stderr follows each committed batch.
        process = subprocess.Popen(
            [sys.executable, "-m", "sink", "--into", str(into), "--bootstrap", broker, "--batch", "300"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stderr is not None
        for _ in range(rng.randint(1, 5)):
            assert process.stderr.readline().startswith("sink: "), "a batch committed"
        time.sleep(rng.uniform(0, 0.08))
        assert process.poll() is None, "killed while working"
        process.kill()
        process.wait()
        process.stderr.close()


def test_killed_at_random_points_the_sink_holds_every_event_once_and_the_engines_figures(
    simulated: tuple[str, int], broker: str, tmp_path: Path
) -> None:
    store, last = simulated
    engine = Engine(store, broker)
    engine("relay")
    into = tmp_path / "analytics.duckdb"
    kill_at_random_points(into, broker, random.Random(17))
    held = rows(into, "SELECT count(*) FROM events")[0][0] if into.exists() else 0
    assert 0 < held < last, "the killed runs kept what they had committed, and left work to do"

    summary = engine.json("sink", "--into", str(into))  # the engine's command runs the same sink
    assert summary["poison"] == 0
    assert summary["behind"] == 0
    assert summary["events"] == last - held, "the last run took exactly what the killed ones had not"
    count, distinct, lowest, highest = rows(into, "SELECT count(*), count(DISTINCT position), min(position), "
                                                  "max(position) FROM events")[0]  # fmt: skip
    assert (count, distinct, lowest, highest) == (last, last, 1, last), "every stored event, once"

    out = tmp_path / "parquet"
    again = sink(into, broker, "--parquet", str(out), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["events"] == 0, "a run with nothing new adds nothing"

    # Its daily figures are the engine's own, for every unit and day.
    ours = {tuple(r[:6]): float(r[6]) for r in rows(into, "SELECT kind, subject, community, street, "
            "strftime(day, '%Y-%m-%d'), metric, value FROM daily_counts WHERE value != 0")}  # fmt: skip
    theirs = engine_counts(store)
    assert len(theirs) > 500, "the simulated days give many figures"
    unlike = [k for k in ours.keys() | theirs.keys()
              if not math.isclose(ours.get(k, 0.0), theirs.get(k, 0.0), rel_tol=1e-9, abs_tol=1e-6)]  # fmt: skip
    assert unlike == []
    # The same through the engine's query and the sink's wide view: a street's figures on a day.
    busiest = ("SELECT subject, strftime(day, '%Y-%m-%d') FROM daily_figures WHERE kind = 'street' "
               "ORDER BY reported DESC NULLS LAST LIMIT 1")
    street, day = rows(into, busiest)[0]
    shown = engine.json("performance", "--street", street, "--period", day)
    figure = shown[0] if isinstance(shown, list) else shown
    wide = (f"SELECT name, name_en, reported, accepted, response_rate FROM daily_figures "
            f"WHERE kind = 'street' AND subject = '{street}' AND day = '{day}'")
    name, name_en, reported, accepted, rate = rows(into, wide)[0]
    assert name.endswith("街道")
    assert name_en.endswith("Street"), "labelled in Chinese and English, from the registry's events"
    assert (reported or 0, accepted or 0) == (figure["reported"], figure["accepted"])
    assert rate == figure["response_rate"]["rate"]

    # The engine recounts the sink and finds nothing to say; then it names what was taken away.
    checked = engine("sink", "verify", "--into", str(into))
    assert "no difference" in checked.stdout
    with duckdb.connect(str(into)) as connection:
        connection.execute("DELETE FROM events WHERE position = 7")
        connection.execute("UPDATE daily_counts SET value = value + 1 WHERE metric = 'reported' AND kind = 'grid' "
                           "AND rowid = (SELECT min(rowid) FROM daily_counts WHERE metric = 'reported')")  # fmt: skip
    broken = engine("sink", "verify", "--into", str(into), "--json", check=False)
    assert broken.returncode == 1
    differences = json.loads(broken.stdout)["differences"]
    assert differences[0] == "1 stored event(s) not in the sink: positions 7"
    assert any("daily count(s) differ from the engine's performance read model: grid " in d for d in differences)

    # Its Parquet export (taken before the rows were tampered with) by month, read back by a Parquet reader.
    assert sorted(p.name for p in (out / "events").iterdir()) == ["month=2021-01", "month=2021-06"]
    with duckdb.connect() as reader:
        files = f"read_parquet('{out}/events/*/*.parquet', hive_partitioning = true)"
        back = reader.execute(f"SELECT count(*), count(DISTINCT position) FROM {files}").fetchone()
        cases = reader.execute(f"SELECT count(*) FROM read_parquet('{out}/cases/*/*.parquet')").fetchone()
    assert back == (last, last)
    assert cases == rows(into, "SELECT count(*) FROM cases")[0]
