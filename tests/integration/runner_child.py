"""One projection runner as its own process, so a test can SIGKILL it at any moment.

Usage: ``python tests/integration/runner_child.py DATABASE_URL [--batch-size N] [--lease-seconds S] [--pause S]``.

It builds the engine and the store's reader from the URL, creates the tables if
missing, and runs the case-status projection once to the end of the log. With
``--pause`` each batch that changes case rows sleeps that long after writing
them and before the runner writes the position and commits, so a kill at a
random moment mostly lands inside a transaction, with rows written but not
committed (and the run lasts long enough to be killed several times). It
prints one JSON object per line on stdout (flushed at once, so a parent that
kills it still sees what it said):

- ``{"standby": t}`` when another runner holds the lease at start (it then waits);
- ``{"leased": t, "waited": s}`` once it holds the lease (``t`` is ``time.time()``);
- ``{"done": position, "events": n, "batches": b}`` when it has caught up.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

# Run as a script: make the project importable without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from adapters.logging import configure_logging
from adapters.settings import Settings
from projections.case_status import CaseStatus
from projections.runner import LeaseHeld, Runner
from projections.sql import make_engine
from tests.support import make_app

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from projections.events import ProjectedEvent


class Pausing(CaseStatus):
    """Case status that dawdles inside the transaction of each batch that changes cases."""

    def __init__(self, pause: float) -> None:
        super().__init__()
        self.pause = pause
        self.applied = 0

    def apply(self, connection: Connection, event: ProjectedEvent) -> None:
        """Apply, counting."""
        super().apply(connection, event)
        self.applied += 1

    def flush(self, connection: Connection) -> None:
        """Write the rows, then wait before the runner moves the position and commits."""
        changed, self.applied = self.applied, 0
        super().flush(connection)
        if changed:
            time.sleep(self.pause)

    def discard(self) -> None:
        """Forget the batch."""
        super().discard()
        self.applied = 0


def say(**fields: object) -> None:
    """One JSON line on stdout, flushed."""
    print(json.dumps(fields), flush=True)  # noqa: T201 - the parent reads it


def main(argv: list[str] | None = None) -> int:
    """Run the case-status projection once; 0 when caught up."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("database_url")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--lease-seconds", type=float, default=1.0)
    parser.add_argument("--pause", type=float, default=0.0)
    args = parser.parse_args(argv)
    configure_logging("console", "warning")

    app = make_app(Settings(database_url=args.database_url, timezone="Asia/Shanghai"))
    recorder = app.store.recorder

    def read(after: int, limit: int) -> list:  # type: ignore[type-arg]
        return list(recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False))

    engine = make_engine(args.database_url)
    runner = Runner(engine, read, [Pausing(args.pause)], batch_size=args.batch_size, lease_seconds=args.lease_seconds)
    runner.create_tables()
    started = time.time()
    try:
        runner.wait_for_leases(timeout=0)
    except LeaseHeld:
        say(standby=time.time())
        runner.wait_for_leases(poll=0.05)
    say(leased=time.time(), waited=time.time() - started)
    stats = runner.run_once()
    say(done=stats.position, events=stats.events, batches=stats.batches)
    engine.dispose()
    app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
