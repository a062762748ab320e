"""The unit of work: aggregates loaded once per batch, and everything a batch changed saved in one transaction.

It is also the last line of defence for what goes on Kafka: an event that would not fit in one message is
refused before anything is stored (:class:`EventTooLarge`), whatever the field bounds let through.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar, cast

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from domain.base import Aggregate
from domain.errors import UnknownReference
from service.errors import BadInput, ConcurrentChange

if TYPE_CHECKING:
    from collections.abc import Iterator
    from uuid import UUID

    from service.ports import EventStore

A = TypeVar("A", bound=Aggregate)

#: What publishing adds, at most, to an event's stored JSON: the CloudEvents headers and the store position
#: (about 0.5 KB), the aggregate id and version the published form adds (about 0.1 KB), the message key and
#: Kafka's record overhead (about 0.1 KB), and the headers a projector adds when it dead-letters the message
#: (up to about 4.2 KB), rounded up. docs/kafka.md, "Oversized events".
ENVELOPE_MARGIN = 8_192
#: The default limit: safely below Kafka's default 1 MiB ``message.max.bytes``.
DEFAULT_MAX_EVENT_BYTES = 900_000


class EventTooLarge(BadInput):
    """An event that would be larger on Kafka than the limit: the command is refused, nothing is stored."""

    def __init__(self, event: str, size: int, limit: int) -> None:
        self.event, self.size, self.limit = event, size, limit
        shown, limit_shown = readable_size(size), readable_size(limit)
        if shown == limit_shown:
            shown, limit_shown = f"{size:,} bytes", f"{limit:,} bytes"
        super().__init__(f"the event {event} would be {shown}; the limit is {limit_shown}")


_KB = 1_000
_MB = 1_000_000


def readable_size(size: int) -> str:
    """A size as people read it: ``880 bytes``, ``900 KB``, ``1.3 MB`` (decimal units, rounded)."""
    if size < _KB:
        return f"{size} bytes"
    if size < _MB:
        return f"{size / _KB:.0f} KB"
    return f"{size / _MB:.1f} MB"


_META = {"originator_id", "originator_version"}


def published_size(event: Aggregate.Event) -> int:
    """What the event will weigh as a Kafka message: its stored JSON plus the margin.

    pydantic's own compact JSON has the length of the store's (sorted keys and Python's ``json`` do not change
    it, bar a float's exponent, which the margin covers) at a quarter of the cost. Text it cannot encode (a lone
    surrogate) is measured the slow way, so the guard is never what fails on it.
    """
    try:
        return len(event.model_dump_json(exclude=_META).encode()) + ENVELOPE_MARGIN
    except ValueError:
        state = event.model_dump(mode="json", exclude=_META)
        stored = json.dumps(state, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return len(stored.encode(errors="surrogatepass")) + ENVELOPE_MARGIN


class UnitOfWork:
    """Loads and saves aggregates; inside :meth:`batch` saves are collected and written together at its end."""

    def __init__(self, store: EventStore, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.store = store
        #: The largest event, as it will be published, that may be stored (the settings' GRIDCASE_MAX_EVENT_BYTES).
        self.max_event_bytes = max_event_bytes
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
        """Store the aggregates' new events now, or at the end of the batch; EventTooLarge if one would not fit."""
        self.check_sizes(aggregates)
        if self._pending is not None:
            for aggregate in aggregates:
                self._pending[aggregate.id] = aggregate
            return
        try:
            self.store.save(*aggregates)
        except IntegrityError as error:
            raise ConcurrentChange(str(error)) from error

    def check_sizes(self, aggregates: tuple[Aggregate, ...]) -> None:
        """Refuse the save if one of the new events would be larger on Kafka than ``max_event_bytes``."""
        for aggregate in aggregates:
            for event in aggregate.pending_events:
                size = published_size(cast("Aggregate.Event", event))
                if size > self.max_event_bytes:
                    raise EventTooLarge(type(event).__name__, size, self.max_event_bytes)
