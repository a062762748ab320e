"""The rules in the core, as an operator meets them: ``gridcase apply`` and the commands exit 3, name the rule
and write nothing (docs/decisions.md, "Rules in the core, not at the edge")."""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.test_write_cli import seed

if TYPE_CHECKING:
    from tests.e2e.conftest import Cli

DISPATCHER = {"id": "centre-01", "role": "dispatcher"}
W1 = {"id": "W00001", "role": "grid_worker"}
#: P00001 worked the documented grid until 2021-05-31 (docs/commands.md); from June on, no grid of theirs.
GONE = {"id": "P00001", "role": "grid_worker"}
CLERK = {"id": "cg-clerk-02", "role": "department_handler", "unit": "D-CG"}
ESCALATED = "SN-20210601-000004"  # accepted at street level after the escalation
PATROL = "PT-20210601-000001"  # 14:00 to 15:30 on 1 June


def line(command: str, actor: dict[str, Any], at: str, **fields: Any) -> str:
    return json.dumps({"command": command, "actor": actor, "at": f"2021-06-05T{at}:00+08:00", **fields})


#: Worked by W00001 and resolved by them: ready to be checked on site by someone else.
RESOLVED_BY_W1 = [
    line("case.dispatch", DISPATCHER, "09:00", case_number=ESCALATED, handler={"kind": "worker", "id": "W00001"}),
    line("case.sign", W1, "09:10", case_number=ESCALATED),
    line("case.resolve", W1, "10:00", case_number=ESCALATED, result="已修复 fixed"),
]

# rule, lines that set the stage (all accepted), the JSON line that breaks the rule, the same as a command
RULES = [
    (
        "GridWorkerActsOnlyInTheirGrids",
        [],
        line("case.note", GONE, "09:00", case_number=ESCALATED, note="不是我的网格了 not my grid any more"),
        ["case", "note", ESCALATED, "--note", "x", "--actor", "P00001", "--role", "grid_worker",
         "--at", "2021-06-05T09:00"],
    ),
    (
        "CaseIsDispatchedToAWorkerOfItsGrid",
        [],
        line("case.dispatch", DISPATCHER, "09:00", case_number=ESCALATED, handler={"kind": "worker", "id": "P00001"}),
        ["case", "dispatch", ESCALATED, "--worker", "P00001", "--actor", "centre-01", "--role", "dispatcher",
         "--at", "2021-06-05T09:00"],
    ),
    (
        "DepartmentHandlerActsOnlyOnItsDepartmentsCases",
        [],
        line("case.note", CLERK, "09:00", case_number=ESCALATED, note="我们的? ours?"),
        ["case", "note", ESCALATED, "--note", "x", "--actor", "cg-clerk-02", "--role", "department_handler",
         "--unit", "D-CG", "--at", "2021-06-05T09:00"],
    ),
    (
        "PatrolFindingsHappenWithinThePatrol",
        [],
        json.dumps({"command": "patrol.hazard", "actor": W1, "at": "2021-06-01T16:00:00+08:00",
                    "patrol_number": PATROL, "category": "facility.manhole", "description": "井盖松动 loose"}),
        ["patrol", "hazard", PATROL, "--category", "facility.manhole", "--description", "x", "--actor", "W00001",
         "--role", "grid_worker", "--at", "2021-06-01T16:00"],
    ),
    (
        "ResolverDoesNotVerifyTheirOwnResolution",
        RESOLVED_BY_W1,
        line("case.verify", W1, "11:00", case_number=ESCALATED),
        ["case", "verify", ESCALATED, "--actor", "W00001", "--role", "grid_worker", "--at", "2021-06-05T11:00"],
    ),
]  # fmt: skip
IDS = [rule for rule, *_ in RULES]


def position(cli: Cli) -> int:
    """The store's last position, read from the SQLite file."""
    with sqlite3.connect(cli.database_url.removeprefix("sqlite:///")) as connection:
        return int(connection.execute("SELECT count(*) FROM stored_events").fetchone()[0])


def staged(cli: Cli, stage: list[str]) -> None:
    seed(cli)
    if stage:
        result = cli("apply", "-", stdin="\n".join(stage) + "\n")
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("rule", "stage", "bad", "command"), RULES, ids=IDS)
def test_apply_refuses_a_line_that_breaks_a_rule_and_writes_nothing(
    cli: Cli, rule: str, stage: list[str], bad: str, command: list[str]
) -> None:
    del command
    staged(cli, stage)
    before, history = position(cli), cli.json("case", "history", ESCALATED)
    result = cli("apply", "-", stdin=bad + "\n")
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.startswith("line 1: refused:") and rule in result.stdout, result.stdout
    assert position(cli) == before
    assert cli.json("case", "history", ESCALATED) == history


@pytest.mark.parametrize(("rule", "stage", "bad", "command"), RULES, ids=IDS)
def test_the_command_that_breaks_a_rule_exits_3_and_writes_nothing(
    cli: Cli, rule: str, stage: list[str], bad: str, command: list[str]
) -> None:
    del bad
    staged(cli, stage)
    before = position(cli)
    result = cli(*command)
    assert result.returncode == 3, result.stdout + result.stderr
    assert rule in result.stderr, result.stderr
    assert position(cli) == before
