"""The relay: publishes every stored event to Kafka, in store order, keyed by aggregate id, exactly once.

How "exactly once" holds across crashes without Kafka transactions (docs/kafka.md):

- The relay computes each event's partition itself (murmur2 of the key, as Kafka's default partitioner does) and
  sends with the idempotent producer (``acks=all``, ``enable_idempotence``), so within one partition messages land
  in send order, with no duplicates from the producer's own retries.
- It publishes the store in batches of at most ``MAX_BATCH`` positions and flushes each batch (waits for every
  acknowledgement) before reading the next.
- On start-up it reads the last message of every partition back from Kafka and takes its ``gridcase_position``
  header. Everything at or below the start of the batch a crash interrupted is on Kafka, and that start is no
  lower than (highest position found - ``MAX_BATCH``); from there the relay goes through the store again and
  skips an event when its partition already holds that position or a later one.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

import structlog
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.partitioner.default import murmur2

from adapters.kafka.published import TOPICS, ce_type, kafka_topic, published_form, split_topic
from projections import lease

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from eventsourcing.persistence import Notification, StoredEvent
    from sqlalchemy import Engine

log = structlog.get_logger("gridcase.relay")

#: The most positions one batch spans; recovery looks back this far from the highest published position.
MAX_BATCH = 5_000
POSITION_HEADER = "gridcase_position"
#: Fields of an aggregate's first event that name it (``ce_subject``): case and patrol numbers, registry codes.
_SUBJECT_FIELDS = ("case_number", "patrol_number", "code", "version")
_SUBJECTS_KEPT = 200_000
LEASE = "relay"


class RelayRunningError(RuntimeError):
    """Another relay holds the store's relay lease."""


@dataclass
class RelayStats:
    """What a relay run did."""

    published: int = 0
    skipped: int = 0
    position: int = 0
    seconds: float = 0.0
    per_topic: dict[str, int] = field(default_factory=dict)


def kafka_config(bootstrap_servers: str, client_id: str) -> dict[str, Any]:
    """Connection settings shared by the relay's clients."""
    return {"bootstrap_servers": [s.strip() for s in bootstrap_servers.split(",") if s.strip()], "client_id": client_id}


def ensure_topics(config: dict[str, Any], partitions: int, topics: Sequence[str]) -> None:
    """Create the topics that are missing, with infinite retention; existing topics are left as they are."""
    admin = KafkaAdminClient(**config)
    try:
        missing = [t for t in topics if t not in set(admin.list_topics())]
        if missing:
            forever = {"retention.ms": "-1", "retention.bytes": "-1"}
            new = [NewTopic(t, num_partitions=partitions, replication_factor=1, topic_configs=forever) for t in missing]
            with contextlib.suppress(TopicAlreadyExistsError):  # another process created them meanwhile
                admin.create_topics(new)
            log.info("created topics", topics=missing, partitions=partitions)
    finally:
        admin.close()


def last_positions(config: dict[str, Any], topics: Sequence[str]) -> dict[TopicPartition, int]:
    """The highest store position on every partition of the topics (0 for an empty partition).

    Reads each partition's last message. Some brokers answer "latest offset" with the start of the last record
    batch rather than its end, so the consumer seeks a little before and reads up to the fetch high-water mark.
    """
    consumer = KafkaConsumer(**config, group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        found = dict.fromkeys(partitions, 0)
        if partitions:
            consumer.assign(partitions)
            ends = consumer.end_offsets(partitions)
            for tp in partitions:
                consumer.seek(tp, max(0, ends[tp] - 1))
            _read_to_end(consumer, {tp for tp in partitions if ends[tp] > 0}, found)
        return found
    finally:
        consumer.close()


def _read_to_end(consumer: KafkaConsumer, pending: set[TopicPartition], found: dict[TopicPartition, int]) -> None:
    """Read the partitions to their high-water marks, keeping the highest position seen on each."""
    consumer.pause(*[tp for tp in found if tp not in pending])
    deadline = time.monotonic() + 30
    while pending:
        if time.monotonic() > deadline:
            msg = f"could not read the end of {sorted(str(tp) for tp in pending)} within 30 s"
            raise TimeoutError(msg)
        for tp, messages in consumer.poll(timeout_ms=500, max_records=10_000).items():
            for message in messages:
                found[tp] = max(found[tp], _position(message.headers) or 0)
        for tp in list(pending):
            high = consumer.highwater(tp)
            if high is not None and consumer.position(tp) >= high:
                pending.discard(tp)
                consumer.pause(tp)


def _hex(originator_id: UUID | str) -> str:
    return originator_id.hex if isinstance(originator_id, UUID) else UUID(originator_id).hex


def _position(headers: Sequence[tuple[str, bytes]] | None) -> int | None:
    for key, value in headers or ():
        if key == POSITION_HEADER:
            try:
                return int(value)
            except ValueError:
                return None
    return None


class Relay:
    """Publishes the store's notification log to the topics; one relay per store at a time."""

    def __init__(
        self,
        read: Callable[[int, int], Sequence[Notification]],
        first_event: Callable[[UUID], StoredEvent | None],
        config: dict[str, Any],
        *,
        partitions: int = 6,
        batch_size: int = MAX_BATCH,
        source: str = "urn:gridcase:store",
        lease_engine: Engine | None = None,
        lease_seconds: float = 15.0,
    ) -> None:
        self.read = read
        self.first_event = first_event
        self.config = config
        self.partitions = partitions
        self.batch_size = min(batch_size, MAX_BATCH)
        self.source = source
        self.topics = sorted(set(TOPICS.values()))
        self._subjects: dict[str, str] = {}
        self._producer: KafkaProducer | None = None
        self._counts: dict[str, int] = {}
        self._done: dict[TopicPartition, int] = {}
        self._position = 0
        #: The store's database, where the relay's lease lives (None: no lease, e.g. in a benchmark).
        self.lease_engine = lease_engine
        #: A killed relay's lease lapses after this long; a live one renews it every third of it.
        self.lease_seconds = lease_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self._renewed = float("-inf")

    # -- start-up ---------------------------------------------------------------

    def start(self) -> int:
        """Create missing topics, recover how far the topics are, and return the position to continue after."""
        self._take_lease()
        ensure_topics(self.config, self.partitions, self.topics)
        self._producer = KafkaProducer(
            **self.config,
            enable_idempotence=True,
            acks="all",
            linger_ms=20,
            batch_size=512 * 1024,
            max_request_size=8 * 1024 * 1024,
            compression_type=None,
        )
        for topic in self.topics:
            self._counts[topic] = len(self._producer.partitions_for(topic))
        self._done = last_positions(self.config, self.topics)
        highest = max(self._done.values(), default=0)
        self._position = max(0, highest - MAX_BATCH)
        log.info("relay recovered", highest=highest, resume_after=self._position)
        return self._position

    def close(self) -> None:
        """Flush and close the producer, and let another relay start at once."""
        if self._producer is not None:
            self._producer.flush()
            self._producer.close()
            self._producer = None
        if self.lease_engine is not None:
            lease.release(self.lease_engine, self.owner)

    def _take_lease(self) -> None:
        """One relay per store: a second one would publish everything twice."""
        if self.lease_engine is None:
            return
        lease.create_lease_table(self.lease_engine)
        # A relay killed a moment ago still holds the lease until it lapses: wait that long, no longer.
        deadline = time.monotonic() + self.lease_seconds + 1
        while not lease.acquire(self.lease_engine, LEASE, self.owner, self.lease_seconds):
            if time.monotonic() > deadline:
                msg = f"another relay is running ({lease.holder(self.lease_engine, LEASE)}); one relay per store"
                raise RelayRunningError(msg)
            time.sleep(0.5)
        self._renewed = time.monotonic()

    def _renew_lease(self) -> None:
        if self.lease_engine is None or time.monotonic() - self._renewed < self.lease_seconds / 3:
            return
        if not lease.acquire(self.lease_engine, LEASE, self.owner, self.lease_seconds):
            msg = "lost the relay lease to another relay: stopping"
            raise RelayRunningError(msg)
        self._renewed = time.monotonic()

    # -- publishing -------------------------------------------------------------

    def run_once(self, *, progress: Callable[[RelayStats], None] | None = None) -> RelayStats:
        """Publish everything stored so far, then return."""
        started = time.perf_counter()
        stats = RelayStats(position=self._position)
        while self._batch(stats):
            if progress is not None:
                progress(stats)
        stats.seconds = time.perf_counter() - started
        return stats

    def follow(self, *, poll: float = 0.5, stop: Callable[[], bool] = lambda: False,
               progress: Callable[[RelayStats], None] | None = None) -> RelayStats:  # fmt: skip
        """Keep publishing new events as they are stored, until ``stop()`` says so."""
        started = time.perf_counter()
        stats = RelayStats(position=self._position)
        while not stop():
            if self._batch(stats):
                if progress is not None:
                    progress(stats)
            else:
                time.sleep(poll)
        stats.seconds = time.perf_counter() - started
        return stats

    def _batch(self, stats: RelayStats) -> bool:
        producer = self._producer
        if producer is None:
            msg = "call start() first"
            raise RuntimeError(msg)
        self._renew_lease()
        notifications = self.read(self._position, self.batch_size)
        if not notifications:
            return False
        for notification in notifications:
            aggregate, name = split_topic(notification.topic)
            topic = kafka_topic(aggregate)
            key = _hex(notification.originator_id).encode()
            tp = TopicPartition(topic, (murmur2(key) & 0x7FFFFFFF) % self._counts[topic])
            if self._done.get(tp, 0) >= notification.id:
                stats.skipped += 1
                continue
            value, headers = self.message(notification, aggregate, name)
            producer.send(topic, key=key, value=value, headers=headers, partition=tp.partition)
            stats.per_topic[topic] = stats.per_topic.get(topic, 0) + 1
            stats.published += 1
        producer.flush()
        self._position = notifications[-1].id
        stats.position = self._position
        log.info("relayed", position=self._position, published=stats.published)
        return True

    def message(self, notification: Notification, aggregate: str, name: str) -> tuple[bytes, list[tuple[str, bytes]]]:
        """The published value and its CloudEvents binary-mode headers."""
        state: dict[str, Any] = json.loads(notification.state)
        version = int(state.get("class_version", 1))
        originator = _hex(notification.originator_id)
        value = published_form(name, state, originator, notification.originator_version)
        headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", f"{originator}-{notification.originator_version}".encode()),
            ("ce_source", self.source.encode()),
            ("ce_type", ce_type(aggregate, name, version).encode()),
            ("ce_time", str(state["occurred_at"]).encode()),
            ("ce_subject", self.subject(notification, state).encode()),
            ("content-type", b"application/json"),
            (POSITION_HEADER, str(notification.id).encode()),
            ("gridcase_recorded_at", str(state.get("timestamp", "")).encode()),
        ]
        body = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
        return body, headers

    def subject(self, notification: Notification, state: dict[str, Any]) -> str:
        """The case number, patrol number or registry code the event is about."""
        originator = _hex(notification.originator_id)
        known = self._subjects.get(originator)
        if known is not None:
            return known
        first = state if notification.originator_version == 1 else None
        if first is None:
            stored = self.first_event(UUID(originator))
            first = json.loads(stored.state) if stored is not None else {}
        subject = next((str(first[f]) for f in _SUBJECT_FIELDS if f in first), originator)
        if len(self._subjects) > _SUBJECTS_KEPT:  # bounded: an old aggregate is looked up again when it reappears
            self._subjects.clear()
        self._subjects[originator] = subject
        return subject
