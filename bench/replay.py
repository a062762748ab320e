"""Rebuild rate against the raw read-and-decode rate of the store, and a 1M-event rebuild's time and memory.

    .venv/bin/python bench/replay.py [--days 35] [--grids 505] [--copies 5] [--quick]

Uses the simulated history of bench/projections.py (built once and cached
under var/bench/: 35 days of all 505 grids, about 235,000 events). Prints, in
one run:
  (a) raw: reading and decoding every event from the store, no projection (measured
      before and after (b), the faster one counts: the machine may be shared);
  (b) `replay rebuild` of all three projections from zero: built beside the
      live tables (which hold a complete read model, as in production) and
      swapped in; the ratio b/a (target >= 0.3 on SQLite);
  (c) the time and peak memory of rebuilding all projections on the base
      history and on a history of about 1,140,000 events, each in its own
      process: memory must not grow with the history.

The 1M-event store is the base history followed by ``--copies`` - 1 copies
of its cases and patrols with fresh ids (cached as var/bench/replay-<N>x.db):
each copy's aggregates get new ids (uuid5 of the copy number and the old id)
and its case and patrol numbers a copy prefix (SN-… → S1-…, PT-… → P1-…), so
every copy is a district's worth of distinct cases on the same registry. Generating 1M events with the simulator
would take many minutes; copying takes seconds and gives the same event mix.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where bench/replay.py would hide the replay package
# (and bench/kafka.py the kafka library): drop the folder and put the repository root first instead.
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [str(_BENCH.parent), *(e for e in sys.path if Path(e or ".").resolve() not in {_BENCH, _BENCH.parent})]

import argparse
import importlib.util
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import time
import uuid
from zoneinfo import ZoneInfo

from adapters.bootstrap import Engine, bootstrap, settings_from_environment
from adapters.logging import configure_logging
from projections.catalogue import FACTORIES
from projections.events import decode
from projections.sql import make_engine
from replay.build import build, rebuild

ROOT = Path(__file__).resolve().parent.parent / "var" / "bench"
TZ = ZoneInfo("Asia/Shanghai")
COPY_NAMESPACE = uuid.UUID("0b5f3a52-8f55-4b8e-a3f1-6a1f7d1f2c90")


def base_history(days: int, grids: int) -> Path:
    """The cached simulated history of bench/projections.py (built there if missing)."""
    spec = importlib.util.spec_from_file_location("bench_projections", Path(__file__).with_name("projections.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Path(module.history(days, grids))


def fresh_copy(source: Path, name: str) -> Path:
    """A copy of a store file under var/bench/."""
    target = ROOT / name
    for leftover in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copyfile(source, target)
    return target


def multiplied(source: Path, copies: int) -> Path:
    """The base history followed by ``copies - 1`` copies of itself with fresh ids and numbers (cached)."""
    path = ROOT / f"replay-{copies}x.db"
    if path.exists():
        return path
    partial = fresh_copy(source, f"replay-{copies}x.partial")
    print(f"building a store of {copies} copies of the history …", file=sys.stderr)
    connection = sqlite3.connect(partial)
    try:
        rows = connection.execute(
            "SELECT originator_id, originator_version, topic, state FROM stored_events "
            "WHERE topic LIKE 'domain.case:%' OR topic LIKE 'domain.patrol:%' ORDER BY rowid"
        ).fetchall()
        for copy in range(1, copies):
            renamed = [
                (
                    uuid.uuid5(COPY_NAMESPACE, f"{copy}:{originator}").hex,
                    version,
                    topic,
                    bytes(state).replace(b'"SN-2', f'"S{copy}-2'.encode()).replace(b'"PT-2', f'"P{copy}-2'.encode()),
                )
                for originator, version, topic, state in rows
            ]
            connection.executemany("INSERT INTO stored_events VALUES (?, ?, ?, ?)", renamed)
        connection.commit()
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()  # the WAL is folded into the file before it is renamed
    partial.rename(path)
    return path


def reader(service: Engine):  # noqa: ANN201
    """The store's notification log as a replay source."""
    return service.reader.read


def raw_rate(path: Path) -> tuple[int, float]:
    """Events and events per second, reading and decoding everything."""
    service = bootstrap(settings_from_environment(configure_logs=False, database_url=f"sqlite:///{path}"))
    read = reader(service)
    started = time.perf_counter()
    count, position = 0, 0
    while batch := read(position, 10_000):
        for notification in batch:
            decode(notification)
        count += len(batch)
        position = batch[-1].id
    seconds = time.perf_counter() - started
    service.close()
    return count, count / seconds


def rebuild_all(path: Path, *, with_live: bool) -> dict[str, float]:
    """Rebuild every projection on a store (after building the live read models first, untimed, if asked)."""
    url = f"sqlite:///{path}"
    service = bootstrap(settings_from_environment(configure_logs=False, database_url=url))
    engine = make_engine(url)
    names = list(FACTORIES)
    if with_live:
        build(engine, reader(service), [FACTORIES[name](TZ) for name in names])
    started = time.perf_counter()
    done = rebuild(engine, reader(service), names, TZ)
    seconds = time.perf_counter() - started
    engine.dispose()
    service.close()
    return {"events": done.events, "seconds": seconds}


def child(path: Path) -> None:
    """In a separate process: rebuild every projection and report time and peak memory."""
    configure_logging("console", "warning")
    figures = rebuild_all(path, with_live=False)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({**figures, "peak_mib": round(peak_kib / 1024, 1)}))


def in_child(path: Path) -> dict[str, float]:
    """Run ``child`` in a fresh process."""
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(path)],
        capture_output=True, text=True, check=True, env={**os.environ},
    )  # fmt: skip
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


#: What ``--quick`` runs (the test suite runs every bench so, so none rots unseen).
QUICK = "--days 1 --grids 5 --copies 2"


def main() -> None:
    """Build or reuse the histories, then measure."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--grids", type=int, default=505)
    parser.add_argument("--copies", type=int, default=5)
    parser.add_argument("--child")
    parser.add_argument("--quick", action="store_true", help=f"tiny sizes ({QUICK}): it runs and prints its ratio")
    args = parser.parse_args()
    if args.quick:  # the sizes of QUICK, after any given
        args = parser.parse_args([*sys.argv[1:], *QUICK.split()])
    if args.child:
        child(Path(args.child))
        return
    configure_logging("console", "warning")
    source = base_history(args.days, args.grids)
    count, raw_before = raw_rate(source)
    figures = rebuild_all(fresh_copy(source, "replay-rebuild.db"), with_live=True)
    rate = figures["events"] / figures["seconds"]
    # The machine is shared: the baseline is measured before and after, and the faster one is used.
    raw = max(raw_before, raw_rate(source)[1])
    print(f"history: {count:,} events ({args.days} days of {args.grids} grids)")
    print(f"(a) raw read and decode: {raw:,.0f} events/s (the faster of a run before and one after (b))")
    print(f"(b) rebuild of all projections beside the live ones, and swap: {rate:,.0f} events/s "
          f"({figures['seconds']:.1f} s)")  # fmt: skip
    print(f"ratio b/a: {rate / raw:.3f} (target >= 0.3)")
    big = multiplied(source, args.copies)
    for path in (fresh_copy(source, "replay-small.db"), fresh_copy(big, "replay-big.db")):
        measured = in_child(path)
        per_second = measured["events"] / measured["seconds"]
        print(f"rebuild of {measured['events']:,.0f} events: {measured['seconds']:.1f} s ({per_second:,.0f} events/s), "
              f"peak memory {measured['peak_mib']} MiB")  # fmt: skip
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
