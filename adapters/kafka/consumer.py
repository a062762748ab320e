"""Kafka-fed projections: the same read models as the store-fed runner, built from the topics.

The consumer reads assigned partitions (no consumer group: joins are slow and the offsets live in the read model's
database anyway). For each projection, one SQL transaction holds a batch's changes and the next offset of every
partition the batch touched, so each message is applied exactly once across crashes and redeliveries.

Several processes share the partitions with ``member=(i, n)``: process *i* takes the case and patrol partitions
whose number is *i* modulo *n*, and every process reads the whole (small) registry topic, keeping its own offsets
for it. That is enough because every read-model row is either one aggregate's own (all of whose events are on one
partition, in order) or an additive count, and registry rows are set, not added, so applying them in several
processes gives the same rows.

A message that cannot be decoded goes to ``gridcase.deadletter`` with the error in its headers; so does one that a
projection fails to apply (with the projection's name). The consumer moves on either way.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import structlog
from eventsourcing.utils import get_topic
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, select

from adapters.kafka.published import ADDED_FIELDS, DEADLETTER_TOPIC, TOPICS, event_classes, parse_ce_type
from adapters.kafka.relay import POSITION_HEADER, ensure_topics
from projections.events import projected
from projections.sql import bookkeeping, upsert

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from kafka.consumer.fetcher import ConsumerRecord
    from sqlalchemy import Connection, Engine

    from projections.base import Projection
    from projections.events import ProjectedEvent

log = structlog.get_logger("gridcase.kafka")

offsets_metadata = MetaData()
#: The next offset to read, per projection and partition. ``scope`` is "" for a partition one process owns, and
#: "i/n" for the registry partitions every member reads.
kafka_offsets = Table(
    "kafka_offsets",
    offsets_metadata,
    Column("projection", String(64), primary_key=True),
    Column("topic", String(128), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("scope", String(16), primary_key=True),
    Column("next_offset", Integer, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
SHARED_TOPIC = TOPICS["OrgUnit"]
PartitionKey = tuple[str, int]


@dataclass
class ConsumeStats:
    """What a consumer run did."""

    messages: int = 0
    applied: int = 0
    deadlettered: int = 0
    batches: int = 0
    seconds: float = 0.0
    position: int = 0
    per_projection: dict[str, int] = field(default_factory=dict)


class Poison(ValueError):
    """A message that is not a gridcase event."""


def to_event(message: ConsumerRecord) -> ProjectedEvent:
    """The event a message carries, as the store-fed runner would have decoded it; Poison if it cannot be."""
    headers = dict(message.headers or ())
    try:
        position = int(headers[POSITION_HEADER])
        name, version = parse_ce_type(headers["ce_type"].decode())
        value = json.loads(message.value)
        if not isinstance(value, dict):
            msg = f"value is a JSON {type(value).__name__}, not an object"
            raise TypeError(msg)  # noqa: TRY301 - reported as Poison like the others
        originator = str(UUID(hex=value["originator_id"]))
        originator_version = int(value["originator_version"])
        _, cls = event_classes()[name]
        if int(value.get("class_version", 1)) != version:
            msg = f"ce_type says v{version}, the value says v{value.get('class_version', 1)}"
            raise ValueError(msg)  # noqa: TRY301
        for added in ADDED_FIELDS:
            value.pop(added, None)
        return projected(position, get_topic(cls), originator, originator_version, value)
    except (KeyError, ValueError, TypeError, UnicodeDecodeError) as error:
        detail = f"missing {error}" if isinstance(error, KeyError) else str(error)
        msg = f"{message.topic}[{message.partition}]@{message.offset}: not a gridcase event: {detail}"
        raise Poison(msg) from error


class KafkaProjector:
    """Applies the topics' events to projections, a batch per transaction, offsets stored beside the rows."""

    def __init__(
        self,
        engine: Engine,
        config: dict[str, Any],
        projections: Sequence[Projection],
        *,
        member: tuple[int, int] = (0, 1),
        batch_size: int = 10_000,
        partitions: int = 6,
    ) -> None:
        index, count = member
        if count < 1 or not 0 <= index < count:
            msg = f"member {index}/{count}: needs 0 <= i < n"
            raise ValueError(msg)
        self.engine = engine
        self.config = config
        self.projections = list(projections)
        self.member = member
        self.batch_size = batch_size
        self.partitions = partitions
        self.scope_shared = f"{index}/{count}"
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        self.assigned: list[TopicPartition] = []

    # -- set-up -----------------------------------------------------------------

    def start(self) -> None:
        """Create tables and topics if missing, take this member's partitions, seek to the stored offsets."""
        for attempt in range(10):
            try:
                with self.engine.begin() as connection:
                    bookkeeping.create_all(connection)
                    offsets_metadata.create_all(connection)
                    for projection in self.projections:
                        projection.metadata.create_all(connection)
                break
            except Exception:
                if attempt == 9:  # noqa: PLR2004
                    raise
                time.sleep(0.2 * (attempt + 1))  # another process is creating the same tables
        ensure_topics(self.config, self.partitions, [*sorted(set(TOPICS.values())), DEADLETTER_TOPIC])
        consumer = KafkaConsumer(
            **self.config,
            group_id=None,
            enable_auto_commit=False,
            max_poll_records=self.batch_size,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        index, count = self.member
        assigned = [
            TopicPartition(topic, partition)
            for topic in sorted(set(TOPICS.values()))
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
            if topic == SHARED_TOPIC or partition % count == index
        ]
        consumer.assign(assigned)
        self.assigned = assigned
        stored = self._offsets()
        for tp in assigned:
            consumer.seek(tp, min(stored.get((p.name, *self._key(tp)), 0) for p in self.projections))
        self.assigned = assigned
        self._consumer = consumer
        self._producer = KafkaProducer(**self.config, acks="all", linger_ms=5)

    def close(self) -> None:
        """Close the Kafka clients."""
        if self._producer is not None:
            self._producer.flush()
            self._producer.close()
        if self._consumer is not None:
            self._consumer.close()
        self._producer = self._consumer = None

    def _key(self, tp: TopicPartition) -> tuple[str, int, str]:
        return tp.topic, tp.partition, self.scope_shared if tp.topic == SHARED_TOPIC else ""

    def _offsets(
        self, connection: Connection | None = None, *, projection: str | None = None, lock: bool = False
    ) -> dict[tuple[str, str, int, str], int]:
        """Stored next offsets of this member's partitions (of one projection, or all)."""
        query = select(kafka_offsets).where(kafka_offsets.c.scope.in_(["", self.scope_shared]))
        if projection is not None:
            query = query.where(kafka_offsets.c.projection == projection)
        if lock:
            query = query.with_for_update()
        if connection is None:
            with self.engine.connect() as fresh:
                rows = fresh.execute(query).all()
        else:
            rows = connection.execute(query).all()
        mine = {self._key(tp) for tp in self.assigned}
        return {
            (r.projection, r.topic, r.partition, r.scope): r.next_offset
            for r in rows
            if (r.topic, r.partition, r.scope) in mine
        }

    # -- running ----------------------------------------------------------------

    def run_once(self, *, progress: Callable[[ConsumeStats], None] | None = None) -> ConsumeStats:
        """Consume up to the end of every assigned partition, then return."""
        started = time.perf_counter()
        stats = ConsumeStats()
        while self._batch(stats, wait_ms=500):
            if progress is not None:
                progress(stats)
        stats.seconds = time.perf_counter() - started
        return stats

    def follow(self, *, stop: Callable[[], bool] = lambda: False,
               progress: Callable[[ConsumeStats], None] | None = None) -> ConsumeStats:  # fmt: skip
        """Keep consuming until ``stop()`` says so."""
        started = time.perf_counter()
        stats = ConsumeStats()
        while not stop():
            if self._batch(stats, wait_ms=500, until_end=False) and progress is not None:
                progress(stats)
        stats.seconds = time.perf_counter() - started
        return stats

    def caught_up(self) -> bool:
        """Whether every assigned partition has been read to its high-water mark."""
        consumer = self._require()
        for tp in self.assigned:
            high = consumer.highwater(tp)
            if high is None or consumer.position(tp) < high:
                return False
        return True

    def _require(self) -> KafkaConsumer:
        if self._consumer is None:
            msg = "call start() first"
            raise RuntimeError(msg)
        return self._consumer

    def _poll(self, wait_ms: int, *, until_end: bool) -> list[ConsumerRecord]:
        """Up to a batch of messages; in catch-up mode, an empty list only once every partition is at its end."""
        consumer = self._require()
        records: list[ConsumerRecord] = []
        empty = 0
        while len(records) < self.batch_size:
            got = consumer.poll(timeout_ms=wait_ms if not records else 50, max_records=self.batch_size - len(records))
            if got:
                for messages in got.values():
                    records.extend(messages)
                continue
            if records or not until_end or self.caught_up():
                break
            empty += 1
            if empty >= 20:  # noqa: PLR2004 - ten seconds without a message nor a high-water mark: give up waiting
                log.warning("no high-water mark from the broker; stopping")
                break
        return records

    def _batch(self, stats: ConsumeStats, *, wait_ms: int, until_end: bool = True) -> bool:
        records = self._poll(wait_ms, until_end=until_end)
        if not records:
            return False
        events: list[tuple[ConsumerRecord, ProjectedEvent]] = []
        poison: list[tuple[ConsumerRecord, str, str]] = []
        for record in records:
            try:
                events.append((record, to_event(record)))
            except Poison as error:
                poison.append((record, str(error), ""))
        # Store order across partitions (per partition it already is): the same order the store-fed runner sees.
        events.sort(key=lambda pair: pair[1].position)
        ends: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            ends[tp] = max(ends.get(tp, 0), record.offset + 1)
        if poison:
            self._dead_letter(poison)
        for projection in self.projections:
            applied, failed = self._apply(projection, events, ends)
            stats.per_projection[projection.name] = stats.per_projection.get(projection.name, 0) + applied
            stats.applied += applied
            if failed:
                self._dead_letter(failed)
                stats.deadlettered += len(failed)
        stats.messages += len(records)
        stats.deadlettered += len(poison)
        stats.batches += 1
        if events:
            stats.position = max(stats.position, events[-1][1].position)
        log.info("consumed", messages=len(records), position=stats.position)
        return True

    def _apply(
        self,
        projection: Projection,
        events: list[tuple[ConsumerRecord, ProjectedEvent]],
        ends: dict[TopicPartition, int],
    ) -> tuple[int, list[tuple[ConsumerRecord, str, str]]]:
        """One transaction: the projection's share of the batch and the new offsets; redone around failures."""
        failed: dict[tuple[str, int, int], tuple[ConsumerRecord, str, str]] = {}
        while True:
            try:
                with self.engine.connect() as connection:
                    done = self._offsets(connection, projection=projection.name)
                    todo = self._todo(projection, events, done, failed)
                    projection.prepare(connection, [event for _, event in todo])
                    for record, event in todo:
                        try:
                            projection.apply(connection, event)
                        except Exception:  # noqa: BLE001 - one failing event must not stop the others
                            where = (record.topic, record.partition, record.offset)
                            failed[where] = (record, traceback.format_exc(limit=3), projection.name)
                            raise _Retry from None
                    connection.rollback()
                    if connection.dialect.name == "sqlite":
                        connection.exec_driver_sql("BEGIN IMMEDIATE")
                    if self._offsets(connection, projection=projection.name, lock=True) != done:
                        raise _Moved  # noqa: TRY301 - another process applied some of these meanwhile
                    projection.flush(connection)
                    now = datetime.now(UTC).replace(tzinfo=None)
                    rows = []
                    for tp, end in ends.items():
                        topic, partition, scope = self._key(tp)
                        if end > done.get((projection.name, topic, partition, scope), 0):
                            rows.append({"projection": projection.name, "topic": topic, "partition": partition,
                                         "scope": scope, "next_offset": end, "updated_at": now})  # fmt: skip
                    upsert(connection, kafka_offsets, rows)
                    connection.commit()
                    return len(todo), list(failed.values())
            except (_Retry, _Moved):
                projection.discard()
            except BaseException:
                projection.discard()
                raise

    def _todo(
        self,
        projection: Projection,
        events: list[tuple[ConsumerRecord, ProjectedEvent]],
        done: dict[tuple[str, str, int, str], int],
        failed: dict[tuple[str, int, int], Any],
    ) -> list[tuple[ConsumerRecord, ProjectedEvent]]:
        todo = []
        for record, event in events:
            if event.type not in projection.handles or (record.topic, record.partition, record.offset) in failed:
                continue
            key = (projection.name, *self._key(TopicPartition(record.topic, record.partition)))
            if record.offset >= done.get(key, 0):
                todo.append((record, event))
        return todo

    def _dead_letter(self, letters: list[tuple[ConsumerRecord, str, str]]) -> None:
        """Send each message to the dead-letter topic, with where it came from and why it failed."""
        producer = self._producer
        if producer is None:
            return
        for record, error, projection in letters:
            headers = [
                *(record.headers or ()),
                ("gridcase_error", error.encode()[-4000:]),
                ("gridcase_source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
                ("gridcase_projection", projection.encode()),
            ]
            producer.send(DEADLETTER_TOPIC, key=record.key, value=record.value, headers=headers)
            log.warning("dead-lettered", source=f"{record.topic}/{record.partition}/{record.offset}", error=error[:200])
        producer.flush()


class _Retry(Exception):
    """An event failed: roll back and redo the batch without it."""


class _Moved(Exception):
    """Another process applied events meanwhile: redo the batch from the new offsets."""
