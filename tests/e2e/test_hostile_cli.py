"""The CLI under hostile input (issue 13): every failure is one line on stderr with its documented exit code.

Each value here crashed a command with a traceback before (years 1 and 9999, a byte that is not UTF-8,
a month 13, a Unix timestamp, a state that does not exist, a missing option), or was taken when it
should have been refused. Real processes on a real SQLite file; nothing refused writes anything.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from domain.case import case_id
from tests.conftest import KEY_VAR
from tests.e2e.conftest import GRIDCASE, Cli
from tests.e2e.test_write_cli import seed

if TYPE_CHECKING:
    from collections.abc import Sequence

RULES = str(Path(__file__).resolve().parents[2] / "rules" / "2021.toml")
CASE = "SN-20210601-000001"
DISPATCHER = ["--actor", "centre-01", "--role", "dispatcher"]
#: On POSIX, Python hands the bytes of an argument that are not UTF-8 over as lone surrogates; passed back
#: to a child process they become that byte again. So this is the byte 0xFF on the command line.
NOT_UTF8 = "\udcff"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The documented examples applied once; every test here leaves the store as it found it."""
    cli = Cli(f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'gridcase.db'}")
    seed(cli)
    return cli


def last_position(cli: Cli) -> int:
    result = cli("audit", "verify", "--json")
    assert result.returncode == 0, result.stderr
    return int(json.loads(result.stdout)["last_position"])


def run(cli: Cli, args: Sequence[str], *, stdin: bytes | None = None, tmpdir: Path | None = None,
        database_url: str | None = None, settings: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    """``gridcase`` with arguments that may hold bytes which are not UTF-8, output kept as bytes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_") or k == KEY_VAR}
    env["GRIDCASE_DATABASE_URL"] = database_url or cli.database_url
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    env.update(settings or {})
    return subprocess.run([str(GRIDCASE), *args], input=stdin, capture_output=True, env=env, timeout=300,
                          check=False)  # fmt: skip


def one_line(result: subprocess.CompletedProcess[bytes]) -> str:
    """The one line the failure printed on stderr (and nothing else there)."""
    text = result.stderr.decode()
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


HOSTILE = [
    # A byte that is not UTF-8, in a case number, a code or a free text: a traceback from the database driver.
    (["case", "show", NOT_UTF8], 2, "argument 3: '?' is not UTF-8 text"),
    (["case", "history", NOT_UTF8], 2, "is not UTF-8 text"),
    (["case", "track", NOT_UTF8], 2, "is not UTF-8 text"),
    (["duplicates", NOT_UTF8], 2, "is not UTF-8 text"),
    (["audit", NOT_UTF8], 2, "is not UTF-8 text"),
    (["queue", "--unit", NOT_UTF8], 2, "--unit: '?' is not UTF-8 text"),
    (["overdue", "--unit", NOT_UTF8], 2, "--unit: '?' is not UTF-8 text"),
    (["performance", "--grid", NOT_UTF8, "--period", "2021"], 2, "--grid: '?' is not UTF-8 text"),
    (["case", "note", CASE, "--note", "ok" + NOT_UTF8, *DISPATCHER], 2, "--note: 'ok?' is not UTF-8 text"),
    (["case", "note", CASE, f"--note=ok{NOT_UTF8}", *DISPATCHER], 2, "--note: 'ok?' is not UTF-8 text"),
    # Periods: outside the window (OverflowError further down) or not a real month.
    (["intake", "--by", "channel", "--period", "0001"], 2, "--period: '0001' is outside 1970 … 2099"),
    (["intake", "--by", "channel", "--period", "9999"], 2, "--period: '9999' is outside 1970 … 2099"),
    (["intake", "--by", "channel", "--period", "2021-13"], 2, "--period: '2021-13' is not a real month"),
    (["performance", "--district", "--period", "2021-13"], 2, "--period: '2021-13' is not a real month"),
    (["performance", "--district", "--period", "2021-02-30"], 2, "--period: '2021-02-30' is not a real day"),
    (["review", "--period", "9999", "--rules", RULES], 2, "--period: '9999' is outside 1970 … 2099"),
    (["review", "--period", "2021-13", "--rules", RULES], 2, "--period: '2021-13' is not a real month"),
    (["review", "--period", "2021-06-01", "--rules", RULES], 2, "--period: '2021-06-01' is not YYYY or YYYY-MM"),
    # Moments near year 1 or 9999: an OverflowError in the cut-off or the deadline arithmetic.
    (
        ["review", "--period", "2021", "--rules", RULES, "--as-of-recorded", "0001-01-01T00:00:00"],
        2,
        "--as-of-recorded: '0001-01-01T00:00:00' is outside 1970-01-01 … 2099-12-31",
    ),
    (
        ["review", "--period", "2021", "--rules", RULES, "--as-of-occurred", "0001-01-01T00:00:00"],
        2,
        "--as-of-occurred: '0001-01-01T00:00:00' is outside",
    ),
    (
        ["review", "--period", "2021", "--rules", RULES, "--as-of-recorded", "9999-12-31T23:59:59"],
        2,
        "--as-of-recorded: '9999-12-31T23:59:59' is outside",
    ),
    (["audit", CASE, "--as-of-recorded", "0001-01-01T00:00:00"], 2, "--as-of-recorded: '0001-01-01T00:00:00'"),
    (
        ["case", "extend", CASE, "--resolve-by", "9999-12-31T23:59:59", "--reason", "x", *DISPATCHER],
        2,
        "--resolve-by: '9999-12-31T23:59:59' is outside 1970-01-01 … 2099-12-31",
    ),
    (
        ["case", "extend", CASE, "--resolve-by", "0001-01-01T00:00:00+00:00", "--reason", "x", *DISPATCHER],
        2,
        "--resolve-by: '0001-01-01T00:00:00+00:00' is outside",
    ),
    # A Unix timestamp is not a time we take, and the error names the option.
    (
        ["case", "note", CASE, "--note", "x", "--at", "1622509200", *DISPATCHER],
        2,
        "--at: '1622509200' is a number, not an ISO 8601 time",
    ),
    (["audit", CASE, "--as-of-occurred", "1622509200"], 2, "--as-of-occurred: '1622509200' is a number"),
    # A state that does not exist was an empty queue; a usage error was a box drawn over many lines.
    (["queue", "--state", "nope"], 2, "--state: 'nope' is not one of reported, accepted, rejected, merged"),
    (["intake", "--by", "colour", "--period", "2021"], 2, "--by: 'colour' is not one of channel, category, street"),
    (["review", "--period", "2021"], 2, "bad input: Missing option '--rules'. (see gridcase review --help)"),
    (["case", "teleport", CASE], 2, "bad input: No such command 'teleport'."),
    (["patrol", "end", "PT-20210601-000001", "--distance", "far"], 2, "Invalid value for '--distance'"),
    # The simulator's days past the window overflowed the date arithmetic; a store holding another district
    # made the reference load's refusal a traceback.
    (["simulate", "--start", "9999-12-31", "--days", "1"], 2, "--start, --days: 1 days from 9999-12-31 do not fit"),
    (["simulate", "--days", "100000000"], 2, "--start, --days: 100000000 days from 2021-06-01 do not fit"),
    (["simulate", "--days", "1", "--grids", "1"], 3, "refused: CodeMustBeUnique: command reference.load refused"),
    (["walkthrough"], 3, "refused: CodeMustBeUnique: command reference.load refused: district 'SN' already"),
]


@pytest.mark.parametrize(
    ("args", "code", "words"), HOSTILE, ids=[" ".join(a).replace(RULES, "RULES")[:60] for a, _, _ in HOSTILE]
)
def test_a_hostile_value_is_one_line_on_stderr_with_the_documented_code(
    seeded: Cli, args: list[str], code: int, words: str
) -> None:
    before = last_position(seeded)
    result = run(seeded, args)
    line = one_line(result)
    assert result.returncode == code, line
    assert words in line
    assert line.startswith({2: "bad input: ", 3: "refused: "}[code])
    assert last_position(seeded) == before, "a refused command wrote something"


def test_an_unexpected_error_is_one_internal_error_line_and_the_traceback_goes_to_a_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not an SQLite database, whatever its name says\n" * 20)
    result = run(Cli(""), ["queue"], tmpdir=tmp_path, database_url=f"sqlite:///{broken}")
    line = one_line(result)
    assert result.returncode == 70
    assert line.startswith("internal error: DatabaseError: file is not a database (details in ")
    details = Path(line.rpartition("(details in ")[2].rstrip(")"))
    assert details.parent == tmp_path
    text = details.read_text(encoding="utf-8")
    assert "gridcase queue" in text.splitlines()[0]
    assert "Traceback (most recent call last)" in text


@pytest.mark.parametrize("zone", ["Mars/Base", "../../etc/passwd", NOT_UTF8])
def test_a_time_zone_setting_that_is_no_zone_is_bad_input_naming_it(seeded: Cli, zone: str) -> None:
    """An unknown GRIDCASE_TIMEZONE was a ZoneInfoNotFoundError traceback: a KeyError the settings let through."""
    result = run(seeded, ["queue"], settings={"GRIDCASE_TIMEZONE": zone})
    line = one_line(result)
    assert result.returncode == 2
    assert line.startswith("bad setting: timezone: ") and "is not a time zone (e.g. Asia/Shanghai)" in line


def test_apply_reports_each_hostile_line_and_goes_on_with_the_next(seeded: Cli) -> None:
    actor = {"id": "centre-01", "role": "dispatcher"}
    note = {"command": "case.note", "actor": actor, "case_number": "SN-20210601-000004"}
    lines = [
        json.dumps({**note, "note": "a lone surrogate: \udcff"}).encode(),  # crashed in the store's JSON encoder
        b"[" * 100_000 + b"]" * 100_000,  # RecursionError in the JSON parser
        b'{"command": "case.note", "note": "caf\xe9"}',  # Latin-1, not UTF-8: UnicodeDecodeError ended the batch
        json.dumps({**note, "note": "ok", "\udcff": 1}).encode(),
        b"",
        json.dumps({**note, "note": "the next lines still run"}).encode(),
    ]
    before = last_position(seeded)
    result = run(seeded, ["apply", "-"], stdin=b"\n".join(lines) + b"\n")
    out = result.stdout.decode().splitlines()
    assert "Traceback" not in result.stderr.decode()
    assert out[0] == "line 1: bad input: note: has a lone surrogate (U+DCFF) at character 19"
    assert out[1].startswith("line 2: bad input: malformed JSON: maximum recursion depth exceeded")
    assert out[2] == "line 3: bad input: not UTF-8 text (byte 0xe9 at byte 38)"
    assert out[3] == "line 4: bad input: \\udcff: has a lone surrogate (U+DCFF) at character 1"
    assert out[4] == "line 6: accepted SN-20210601-000004 accepted"
    assert out[5] == "5 lines: 1 accepted, 0 refused, 4 bad input, 0 conflict"
    assert result.returncode == 2  # the worst outcome met: bad input
    assert last_position(seeded) == before + 1, "only the good line was written"


def test_apply_counts_a_line_that_meets_a_bug_as_an_internal_error_and_goes_on(tmp_path: Path) -> None:
    cli = Cli(f"sqlite:///{tmp_path / 'gridcase.db'}")
    seed(cli)
    # A stored event the engine cannot read back (a disk fault, a hand edit): loading that case is a bug path.
    with sqlite3.connect(tmp_path / "gridcase.db") as connection:
        connection.execute("UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = 1",
                           (b"{not json", case_id("SN-20210601-000004").hex))  # fmt: skip
    actor = {"id": "centre-01", "role": "dispatcher"}
    lines = [json.dumps({"command": "case.note", "actor": actor, "case_number": number, "note": "noted"})
             for number in ("SN-20210601-000004", "SN-20210601-000005")]  # fmt: skip
    result = run(cli, ["apply", "-"], stdin="\n".join(lines).encode() + b"\n", tmpdir=tmp_path)
    out = result.stdout.decode().splitlines()
    assert "Traceback" not in result.stderr.decode()
    assert out[0].startswith("line 1: internal error: JSONDecodeError: ")
    details = Path(out[0].rpartition("(details in ")[2].rstrip(")"))
    assert "line 1" in details.read_text(encoding="utf-8").splitlines()[0]
    assert out[1] == "line 2: accepted SN-20210601-000005 reported"
    assert out[2] == "2 lines: 1 accepted, 0 refused, 0 bad input, 0 conflict, 1 internal error"
    assert result.returncode == 70
