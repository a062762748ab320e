"""Clear views of personal data on the CLI: `case history` and `audit` record first; `person access-log`."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest

from tests.e2e.test_write_cli import seed

if TYPE_CHECKING:
    from tests.e2e.conftest import Cli

CASE = "SN-20210601-000001"  # filed by the documented examples with 王女士, 13912345678
PHONE = "13912345678"
AUDITOR = ["--actor", "aud-1", "--role", "auditor"]
ADMIN = ["--actor", "admin", "--role", "admin"]


@pytest.fixture
def seeded(cli: Cli) -> Cli:
    """The documented examples' small district."""
    seed(cli)
    return cli


def log(cli: Cli) -> list[dict[str, str]]:
    """The access log as the CLI gives it to machines."""
    found = cli.json("person", "access-log", *ADMIN)
    assert isinstance(found, list)
    return found


def test_case_history_and_the_audit_export_record_each_clear_view(seeded: Cli) -> None:
    shown = seeded("case", "history", CASE, "--personal-data", "--reason", "回访 callback", *AUDITOR, check=True)
    assert PHONE in shown.stdout
    exported = seeded("audit", CASE, "--csv", "--personal-data", "--reason", "yearly audit", *ADMIN, check=True)
    assert PHONE in exported.stdout
    entries = log(seeded)
    assert [(e["actor_id"], e["role"], e["case_number"], e["reason"], e["via"]) for e in entries] == [
        ("aud-1", "auditor", CASE, "回访 callback", "cli"),
        ("admin", "admin", CASE, "yearly audit", "audit"),
    ]
    assert all(re.search(r"T\d\d:\d\d:\d\d(\.\d+)?\+08:00$", e["recorded_at"]) for e in entries)


def test_masked_views_record_nothing(seeded: Cli) -> None:
    assert PHONE not in seeded("case", "history", CASE, *AUDITOR, check=True).stdout
    assert PHONE not in seeded("audit", CASE, "--json", check=True).stdout
    assert log(seeded) == []


@pytest.mark.parametrize("command", [["case", "history", CASE], ["audit", CASE, "--json"]])
def test_a_clear_view_without_a_reason_shows_and_records_nothing(seeded: Cli, command: list[str]) -> None:
    for reason in ([], ["--reason", "  "]):
        result = seeded(*command, "--personal-data", *reason, *AUDITOR)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("bad input: reason:")
        assert PHONE not in result.stdout + result.stderr
    assert log(seeded) == []


@pytest.mark.parametrize("command", [["case", "history", CASE], ["audit", CASE, "--json"]])
def test_a_role_without_the_right_is_refused_and_nothing_is_recorded(seeded: Cli, command: list[str]) -> None:
    result = seeded(*command, "--personal-data", "--reason", "curious", "--actor", "d", "--role", "dispatcher")
    assert result.returncode == 3, result.stderr
    assert "OnlyAuditorsAndAdminsSeePersonalData" in result.stderr and "dispatcher" in result.stderr
    assert PHONE not in result.stdout
    nobody = seeded(*command, "--personal-data", "--reason", "who am I")
    assert nobody.returncode == 2, nobody.stderr
    assert "--actor" in nobody.stderr
    assert log(seeded) == []


def test_the_access_log_is_readable_filtered_and_for_auditors_only(seeded: Cli) -> None:
    seeded("case", "history", CASE, "--personal-data", "--reason", "核实身份 identity check", *AUDITOR, check=True)
    seeded("case", "history", "SN-20210601-000002", "--personal-data", "--reason", "second", *ADMIN, check=True)
    table = seeded("person", "access-log", *AUDITOR, check=True).stdout
    for heading in ("时间 when", "查看人 who", "角色 role", "案件 case", "理由 reason", "途径 via"):
        assert heading in table
    assert "核实身份 identity check" in table and "aud-1" in table and "+08:00" in table
    assert "2 clear views" in table
    one = seeded("person", "access-log", "--case", CASE, "--json", *AUDITOR, check=True)
    assert [e["reason"] for e in json.loads(one.stdout)] == ["核实身份 identity check"]
    later = seeded("person", "access-log", "--since", "2099-01-01", "--json", *AUDITOR, check=True)
    assert json.loads(later.stdout) == []
    assert "nothing" in seeded("person", "access-log", "--since", "2099-01-01", *AUDITOR, check=True).stdout
    refused = seeded("person", "access-log", "--actor", "w", "--role", "grid_worker")
    assert refused.returncode == 3
    assert "grid_worker" in refused.stderr
    assert "核实" not in refused.stdout
    bad = seeded("person", "access-log", "--since", "yesterday", *AUDITOR)
    assert bad.returncode == 2
    assert "--since" in bad.stderr
