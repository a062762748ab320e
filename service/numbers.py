"""Issuing case and patrol numbers: the next free one of the local day, races guarded by the store."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from domain.base import Aggregate
from domain.numbers import MAX_SEQUENCE, format_number
from service.errors import BadInput, ConcurrentChange

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import date
    from uuid import UUID

    from service.unit_of_work import UnitOfWork

A = TypeVar("A", bound=Aggregate)

#: How many times a number is taken again after another process took it first.
ATTEMPTS = 50


class NumberIssuer:
    """Gives each new case or patrol the next number of its day; a refusal issues no number."""

    def __init__(self, work: UnitOfWork) -> None:
        self.work = work
        self._next: dict[tuple[str, date], int] = {}

    def remembered(self) -> dict[tuple[str, date], int]:
        """What this issuer believes comes next (to restore when a batch is refused)."""
        return dict(self._next)

    def restore(self, remembered: dict[tuple[str, date], int]) -> None:
        """Forget the numbers a refused batch took."""
        self._next = remembered

    def create(self, prefix: str, day: date, id_of: Callable[[str], UUID], make: Callable[[str], A]) -> A:
        """Make and save the aggregate under the next free number; another process's race takes the next one."""
        for _attempt in range(ATTEMPTS):
            sequence = self._free(prefix, day, id_of)
            aggregate = make(format_number(prefix, day, sequence))  # a refusal here issues no number
            try:
                self.work.save(aggregate)
            except ConcurrentChange:
                self._next.pop((prefix, day), None)
                continue
            self._next[(prefix, day)] = sequence + 1
            return aggregate
        msg = f"could not issue a {prefix} number for {day}: too much contention"
        raise ConcurrentChange(msg)

    def _free(self, prefix: str, day: date, id_of: Callable[[str], UUID]) -> int:
        """The next unused sequence number of the day; the store's uniqueness guards races."""
        exists = self.work.exists
        sequence = self._next.get((prefix, day))
        if sequence is None:
            sequence = first_free(lambda n: exists(id_of(format_number(prefix, day, n))))
        while exists(id_of(format_number(prefix, day, sequence))):
            sequence += 1
        if sequence > MAX_SEQUENCE:
            msg = f"no numbers left for {prefix} on {day}"
            raise BadInput(msg)
        return sequence


def first_free(exists: Callable[[int], bool]) -> int:
    """Numbers are issued in order, so the used ones form a prefix: gallop, then bisect."""
    low, high = 0, 1
    while exists(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if exists(middle):
            low = middle
        else:
            high = middle
    return low + 1
