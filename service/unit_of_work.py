"""The unit of work: aggregates loaded once per batch, and everything a batch changed saved in one transaction."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar, cast

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from domain.base import Aggregate
from domain.errors import UnknownReference
from service.errors import ConcurrentChange

if TYPE_CHECKING:
    from collections.abc import Iterator
    from uuid import UUID

    from service.ports import EventStore

A = TypeVar("A", bound=Aggregate)


class UnitOfWork:
    """Loads and saves aggregates; inside :meth:`batch` saves are collected and written together at its end."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._pending: dict[UUID, Aggregate] | None = None
        #: Inside a batch, what was read is read once: the registry a thousand reports share, say.
        self._read: dict[UUID, Aggregate] = {}

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Collect every change made inside and save it in one transaction at the end (nothing if it raises)."""
        self._pending = {}
        try:
            yield
            pending = list(self._pending.values())
        finally:
            self._pending = None
            self._read = {}
        self.save(*pending)

    def load(self, cls: type[A], aggregate_id: UUID, kind: str, code: str, command: str) -> A:
        """The aggregate of this id and class, or :class:`UnknownReference` naming the ``kind`` and ``code``."""
        if self._pending is not None and aggregate_id in self._pending:
            return cast("A", self._pending[aggregate_id])
        aggregate = self._read.get(aggregate_id) if self._pending is not None else None
        if aggregate is None:
            try:
                aggregate = self.store.get(aggregate_id)
            except AggregateNotFoundError:
                raise UnknownReference(kind, code, command=command) from None
            if self._pending is not None:
                self._read[aggregate_id] = aggregate
        if not isinstance(aggregate, cls):
            raise UnknownReference(kind, code, command=command)
        return aggregate

    def exists(self, aggregate_id: UUID) -> bool:
        """Whether the aggregate is stored, or made in this batch."""
        return (self._pending is not None and aggregate_id in self._pending) or self.store.exists(aggregate_id)

    def save(self, *aggregates: Aggregate) -> None:
        """Store the aggregates' new events now, or at the end of the batch."""
        if self._pending is not None:
            for aggregate in aggregates:
                self._pending[aggregate.id] = aggregate
            return
        try:
            self.store.save(*aggregates)
        except IntegrityError as error:
            raise ConcurrentChange(str(error)) from error
