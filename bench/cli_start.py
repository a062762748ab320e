"""How fast the ``gridcase`` program answers: its help and a query, against the libraries it cannot do without.

    .venv/bin/python bench/cli_start.py [--runs 7] [--quick]

Run it from the repository root of a fresh clone after ``make install-dev``. It
makes a store of its own in a temporary folder (the reference district and one
case through ``gridcase walkthrough``, about 9,300 events; with ``--quick`` the
documented examples of docs/commands.md through ``gridcase apply``), runs one
query so the read models are current, then times, each as a fresh process, the
median of ``--runs`` runs of:
  (a) baseline: ``python -c "import pydantic, sqlalchemy"``;
  (b) ``gridcase --help``;
  (c) ``gridcase queue --json`` on that store, its read models current;
and prints the ratios b/a and c/b (issue 20: targets <= 1.5 each), and c/a.
``--quick`` runs each twice on the small store: a few seconds, to show it runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where bench/replay.py would hide the replay package
# (and bench/kafka.py the kafka library): drop the folder and put the repository root first instead.
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [str(_BENCH.parent), *(e for e in sys.path if Path(e or ".").resolve() not in {_BENCH, _BENCH.parent})]

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time

ROOT = _BENCH.parent
GRIDCASE = Path(sys.executable).parent / "gridcase"
DOCS = ROOT / "docs" / "commands.md"


def documented_commands() -> str:
    """Every JSON line of the examples in docs/commands.md, as ``gridcase apply -`` reads them."""
    blocks = re.findall(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    return "\n".join(line for block in blocks for line in block.strip().splitlines()) + "\n"


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """One process, its output kept; a failure ends the bench naming the command."""
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, env=env, check=False, timeout=600)
    if done.returncode != 0:
        sys.exit(f"bench: {' '.join(args[:3])} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done


def timed(env: dict[str, str], runs: int, *args: str) -> float:
    """The median wall time of ``runs`` fresh processes of this command line, in seconds."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        run(env, *args)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    """Build the store, time the three command lines, print the figures and the ratios last."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="processes timed per command line (median)")
    parser.add_argument("--quick", action="store_true", help="two runs each on the small store: does it run")
    options = parser.parse_args()
    runs = 2 if options.quick else max(1, options.runs)
    with tempfile.TemporaryDirectory(prefix="gridcase-cli-start-") as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_")}
        env["GRIDCASE_DATABASE_URL"] = f"sqlite:///{Path(folder) / 'gridcase.db'}"
        if options.quick:
            run(env, str(GRIDCASE), "apply", "-", stdin=documented_commands())
        else:
            run(env, str(GRIDCASE), "walkthrough")
        run(env, str(GRIDCASE), "queue", "--json")  # the read models current before the query is timed
        baseline = timed(env, runs, sys.executable, "-c", "import pydantic, sqlalchemy")
        shown = timed(env, runs, str(GRIDCASE), "--help")
        query = timed(env, runs, str(GRIDCASE), "queue", "--json")
    store = "the documented examples" if options.quick else "the reference district and one case"
    print(f"store: {store}; median of {runs} fresh processes each")
    print(f"baseline python -c 'import pydantic, sqlalchemy': {baseline:.3f} s")
    print(f"gridcase --help: {shown:.3f} s")
    print(f"gridcase queue --json, read models current: {query:.3f} s")
    print(f"ratio query / baseline: {query / baseline:.2f}")
    print(f"ratio help / baseline: {shown / baseline:.2f} (target <= 1.5)")
    print(f"ratio query / help: {query / shown:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
