"""``python -m sink --into analytics.duckdb --bootstrap HOST:PORT [--follow] [--parquet DIR] [--json]``.

The sink on its own, as a reporting team runs it without the engine installed; ``gridcase sink`` is the same.
Exit codes: 0 done, 2 bad input (schemas, time zone, a change that is not additive), 5 Kafka did not answer or
the file is held by another process, 70 an internal error.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from sink.run import run


def main() -> int:
    """Parse the command line and run the sink."""
    parser = argparse.ArgumentParser(prog="python -m sink", description=__doc__.splitlines()[0])
    parser.add_argument("--into", type=Path, required=True, help="the DuckDB file (created if missing)")
    parser.add_argument("--bootstrap", default=os.environ.get("GRIDCASE_KAFKA_BOOTSTRAP_SERVERS", ""),
                        help="the broker(s), host:port (default GRIDCASE_KAFKA_BOOTSTRAP_SERVERS)")  # fmt: skip
    parser.add_argument("--schemas", type=Path, default=None, help="the schemas/events folder (default: the clone's)")
    parser.add_argument("--timezone", default=os.environ.get("GRIDCASE_TIMEZONE", "Asia/Shanghai"),
                        help="the district's time zone, for local days (default GRIDCASE_TIMEZONE or Asia/Shanghai)")
    parser.add_argument("--follow", action="store_true", help="keep reading until SIGTERM or Ctrl-C")
    parser.add_argument("--parquet", type=Path, default=None, help="export Parquet files by month into this folder")
    parser.add_argument("--parquet-every", type=float, default=60.0,
                        help="with --follow: export again every this many seconds when there is news (default 60)")
    parser.add_argument("--batch", type=int, default=5_000, help="messages per transaction")
    parser.add_argument("--json", action="store_true", help="the summary as one JSON object, no progress lines")
    args = parser.parse_args()
    stopping = [False]
    signal.signal(signal.SIGTERM, lambda *_: stopping.__setitem__(0, True))  # noqa: FBT003
    return run(args.into, args.bootstrap, schemas=args.schemas, timezone=args.timezone, follow=args.follow,
               parquet=args.parquet, parquet_every=args.parquet_every, batch_size=args.batch, as_json=args.json,
               stop=lambda: stopping[0])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
