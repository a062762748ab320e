"""Keeps projections up to date with the store's notification log, exactly once.

Each batch of events is applied per projection in one SQL transaction that
also moves the projection's position, so a crash anywhere leaves either the
whole batch or none of it, and a re-delivered event (at or below the position)
changes nothing. Only one runner per projection works at a time: it holds a
lease row it renews every batch; another runner waits for the lease to expire
or be released. An event a projection cannot apply goes to the dead-letter
table with its error and the runner carries on.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError

from projections import lease
from projections.events import decode
from projections.sql import bookkeeping, deadletters, positions, upsert, upsert_values

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from eventsourcing.persistence import Notification
    from sqlalchemy import Connection, Engine

    from projections.base import Projection
    from projections.events import ProjectedEvent

log = structlog.get_logger("gridcase.projections")


@dataclass
class RunStats:
    """What a run did."""

    events: int = 0
    batches: int = 0
    deadlettered: int = 0
    position: int = 0
    seconds: float = 0.0
    per_projection: dict[str, int] = field(default_factory=dict)


class LeaseHeld(RuntimeError):
    """Another runner holds the lease."""


class Runner:
    """Applies stored events to projections in batches, in store order."""

    def __init__(
        self,
        engine: Engine,
        read: Callable[[int, int], Sequence[Notification]],
        projections: Sequence[Projection],
        *,
        batch_size: int = 25_000,
        lease_seconds: float = 15.0,
        owner: str | None = None,
    ) -> None:
        self.engine = engine
        self.read = read
        self.projections = list(projections)
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self._renewed = float("-inf")

    # -- set-up -----------------------------------------------------------------

    def create_tables(self) -> None:
        """Create the bookkeeping and read-model tables if missing."""
        for attempt in range(10):
            try:
                with self.engine.begin() as connection:
                    bookkeeping.create_all(connection)
                    for projection in self.projections:
                        projection.metadata.create_all(connection)
                    # A position row from the start, so a batch can lock it (FOR UPDATE on PostgreSQL).
                    rows = [(p.name, 0, _now()) for p in self.projections]
                    upsert_values(connection, positions, rows, keep=True)
            except DBAPIError:
                # Another runner is creating the same tables at this moment: theirs will do.
                if attempt == 9:  # noqa: PLR2004
                    raise
                time.sleep(0.2 * (attempt + 1))
            else:
                return

    def position(self, name: str) -> int:
        """How far a projection has got."""
        with self.engine.connect() as connection:
            return _position(connection, name)

    # -- leases -----------------------------------------------------------------

    def _acquire(self, name: str) -> bool:
        return lease.acquire(self.engine, name, self.owner, self.lease_seconds)

    def _renew_leases(self) -> None:
        """Renew the leases once a third of their time has gone (not every batch: each renewal is a commit)."""
        now = time.monotonic()
        if now - self._renewed < self.lease_seconds / 3:
            return
        for projection in self.projections:
            if not self._acquire(projection.name):
                msg = f"lost the lease of {projection.name}"
                raise LeaseHeld(msg)
        self._renewed = now

    def release(self) -> None:
        """Give up this runner's leases so another may start at once."""
        lease.release(self.engine, self.owner)

    def wait_for_leases(self, timeout: float | None = None, poll: float = 1.0) -> None:
        """Block until this runner holds every projection's lease (another runner may hold them now)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            held = [p.name for p in self.projections if not self._acquire(p.name)]
            if not held:
                self._renewed = time.monotonic()
                return
            if deadline is not None and time.monotonic() > deadline:
                msg = f"projections {', '.join(held)} are being run by another runner"
                raise LeaseHeld(msg)
            log.info("waiting for lease", projections=held)
            time.sleep(poll)

    # -- running ----------------------------------------------------------------

    def run_once(
        self, *, progress: Callable[[RunStats], None] | None = None, lease_timeout: float | None = None
    ) -> RunStats:
        """Catch up with the store, then return."""
        self.wait_for_leases(lease_timeout)
        started = time.perf_counter()
        stats = RunStats()
        while self._batch(stats):
            if progress is not None:
                progress(stats)
        stats.seconds = time.perf_counter() - started
        return stats

    def follow(self, *, poll: float = 0.5, stop: Callable[[], bool] = lambda: False,
               progress: Callable[[RunStats], None] | None = None) -> RunStats:  # fmt: skip
        """Keep applying new events as they are stored, until ``stop()`` says so."""
        stats = RunStats()
        started = time.perf_counter()
        while not stop():
            self.wait_for_leases()
            if self._batch(stats):
                if progress is not None:
                    progress(stats)
            else:
                time.sleep(poll)
        stats.seconds = time.perf_counter() - started
        return stats

    def _batch(self, stats: RunStats) -> bool:
        """Apply the next batch to every projection that is behind; False when all are caught up."""
        with self.engine.connect() as connection:
            done = {p.name: _position(connection, p.name) for p in self.projections}
        start = min(done.values()) if done else 0
        notifications = self.read(start, self.batch_size)
        if not notifications:
            return False
        # At-least-once transports re-send: keep one of each position, in store order.
        unique = {n.id: n for n in notifications}
        events = [decode(unique[position]) for position in sorted(unique)]
        last = events[-1].position
        self._renew_leases()
        for projection in self.projections:
            mine = [e for e in events if e.position > done[projection.name] and e.type in projection.handles]
            applied, dead = self._apply(projection, mine, last)
            stats.deadlettered += dead
            stats.per_projection[projection.name] = stats.per_projection.get(projection.name, 0) + applied
        stats.events += len(events)
        stats.batches += 1
        stats.position = last
        log.info("batch", position=last, events=len(events))
        return True

    def _apply(self, projection: Projection, events: list[ProjectedEvent], last: int) -> tuple[int, int]:
        """One transaction: the batch's changes, its dead letters and the new position; retried around failures.

        The batch is folded in memory first, without holding the write lock; then the lock is taken (FOR UPDATE
        on PostgreSQL, BEGIN IMMEDIATE on SQLite, which ignores FOR UPDATE) and the position read again. If
        another runner moved it meanwhile (this one's lease lapsed during a long pause), the work is thrown away
        and redone from the new position: a batch is never applied twice.
        """
        failed: dict[int, tuple[ProjectedEvent, str]] = {}
        while True:
            try:
                with self.engine.connect() as connection:
                    current = _position(connection, projection.name)
                    todo = [e for e in events if e.position > current and e.position not in failed]
                    projection.prepare(connection, todo)
                    for event in todo:
                        try:
                            projection.apply(connection, event)
                        except Exception:  # noqa: BLE001 - any failure of one event must not stop the others
                            failed[event.position] = (event, traceback.format_exc(limit=3))
                            raise _Retry from None
                    connection.rollback()  # end the reads; the writes get a transaction of their own
                    if connection.dialect.name == "sqlite":
                        connection.exec_driver_sql("BEGIN IMMEDIATE")
                    if _position(connection, projection.name, lock=True) != current:
                        raise _Moved  # noqa: TRY301 - handled just below, like a failed event
                    projection.flush(connection)
                    _dead_letter(connection, projection.name, failed.values())
                    upsert(
                        connection,
                        positions,
                        [{"name": projection.name, "position": max(last, current), "updated_at": _now()}],
                    )
                    connection.commit()
                    return len(todo), len(failed)
            except _Retry:
                projection.discard()
                log.warning("dead-lettered", projection=projection.name, position=max(failed))
            except _Moved:
                projection.discard()
                log.warning("another runner moved on: redoing the batch", projection=projection.name)
            except BaseException:
                projection.discard()
                raise

    def retry_deadletters(self, fetch: Callable[[int], Notification | None]) -> tuple[int, int]:
        """Apply each dead-lettered event again, oldest first; (applied, still failing)."""
        applied = failing = 0
        with self.engine.connect() as connection:
            letters = connection.execute(select(deadletters).order_by(deadletters.c.position)).mappings().all()
        by_name = {p.name: p for p in self.projections}
        for letter in letters:
            projection = by_name.get(letter["projection"])
            notification = fetch(letter["position"])
            if projection is None or notification is None:
                continue
            event = decode(notification)
            try:
                with self.engine.begin() as connection:
                    projection.apply(connection, event)
                    projection.flush(connection)
                    connection.execute(delete(deadletters).where(deadletters.c.id == letter["id"]))
                applied += 1
            except Exception:  # noqa: BLE001 - report and keep the letter
                projection.discard()
                failing += 1
                with self.engine.begin() as connection:
                    connection.execute(
                        update(deadletters)
                        .where(deadletters.c.id == letter["id"])
                        .values(error=traceback.format_exc(limit=3), attempts=letter["attempts"] + 1, failed_at=_now())
                    )
        return applied, failing


class _Retry(Exception):
    """An event failed: roll back and redo the batch without it."""


class _Moved(Exception):
    """Another runner applied events meanwhile: redo the batch from the new position."""


def _position(connection: Connection, name: str, *, lock: bool = False) -> int:
    query = select(positions.c.position).where(positions.c.name == name)
    found = connection.execute(query.with_for_update() if lock else query).scalar()
    return int(found or 0)


def _dead_letter(connection: Connection, name: str, failures: object) -> None:
    rows = [
        {"projection": name, "position": event.position, "event_type": event.type,
         "originator_id": event.originator_id, "error": error, "failed_at": _now(), "attempts": 1}
        for event, error in failures  # type: ignore[attr-defined]
    ]  # fmt: skip
    if rows:
        connection.execute(deadletters.insert(), rows)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
