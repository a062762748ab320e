"""Keeps projections up to date, exactly once: the one runner, over a source and a checkpoint.

Each batch of events is applied per projection in one SQL transaction that also moves the projection's
checkpoint (projections/batch.py), so a crash anywhere leaves either the whole batch or none of it, and a
re-delivered event (at or below the checkpoint) changes nothing. Fed from the store (the default), the source
is the notification log and the checkpoint the ``projection_positions`` row; fed from Kafka
(adapters/kafka/consumer.py), the source is the assigned partitions and the checkpoint the ``kafka_offsets``
rows.

Fed from the store, only one runner per projection works at a time: it holds a lease row it renews every batch;
another runner waits for the lease to expire or be released (saying so, and stopping when asked). An event a
projection cannot apply, or whose rows it cannot write, goes to the dead-letter table with its error and the
runner carries on; a retry applies it again in order with the rest of its aggregate's events.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import delete, inspect, select, update

from domain.redaction import safe_traceback
from projections import lease
from projections.batch import (
    Batch,
    Checkpoint,
    Failure,
    RunStats,
    Source,
    apply_batch,
    flush_or_blame,
)
from projections.events import decode
from projections.follow import repeat
from projections.sql import (
    bookkeeping,
    create_tables,
    deadletters,
    positions,
    projection_versions,
    stored_position,
    upsert,
    upsert_values,
    utc_now,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from eventsourcing.persistence import Notification
    from sqlalchemy import Connection, Engine

    from projections.base import Projection
    from projections.events import ProjectedEvent

    #: The store's notification log: ``read(after, limit)``, in store order.
    Reader = Callable[[int, int], Sequence[Notification]]

__all__ = ["LeaseHeld", "RunStats", "Runner", "StoreLog", "StorePositions", "Waiting"]

log = structlog.get_logger("gridcase.projections")


class LeaseHeld(RuntimeError):
    """Another runner holds the lease."""


@dataclass(frozen=True)
class Waiting:
    """A runner waits for leases: who holds each (``host:pid:…``), and since when it waits (epoch seconds)."""

    holders: dict[str, str]
    since: float


class StoreLog(Source[int, int]):
    """The store's notification log as a source: the events after the lowest position of the projections."""

    def __init__(self, read: Reader, batch_size: int, after: Callable[[], int]) -> None:
        self.read = read
        self.batch_size = batch_size
        self.after = after

    def next_batch(self, *, until_end: bool = True) -> Batch[int, int] | None:  # noqa: ARG002 - the log just ends
        """The next batch, from the lowest position of the projections."""
        notifications = self.read(self.after(), self.batch_size)
        if not notifications:
            return None
        # At-least-once transports re-send: keep one of each position, in store order.
        unique = {n.id: n for n in notifications}
        events = [decode(unique[position]) for position in sorted(unique)]
        return Batch([(event.position, event) for event in events], events[-1].position, len(events))


class StorePositions(Checkpoint[int, int, int]):
    """A projection's checkpoint as one store position (the ``projection_positions`` row)."""

    def done(self, connection: Connection, projection: str, *, lock: bool = False) -> int:
        """The projection's position."""
        return stored_position(connection, projection, lock=lock)

    def pending(self, done: int, place: int) -> bool:
        """Past the position."""
        return place > done

    def advance(self, connection: Connection, projection: str, done: int, end: int) -> None:
        """The batch's last position (past events the projection does not handle too)."""
        upsert(connection, positions, [{"name": projection, "position": max(end, done), "updated_at": utc_now()}])

    def dead_letter(self, connection: Connection, projection: str, failures: Sequence[Failure[int]]) -> None:
        """Rows of ``projection_deadletters``, in the batch's transaction."""
        rows = [
            {"projection": projection, "position": f.event.position, "event_type": f.event.type,
             "originator_id": f.event.originator_id, "error": f.error, "failed_at": utc_now(), "attempts": 1}
            for f in failures
        ]  # fmt: skip
        if rows:
            connection.execute(deadletters.insert(), rows)

    def seed(self, connection: Connection, projections: Sequence[str]) -> None:
        """A position row from the start, so a batch can lock it (FOR UPDATE on PostgreSQL)."""
        upsert_values(connection, positions, [(name, 0, utc_now()) for name in projections], keep=True)


class Runner:
    """Applies events to projections in batches, in store order, from a source to a checkpoint.

    ``read`` is the store's notification log (``read(after, limit)``) or any :class:`Source`; the checkpoint is
    the store position unless another is given. ``lease_seconds=None`` runs without leases (Kafka-fed members
    share the work by partition instead).
    """

    def __init__(
        self,
        engine: Engine,
        read: Reader | Source[Any, Any],
        projections: Sequence[Projection],
        *,
        batch_size: int = 25_000,
        lease_seconds: float | None = 15.0,
        owner: str | None = None,
        checkpoint: Checkpoint[Any, Any, Any] | None = None,
    ) -> None:
        self.engine = engine
        self.projections = list(projections)
        self.batch_size = batch_size
        self.source: Source[Any, Any] = read if isinstance(read, Source) else StoreLog(read, batch_size, self._lowest)
        self.checkpoint: Checkpoint[Any, Any, Any] = checkpoint or StorePositions()
        self.lease_seconds = lease_seconds
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self._renewed = float("-inf")
        #: Asked while waiting for a lease: True ends the wait (SIGTERM in the CLI).
        self.stop: Callable[[], bool] = lambda: False
        #: Told when this runner starts waiting for a lease, and when the holder changes.
        self.on_wait: Callable[[Waiting], None] = self._log_wait
        #: Whether ``stop()`` ended a wait for a lease.
        self.stopped_waiting = False

    # -- set-up -----------------------------------------------------------------

    def create_tables(self) -> None:
        """Create the bookkeeping, checkpoint and read-model tables if missing, and the checkpoint's rows."""
        names = [p.name for p in self.projections]
        existing = set(inspect(self.engine).get_table_names())
        fresh = [p for p in self.projections if not any(t in existing for t in p.metadata.tables)]

        def seed(connection: Connection) -> None:
            self.checkpoint.seed(connection, names)
            # Tables made now are built by today's code: its version, so a rebuild does not think them outdated.
            upsert_values(connection, projection_versions, [(p.name, p.version, utc_now()) for p in fresh], keep=True)

        create_tables(self.engine, bookkeeping, *self.checkpoint.tables, *(p.metadata for p in self.projections),
                      seed=seed)  # fmt: skip

    def position(self, name: str) -> int:
        """How far a projection fed from the store has got."""
        with self.engine.connect() as connection:
            return stored_position(connection, name)

    def _lowest(self) -> int:
        """The lowest store position of the projections: where the next batch starts."""
        with self.engine.connect() as connection:
            return min((stored_position(connection, p.name) for p in self.projections), default=0)

    # -- leases -----------------------------------------------------------------

    def _acquire(self, name: str) -> bool:
        assert self.lease_seconds is not None
        return lease.acquire(self.engine, name, self.owner, self.lease_seconds)

    def _renew_leases(self) -> None:
        """Renew the leases once a third of their time has gone (not every batch: each renewal is a commit)."""
        now = time.monotonic()
        if self.lease_seconds is None or now - self._renewed < self.lease_seconds / 3:
            return
        for projection in self.projections:
            if not self._acquire(projection.name):
                msg = f"lost the lease of {projection.name}"
                raise LeaseHeld(msg)
        self._renewed = now

    def release(self) -> None:
        """Give up this runner's leases so another may start at once."""
        if self.lease_seconds is not None:
            lease.release(self.engine, self.owner)

    def wait_for_leases(self, timeout: float | None = None, poll: float = 1.0) -> bool:
        """Block until this runner holds every projection's lease (another runner may hold them now).

        While it waits it says so once (``on_wait``: who holds which lease, since when it waits) and again when
        the holder changes; ``stop()`` ends the wait (False). ``timeout``: raise LeaseHeld after that long.
        """
        if self.lease_seconds is None:
            return True
        started = time.time()
        deadline = None if timeout is None else time.monotonic() + timeout
        told: dict[str, str] = {}
        while True:
            held = [p.name for p in self.projections if not self._acquire(p.name)]
            if not held:
                self._renewed = time.monotonic()
                if told:
                    log.warning("took over the lease", projections=list(told), waited=round(time.time() - started, 1))
                return True
            if deadline is not None and time.monotonic() >= deadline:
                msg = f"projections {', '.join(held)} are being run by another runner"
                raise LeaseHeld(msg)
            holders = {name: lease.holder(self.engine, name) or "a runner that just left" for name in held}
            if holders != told:
                self.on_wait(Waiting(holders, started))
                told = holders
            if self.stop():
                self.stopped_waiting = True
                return False
            time.sleep(poll)

    @staticmethod
    def _log_wait(waiting: Waiting) -> None:
        """Say that this runner waits for a lease: a log line (the CLI prints its own)."""
        log.warning("waiting for the lease", held_by=waiting.holders, since=waiting.since)

    # -- running ----------------------------------------------------------------

    def run_once(
        self, *, progress: Callable[[RunStats], None] | None = None, lease_timeout: float | None = None
    ) -> RunStats:
        """Catch up with the source, then return (at once, having done nothing, if stopped waiting for a lease)."""
        if not self.wait_for_leases(lease_timeout):
            return RunStats()
        return repeat(self._batch, RunStats(), progress=progress)

    def follow(self, *, poll: float | None = None, stop: Callable[[], bool] = lambda: False,
               progress: Callable[[RunStats], None] | None = None) -> RunStats:  # fmt: skip
        """Keep applying new events as they come, until ``stop()`` says so (idle: wait ``poll`` seconds)."""
        self.stop = stop

        def step(stats: RunStats) -> bool:
            if not self.wait_for_leases():
                return False
            return self._batch(stats, until_end=False)

        wait = self.source.idle_poll if poll is None else poll
        return repeat(step, RunStats(), stop=stop, poll=wait, progress=progress)

    def _batch(self, stats: RunStats, *, until_end: bool = True) -> bool:
        """Apply the next batch to every projection; False when there is nothing new."""
        batch = self.source.next_batch(until_end=until_end)
        if batch is None:
            return False
        self._renew_leases()
        for projection in self.projections:
            applied, failed = apply_batch(self.engine, projection, batch, self.checkpoint)
            stats.applied += applied
            stats.deadlettered += len(failed)
            stats.per_projection[projection.name] = stats.per_projection.get(projection.name, 0) + applied
        stats.events += batch.read
        stats.deadlettered += batch.rejected
        stats.batches += 1
        if batch.events:
            stats.position = max(stats.position, batch.events[-1][1].position)
        log.info("batch", position=stats.position, events=batch.read)
        return True

    # -- dead letters -------------------------------------------------------------

    def retry_deadletters(self) -> tuple[int, int]:
        """Apply dead-lettered events again, in order with the rest of their aggregate; (applied, still failing).

        A letter applied on top of its case's later events would move the case back a state, so a retry never
        applies a letter alone: a projection whose rows are each one aggregate's own (``per_aggregate``, case
        status) forgets the rows of each aggregate with a letter and applies all of that aggregate's events
        again, in store order, up to its position, in one transaction under the position's lock; any other
        (figures summed over many cases) is rebuilt from position zero in place. An event that still fails
        keeps its letter, one attempt more, with the new error; a letter whose event now applies is removed.
        """
        with self.engine.connect() as connection:
            letters = [dict(r) for r in connection.execute(select(deadletters).order_by(deadletters.c.position))
                       .mappings()]  # fmt: skip
        applied = failing = 0
        for projection in self.projections:
            mine = [letter for letter in letters if letter["projection"] == projection.name]
            if not mine:
                continue
            if projection.per_aggregate:
                history = self._history_of({letter["originator_id"] for letter in mine})
                for aggregate in dict.fromkeys(letter["originator_id"] for letter in mine):
                    self._redo_aggregate(projection, aggregate, history.get(aggregate, []))
            else:
                self._redo_projection(projection)
            with self.engine.begin() as connection:
                left = {row.position: row for row in connection.execute(
                    select(deadletters).where(deadletters.c.projection == projection.name))}  # fmt: skip
                for letter in mine:
                    again = left.get(letter["position"])
                    if again is None:
                        applied += 1
                        continue
                    failing += 1
                    if not projection.per_aggregate:  # written anew by the rebuild: carry the attempts over
                        connection.execute(update(deadletters).where(deadletters.c.id == again.id)
                                           .values(attempts=letter["attempts"] + 1))  # fmt: skip
        return applied, failing

    def _history_of(self, aggregates: set[str]) -> dict[str, list[ProjectedEvent]]:
        """Every stored event of these aggregates, in store order (one pass over the log)."""
        read = self._log().read
        found: dict[str, dict[int, ProjectedEvent]] = {aggregate: {} for aggregate in aggregates}
        after = 0
        while notifications := read(after, self.batch_size):
            for notification in notifications:
                mine = found.get(str(notification.originator_id))
                if mine is not None:
                    mine[notification.id] = decode(notification)
            after = max(n.id for n in notifications)
        return {aggregate: [events[p] for p in sorted(events)] for aggregate, events in found.items()}

    def _redo_aggregate(self, projection: Projection, aggregate: str, events: list[ProjectedEvent]) -> None:
        """Forget one aggregate's rows and apply its events again in order, in one transaction; letters settled."""
        failed: dict[int, str] = {}
        while True:
            with self.engine.connect() as connection:
                try:
                    if connection.dialect.name == "sqlite":
                        connection.exec_driver_sql("BEGIN IMMEDIATE")
                    done = stored_position(connection, projection.name, lock=True)
                    todo = [e for e in events if e.type in projection.handles and e.position <= done]
                    self._refold(connection, projection, aggregate, [e for e in todo if e.position not in failed],
                                 failed)  # fmt: skip
                    _settle(connection, projection.name, aggregate, failed, events)
                    connection.commit()
                except _Again:
                    connection.rollback()
                    projection.discard()
                except BaseException:
                    projection.discard()
                    raise
                else:
                    return

    def _refold(self, connection: Connection, projection: Projection, aggregate: str,
                todo: list[ProjectedEvent], failed: dict[int, str]) -> None:  # fmt: skip
        """Forget the aggregate's rows, fold its events, write; a failing event goes to ``failed`` (_Again)."""

        def forget(connection: Connection) -> None:
            projection.forget(connection, aggregate)

        forget(connection)
        projection.prepare(connection, todo)
        for event in todo:
            try:
                projection.apply(connection, event)
            except Exception as failure:  # noqa: BLE001 - set aside, like in a batch
                failed[event.position] = safe_traceback(failure, limit=3)
                raise _Again from None
        blamed = flush_or_blame(self.engine, connection, projection, todo, before=forget)
        if blamed is not None:
            culprit, error = blamed
            failed[todo[culprit].position] = error
            raise _Again

    def _redo_projection(self, projection: Projection) -> None:
        """Empty a projection's tables and catch it up from position zero (its letters are written anew)."""
        with self.engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            stored_position(connection, projection.name, lock=True)  # a runner mid-batch finishes first
            for table in reversed(projection.metadata.sorted_tables):
                connection.execute(delete(table))
            connection.execute(delete(deadletters).where(deadletters.c.projection == projection.name))
            upsert(connection, positions, [{"name": projection.name, "position": 0, "updated_at": utc_now()}])
            connection.commit()
        log.info("rebuilding from position zero to retry its dead letters", projection=projection.name)
        # Without a lease: a live runner of the same projection may help, the checkpoint's lock keeps it exact.
        # Its own log from its own position (this runner's starts at the lowest of all of them).
        Runner(self.engine, self._log().read, [projection], batch_size=self.batch_size, lease_seconds=None,
               checkpoint=self.checkpoint).run_once()  # fmt: skip

    def _log(self) -> StoreLog:
        """The store's log this runner reads; dead letters are retried from it."""
        if not isinstance(self.source, StoreLog):
            msg = "retrying dead letters needs the store's log (Kafka-fed letters are on the dead-letter topic)"
            raise TypeError(msg)
        return self.source


class _Again(Exception):
    """An event failed during a retry: roll back and redo the aggregate without it."""


def _settle(connection: Connection, projection: str, aggregate: str, failed: dict[int, str],
            events: Sequence[ProjectedEvent]) -> None:  # fmt: skip
    """The aggregate's letters after a retry: removed where the event applied, one attempt more where it failed."""
    query = (select(deadletters).where(deadletters.c.projection == projection)
             .where(deadletters.c.originator_id == aggregate))  # fmt: skip
    existing = {row.position: row for row in connection.execute(query)}
    gone = [row.id for position, row in existing.items() if position not in failed]
    if gone:
        connection.execute(delete(deadletters).where(deadletters.c.id.in_(gone)))
    by_position = {event.position: event for event in events}
    for position, error in failed.items():
        row = existing.get(position)
        if row is not None:
            connection.execute(update(deadletters).where(deadletters.c.id == row.id)
                               .values(error=error, attempts=row.attempts + 1, failed_at=utc_now()))  # fmt: skip
        else:
            event = by_position[position]
            connection.execute(deadletters.insert().values(
                projection=projection, position=position, event_type=event.type, originator_id=aggregate,
                error=error, failed_at=utc_now(), attempts=1))  # fmt: skip
