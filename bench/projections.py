"""Projection catch-up rate against the raw read-and-decode rate of the store, measured in the same run.

    .venv/bin/python bench/projections.py [--days 35] [--grids 505] [--quick]

Builds (once, cached under var/bench/) a history of the reference district
from the simulator: 35 days of all 505 grids is about 210,000 events of the
real mix. Then prints:
  (a) raw: reading and decoding every event from the store, no projection;
  (b) all three projections (case status, performance, intake) catching up
      from zero into fresh tables;
  the ratio b/a (target >= 0.3 on SQLite), and the peak memory of a process
  catching up half the history and the whole of it (it must not grow with
  the history: projections keep only one batch in memory).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where bench/replay.py would hide the replay package
# (and bench/kafka.py the kafka library): drop the folder and put the repository root first instead.
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [str(_BENCH.parent), *(e for e in sys.path if Path(e or ".").resolve() not in {_BENCH, _BENCH.parent})]

import argparse
import json
import os
import resource
import shutil
import subprocess
import time
from datetime import date, datetime
from zoneinfo import ZoneInfo

from adapters.bootstrap import Engine, bootstrap, settings_from_environment
from adapters.logging import configure_logging
from district.reference import load_reference_district, reference_commands
from district.simulator import SimulationConfig, Simulator, World
from projections.case_status import CaseStatus
from projections.events import decode
from projections.intake import Intake
from projections.performance import Performance
from projections.runner import Runner
from projections.sql import make_engine
from replay.source import up_to_position

REFERENCE_AT = datetime.fromisoformat("2021-01-01T00:00:00+08:00")
ROOT = Path(__file__).resolve().parent.parent / "var" / "bench"


def history(days: int, grids: int) -> Path:
    """A store holding the reference district and ``days`` simulated days (built once)."""
    path = ROOT / f"history-{days}d-{grids}g.db"
    if path.exists():
        return path
    ROOT.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    for leftover in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
        leftover.unlink(missing_ok=True)
    service = bootstrap(settings_from_environment(configure_logs=False, database_url=f"sqlite:///{partial}"))
    reader = service.reader
    load_reference_district(service.service, reader, REFERENCE_AT)
    world = World(reference_commands(REFERENCE_AT), grids)
    print(f"building the history: {days} days of {len(world.grids)} grids …", file=sys.stderr)
    config = SimulationConfig(days=days, seed=1, grids=grids, start=date(2021, 3, 1))
    Simulator(service.service, reader, world, config).run()
    service.close()
    partial.rename(path)
    return path


def fresh_copy(source: Path, name: str) -> Path:
    """A copy of the history without read-model tables."""
    target = ROOT / name
    for leftover in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copyfile(source, target)
    return target


def reader(service: Engine, limit_position: int | None = None):  # noqa: ANN201
    """Notifications after a position, optionally stopping at a position."""
    read = service.reader.read
    return read if limit_position is None else up_to_position(read, limit_position)


def raw_rate(service: Engine) -> tuple[int, float]:
    """Events and events per second, reading and decoding everything."""
    read = reader(service)
    started = time.perf_counter()
    count, position = 0, 0
    while batch := read(position, 10_000):
        for notification in batch:
            decode(notification)
        count += len(batch)
        position = batch[-1].id
    return count, count / (time.perf_counter() - started)


def catch_up(path: Path, limit_position: int | None) -> tuple[int, float]:
    """Run all three projections from zero; events and seconds."""
    url = f"sqlite:///{path}"
    service = bootstrap(settings_from_environment(configure_logs=False, database_url=url))
    tz = ZoneInfo("Asia/Shanghai")
    runner = Runner(make_engine(url), reader(service, limit_position), [CaseStatus(), Performance(tz), Intake(tz)])
    runner.create_tables()
    stats = runner.run_once()
    service.close()
    return stats.events, stats.seconds


def child(path: Path, limit_position: int) -> None:
    """In a separate process: catch up to a position and report peak memory."""
    configure_logging("console", "warning")
    events, seconds = catch_up(path, limit_position)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"events": events, "seconds": seconds, "peak_mib": round(peak_kib / 1024, 1)}))


#: What ``--quick`` runs (the test suite runs every bench so, so none rots unseen).
QUICK = "--days 1 --grids 5"


def main() -> None:
    """Build or reuse the history, then measure."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--grids", type=int, default=505)
    parser.add_argument("--child", nargs=2, metavar=("DB", "POSITION"))
    parser.add_argument("--quick", action="store_true", help=f"tiny sizes ({QUICK}): it runs and prints its ratio")
    args = parser.parse_args()
    if args.quick:  # the sizes of QUICK, after any given
        args = parser.parse_args([*sys.argv[1:], *QUICK.split()])
    if args.child:
        child(Path(args.child[0]), int(args.child[1]))
        return
    configure_logging("console", "warning")
    source = history(args.days, args.grids)
    service = bootstrap(settings_from_environment(configure_logs=False, database_url=f"sqlite:///{source}"))
    count, raw = raw_rate(service)
    service.close()
    events, seconds = catch_up(fresh_copy(source, "projections.db"), None)
    projected = events / seconds
    print(f"history: {count:,} events ({args.days} days of {args.grids} grids)")
    print(f"(a) raw read and decode: {raw:,.0f} events/s")
    print(f"(b) three projections from zero: {projected:,.0f} events/s ({seconds:.1f} s)")
    print(f"ratio b/a: {projected / raw:.3f} (target >= 0.3)")
    for share in (0.5, 1.0):
        copy = fresh_copy(source, f"memory-{share}.db")
        position = int(count * share)
        result = subprocess.run(
            [sys.executable, __file__, "--child", str(copy), str(position)],
            capture_output=True, text=True, check=True, env={**os.environ},
        )  # fmt: skip
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"peak memory catching up {figures['events']:,} events: {figures['peak_mib']} MiB")


if __name__ == "__main__":
    main()
