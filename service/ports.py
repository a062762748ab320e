"""The one port the service layer needs: an event store that loads, saves and lists aggregates' events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable
    from uuid import UUID


class EventStore(Protocol):
    """Aggregates by id over an event store with optimistic concurrency.

    ``get`` raises ``eventsourcing.application.AggregateNotFoundError`` for an unknown id;
    ``save`` raises ``eventsourcing.persistence.IntegrityError`` when another writer got there first.
    """

    def get(self, aggregate_id: UUID) -> Any:
        """The aggregate as its stored events left it."""
        ...

    def exists(self, aggregate_id: UUID) -> bool:
        """Whether any event was ever stored for this id."""
        ...

    def save(self, *aggregates: Any) -> Any:
        """Store the aggregates' pending events in one transaction."""
        ...

    def events_of(self, aggregate_id: UUID) -> Iterable[Any]:
        """Every stored event of one aggregate, oldest first."""
        ...
