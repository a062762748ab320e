"""Kafka-fed projections: the same read models as the store-fed runner, built from the topics.

The projector is the one runner (projections/runner.py) with a Kafka source (:class:`AssignedPartitions`) and an
offsets checkpoint (:class:`KafkaOffsets`). The consumer reads assigned partitions (no consumer group: joins are
slow and the offsets live in the read model's database anyway). For each projection, one SQL transaction holds a
batch's changes and the next offset of every partition the batch touched, so each message is applied exactly once
across crashes and redeliveries (projections/batch.py).

Several processes share the partitions with ``member=(i, n)``: process *i* takes the case and patrol partitions
whose number is *i* modulo *n*, and every process reads the whole (small) registry topic, keeping its own offsets
for it. That is enough because every read-model row is either one aggregate's own (all of whose events are on one
partition, in order) or an additive count, and registry rows are set, not added, so applying them in several
processes gives the same rows.

A message that cannot be decoded goes to ``gridcase.deadletter`` with the error in its headers; so does one that a
projection fails to apply (with the projection's name), confirmed by Kafka before the offsets that skip it are
committed. The consumer moves on either way.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import structlog
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, select

from adapters.kafka.message import Poison, dead_letter_headers, decode
from adapters.kafka.published import DEADLETTER_TOPIC, TOPICS
from adapters.kafka.relay import ensure_topics
from projections.batch import Batch, Checkpoint, Failure, RunStats, Source
from projections.runner import Runner
from projections.sql import upsert, upsert_values, utc_now

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kafka.consumer.fetcher import ConsumerRecord
    from sqlalchemy import Connection, Engine

    from projections.base import Projection
    from projections.events import ProjectedEvent

__all__ = ["AssignedPartitions", "ConsumeStats", "DeadLetters", "KafkaOffsets", "KafkaProjector", "Poison",
           "kafka_offsets", "offsets_metadata"]  # fmt: skip

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
    Column("next_offset", BigInteger, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
SHARED_TOPIC = TOPICS["OrgUnit"]
#: A partition as the offsets table names it: topic, partition, scope.
OffsetKey = tuple[str, int, str]
#: Where a batch ends: the next offset of every partition it read.
Ends = dict[TopicPartition, int]
#: What a Kafka-fed run did (the same stats as the store-fed runner's; ``messages`` is ``events``).
ConsumeStats = RunStats


class DeadLetters:
    """The dead-letter topic: a message sent there is confirmed by Kafka before the caller goes on."""

    def __init__(self) -> None:
        self.producer: KafkaProducer | None = None

    def send(self, letters: Sequence[tuple[ConsumerRecord, str, str]]) -> None:
        """Send each (message, error, projection) with where it came from and why it failed; raise if one is lost."""
        producer = self.producer
        if producer is None or not letters:
            return
        futures = []
        for record, error, projection in letters:
            headers = dead_letter_headers(record, error, projection)
            futures.append(producer.send(DEADLETTER_TOPIC, key=record.key, value=record.value, headers=headers))
            log.warning("dead-lettered", source=f"{record.topic}/{record.partition}/{record.offset}", error=error[:200])
        producer.flush(timeout=30)
        lost = [future for future in futures if not future.succeeded()]
        if lost:
            msg = f"Kafka did not take {len(lost)} dead letters ({lost[0].exception!r}): the batch is not committed"
            raise RuntimeError(msg)


class KafkaOffsets(Checkpoint["ConsumerRecord", dict[OffsetKey, int], Ends]):
    """A projection's checkpoint as the next offset of each partition this member reads (``kafka_offsets``)."""

    tables = (offsets_metadata,)

    def __init__(self, member: tuple[int, int], dead_letters: DeadLetters) -> None:
        self.scope_shared = f"{member[0]}/{member[1]}"
        self.dead_letters = dead_letters
        self.assigned: list[TopicPartition] = []

    def key(self, topic: str, partition: int) -> OffsetKey:
        """How the offsets table names a partition (the shared registry partitions per member)."""
        return topic, partition, self.scope_shared if topic == SHARED_TOPIC else ""

    def done(self, connection: Connection, projection: str, *, lock: bool = False) -> dict[OffsetKey, int]:
        """Stored next offsets of this member's partitions."""
        query = (
            select(kafka_offsets)
            .where(kafka_offsets.c.scope.in_(["", self.scope_shared]))
            .where(kafka_offsets.c.projection == projection)
        )
        rows = connection.execute(query.with_for_update() if lock else query).all()
        mine = {self.key(tp.topic, tp.partition) for tp in self.assigned}
        found = {(r.topic, r.partition, r.scope): r.next_offset for r in rows}
        return {key: offset for key, offset in found.items() if key in mine}

    def pending(self, done: dict[OffsetKey, int], place: ConsumerRecord) -> bool:
        """At or past the partition's next offset."""
        return bool(place.offset >= done.get(self.key(place.topic, place.partition), 0))

    def advance(self, connection: Connection, projection: str, done: dict[OffsetKey, int], end: Ends) -> None:
        """The next offset of every partition the batch moved forward."""
        now = utc_now()
        rows = []
        for tp, next_offset in end.items():
            topic, partition, scope = self.key(tp.topic, tp.partition)
            if next_offset > done.get((topic, partition, scope), 0):
                rows.append({"projection": projection, "topic": topic, "partition": partition,
                             "scope": scope, "next_offset": next_offset, "updated_at": now})  # fmt: skip
        upsert(connection, kafka_offsets, rows)

    def dead_letter(self, connection: Connection, projection: str, failures: Sequence[Failure[ConsumerRecord]]) -> None:  # noqa: ARG002
        """On the dead-letter topic before the offsets that skip them commit: at least once."""
        self.dead_letters.send([(f.place, f.error, projection) for f in failures])

    def seed(self, connection: Connection, projections: Sequence[str]) -> None:
        """An offset row (at 0 if new) for every partition and projection this member reads.

        The batch transaction locks these rows to check no other process moved them; a row that does not exist
        cannot be locked (PostgreSQL's FOR UPDATE locks nothing), so they are created before the first batch.
        """
        now = utc_now()
        rows = [(name, *self.key(tp.topic, tp.partition), 0, now) for name in projections for tp in self.assigned]
        upsert_values(connection, kafka_offsets, rows, keep=True)


class AssignedPartitions(Source["ConsumerRecord", Ends]):
    """The member's partitions as a runner's source: batches of decoded events, in store order."""

    #: A poll waits for messages itself.
    idle_poll = 0.0

    def __init__(self, batch_size: int, dead_letters: DeadLetters, wait_ms: int = 500) -> None:
        self.batch_size = batch_size
        self.dead_letters = dead_letters
        self.wait_ms = wait_ms
        self.consumer: KafkaConsumer | None = None
        self.assigned: list[TopicPartition] = []

    def next_batch(self, *, until_end: bool = True) -> Batch[ConsumerRecord, Ends] | None:
        """Up to a batch of messages; messages that are not events go to the dead-letter topic at once."""
        records = self._poll(until_end=until_end)
        if not records:
            return None
        events: list[tuple[ConsumerRecord, ProjectedEvent]] = []
        poison: list[tuple[ConsumerRecord, str, str]] = []
        for record in records:
            try:
                events.append((record, decode(record).event()))
            except Poison as error:
                poison.append((record, str(error), ""))
        # Store order across partitions (per partition it already is): the same order the store-fed runner sees.
        events.sort(key=lambda pair: pair[1].position)
        ends: Ends = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            ends[tp] = max(ends.get(tp, 0), record.offset + 1)
        self.dead_letters.send(poison)
        return Batch(events, ends, len(records), rejected=len(poison))

    def caught_up(self) -> bool:
        """Whether every assigned partition has been read to its high-water mark."""
        consumer = self._require()
        for tp in self.assigned:
            high = consumer.highwater(tp)
            if high is None or consumer.position(tp) < high:
                return False
        return True

    def _require(self) -> KafkaConsumer:
        if self.consumer is None:
            msg = "call start() first"
            raise RuntimeError(msg)
        return self.consumer

    def _poll(self, *, until_end: bool) -> list[ConsumerRecord]:
        """Up to a batch of messages; in catch-up mode, an empty list only once every partition is at its end."""
        consumer = self._require()
        records: list[ConsumerRecord] = []
        empty = 0
        while len(records) < self.batch_size:
            wait = self.wait_ms if not records else 50
            got = consumer.poll(timeout_ms=wait, max_records=self.batch_size - len(records))
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


class KafkaProjector(Runner):
    """The runner fed from the topics: a batch per transaction, offsets stored beside the rows."""

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
        self.config = config
        self.member = member
        self.partitions = partitions
        self.dead_letters = DeadLetters()
        self.feed = AssignedPartitions(batch_size, self.dead_letters)
        self.offsets = KafkaOffsets(member, self.dead_letters)
        self.scope_shared = self.offsets.scope_shared
        super().__init__(
            engine, self.feed, projections, batch_size=batch_size, lease_seconds=None, checkpoint=self.offsets
        )

    @property
    def assigned(self) -> list[TopicPartition]:
        """The partitions this member reads."""
        return self.feed.assigned

    def start(self) -> None:
        """Create tables and topics if missing, take this member's partitions, seek to the stored offsets."""
        self.create_tables()
        ensure_topics(self.config, self.partitions, [*sorted(set(TOPICS.values())), DEADLETTER_TOPIC])
        consumer = reading_consumer(self.config, self.batch_size)
        index, count = self.member
        assigned = [
            TopicPartition(topic, partition)
            for topic in sorted(set(TOPICS.values()))
            for partition in _partitions(consumer, topic)
            if topic == SHARED_TOPIC or partition % count == index
        ]
        consumer.assign(assigned)
        self.feed.assigned = self.offsets.assigned = assigned
        names = [p.name for p in self.projections]
        with self.engine.begin() as connection:
            self.offsets.seed(connection, names)
        with self.engine.connect() as connection:
            stored = [self.offsets.done(connection, name) for name in names]
        for tp in assigned:
            key = self.offsets.key(tp.topic, tp.partition)
            consumer.seek(tp, min(done.get(key, 0) for done in stored))
        self.feed.consumer = consumer
        self.dead_letters.producer = KafkaProducer(**self.config, acks="all", linger_ms=5)

    def caught_up(self) -> bool:
        """Whether every assigned partition has been read to its high-water mark."""
        return self.feed.caught_up()

    def close(self) -> None:
        """Close the Kafka clients."""
        producer, consumer = self.dead_letters.producer, self.feed.consumer
        if producer is not None:
            producer.flush()
            producer.close()
        if consumer is not None:
            consumer.close()
        self.dead_letters.producer = self.feed.consumer = None


def reading_consumer(config: dict[str, Any], batch_size: int) -> KafkaConsumer:
    """A consumer for assigned partitions (no group, offsets kept by the caller), fetching large batches."""
    return KafkaConsumer(
        **config,
        group_id=None,
        enable_auto_commit=False,
        max_poll_records=batch_size,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )


def _partitions(consumer: KafkaConsumer, topic: str, wait: float = 30.0) -> list[int]:
    """A topic's partitions; a topic created a moment ago may not show them at once, so wait a little."""
    deadline = time.monotonic() + wait
    while not (found := consumer.partitions_for_topic(topic)):
        if time.monotonic() > deadline:
            msg = f"topic {topic} has no partitions after {wait:.0f} s"
            raise TimeoutError(msg)
        time.sleep(0.2)
    return sorted(found)
