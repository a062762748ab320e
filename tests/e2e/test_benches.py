"""Every bench under bench/ still runs as its docstring says, in its quick mode, and prints its ratio (issue 20).

Not a timed test: the figures are not judged here (machines are noisy; docs/performance.md keeps real runs).
What fails is a bench that no longer starts, crashes on the code as it is now, or stops printing the ratio it
exists for. A new bench is picked up by its file name, and must take ``--quick``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHES = sorted((ROOT / "bench").glob("*.py"))
#: A ratio as the benches print it: ``ratio simulator / raw append: 0.067``, ``relay 0.678 x raw produce``.
RATIO = re.compile(r"ratio[^\n]*?\d+\.\d+|\d+\.\d+ ?[x×] ", re.IGNORECASE)


def test_there_are_benches() -> None:
    assert len(BENCHES) >= 7, [bench.name for bench in BENCHES]


@pytest.mark.parametrize("bench", BENCHES, ids=lambda path: path.stem)
def test_a_bench_runs_in_its_quick_mode_and_prints_its_ratio(bench: Path) -> None:
    docstring = bench.read_text(encoding="utf-8").split('"""')[1]
    assert f"bench/{bench.name}" in docstring and "[--quick]" in docstring, "the docstring says how to run it"
    # As the docstring says: the venv's python on the script, from the repository root.
    done = subprocess.run([sys.executable, str(bench.relative_to(ROOT)), "--quick"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert RATIO.search(done.stdout), done.stdout[-2000:]
    assert "Traceback" not in done.stderr
