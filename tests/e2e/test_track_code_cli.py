"""``gridcase case report`` prints the check code; ``case track`` opens a case only with it (issue 18 item 6)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tests.support import CATEGORY, GRID

if TYPE_CHECKING:
    from tests.e2e.conftest import Cli

REPORT = ("case", "report", "--channel", "hotline", "--category", CATEGORY, "--grid", GRID,
          "--description", "井盖缺失", "--actor", "admin", "--role", "admin")  # fmt: skip


def test_report_prints_the_code_and_track_wants_it(seeded: Cli) -> None:
    result = json.loads(seeded(*REPORT, "--json", check=True).stdout)
    number, code = str(result["case_number"]), str(result["check_code"])
    plain = seeded(*REPORT, check=True).stdout
    second = plain.split()[0]
    second_code = seeded.json("case", "show", second)["check_code"]  # type: ignore[index]
    assert str(second_code) in plain.split()
    shown = seeded.json("case", "show", number)
    assert isinstance(shown, dict)
    assert shown["check_code"] == code

    tracked = seeded.json("case", "track", number, "--code", code)
    assert isinstance(tracked, dict)
    assert tracked["case_number"] == number
    unknown = seeded("case", "track", "SN-20990101-000001", "--code", code)
    assert unknown.returncode != 0
    for refused in (seeded("case", "track", number), seeded("case", "track", number, "--code", "ZZZZZZ")):
        assert refused.returncode == unknown.returncode
        assert refused.stderr.replace(number, "SN-20990101-000001") == unknown.stderr
        assert refused.stdout == unknown.stdout == ""
