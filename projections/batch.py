"""One batch, one transaction per projection: the exactly-once step shared by every runner.

A runner reads a :class:`Batch` from a :class:`Source` and hands it to :func:`apply_batch` once per projection,
with the projection's :class:`Checkpoint` (how far it has got: a store position, or Kafka offsets). The step:

1. read the checkpoint and fold the events it has not applied yet in memory, without holding the write lock;
2. take the lock (FOR UPDATE on PostgreSQL; BEGIN IMMEDIATE on SQLite, which ignores FOR UPDATE) and read the
   checkpoint again: if another runner moved it meanwhile (this one's lease lapsed during a long pause, or
   another process applied the same partitions), throw the work away and redo it from the new checkpoint, so a
   batch is never applied twice;
3. write the rows, the dead letters and the new checkpoint in that one transaction.

An event the projection fails to apply is set aside and the batch redone without it; it becomes a dead letter,
recorded before (or in) the transaction whose checkpoint moves past it. So is an event whose rows cannot be
written (a number too big for its column, a text too long): the write fails for the whole batch, so the
culprit is found by bisecting the batch (:func:`unwritable_event`), and from there it takes the same path.
A failure of the database itself (a lost connection, a lock) is nobody's event: it stops the run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

import structlog
from sqlalchemy.exc import InterfaceError, OperationalError

from domain.redaction import describe_error, safe_traceback

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sqlalchemy import Connection, Engine, MetaData, Table

    from projections.base import Projection
    from projections.events import ProjectedEvent

log = structlog.get_logger("gridcase.projections")

#: Where an event came from in its source (a store position; a Kafka record).
P = TypeVar("P")
#: What a checkpoint holds for one projection (a position; next offsets by partition).
S = TypeVar("S")
#: Where a batch ends (its last position; the next offset of every partition it read).
E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class Batch(Generic[P, E]):
    """Events in store order, each with where it came from, and where the batch ends."""

    events: list[tuple[P, ProjectedEvent]]
    end: E
    #: Messages the source read for it (events, duplicates and messages that were not events alike).
    read: int
    #: Messages the source itself dead-lettered (not events at all).
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class Failure(Generic[P]):
    """An event a projection could not apply, and why."""

    place: P
    event: ProjectedEvent
    error: str


class Source(ABC, Generic[P, E]):
    """Where a runner's batches come from."""

    #: How long a follower waits when a batch came back empty (0: ``next_batch`` already waited).
    idle_poll: float = 0.5

    @abstractmethod
    def next_batch(self, *, until_end: bool) -> Batch[P, E] | None:
        """The next batch, or None when there is nothing new (``until_end``: only once the source's end is seen)."""


class Checkpoint(ABC, Generic[P, S, E]):
    """How far each projection has got, kept in the read models' database."""

    #: The checkpoint's own tables (besides the bookkeeping tables every runner has).
    tables: tuple[MetaData | Table, ...] = ()

    @abstractmethod
    def done(self, connection: Connection, projection: str, *, lock: bool = False) -> S:
        """The projection's checkpoint; ``lock`` takes the rows' write lock (FOR UPDATE)."""

    @abstractmethod
    def pending(self, done: S, place: P) -> bool:
        """Whether the event at ``place`` is past the checkpoint (not applied yet)."""

    @abstractmethod
    def advance(self, connection: Connection, projection: str, done: S, end: E) -> None:
        """Move the checkpoint to the end of a batch (never backwards)."""

    @abstractmethod
    def dead_letter(self, connection: Connection, projection: str, failures: Sequence[Failure[P]]) -> None:
        """Record failed events, at the latest in this transaction (before it commits)."""

    def seed(self, connection: Connection, projections: Sequence[str]) -> None:
        """Create the rows the batch transaction locks (a row that does not exist cannot be locked)."""


class _Retry(Exception):
    """An event failed: roll back and redo the batch without it."""


class _Moved(Exception):
    """Another runner applied events meanwhile: redo the batch from the new checkpoint."""


def apply_batch(
    engine: Engine, projection: Projection, batch: Batch[P, E], checkpoint: Checkpoint[P, S, E]
) -> tuple[int, list[Failure[P]]]:
    """Apply a batch to one projection in one transaction with its checkpoint; (events applied, failures)."""
    failed: dict[int, Failure[P]] = {}
    handles = projection.handles
    while True:
        try:
            with engine.connect() as connection:
                done = checkpoint.done(connection, projection.name)
                todo = [
                    (index, place, event)
                    for index, (place, event) in enumerate(batch.events)
                    if event.type in handles and index not in failed and checkpoint.pending(done, place)
                ]
                projection.prepare(connection, [event for _, _, event in todo])
                for index, place, event in todo:
                    try:
                        projection.apply(connection, event)
                    except Exception as error:  # noqa: BLE001 - any failure of one event must not stop the others
                        failed[index] = Failure(place, event, safe_traceback(error, limit=3))
                        raise _Retry from None
                connection.rollback()  # end the reads; the writes get a transaction of their own
                if connection.dialect.name == "sqlite":
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                if checkpoint.done(connection, projection.name, lock=True) != done:
                    raise _Moved  # noqa: TRY301 - handled just below, like a failed event
                _write(engine, connection, projection, todo, failed)
                checkpoint.advance(connection, projection.name, done, batch.end)
                failures = [failed[index] for index in sorted(failed)]
                checkpoint.dead_letter(connection, projection.name, failures)
                connection.commit()
                return len(todo), failures
        except _Retry:
            projection.discard()
            log.warning("dead-lettered", projection=projection.name, position=failed[max(failed)].event.position)
        except _Moved:
            projection.discard()
            log.warning("another runner moved on: redoing the batch", projection=projection.name)
        except BaseException:
            projection.discard()
            raise


def _write(engine: Engine, connection: Connection, projection: Projection,
           todo: list[tuple[int, P, ProjectedEvent]], failed: dict[int, Failure[P]]) -> None:  # fmt: skip
    """Write the batch's rows; when one event's rows cannot be written, set it aside like a failed event."""
    blamed = flush_or_blame(engine, connection, projection, [event for _, _, event in todo])
    if blamed is not None:
        culprit, error = blamed
        index, place, event = todo[culprit]
        failed[index] = Failure(place, event, error)
        raise _Retry


def flush_or_blame(engine: Engine, connection: Connection, projection: Projection, events: list[ProjectedEvent],
                   *, before: Callable[[Connection], None] | None = None) -> tuple[int, str] | None:  # fmt: skip
    """Write the folded rows; or, when one event's rows cannot be written, its index and the error (rolled back).

    A failure that is the database's, or that no one event causes, is raised: the run stops and says so.
    """
    try:
        projection.flush(connection)
    except Exception as error:
        if not unwritable(error):
            raise
        connection.rollback()
        projection.discard()
        culprit = unwritable_event(engine, projection, events, before=before)
        if culprit is None:
            raise  # not one event's rows: the database itself
        return culprit, write_error(error)
    return None


def unwritable(error: BaseException) -> bool:
    """Whether a failure to write rows may come from what an event carried, not from the database being away.

    A value a column cannot hold (SQLite's OverflowError for an integer past 64 bits; PostgreSQL's
    "out of range", a text too long: DataError), or a constraint the rows break, is the event's; a lost
    connection, a lock or a timeout (OperationalError, InterfaceError) is the database's and stops the run.
    """
    return isinstance(error, Exception) and not isinstance(error, OperationalError | InterfaceError)


def write_error(error: BaseException) -> str:
    """What a dead letter says of rows that could not be written: the error, then where it came from."""
    original = getattr(error, "orig", None)
    cause = describe_error(original if isinstance(original, BaseException) else error)
    return f"{safe_traceback(error, limit=3)}could not write its rows: {cause}"


def unwritable_event(engine: Engine, projection: Projection, events: list[ProjectedEvent], *,
                     before: Callable[[Connection], None] | None = None) -> int | None:  # fmt: skip
    """The index of the event whose rows cannot be written; None when even none of them can be, or all can.

    The batch's rows are written together, so a failed write does not say which event it was. Bisect on how
    many of the events (in order) are folded before the rows are written, each try in a transaction rolled
    back: the first prefix that cannot be written ends in the culprit. A handful of tries for a batch of
    thousands, and only after a write failed. ``before`` runs first in each try (a retry forgets rows).
    """
    if not events or not _writes(engine, projection, [], before) or _writes(engine, projection, events, before):
        return None  # no event's doing, or the failure does not come again: nothing to set aside
    good, bad = 0, len(events)  # folding ``good`` events writes; folding ``bad`` does not
    while bad - good > 1:
        middle = (good + bad) // 2
        if _writes(engine, projection, events[:middle], before):
            good = middle
        else:
            bad = middle
    return bad - 1


def _writes(engine: Engine, projection: Projection, events: list[ProjectedEvent],
            before: Callable[[Connection], None] | None) -> bool:  # fmt: skip
    """Whether the rows of these events, folded in order, can be written (nothing is kept)."""
    with engine.connect() as connection:
        try:
            if before is not None:
                before(connection)
            projection.prepare(connection, events)
            for event in events:
                projection.apply(connection, event)
            projection.flush(connection)
        except Exception as error:
            if not unwritable(error):
                raise
            return False
        else:
            return True
        finally:
            projection.discard()
            connection.rollback()


@dataclass
class RunStats:
    """What a run did."""

    #: Messages read (store events; Kafka messages, poison included).
    events: int = 0
    batches: int = 0
    deadlettered: int = 0
    position: int = 0
    seconds: float = 0.0
    per_projection: dict[str, int] = field(default_factory=dict)
    #: Events applied, summed over the projections.
    applied: int = 0

    @property
    def messages(self) -> int:
        """The same as ``events``: what the Kafka-fed projector reports."""
        return self.events
