"""The CLI as an operator uses it: commands, refusals with exit codes, batch entry, history."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import jsonschema

if TYPE_CHECKING:
    from tests.e2e.conftest import Cli

DOCS = Path(__file__).resolve().parents[2] / "docs" / "commands.md"
SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "commands" / "command.schema.json"
ADMIN = ["--actor", "admin", "--role", "admin"]


def doc_lines() -> list[str]:
    """Every JSON line of the examples in docs/commands.md, in order."""
    blocks = re.findall(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    return [line for block in blocks for line in block.strip().splitlines()]


def seed(cli: Cli) -> None:
    """The documented examples build a small district with cases in every state."""
    result = cli("apply", "-", stdin="\n".join(doc_lines()) + "\n")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_documented_example_is_accepted_in_order(cli: Cli) -> None:
    result = cli("apply", "-", "--json", stdin="\n".join(doc_lines()) + "\n")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0, result.stdout
    assert [r["outcome"] for r in rows[:-1]] == ["ok"] * len(doc_lines())
    assert rows[-1] == {
        "summary": {
            "accepted": len(doc_lines()),
            "refused": 0,
            "bad_input": 0,
            "conflict": 0,
            "unavailable": 0,
            "internal_error": 0,
        }
    }


def test_docs_show_every_command_and_match_the_schema() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    documented = set()
    for line in doc_lines():
        document = json.loads(line)
        jsonschema.validate(document, schema)
        documented.add(document["command"])
    every = {ref["$ref"].rsplit("/", 1)[1] for ref in schema["oneOf"]}
    names = {schema["$defs"][name]["properties"]["command"]["const"] for name in every}
    assert documented == names


def test_schema_rejects_what_the_engine_rejects() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    bad = {"command": "case.accept", "actor": {"id": "d", "role": "dispatcher"}, "case_number": "not-a-number"}
    assert list(validator.iter_errors(bad))
    unknown = {"command": "case.teleport", "actor": {"id": "d", "role": "dispatcher"}}
    assert list(validator.iter_errors(unknown))


def test_apply_mixes_good_refused_and_malformed_lines(cli: Cli) -> None:
    seed(cli)
    before = cli.json("case", "history", "SN-20210601-000004")
    lines = [
        # 1: accepted - a new complaint
        json.dumps(
            {
                "command": "case.report",
                "actor": {"id": "op", "role": "intake_operator"},
                "at": "2021-06-05T09:00:00+08:00",
                "channel": "hotline",
                "category": "facility.manhole",
                "grid": "SN08-C01-G004",
                "description": "路灯不亮",
            }
        ),
        # 2: refused - SN-…-000004 is accepted (escalated), it cannot be signed
        json.dumps(
            {
                "command": "case.sign",
                "actor": {"id": "W00001", "role": "grid_worker"},
                "at": "2021-06-05T09:10:00+08:00",
                "case_number": "SN-20210601-000004",
            }
        ),
        # 3: malformed JSON
        '{"command": "case.accept", "actor": ',
        # 4: bad input - unknown field
        json.dumps(
            {
                "command": "case.accept",
                "actor": {"id": "d", "role": "dispatcher"},
                "case_number": "SN-20210605-000001",
                "colour": "red",
            }
        ),
        # 5: accepted - accept the new complaint
        json.dumps(
            {
                "command": "case.accept",
                "actor": {"id": "d", "role": "dispatcher"},
                "at": "2021-06-05T09:20:00+08:00",
                "case_number": "SN-20210605-000001",
            }
        ),
        # 6: refused - unknown grid
        json.dumps(
            {
                "command": "case.report",
                "actor": {"id": "op", "role": "intake_operator"},
                "at": "2021-06-05T09:30:00+08:00",
                "channel": "hotline",
                "category": "facility.manhole",
                "grid": "SN99-C01-G001",
                "description": "x",
            }
        ),
    ]
    result = cli("apply", "-", stdin="\n".join(lines) + "\n")
    out = result.stdout.splitlines()
    assert result.returncode == 3  # the worst outcome met: refused
    assert out[0].startswith("line 1: accepted SN-20210605-000001 reported (check code / 查询码 ")
    assert out[1].startswith("line 2: refused:")
    assert "SN-20210601-000004" in out[1] and "accepted" in out[1] and "sign" in out[1]
    assert out[2].startswith("line 3: bad input: malformed JSON")
    assert out[3].startswith("line 4: bad input:") and "colour" in out[3]
    assert out[4] == "line 5: accepted SN-20210605-000001 accepted"
    assert out[5].startswith("line 6: refused:") and "unknown grid 'SN99-C01-G001'" in out[5]
    assert out[6] == "6 lines: 2 accepted, 2 refused, 2 bad input, 0 conflict"
    # nothing of a bad line was written
    assert cli.json("case", "history", "SN-20210601-000004") == before
    assert cli("case", "history", "SN-20210605-000002").returncode == 3  # line 6 issued no number


def test_stop_on_error_stops_at_the_first_bad_line(cli: Cli) -> None:
    seed(cli)
    lines = [
        "not json",
        json.dumps(
            {
                "command": "case.report",
                "actor": {"id": "op", "role": "intake_operator"},
                "at": "2021-06-05T09:00:00+08:00",
                "channel": "hotline",
                "category": "facility.manhole",
                "grid": "SN08-C01-G004",
                "description": "路灯不亮",
            }
        ),
    ]
    result = cli("apply", "-", "--stop-on-error", stdin="\n".join(lines) + "\n")
    assert result.returncode == 2
    assert "line 2" not in result.stdout
    assert cli("case", "history", "SN-20210605-000001").returncode == 3


def test_refused_command_exits_3_with_one_line_and_changes_nothing(cli: Cli) -> None:
    seed(cli)
    before = cli.json("case", "history", "SN-20210601-000003")
    result = cli("case", "sign", "SN-20210601-000003", "--actor", "W00001", "--role", "grid_worker")
    assert result.returncode == 3
    assert result.stderr.strip().count("\n") == 0
    assert "SN-20210601-000003" in result.stderr and "rejected" in result.stderr and "sign" in result.stderr
    assert cli.json("case", "history", "SN-20210601-000003") == before


def test_bad_input_exits_2_and_names_the_field(cli: Cli) -> None:
    seed(cli)
    result = cli("case", "accept", "SN-20210601-000004", "--level", "province", "--actor", "d", "--role", "dispatcher")
    assert result.returncode == 2
    assert "level" in result.stderr
    no_actor = cli("case", "accept", "SN-20210601-000004")
    assert no_actor.returncode == 2 and "actor" in no_actor.stderr


def test_a_complaint_through_its_whole_life_on_the_cli(cli: Cli) -> None:
    seed(cli)
    worker = ["--actor", "W00001", "--role", "grid_worker"]
    dispatcher = ["--actor", "centre-02", "--role", "dispatcher"]
    report = cli.json(
        "case",
        "report",
        "--channel",
        "window",
        "--category",
        "facility.manhole",
        "--grid",
        "SN08-C01-G004",
        "--description",
        "路灯不亮",
        "--reporter-name",
        "陈先生",
        "--reporter-phone",
        "13700001111",
        "--at",
        "2021-06-07T08:00",
        "--actor",
        "op-7",
        "--role",
        "intake_operator",
    )
    assert isinstance(report, dict)
    number = report["case_number"]
    assert number == "SN-20210607-000001"
    steps = [
        ["accept", number, "--at", "2021-06-07T08:10", *dispatcher],
        ["dispatch", number, "--worker", "W00001", "--at", "2021-06-07T08:20", *dispatcher],
        ["sign", number, "--at", "2021-06-07T08:30", *worker],
        ["resolve", number, "--result", "灯泡已更换", "--evidence", "photo:1.jpg", "--at", "2021-06-07T10:00", *worker],
        ["verify", number, "--at", "2021-06-07T11:00", "--actor", "V00001", "--role", "grid_worker"],
        ["close", number, "--at", "2021-06-07T12:00", *dispatcher],
        [
            "feedback",
            number,
            "--satisfaction",
            "satisfied",
            "--resolved",
            "--at",
            "2021-06-08T09:00",
            "--actor",
            "cb",
            "--role",
            "callback_operator",
        ],
    ]
    for step in steps:
        cli("case", *step, check=True)
    history = cli.json("case", "history", number)
    assert isinstance(history, list)
    assert [row["event"] for row in history] == [
        "CaseReported",
        "CaseAccepted",
        "CaseDispatched",
        "DispatchSigned",
        "CaseResolved",
        "ResolutionVerified",
        "CaseClosed",
        "CitizenFeedbackRecorded",
    ]
    assert history[0]["occurred_at"] == "2021-06-07T00:00:00Z"  # 08:00 in Qingdao
    assert history[0]["recorded_at"] > history[0]["occurred_at"]
    assert history[3]["actor"] == {"id": "W00001", "role": "grid_worker", "unit": None}
    assert history[0]["data"]["reporter"] == {"name": "陈**", "phone": "137****1111", "id_number": None}
    revealed = cli.json("case", "history", number, "--personal-data", "--reason", "callback check",
                        "--actor", "aud-1", "--role", "auditor")  # fmt: skip
    assert isinstance(revealed, list)
    assert revealed[0]["data"]["reporter"]["phone"] == "13700001111"
    table = cli("case", "history", number, check=True).stdout
    assert "CitizenFeedbackRecorded" in table and "13700001111" not in table


def test_patrol_hazard_becomes_a_patrol_case(cli: Cli) -> None:
    seed(cli)
    history = cli.json("case", "history", "SN-20210601-000005")
    assert isinstance(history, list)
    assert history[0]["data"]["channel"] == "patrol"
    assert history[0]["data"]["patrol_id"] == "PT-20210601-000001"
    wrong = cli(
        "patrol",
        "checkpoint",
        "PT-20210601-000001",
        "--kind",
        "household_visit",
        "--target",
        "x",
        "--actor",
        "W00001",
        "--role",
        "grid_worker",
    )
    assert wrong.returncode == 3 and "ended" in wrong.stderr


def test_registry_refusals_name_what_was_wrong(cli: Cli) -> None:
    seed(cli)
    dup = cli("registry", "org-unit", "--code", "SN08", "--kind", "street", "--name", "x", "--parent", "SN", *ADMIN)
    assert dup.returncode == 3 and "street 'SN08' already exists" in dup.stderr
    orphan = cli(
        "registry",
        "org-unit",
        "--code",
        "G9",
        "--kind",
        "grid",
        "--grid-kind",
        "base",
        "--name",
        "x",
        "--parent",
        "SN",
        *ADMIN,
    )
    assert orphan.returncode == 3 and "hangs under a community" in orphan.stderr
    not_admin = cli(
        "registry",
        "worker",
        "--code",
        "W9",
        "--name",
        "x",
        "--kind",
        "full_time",
        "--actor",
        "op",
        "--role",
        "intake_operator",
    )
    assert not_admin.returncode == 3 and "reference data" in not_admin.stderr
