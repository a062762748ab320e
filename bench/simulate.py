"""Simulator throughput against the store's raw batched append rate, measured in the same run.

    .venv/bin/python bench/simulate.py [--grids 100] [--days 3] [--database-url sqlite:///...] [--quick]

Prints events written per second by the simulator (through the engine's
commands: validation, aggregate loading, decisions, one transaction per
simulated hour) and by raw batched appends of stored events of the same size
straight into the recorder, and their ratio. Machines here are noisy: read the
ratio, not the absolute rates.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where bench/replay.py would hide the replay package
# (and bench/kafka.py the kafka library): drop the folder and put the repository root first instead.
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [str(_BENCH.parent), *(e for e in sys.path if Path(e or ".").resolve() not in {_BENCH, _BENCH.parent})]

import argparse
import tempfile
import time
import uuid
from datetime import date, datetime

from eventsourcing.persistence import StoredEvent

from adapters.bootstrap import Engine, bootstrap, settings_from_environment
from adapters.logging import configure_logging
from district.reference import load_reference_district, reference_commands
from district.simulator import SimulationConfig, Simulator, World

REFERENCE_AT = datetime.fromisoformat("2021-01-01T00:00:00+08:00")


def raw_append_rate(service: Engine, events: int, state_size: int, batch: int = 500) -> float:
    """Events per second appended in batches straight into the recorder (no domain, no mapping)."""
    recorder = service.reader.recorder
    state = b"x" * state_size
    started = time.perf_counter()
    written = 0
    while written < events:
        stored = [
            StoredEvent(originator_id=uuid.uuid4(), originator_version=1, topic="bench:Raw", state=state)
            for _ in range(min(batch, events - written))
        ]
        recorder.insert_events(stored)
        written += len(stored)
    return written / (time.perf_counter() - started)


#: What ``--quick`` runs (the test suite runs every bench so, so none rots unseen).
QUICK = "--grids 5 --days 1"


def main() -> None:
    """Run both measurements and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--grids", type=int, default=100)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--quick", action="store_true", help=f"tiny sizes ({QUICK}): it runs and prints its ratio")
    args = parser.parse_args()
    if args.quick:  # the sizes of QUICK, after any given
        args = parser.parse_args([*sys.argv[1:], *QUICK.split()])
    configure_logging("console", "warning")
    folder = Path(tempfile.mkdtemp(prefix="gridcase-bench-"))
    url = args.database_url or f"sqlite:///{folder / 'bench.db'}"
    service = bootstrap(settings_from_environment(configure_logs=False, database_url=url))
    reader = service.reader
    load_reference_district(service.service, reader, REFERENCE_AT)
    world = World(reference_commands(REFERENCE_AT), args.grids)
    config = SimulationConfig(days=args.days, seed=1, grids=args.grids, start=date(2021, 6, 1))
    totals = Simulator(service.service, reader, world, config).run()
    simulated = totals.events / totals.seconds
    last = reader.last_position()
    stored = reader.read(last - totals.events, totals.events)
    mean_state = round(sum(len(n.state) for n in stored) / len(stored))
    raw = raw_append_rate(service, totals.events, mean_state)
    service.close()
    print(f"simulator: {totals.events} events in {totals.seconds:.2f} s = {simulated:,.0f} events/s")
    print(f"raw batched append (same mean state size, {mean_state} B, 500 per transaction): {raw:,.0f} events/s")
    print(f"ratio simulator / raw append: {simulated / raw:.3f}")


if __name__ == "__main__":
    main()
