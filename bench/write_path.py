"""A single command in process against the durable SQLite transaction limit, measured in the same run (issue 20).

    .venv/bin/python bench/write_path.py [--commands 2000] [--database-url sqlite:///...] [--quick]

Files hotline reports one at a time through the engine's service in process (validation, number issue, the
aggregate, its own transaction), then appends as many stored events of the same mean size straight into the
recorder, one event per transaction: the most durable transactions per second the store can commit here. Prints
both rates and their ratio (target >= 0.5, issue 20). Machines here are noisy: read the ratio, not the rates.
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
from datetime import datetime, timedelta

from eventsourcing.persistence import StoredEvent

from adapters.bootstrap import bootstrap, settings_from_environment
from adapters.logging import configure_logging
from district.reference import load_reference_district, reference_commands
from district.world import World
from domain.base import ActorRef, Role
from domain.commands import ReportCase

REFERENCE_AT = datetime.fromisoformat("2021-01-01T00:00:00+08:00")
START = datetime.fromisoformat("2021-06-01T09:00:00+08:00")
OPERATOR = ActorRef(id="bench-op", role=Role.INTAKE_OPERATOR)

#: What ``--quick`` runs (the test suite runs every bench so, so none rots unseen).
QUICK = "--commands 100"


def main() -> None:
    """Run both measurements and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--quick", action="store_true", help=f"tiny sizes ({QUICK}): it runs and prints its ratio")
    args = parser.parse_args()
    if args.quick:  # the sizes of QUICK, after any given
        args = parser.parse_args([*sys.argv[1:], *QUICK.split()])
    configure_logging("console", "warning")
    folder = Path(tempfile.mkdtemp(prefix="gridcase-bench-"))
    url = args.database_url or f"sqlite:///{folder / 'bench.db'}"
    engine = bootstrap(settings_from_environment(configure_logs=False, database_url=url))
    load_reference_district(engine.service, engine.reader, REFERENCE_AT)
    world = World(reference_commands(REFERENCE_AT), 20)
    grids, categories = [g.code for g in world.grids], [c.code for c in world.categories]
    service = engine.service
    service.clock = lambda: START + timedelta(days=1)
    before = engine.reader.last_position()
    started = time.perf_counter()
    for n in range(args.commands):
        service.handle(ReportCase(actor=OPERATOR, at=START + timedelta(seconds=n), channel="hotline",
                                  category=categories[n % len(categories)], grid=grids[n % len(grids)],
                                  description="井盖缺失 manhole cover missing"))  # fmt: skip
    commands = args.commands / (time.perf_counter() - started)
    stored = engine.reader.read(before, args.commands)
    mean_state = round(sum(len(n.state) for n in stored) / len(stored))
    recorder, state = engine.reader.recorder, b"x" * mean_state
    started = time.perf_counter()
    for _ in range(args.commands):
        recorder.insert_events([StoredEvent(originator_id=uuid.uuid4(), originator_version=1, topic="bench:Raw",
                                            state=state)])  # fmt: skip
    limit = args.commands / (time.perf_counter() - started)
    engine.close()
    print(f"single command in process (case.report, one transaction each): {commands:,.0f} commands/s")
    print(f"durable transaction limit (one raw event of {mean_state} B per transaction): {limit:,.0f} transactions/s")
    print(f"ratio single command / transaction limit: {commands / limit:.3f} (target >= 0.5)")


if __name__ == "__main__":
    main()
