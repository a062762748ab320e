"""What every projection is: tables, the event types it handles, and apply / flush / discard for a batch."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from sqlalchemy import Connection, MetaData

    from projections.events import ProjectedEvent


class Projection(ABC):
    """A read model kept by applying events in store order, a batch per transaction.

    ``apply`` changes only in-memory batch state (row caches, counters); ``flush``
    writes it inside the runner's transaction, together with the position; and
    ``discard`` forgets it when the transaction is rolled back.
    """

    name: ClassVar[str]
    #: Bump when the read model's meaning changes: it is then rebuilt, not migrated.
    version: ClassVar[int] = 1
    metadata: ClassVar[MetaData]
    #: Event types this projection reads; the runner skips the others without calling it.
    handles: ClassVar[frozenset[str]]
    #: Every row is one aggregate's own (a case's status and timeline), so one aggregate's rows can be forgotten
    #: and rebuilt from its events alone (:meth:`forget`); otherwise a retry rebuilds the whole read model.
    per_aggregate: ClassVar[bool] = False

    @abstractmethod
    def apply(self, connection: Connection, event: ProjectedEvent) -> None:
        """Fold one event into the batch state (reading rows through ``connection`` if needed)."""

    @abstractmethod
    def flush(self, connection: Connection) -> None:
        """Write the batch state."""

    @abstractmethod
    def discard(self) -> None:
        """Forget the batch state after a rollback."""

    def forget(self, connection: Connection, aggregate: str) -> None:
        """Delete the rows of one aggregate (by id), to apply its events again from the first (``per_aggregate``)."""
        msg = f"{self.name}: rows are not per aggregate; rebuild the read model instead"
        raise NotImplementedError(msg)

    def prepare(self, connection: Connection, events: list[ProjectedEvent]) -> None:  # noqa: B027 - optional hook
        """Before a batch: prefetch the rows it will touch (optional)."""
