"""The replay, review and audit commands as a user runs them: the installed program on a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from replay.chain import from_micros
from tests.conftest import make_settings
from tests.e2e.conftest import Cli
from tests.integration.replay.test_audit import full_life
from tests.support import make_app, seed_small_district

RULES = str(Path(__file__).resolve().parents[2] / "rules" / "2021.toml")


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Cli, str, Path]:
    """The CLI on a store with the small district and two closed cases; the first case's number."""
    path = tmp_path / "gridcase.db"
    app = make_app(make_settings(f"sqlite:///{path}"))
    seed_small_district(app)
    number = full_life(app)
    full_life(app)
    app.close()
    return Cli(f"sqlite:///{path}"), number, path


def test_audit_prints_a_case_history_as_a_table_json_and_csv(filled: tuple[Cli, str, Path]) -> None:
    cli, number, _ = filled
    table = cli("audit", number, check=True).stdout
    assert "CaseReported" in table and "CitizenFeedbackRecorded" in table and "intake_operator:op-1" in table
    document = cli.json("audit", number)
    assert isinstance(document, dict)
    assert [row["event"] for row in document["history"]][-2:] == ["CaseClosed", "CitizenFeedbackRecorded"]
    assert document["history"][0]["data"]["reporter"]["phone"] == "138****0000", "personal data masked"
    lines = cli("audit", number, "--csv", check=True).stdout.splitlines()
    assert lines[0].startswith("position,version,event,actor,role,unit,occurred_at,recorded_at,committed_at")
    assert len(lines) == 1 + 8
    as_of = cli.json("audit", number, "--version", "3")
    assert isinstance(as_of, dict)
    assert len(as_of["history"]) == 3
    assert as_of["as_of"]["state"]["state"] == "dispatched"
    unknown = cli("audit", "SN-20210601-000999")
    assert unknown.returncode == 3
    assert "SN-20210601-000999" in unknown.stderr


def test_audit_verify_passes_then_names_the_altered_row(filled: tuple[Cli, str, Path]) -> None:
    cli, number, path = filled
    ok = cli("audit", "verify", check=True)
    assert "chain intact" in ok.stdout
    with sqlite3.connect(path) as connection:
        position = connection.execute(
            "SELECT position FROM event_chain WHERE originator_version = 5 ORDER BY position LIMIT 1"
        ).fetchone()[0]
        connection.execute("UPDATE stored_events SET state = replace(state, '已更换', '未更换') WHERE rowid = ?",
                           (position,))  # fmt: skip
    failed = cli("audit", "verify")
    assert failed.returncode == 1
    assert f"first at position {position} (case {number})" in failed.stdout
    report = json.loads(cli("audit", "verify", "--json").stdout)
    assert report["intact"] is False
    assert report["broken"][0]["position"] == position


def test_audit_verify_names_a_commit_time_moved_by_sql(filled: tuple[Cli, str, Path]) -> None:
    """Issue 13: the as-of-recorded cut-off reads the commit clock, so moving one time must break the chain."""
    cli, _, path = filled
    with sqlite3.connect(path) as connection:
        first, last = connection.execute("SELECT MIN(position), MAX(position) FROM event_chain").fetchone()
        early = connection.execute("SELECT committed_at FROM event_chain WHERE position = ?", (first,)).fetchone()[0]
    cut = ["review", "--period", "2021", "--rules", RULES, "--as-of-recorded", from_micros(early).isoformat()]
    before = cli.json(*cut)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE event_chain SET committed_at = ? WHERE position = ?", (early, last))
    # What the tamperer gains: the cut-off at the first commit now takes in the last event as well.
    assert isinstance(before, dict) and before["last_event_position"] < last
    after = cli.json(*cut)
    assert isinstance(after, dict) and after["last_event_position"] == last
    failed = cli("audit", "verify")
    assert failed.returncode == 1
    assert f"broken link at position {last}: case " in failed.stdout
    assert "commit time does not match its recorded hash" in failed.stdout
    assert "commit times must not go back" in failed.stdout
    assert f"first at position {last}" in failed.stdout


def test_review_is_byte_identical_across_runs_and_formats_carry_the_cutoff(filled: tuple[Cli, str, Path]) -> None:
    cli, _, tmp = filled
    first = cli("review", "--period", "2021", "--rules", RULES, check=True).stdout
    assert first == cli("review", "--period", "2021", "--rules", RULES, check=True).stdout
    document = json.loads(cli("review", "--period", "2021", "--rules", RULES, "--json", check=True).stdout)
    assert document["rule_version"].startswith("2021.1+")
    assert document["last_event_position"] > 0
    assert [award["title"] for award in document["awards"]] == ["excellent grid worker", "excellent grid",
                                                                "excellent centre"]  # fmt: skip
    again = cli("review", "--period", "2021", "--rules", RULES, "--as-of-recorded", document["cutoff_recorded"],
                check=True).stdout  # fmt: skip
    assert again == first
    csv_text = cli("review", "--period", "2021", "--rules", RULES, "--format", "csv", check=True).stdout
    assert csv_text.splitlines()[0].startswith("review,period,rule_version,cutoff_recorded,cutoff_occurred")
    bad = cli("review", "--period", "2021", "--rules", str(tmp.parent / "missing.toml"))
    assert bad.returncode == 2
    assert "missing.toml" in bad.stderr


def test_replay_rebuild_verify_and_build_as_of(filled: tuple[Cli, str, Path]) -> None:
    cli, _, path = filled
    cli("project", check=True)
    assert "0 rows differ" in cli("replay", "verify", check=True).stdout
    rebuilt = cli.json("replay", "rebuild", "performance")
    assert isinstance(rebuilt, dict)
    assert rebuilt["rebuilt"] == ["performance"]
    assert "0 rows differ" in cli("replay", "verify", check=True).stdout
    target = f"sqlite:///{path.parent / 'asof.db'}"
    built = cli.json("replay", "build", "case_status", "--into", target, "--as-of-occurred", "2021-06-01T09:00:00")
    assert isinstance(built, dict)
    assert built["events"] > 0
    with sqlite3.connect(path.parent / "asof.db") as connection:
        assert connection.execute("SELECT count(*) FROM case_status").fetchone()[0] == 2
        assert {row[0] for row in connection.execute("SELECT state FROM case_status")} == {"reported"}
    bad = cli("replay", "rebuild", "nonsense")
    assert bad.returncode == 2
    assert "nonsense" in bad.stderr
    kafka = cli("replay", "rebuild", "--from", "kafka")
    assert kafka.returncode == 2


def test_replay_verify_exits_1_and_prints_the_row_that_differs(filled: tuple[Cli, str, Path]) -> None:
    cli, number, path = filled
    cli("project", check=True)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE case_status SET returns = 7 WHERE case_number = ?", (number,))
    found = cli("replay", "verify", "case_status")
    assert found.returncode == 1
    assert f"case_status [case_number={number}]: differs: returns: live 7, rebuilt 0" in found.stdout
    assert "1 rows differ" in found.stdout
