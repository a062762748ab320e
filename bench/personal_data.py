"""Intake rate with and without the reporter's personal data (sealed per citizen), measured in the same run.

From a fresh clone::

    make install-dev
    .venv/bin/python bench/personal_data.py [--reports 2000] [--rounds 5] [--database-url sqlite:///...] [--quick]

Files hotline reports through the engine's service in process (validation, number issue, the aggregate, one
transaction per report) on a new SQLite file of the reference district, in alternating blocks: reports without a
contact, and reports with a contact of a new citizen each (the dearest case: a lookup that misses, a new data
key made, wrapped and stored with the events, the contact sealed). Prints both rates and their ratio (the
target is at least 0.9). Machines here are noisy: read the ratio, not the absolute rates.
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
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from adapters.bootstrap import bootstrap, settings_from_environment
from adapters.logging import configure_logging
from district.reference import load_reference_district, reference_commands
from district.world import World
from domain.base import ActorRef, Role
from domain.commands import ReportCase
from domain.personal import is_sealed

if TYPE_CHECKING:
    from service import Service

REFERENCE_AT = datetime.fromisoformat("2021-01-01T00:00:00+08:00")
START = datetime.fromisoformat("2021-06-01T09:00:00+08:00")
OPERATOR = ActorRef(id="bench-op", role=Role.INTAKE_OPERATOR)


def file_reports(service: Service, world: World, count: int, first: int, *, contact: bool) -> float:
    """File ``count`` reports (each citizen new when ``contact``); the seconds it took."""
    grids = [g.code for g in world.grids]
    categories = [c.code for c in world.categories]
    started = time.perf_counter()
    for n in range(first, first + count):
        reporter = {"name": "市民", "phone": f"139{n:08d}", "id_number": None} if contact else None
        service.handle(ReportCase(actor=OPERATOR, at=START + timedelta(seconds=n), channel="hotline",
                                  category=categories[n % len(categories)], grid=grids[n % len(grids)],
                                  description="井盖缺失 manhole cover missing", reporter=reporter))  # fmt: skip
    return time.perf_counter() - started


#: What ``--quick`` runs (the test suite runs every bench so, so none rots unseen).
QUICK = "--reports 100 --rounds 1"


def main() -> None:
    """Run both measurements in alternating blocks and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--reports", type=int, default=2000, help="reports of each kind in all")
    parser.add_argument("--rounds", type=int, default=5, help="blocks of each kind, alternating")
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
    service = engine.service
    service.clock = lambda: START + timedelta(days=1)
    block = max(1, args.reports // args.rounds)
    file_reports(service, world, 100, 0, contact=True)  # warm up both paths
    file_reports(service, world, 100, 100, contact=False)
    seconds = {True: 0.0, False: 0.0}
    filed = 200
    for _ in range(args.rounds):
        for contact in (False, True):
            seconds[contact] += file_reports(service, world, block, filed, contact=contact)
            filed += block
    last = engine.reader.read(engine.reader.last_position() - 1, 1)[0]
    assert is_sealed(__import__("json").loads(last.state)["reporter"]), "the contact is stored sealed"
    engine.close()
    total = block * args.rounds
    plain, sealed = total / seconds[False], total / seconds[True]
    print(f"intake without reporter contact: {total} reports in {seconds[False]:.2f} s = {plain:,.0f} reports/s")
    print(f"intake with reporter contact (a new citizen each, sealed): {total} reports in {seconds[True]:.2f} s "
          f"= {sealed:,.0f} reports/s")  # fmt: skip
    print(f"ratio with / without: {sealed / plain:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
