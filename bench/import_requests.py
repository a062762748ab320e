"""Import throughput against the store's raw batched append rate, measured in the same run (issue 14).

    .venv/bin/python bench/import_requests.py [--rows 10000] [--batch-rows 500] [--database-url sqlite:///...] [--quick]

Imports the San Francisco sample (tests/data/sf311_cases_sample_10000.csv.gz; ``--rows`` repeats it under
fresh ids to reach more) through the engine's commands, as ``gridcase import requests`` does, and prints rows
and events per second; then appends as many stored events of the same mean size straight into the recorder,
500 per transaction, and prints the ratio of the two event rates (target >= 0.3). The process's peak resident
memory is printed too: run with 10,000 and 100,000 rows to see it stay flat. Named ``import_requests`` so that
it does not hide a package.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where bench/replay.py would hide the replay package
# (and bench/kafka.py the kafka library): drop the folder and put the repository root first instead.
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [str(_BENCH.parent), *(e for e in sys.path if Path(e or ".").resolve() not in {_BENCH, _BENCH.parent})]

import argparse
import itertools
import resource
import tempfile
import time
import uuid
from typing import TYPE_CHECKING

from eventsourcing.persistence import StoredEvent

from adapters.bootstrap import Engine, bootstrap, settings_from_environment
from adapters.exports import read_rows
from adapters.logging import configure_logging
from importing.profile import shipped_profile
from importing.rows import Row
from importing.run import Importer

if TYPE_CHECKING:
    from collections.abc import Iterator

SAMPLE = _BENCH.parent / "tests" / "data" / "sf311_cases_sample_10000.csv.gz"


def rows(count: int) -> Iterator[Row]:
    """The sample's rows, again and again under fresh ids (``R2-…``), up to ``count``."""
    for lap in itertools.count(1):
        for row in read_rows(SAMPLE, "csv"):
            if lap > 1:
                row = Row(row.line, {**row.values, "CaseID": f"R{lap}-{row.values['CaseID']}"})  # noqa: PLW2901
            yield row
            count -= 1
            if count == 0:
                return


def raw_append_rate(engine: Engine, events: int, state_size: int, batch: int = 500) -> float:
    """Events per second appended in batches straight into the recorder (no domain, no mapping)."""
    recorder = engine.reader.recorder
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
QUICK = "--rows 300"


def main() -> None:
    """Import, then append raw, and print both and their ratio."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--batch-rows", type=int, default=500)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--quick", action="store_true", help=f"tiny sizes ({QUICK}): it runs and prints its ratio")
    args = parser.parse_args()
    if args.quick:  # the sizes of QUICK, after any given
        args = parser.parse_args([*sys.argv[1:], *QUICK.split()])
    configure_logging("console", "warning")
    folder = Path(tempfile.mkdtemp(prefix="gridcase-bench-"))
    url = args.database_url or f"sqlite:///{folder / 'bench.db'}"
    engine = bootstrap(settings_from_environment(configure_logs=False, database_url=url,
                                                 timezone="America/Los_Angeles"))  # fmt: skip
    profile = shipped_profile("sf311")
    assert profile is not None
    done = Importer(engine.service, profile, imported=set(), batch_rows=args.batch_rows).run(rows(args.rows))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    reader = engine.reader
    last = reader.last_position()
    stored = reader.read(0, last)
    mean_state = round(sum(len(n.state) for n in stored) / len(stored))
    raw = raw_append_rate(engine, done.events, mean_state)
    engine.close()
    imported = done.events / done.seconds
    print(f"import: {done.rows} rows, {done.events} events in {done.seconds:.2f} s = "
          f"{done.rows_per_second:,.0f} rows/s, {imported:,.0f} events/s; peak RSS {peak / 1e6:.0f} MB")
    print(f"raw batched append (same mean state size, {mean_state} B, 500 per transaction): {raw:,.0f} events/s")
    print(f"ratio import / raw append (events/s): {imported / raw:.3f}")


if __name__ == "__main__":
    main()
