"""Where a replay reads events from, and the cut-offs on either clock.

A source is a ``read(after, limit)`` function returning the stored events
after a position, in store order, like the one projections/runner.py's Runner
takes. The store's notification log is the default; a Kafka reader with the
same shape is the planned second source (``--from kafka``). Cut-offs wrap a
source:

- ``up_to_position``: nothing after a position (what an as-of-recorded cut
  becomes, through the commit clock of the ``event_chain`` table);
- ``occurred_by``: only events that occurred by a moment, however late they
  were recorded. Within one aggregate ``occurred_at`` never goes backwards, so
  this keeps a prefix of every case and patrol.

``within`` is the same test for one event, for callers that hold events rather than a source (the audit of a
case's history).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from replay.chain import event_chain, from_micros, to_micros

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from eventsourcing.persistence import Notification
    from sqlalchemy import Connection

    #: A source of stored events: ``read(after, limit)``, in store order.
    Reader = Callable[[int, int], Sequence[Notification]]


def within(
    position: int | None, occurred_at: str, *, last: int | None = None, occurred: datetime | None = None
) -> bool:
    """Whether an event at ``position`` that occurred at ``occurred_at`` (ISO) is kept by the cut-offs.

    ``last``: the as-of-recorded cut (an event without a position is not kept); ``occurred``: the as-of-occurred
    cut. No cut-off keeps everything.
    """
    if last is not None and (position is None or position > last):
        return False
    return occurred is None or datetime.fromisoformat(occurred_at) <= occurred


def up_to_position(read: Reader, last: int) -> Reader:
    """The source, stopping at position ``last``."""

    def cut(after: int, limit: int) -> Sequence[Notification]:
        if after >= last:
            return []
        return [n for n in read(after, limit) if n.id <= last]

    return cut


def occurred_by(read: Reader, moment: datetime) -> Reader:
    """The source, keeping only events whose ``occurred_at`` is at or before ``moment``."""

    def cut(after: int, limit: int) -> Sequence[Notification]:
        while True:
            found = read(after, limit)
            if not found:
                return []
            kept = [n for n in found if within(n.id, json.loads(n.state)["occurred_at"], occurred=moment)]
            if kept:
                return kept
            after = found[-1].id  # a whole batch of later events: read on

    return cut


class Digest:
    """A running SHA-256 of every event a source handed out: the digest of a replay's inputs."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.events = 0
        self.last = 0

    def wrap(self, read: Reader) -> Reader:
        """The source, feeding this digest (events past the last one seen, once each, in order)."""

        def digesting(after: int, limit: int) -> Sequence[Notification]:
            found = read(after, limit)
            for notification in found:
                if notification.id > self.last:
                    self.hash.update(f"{notification.id}\n{notification.topic}\n".encode())
                    self.hash.update(notification.state)
                    self.hash.update(b"\n")
                    self.events += 1
                    self.last = notification.id
            return found

        return digesting

    def hexdigest(self) -> str:
        """The digest so far."""
        return self.hash.hexdigest()


def head(connection: Connection) -> tuple[int, datetime | None]:
    """The last stored position and its commit time (0 and None for an empty store)."""
    row = connection.execute(
        select(event_chain.c.position, event_chain.c.committed_at).order_by(event_chain.c.position.desc()).limit(1)
    ).first()
    if row is None:
        return 0, None
    return int(row.position), from_micros(int(row.committed_at))


def position_known_at(connection: Connection, moment: datetime) -> int:
    """The last position the store had committed at ``moment`` (0 if none): the as-of-recorded cut."""
    found = connection.execute(
        select(func.max(event_chain.c.position)).where(event_chain.c.committed_at <= to_micros(moment))
    ).scalar()
    return int(found or 0)
