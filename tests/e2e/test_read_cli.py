"""The read-model commands as an operator uses them, on the documented example history."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tests.e2e.test_write_cli import seed

if TYPE_CHECKING:
    from tests.e2e.conftest import Cli


def test_project_then_query_every_read_model(cli: Cli) -> None:
    seed(cli)
    projected = cli.json("project")
    assert isinstance(projected, dict)
    assert projected["events"] > 40
    again = cli.json("project")
    assert isinstance(again, dict)
    again.pop("seconds")  # how long it took to find nothing new: noise on a busy machine
    assert again == {"events": 0, "batches": 0, "position": 0, "per_projection": {}}

    status = cli.json("case", "show", "SN-20210601-000001")
    assert isinstance(status, dict)
    assert status["state"] == "accepted"  # reopened after the dissatisfied callback
    assert status["reopenings"] == 1
    assert status["satisfaction"] == "dissatisfied"
    assert status["handler_id"] is None  # back with the centre

    bounced = cli.json("case", "show", "SN-20210601-000004")
    assert isinstance(bounced, dict)
    assert (bounced["returns"], bounced["escalations"], bounced["level"]) == (1, 1, "street")

    queue = cli.json("queue", "--unit", "SN08", "--state", "accepted")
    assert isinstance(queue, list)
    assert {row["case_number"] for row in queue} == {"SN-20210601-000001", "SN-20210601-000004"}

    code = cli.json("case", "show", "SN-20210601-000002")["check_code"]  # type: ignore[index]
    track = cli.json("case", "track", "SN-20210601-000002", "--code", str(code))  # the merged duplicate's own number
    assert isinstance(track, dict)
    assert track["case_number"] == "SN-20210601-000001"
    assert "13912345678" not in json.dumps(track, ensure_ascii=False)
    assert "王" not in json.dumps(track, ensure_ascii=False)

    figures = cli.json("performance", "--worker", "W00001", "--period", "2021-06")
    assert isinstance(figures, list)
    worker = figures[0]
    assert worker["patrols"] == 1
    assert worker["handled"] == 1
    assert worker["rework_rate"] == {"numerator": 1, "denominator": 2, "rate": 0.5}
    assert worker["valid_report_rate"] == {"numerator": 0, "denominator": 0, "rate": None}

    street = cli.json("performance", "--street", "SN08", "--period", "2021")
    assert isinstance(street, list)
    assert street[0]["reported"] == 5
    assert street[0]["residents"] == 1040

    intake = cli.json("intake", "--by", "channel", "--period", "2021-06-01")
    assert isinstance(intake, list)
    by_channel = {row["channel"]: row for row in intake}
    assert by_channel["wechat"]["merged"] == 1
    assert by_channel["app"]["rejected"] == 1
    assert by_channel["hotline"]["accepted"] == 1

    overdue = cli.json("overdue")
    assert isinstance(overdue, list)
    assert overdue == []  # nothing is with a handler: every open case is back with the centre

    assert cli.json("deadletters") == []
    assert cli("duplicates", "SN-20210601-000003", check=True).returncode == 0


def test_query_commands_refuse_bad_input(cli: Cli) -> None:
    seed(cli)
    assert cli("performance", "--worker", "W00001", "--period", "June").returncode == 2
    assert cli("performance", "--period", "2021").returncode == 2
    assert cli("intake", "--by", "colour", "--period", "2021").returncode == 2
    unknown = cli("case", "show", "SN-20990101-000001")
    assert unknown.returncode == 3
    assert "SN-20990101-000001" in unknown.stderr
