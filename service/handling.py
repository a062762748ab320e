"""What every command handler is given: the unit of work, the number issuer, the district's clock and zone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from domain.base import Aggregate, Role
from domain.errors import CommandRefused, UnknownReference
from domain.registry import OrgKind, OrgUnit, Worker, org_unit_id, worker_id
from service.errors import BadInput

if TYPE_CHECKING:
    from datetime import datetime
    from uuid import UUID
    from zoneinfo import ZoneInfo

    from domain import commands as c
    from domain.base import ActorRef
    from service.numbers import NumberIssuer
    from service.unit_of_work import UnitOfWork

A = TypeVar("A", bound=Aggregate)
C = TypeVar("C", bound="c.Command")
Result = dict[str, Any]
Handler = Callable[["Handling", C], Result]

#: How far ahead of the engine's clock an ``occurred_at`` may be (clock skew of field devices).
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass
class Handling:
    """The context a command handler works in."""

    work: UnitOfWork
    numbers: NumberIssuer
    tz: ZoneInfo
    case_prefix: str
    patrol_prefix: str
    clock: Callable[[], datetime]

    def when(self, command: c.Command) -> datetime:
        """When the command's matter occurred: its ``at``, or now; never in the future."""
        now = self.clock()
        at = command.at or now
        if at > now + FUTURE_TOLERANCE:
            msg = f"at: {at.isoformat()} is in the future"
            raise BadInput(msg)
        return at

    def load(self, cls: type[A], aggregate_id: UUID, kind: str, code: str, command: str) -> A:
        """An aggregate by id, or an error naming what is unknown."""
        return self.work.load(cls, aggregate_id, kind, code, command)

    def unit(self, code: str, kind: OrgKind, command: str) -> OrgUnit:
        """An org unit that must be of one kind (a grid, a department, ...)."""
        unit = self.work.load(OrgUnit, org_unit_id(code), kind.value, code, command)
        if unit.kind is not kind:
            raise UnknownReference(kind.value, code, command=command)
        return unit

    def grid(self, code: str, command: str) -> OrgUnit:
        """A grid by code."""
        return self.unit(code, OrgKind.GRID, command)

    def place(self, grid_code: str, command: str) -> tuple[str, str, str]:
        """The grid, community and street codes of a grid, as a case or patrol records them."""
        grid = self.grid(grid_code, command)
        assert grid.parent is not None
        community = self.work.load(OrgUnit, org_unit_id(grid.parent), "community", grid.parent, command)
        return grid.code, community.code, community.parent or ""

    def department(self, code: str, command: str) -> OrgUnit:
        """A department (职能部门) by code."""
        return self.unit(code, OrgKind.DEPARTMENT, command)

    def check_works_grid(
        self, actor: ActorRef, grid: str, at: datetime, *, subject: str, state: str, command: str
    ) -> None:
        """A grid worker acts only in the grids they are assigned to on that day (GridWorkerActsOnlyInTheirGrids).

        Other roles pass: their scope is the domain's to judge (a department handler's, for one).
        """
        if actor.role is not Role.GRID_WORKER:
            return
        day = at.astimezone(self.tz).date()
        try:
            works = self.load(Worker, worker_id(actor.id), "worker", actor.id, command).works_grid(grid, day)
        except UnknownReference:  # one read: an unregistered worker works no grid
            works = False
        if not works:
            raise CommandRefused(
                subject=subject,
                state=state,
                command=command,
                rule="GridWorkerActsOnlyInTheirGrids",
                reason=f"grid worker {actor.id} does not work grid {grid} on {day.isoformat()}",
            )


class Handlers(dict[type, Any]):
    """Command class → handler; ``@handlers.of(SomeCommand)`` registers one."""

    def of(self, command_class: type[C]) -> Callable[[Handler[C]], Handler[C]]:
        """Register the decorated function as the handler of ``command_class``."""

        def register(function: Handler[C]) -> Handler[C]:
            self[command_class] = function
            return function

        return register
