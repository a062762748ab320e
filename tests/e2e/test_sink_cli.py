"""``gridcase sink`` and ``python -m sink`` as a user meets them when something is wrong: one line, an exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sink import Sink
from tests.conftest import KEY_VAR

GRIDCASE = Path(sys.executable).parent / "gridcase"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_") or k == KEY_VAR}
    env.update(extra)
    return env


def _run(args: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, env=_env(**extra), timeout=120, check=False)


def test_bad_input_names_what_was_wrong_and_creates_no_file(tmp_path: Path) -> None:
    into = tmp_path / "analytics.duckdb"
    sink = [sys.executable, "-m", "sink", "--into", str(into)]
    no_broker = _run(sink)
    assert (no_broker.returncode, no_broker.stderr) == (
        2, "bad input: no broker: give --bootstrap HOST:PORT or set GRIDCASE_KAFKA_BOOTSTRAP_SERVERS\n")  # fmt: skip
    no_schemas = _run([*sink, "--bootstrap", "127.0.0.1:9", "--schemas", str(tmp_path / "nowhere")])
    assert no_schemas.returncode == 2
    assert f"cannot read {tmp_path / 'nowhere' / 'index.json'}" in no_schemas.stderr
    no_zone = _run([*sink, "--bootstrap", "127.0.0.1:9", "--timezone", "Mars/Olympus"])
    assert no_zone.returncode == 2
    assert "'Mars/Olympus' is not a time zone" in no_zone.stderr
    assert not into.exists()

    no_into = _run([str(GRIDCASE), "sink"])
    assert (no_into.returncode, no_into.stderr.strip()) == (
        2, "bad input: --into: give the DuckDB file, e.g. --into analytics.duckdb")  # fmt: skip
    no_kafka = _run([str(GRIDCASE), "sink", "--into", str(into)])
    assert no_kafka.returncode == 2
    assert "GRIDCASE_KAFKA_BOOTSTRAP_SERVERS is empty" in no_kafka.stderr
    no_file = _run([str(GRIDCASE), "sink", "verify", "--into", str(into)])
    assert no_file.returncode == 2
    assert f"{into} is not a file" in no_file.stderr
    assert not into.exists()


def test_a_sink_keeps_the_time_zone_its_days_were_counted_in(tmp_path: Path) -> None:
    into = tmp_path / "analytics.duckdb"
    made = Sink(into, "127.0.0.1:9", timezone="Asia/Shanghai")
    stored = made.connection.execute("SELECT value FROM sink_meta WHERE key = 'timezone'").fetchone()
    assert stored == ("Asia/Shanghai",)
    made.close()
    other = _run([sys.executable, "-m", "sink", "--into", str(into), "--bootstrap", "127.0.0.1:9",
                  "--timezone", "Europe/Berlin"])  # fmt: skip
    assert other.returncode == 2
    assert other.stderr == (
        "bad input: this sink counts days in Asia/Shanghai, not Europe/Berlin: give --timezone Asia/Shanghai "
        "or a new file\n"
    )
