"""The guided tour `make run` ends with: one complaint through its whole life."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from domain import commands as c
from domain.commands import COMMANDS

if TYPE_CHECKING:
    from district.ports import Service

#: The grid the source article's door-knocking story happens in.
TOUR_GRID_NAME = "永嘉路社区004网格"


def tour_cast(commands: list[c.AnyCommand]) -> dict[str, str]:
    """The grid of the tour and the people working it, looked up in the reference district."""
    grid = next(cmd.code for cmd in commands if isinstance(cmd, c.CreateOrgUnit) and cmd.name == TOUR_GRID_NAME)
    assigned = [cmd.worker for cmd in commands if isinstance(cmd, c.AssignWorker) and cmd.grid == grid]
    full_time = next(w for w in assigned if w.startswith("W"))
    verifier = next(w for w in assigned if w != full_time)
    return {"grid": grid, "handler": full_time, "verifier": verifier}


def walk_one_complaint(service: Service, cast: dict[str, str], start: datetime) -> str:
    """File a hotline complaint about a missing manhole cover and take it to a satisfied callback."""
    operator = {"id": "hotline-01", "role": "intake_operator"}
    dispatcher = {"id": "centre-01", "role": "dispatcher"}
    handler = {"id": cast["handler"], "role": "grid_worker"}
    verifier = {"id": cast["verifier"], "role": "grid_worker"}
    callback = {"id": "callback-01", "role": "callback_operator"}
    step = timedelta(minutes=20)

    def run(minutes: int, **fields: Any) -> dict[str, Any]:
        fields["at"] = start + step * minutes
        return service.handle(COMMANDS.validate_python(fields))

    number = run(
        0,
        command="case.report",
        actor=operator,
        channel="hotline",
        category="facility.manhole",
        grid=cast["grid"],
        description="永嘉路12号楼前井盖缺失,夜间有老人经过,很危险 (manhole cover missing in front of No. 12)",
        location={"address": "永嘉路12号"},
        reporter={"name": "王女士", "phone": "13912345678"},
    )["case_number"]
    run(1, command="case.accept", actor=dispatcher, case_number=number, level="community")
    run(
        2,
        command="case.dispatch",
        actor=dispatcher,
        case_number=number,
        handler={"kind": "worker", "id": cast["handler"]},
    )
    run(3, command="case.sign", actor=handler, case_number=number)
    run(4, command="case.note", actor=handler, case_number=number, note="已设置警示锥,联系物业更换井盖 (cones set up)")
    run(8, command="case.resolve", actor=handler, case_number=number, result="新井盖已安装 (new cover fitted)",
        evidence=["photo:cover-before.jpg", "photo:cover-after.jpg"])  # fmt: skip
    run(10, command="case.verify", actor=verifier, case_number=number)
    run(11, command="case.close", actor=dispatcher, case_number=number)
    run(14, command="case.feedback", actor=callback, case_number=number, satisfaction="satisfied", resolved=True)
    return str(number)
