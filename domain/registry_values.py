"""The registry's values: org kinds and the hierarchy, grid and worker kinds, name and count types, registrars.

Beside ``domain.registry``, which re-exports every name; its events stay nested in its aggregates (stored topics).
"""

from __future__ import annotations

from enum import StrEnum

from domain.base import ActorRef, Role
from domain.bounded import Count, Name
from domain.errors import CommandRefused

__all__ = ["PARENT_KIND", "REGISTRARS", "Count", "GridKind", "Name", "OrgKind", "WorkerKind", "check_registrar"]

REGISTRARS = frozenset({Role.ADMIN, Role.SYSTEM})


def check_registrar(subject: str, state: str, command: str, actor: ActorRef) -> None:
    """Only administrators (and the system) change reference data."""
    if actor.role not in REGISTRARS:
        raise CommandRefused(
            subject=subject,
            state=state,
            command=command,
            rule="OnlyAdministratorsChangeTheRegistry",
            reason=f"role {actor.role.value} may not change reference data",
        )


class OrgKind(StrEnum):
    """Levels of the grid hierarchy, plus departments as dispatch targets."""

    DISTRICT = "district"
    STREET = "street"
    COMMUNITY = "community"
    GRID = "grid"
    DEPARTMENT = "department"


#: The kind of parent each kind of unit hangs under.
PARENT_KIND = {
    OrgKind.DISTRICT: None,
    OrgKind.STREET: OrgKind.DISTRICT,
    OrgKind.COMMUNITY: OrgKind.STREET,
    OrgKind.GRID: OrgKind.COMMUNITY,
    OrgKind.DEPARTMENT: OrgKind.DISTRICT,
}


class GridKind(StrEnum):
    """Base grids cover residents; dedicated grids cover a business district, school or hospital."""

    BASE = "base"
    DEDICATED = "dedicated"


class WorkerKind(StrEnum):
    """Full-time (专职), professional (专业) or part-time (兼职) grid worker."""

    FULL_TIME = "full_time"
    PROFESSIONAL = "professional"
    PART_TIME = "part_time"
