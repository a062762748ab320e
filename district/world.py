"""The reference district as the simulator sees it: grids with their workers, departments, categories."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from domain import commands as c
from domain.registry import GridKind, OrgKind

if TYPE_CHECKING:
    from collections.abc import Iterable


@dataclass(frozen=True)
class Grid:
    """A grid of the reference district as the simulator sees it."""

    code: str
    street: str
    population: int
    elderly_share: float
    full_time: str
    part_time: tuple[str, ...]


@dataclass(frozen=True)
class Category:
    """A category: where it goes by default and how fast it must move."""

    code: str
    group: str
    default_unit: str
    sla_class: str



class World:
    """The reference district's grids, workers, departments and categories, read from its commands."""

    def __init__(self, commands: Iterable[c.AnyCommand], grids: int | None) -> None:
        units: dict[str, c.CreateOrgUnit] = {}
        assigned: dict[str, list[str]] = {}
        self.categories: list[Category] = []
        self.departments: list[str] = []
        for command in commands:
            if isinstance(command, c.CreateOrgUnit):
                units[command.code] = command
                if command.kind is OrgKind.DEPARTMENT:
                    self.departments.append(command.code)
            elif isinstance(command, c.AssignWorker):
                assigned.setdefault(command.grid, []).append(command.worker)
            elif isinstance(command, c.DefineCategory):
                self.categories.append(Category(command.code, command.group, command.default_unit, command.sla_class))
        base = sorted(
            code for code, unit in units.items() if unit.kind is OrgKind.GRID and unit.grid_kind is GridKind.BASE
        )
        if grids is not None:
            # Spread the chosen grids over the whole district rather than take one street.
            step = max(1, len(base) // max(1, grids))
            base = base[::step][:grids]
        self.grids: list[Grid] = []
        for code in base:
            unit = units[code]
            community = units[unit.parent or ""]
            workers = assigned.get(code, [])
            self.grids.append(
                Grid(
                    code=code,
                    street=community.parent or "",
                    population=unit.population,
                    elderly_share=unit.elderly / unit.population if unit.population else 0.0,
                    full_time=next(w for w in workers if w.startswith("W")),
                    part_time=tuple(w for w in workers if w.startswith("V")),
                )
            )

    def grid(self, code: str) -> Grid:
        """The grid as it stands now (its part-time workers change as volunteers move on)."""
        return next(grid for grid in self.grids if grid.code == code)

    def replace_part_timer(self, code: str, leaving: str, joining: str) -> None:
        """A part-time worker of a grid moves on and a newcomer takes their place."""
        index = next(i for i, grid in enumerate(self.grids) if grid.code == code)
        grid = self.grids[index]
        self.grids[index] = replace(grid, part_time=(*(w for w in grid.part_time if w != leaving), joining))
