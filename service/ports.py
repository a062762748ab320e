"""The ports the service layer needs: the event store, and the log of who saw personal data in clear."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime
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


#: The entry point a clear view came through.
Via = Literal["cli", "http", "audit"]


@dataclass(frozen=True)
class AccessRecord:
    """One clear view of personal data: who (actor id and role), when, which case, why, through which entry point."""

    actor_id: str
    role: str
    case_number: str
    reason: str
    via: Via
    recorded_at: datetime


class AccessLog(Protocol):
    """The append-only log of clear views of personal data (docs/privacy.md)."""

    def record(self, entry: AccessRecord) -> None:
        """Write one record, committed before returning; raise if it cannot be written."""
        ...

    def entries(self, *, case_number: str | None = None, since: datetime | None = None) -> Sequence[AccessRecord]:
        """The records, oldest first: of one case, and from a moment on, when asked."""
        ...
