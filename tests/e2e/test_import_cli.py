"""``gridcase import`` as a user drives it: a real process, a real SQLite file, killed with SIGKILL mid-import."""

from __future__ import annotations

import csv
import gzip
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from importing.profile import Anomaly
from tests.e2e.conftest import GRIDCASE, Cli

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sf311_cases_sample_10000.csv.gz"


def first_rows(path: Path, count: int) -> Path:
    """The sample's header and first ``count`` records, as a plain CSV file."""
    with gzip.open(SAMPLE, "rt", encoding="utf-8", newline="") as source, path.open("w", encoding="utf-8",
                                                                                     newline="") as target:  # fmt: skip
        reader, writer = csv.reader(source), csv.writer(target, lineterminator="\n")
        writer.writerow(next(reader))
        for _, record in zip(range(count), reader, strict=False):
            writer.writerow(record)
    return path


def environment(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_")}
    env["GRIDCASE_DATABASE_URL"] = url
    env["GRIDCASE_TIMEZONE"] = "America/Los_Angeles"
    return env


def events(path: Path) -> list[tuple[Any, ...]]:
    """Every stored event in store order, as what it says: the recording time (the import's now) left out."""
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT originator_id, originator_version, topic, state FROM stored_events ORDER BY rowid"
        ).fetchall()
    found = []
    for originator, version, topic, state in rows:
        data = json.loads(state)
        data.pop("timestamp")
        found.append((originator, version, topic, json.dumps(data, sort_keys=True)))
    return found


def run(cli: Cli, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(GRIDCASE), *args], capture_output=True, text=True, env=environment(cli.database_url),
                          timeout=600, check=False)  # fmt: skip


@pytest.mark.slow
def test_sigkill_at_random_points_then_a_rerun_gives_the_store_of_a_clean_run(tmp_path: Path) -> None:
    export = first_rows(tmp_path / "export.csv", 1500)
    clean_db, killed_db = tmp_path / "clean.db", tmp_path / "killed.db"
    command = [str(GRIDCASE), "import", "requests", str(export), "--profile", "sf311", "--batch-rows", "50"]
    clean = subprocess.run([*command, "--json"], capture_output=True, text=True,
                           env=environment(f"sqlite:///{clean_db}"), timeout=600, check=True)  # fmt: skip
    assert json.loads(clean.stdout)["imported"] == 1500
    env = environment(f"sqlite:///{killed_db}")
    chance = random.Random(14)
    kills = 0
    for _ in range(4):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(chance.uniform(1.0, 4.0))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
    assert kills >= 1
    resumed = subprocess.run([*command, "--json"], capture_output=True, text=True, env=env, timeout=600, check=True)
    document = json.loads(resumed.stdout)
    assert document["imported"] + document["already_imported"] == 1500
    assert document["already_imported"] > 0
    assert events(killed_db) == events(clean_db)


def test_import_lists_every_kind_reruns_add_nothing_and_the_report_and_lookup_work(tmp_path: Path) -> None:
    export = first_rows(tmp_path / "export.csv", 600)
    cli = Cli(f"sqlite:///{tmp_path / 'g.db'}")
    first = run(cli, "import", "requests", str(export), "--profile", "sf311", "--json")
    assert first.returncode == 0, first.stderr
    done = json.loads(first.stdout)
    assert done["imported"] == 600
    assert set(done["anomalies"]) == {kind.value for kind in Anomaly}
    assert done["anomalies"]["missing_deadline"]["count"] == 600
    assert all(line >= 2 for line in done["anomalies"]["closed_before_opened"]["lines"])
    again = run(cli, "import", "requests", str(export), "--profile", "sf311")
    assert again.returncode == 0, again.stderr
    assert "0 imported, 600 already imported" in again.stdout
    assert all(kind.value in again.stdout for kind in Anomaly)  # the one line names every kind, found or not
    assert "rows/s" in again.stdout
    shown = run(cli, "case", "show", "--ref", "SF311-3600298", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["state"] == "in_progress"
    assert run(cli, "case", "show", "--ref", "SF311-0").returncode == 3
    report = json.loads(run(cli, "import", "report", "--ref-prefix", "SF311-", "--json").stdout)
    assert report["all"]["requests"] == 600
    table = run(cli, "import", "report", "--csv").stdout.splitlines()
    assert table[0].startswith("grouping,group,requests,closed,open,median_hours_to_close")
    assert table[1].startswith("all,all,600,")
    assert run(cli, "import", "report", "--ref-prefix", "NOPE-", "--json").returncode == 0
    verified = run(cli, "replay", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "0 rows differ" in verified.stdout


def test_bad_profiles_and_files_are_bad_input_naming_what_is_wrong(tmp_path: Path) -> None:
    cli = Cli(f"sqlite:///{tmp_path / 'g.db'}")
    export = first_rows(tmp_path / "export.csv", 3)
    unknown = run(cli, "import", "requests", str(export), "--profile", "nonsense")
    assert unknown.returncode == 2
    assert "--profile" in unknown.stderr
    assert "sf311" in unknown.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ntitle = "x"\n[city]\ncode = "X"\nname = "X"\n[columns]\nid = "a"\nopened = "b"\n'
                   '[times]\nzone = "Mars/Olympus"\n', encoding="utf-8")  # fmt: skip
    wrong = run(cli, "import", "requests", str(export), "--profile", str(bad))
    assert wrong.returncode == 2
    assert "times.zone" in wrong.stderr
    missing = run(cli, "import", "requests", str(tmp_path / "none.csv"), "--profile", "sf311")
    assert missing.returncode == 2
    assert "FILE" in missing.stderr
    assert not (tmp_path / "g.db").exists() or run(cli, "import", "report", "--json").returncode == 0
