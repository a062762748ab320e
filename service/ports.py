"""The service layer's ports: the event store, the vault of personal data, and the log of who saw it in clear."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime
    from uuid import UUID

    from domain.personal import LookupKind, Sealed


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
class PersonalVault(Protocol):
    """Opens sealed personal data while the citizen's key exists, and erases a citizen's key (adapters/personal.py).

    ``reveal`` gives the clear value as a dict, or None once the key is erased. ``subjects`` names the citizens a
    phone or ID number leads to, each with the ids of the aggregates holding their data; ``stage_erasure``
    deletes their keys in the transaction of the next save; ``scrub`` removes what the database kept of them.
    """

    def reveal(self, sealed: Sealed) -> dict[str, Any] | None:
        """The clear value, or None when erased."""
        ...

    def subjects(self, kind: LookupKind, value: str) -> dict[str, list[str]]:
        """Citizen (subject) -> aggregate ids holding their sealed data."""
        ...

    def stage_erasure(self, subjects: Sequence[str]) -> None:
        """Delete these citizens' keys with the next save."""
        ...

    def clear_state(self, state: bytes) -> bytes:
        """A stored event's JSON with its sealed values opened: the bytes it was stored as before sealing existed.

        For digests of a run (district/simulator.py) that must not depend on the random nonces; an erased
        value stays sealed.
        """
        ...

    def scrub(self) -> None:
        """After the erasure committed: no copy of the deleted keys left in the database's files."""
        ...
