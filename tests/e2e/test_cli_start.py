"""A CLI that answers at once (issue 20, item 4): the help imports no command, a query on current read models
neither the service nor the projections' runner, and read models behind the store are caught up or said to be.

Not timed (bench/cli_start.py measures): what is checked is what a run imports and what it answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from adapters.cli import COMMANDS
from tests.conftest import KEY_VAR
from tests.e2e.conftest import GRIDCASE, Cli
from tests.e2e.test_write_cli import seed

#: Run a command line in process, then print the modules it imported that a query on current models must not.
PROBE = """
import json, sys
from adapters.cli import run
code = run(sys.argv[1:])
heavy = ('service', 'eventsourcing.application', 'eventsourcing.persistence', 'fastapi', 'kafka', 'duckdb',
         'cryptography', 'replay.build', 'replay.review', 'importing', 'projections.runner', 'projections.catalogue',
         'adapters.store', 'adapters.access_log', 'adapters.cli.')
print(json.dumps({'code': code, 'imported': sorted(m for m in sys.modules if m.startswith(heavy))}), file=sys.stderr)
"""


def env_of(cli: Cli, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_") or k == KEY_VAR}
    return {**env, "GRIDCASE_DATABASE_URL": cli.database_url, **settings}


@pytest.fixture
def cases(cli: Cli) -> Cli:
    """The CLI over the documented examples: a small district with cases in every state."""
    seed(cli)
    return cli


def probe(cli: Cli, *args: str) -> tuple[int, list[str], str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env_of(cli),
                          timeout=300, check=False)  # fmt: skip
    found = json.loads(done.stderr.strip().splitlines()[-1])
    return int(found["code"]), list(found["imported"]), done.stdout


def test_help_lists_every_command_with_its_help_line() -> None:
    done = subprocess.run([str(GRIDCASE), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    listed = " ".join(done.stdout.split())
    for entry in COMMANDS:
        assert f" {entry.name} " in listed, entry.name
        assert " ".join(entry.help.split()[:4]) in listed, entry.help


def test_help_imports_no_command_module(cli: Cli) -> None:
    code, imported, shown = probe(cli, "--help")
    assert code == 0 and "queue" in shown
    assert imported == ["adapters.cli.common"]


def test_a_query_on_current_read_models_imports_neither_the_service_nor_the_runner(cases: Cli) -> None:
    first = cases.json("queue")  # catches the read models up
    code, imported, shown = probe(cases, "queue", "--json")
    assert code == 0 and json.loads(shown) == first and first
    assert imported == ["adapters.cli.common", "adapters.cli.computed", "adapters.cli.queries"]


def _report(cli: Cli) -> subprocess.CompletedProcess[str]:
    where = ["--channel", "window", "--category", "facility.manhole", "--grid", "SN08-C01-G004"]
    who = ["--actor", "op-7", "--role", "intake_operator"]
    return cli("case", "report", *where, "--description", "路灯不亮", *who, "--json", check=True)


def test_on_each_backend_a_query_sees_a_write_just_made_then_reads_the_current_models_alone(
    database_url: str,
) -> None:
    cases = Cli(database_url)
    seed(cases)
    before = cases.json("queue", "--state", "reported")
    number = json.loads(_report(cases).stdout)["case_number"]
    after = cases("queue", "--state", "reported", "--json", check=True)
    assert after.stderr == ""
    assert number in {row["case_number"] for row in json.loads(after.stdout)} - {r["case_number"] for r in before}
    code, imported, shown = probe(cases, "queue", "--state", "reported", "--json")
    assert code == 0 and json.loads(shown) == json.loads(after.stdout)
    assert imported == ["adapters.cli.common", "adapters.cli.computed", "adapters.cli.queries"]


def test_within_the_bound_a_query_reads_the_models_as_they_are_and_says_how_far_behind(cases: Cli) -> None:
    before = cases.json("queue", "--state", "reported")
    _report(cases)
    stale = subprocess.run([str(GRIDCASE), "queue", "--state", "reported", "--json"], capture_output=True, text=True,
                           env=env_of(cases, GRIDCASE_QUERY_LAG_BOUND="1000"), timeout=300, check=False)  # fmt: skip
    assert stale.returncode == 0, stale.stderr
    assert json.loads(stale.stdout) == before
    assert "events behind the store (within GRIDCASE_QUERY_LAG_BOUND=1,000): not caught up" in stale.stderr
    assert len(cases.json("queue", "--state", "reported")) == len(before) + 1  # past the default bound, 0
