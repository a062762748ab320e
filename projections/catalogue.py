"""The projection set: every read model the engine keeps, by name, written once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from projections.case_status import CaseStatus
from projections.imported import Imported
from projections.intake import Intake
from projections.performance import Performance

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import tzinfo

    from projections.base import Projection

FACTORIES: dict[str, Callable[[tzinfo], Projection]] = {
    "case_status": lambda _tz: CaseStatus(),
    "performance": Performance,
    "intake": Intake,
    "imported": Imported,
}


def make_projections(names: Sequence[str], tz: tzinfo) -> list[Projection]:
    """Fresh projections by name; an unknown name is bad input."""
    unknown = [name for name in names if name not in FACTORIES]
    if unknown:
        msg = f"unknown projection {', '.join(unknown)} (known: {', '.join(FACTORIES)})"
        raise ValueError(msg)
    return [FACTORIES[name](tz) for name in names]


def all_projections(tz: tzinfo) -> list[Projection]:
    """A fresh instance of every read model, in the order they are kept."""
    return make_projections(list(FACTORIES), tz)
