"""Command handlers of the patrol (Patrol): start, checkpoints, end, and hazards found on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from domain import commands as c
from domain.case import Channel
from domain.patrol import Patrol, patrol_id
from domain.registry import Worker, worker_id
from service.cases import report
from service.handling import Handlers, Handling, Result

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

handlers = Handlers()


def load_patrol(handling: Handling, number: str, command: str) -> Patrol:
    """A patrol by its number."""
    return handling.load(Patrol, patrol_id(number), "patrol", number, command)


@handlers.of(c.StartPatrol)
def _start(handling: Handling, command: c.StartPatrol) -> Result:
    at = handling.when(command)
    handling.check_works_grid(command.actor, command.grid, at, subject=f"a patrol of grid {command.grid}",
                              state="new", command=command.command)  # fmt: skip
    handling.load(Worker, worker_id(command.worker), "worker", command.worker, command.command)
    grid, community, street = handling.place(command.grid, command.command)
    day = at.astimezone(handling.tz).date()
    patrol = handling.numbers.create(
        handling.patrol_prefix,
        day,
        patrol_id,
        lambda number: Patrol.start(
            patrol_number=number,
            worker=command.worker,
            grid=grid,
            community=community,
            street=street,
            actor=command.actor,
            at=at,
        ),
    )
    return {"patrol_number": patrol.patrol_number, "state": patrol.state.value}


def _on_patrol(handling: Handling, command: c.PatrolCommand, act: Callable[[Patrol, datetime], None]) -> Result:
    at = handling.when(command)
    patrol = load_patrol(handling, command.patrol_number, command.command)
    handling.check_works_grid(command.actor, patrol.grid, at, subject=f"patrol {patrol.patrol_number}",
                              state=patrol.state.value, command=command.command)  # fmt: skip
    act(patrol, at)
    handling.work.save(patrol)
    return {"patrol_number": patrol.patrol_number, "state": patrol.state.value}


@handlers.of(c.LogCheckpoint)
def _checkpoint(handling: Handling, command: c.LogCheckpoint) -> Result:
    return _on_patrol(
        handling,
        command,
        lambda patrol, at: patrol.log_checkpoint(
            command.actor, command.kind, command.target, command.notes, command.elderly_visit, at
        ),
    )


@handlers.of(c.EndPatrol)
def _end(handling: Handling, command: c.EndPatrol) -> Result:
    return _on_patrol(handling, command, lambda patrol, at: patrol.end(command.actor, command.distance_m, at))


@handlers.of(c.ReportHazard)
def _hazard(handling: Handling, command: c.ReportHazard) -> Result:
    at = handling.when(command)
    patrol = load_patrol(handling, command.patrol_number, command.command)
    patrol.check_finding(command.actor, at, command.command)
    return report(handling, command, channel=Channel.PATROL, grid_code=patrol.grid,
                  patrol_number=patrol.patrol_number, at=at)  # fmt: skip
