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
from kafka.errors import KafkaTimeoutError, TopicAlreadyExistsError
from kafka.partitioner.default import murmur2

from adapters.kafka.message import ce_id_of, encode, hex_id, position_of
from adapters.kafka.published import TOPICS, kafka_topic, split_topic
from projections import lease
from projections.follow import repeat

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from eventsourcing.persistence import Notification, StoredEvent
    from sqlalchemy import Engine

log = structlog.get_logger("gridcase.relay")

#: The most positions one batch spans; recovery looks back this far from the highest published position.
MAX_BATCH = 5_000
#: Fields of an aggregate's first event that name it (``ce_subject``): case and patrol numbers, registry codes.
_SUBJECT_FIELDS = ("case_number", "patrol_number", "code", "version")
_SUBJECTS_KEPT = 200_000
LEASE = "relay"


class RelayRunningError(RuntimeError):
    """Another relay holds the store's relay lease."""


class RelayFailedError(RuntimeError):
    """Kafka did not take a batch: the relay stopped; a restart resumes from what the topics hold."""


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


def last_positions(
    config: dict[str, Any], topics: Sequence[str], ours: Callable[[int, str], bool] = lambda _p, _id: True
) -> dict[TopicPartition, int]:
    """The highest store position on every partition of the topics (0 for an empty partition).

    Reads each partition's last message that is ours: it carries a position and a ``ce_id`` that ``ours``
    confirms (the relay checks them against the store), so a stray message at the end of a partition (a poison
    message someone produced, a message of another store) is passed over, and the search goes further back.
    Some brokers answer "latest offset" with the start of the last record batch rather than its end, so every
    read goes on to the fetch high-water mark.
    """
    consumer = KafkaConsumer(**config, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        found = dict.fromkeys(partitions, 0)
        if partitions:
            ends = consumer.end_offsets(partitions)
            for tp in partitions:
                found[tp] = _last_of_ours(consumer, tp, ends[tp], ours)
        return found
    finally:
        consumer.close()


def _last_of_ours(consumer: KafkaConsumer, tp: TopicPartition, end: int, ours: Callable[[int, str], bool]) -> int:
    """The highest position of ours on a partition, looking back from its end in growing steps."""
    if end == 0:
        return 0  # empty (a broker that reports the start of the last batch still reports 1 or more if not)
    consumer.assign([tp])
    step = 1
    start = end
    while True:
        start = max(0, start - step)
        consumer.seek(tp, start)
        best = 0
        deadline = time.monotonic() + 30
        while True:
            for messages in consumer.poll(timeout_ms=500, max_records=10_000).values():
                for message in messages:
                    position = position_of(message.headers)
                    if position is not None and position > best and ours(position, ce_id_of(message.headers)):
                        best = position
            high = consumer.highwater(tp)
            if high is not None and consumer.position(tp) >= high:
                break
            if time.monotonic() > deadline:
                msg = f"could not read the end of {tp.topic}[{tp.partition}] within 30 s"
                raise TimeoutError(msg)
        if best or start == 0:
            return best
        step *= 64


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
        self._partitions: dict[bytes, TopicPartition] = {}
        self._producer: KafkaProducer | None = None
        self._counts: dict[str, int] = {}
        self._done: dict[TopicPartition, int] = {}
        self._position = 0
        #: The store's database, where the relay's lease lives (None: no lease, e.g. in a benchmark).
        self.lease_engine = lease_engine
        #: A killed relay's lease lapses after this long; a live one renews it every third of it.
        self.lease_seconds = lease_seconds
        #: How long a batch may take to be acknowledged: well inside the lease, so a stuck relay stops before
        #: another can take over.
        self.flush_seconds = max(5.0, lease_seconds * 0.6)
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
        self._done = last_positions(self.config, self.topics, self._is_ours)
        highest = max(self._done.values(), default=0)
        self._position = max(0, highest - MAX_BATCH)
        log.info("relay recovered", highest=highest, resume_after=self._position)
        return self._position

    def _is_ours(self, position: int, ce_id: str) -> bool:
        """Whether a message found on a topic is this store's event at that position."""
        found = self.read(position - 1, 1)
        if not found or found[0].id != position:
            return False
        return ce_id == f"{hex_id(found[0].originator_id)}-{found[0].originator_version}"

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
        return repeat(self._batch, RelayStats(position=self._position), progress=progress)

    def follow(self, *, poll: float = 0.5, stop: Callable[[], bool] = lambda: False,
               progress: Callable[[RelayStats], None] | None = None) -> RelayStats:  # fmt: skip
        """Keep publishing new events as they are stored, until ``stop()`` says so."""
        return repeat(self._batch, RelayStats(position=self._position), stop=stop, poll=poll, progress=progress)

    def _batch(self, stats: RelayStats) -> bool:
        producer = self._producer
        if producer is None:
            msg = "call start() first"
            raise RuntimeError(msg)
        self._renew_lease()
        # A batch spans at most batch_size positions (not just events: a gap must not widen it), which is what
        # lets start-up look back only MAX_BATCH positions.
        last = self._position + self.batch_size
        notifications = [n for n in self.read(self._position, self.batch_size) if n.id <= last]
        if not notifications:
            return False
        futures = []
        for notification in notifications:
            aggregate, name = split_topic(notification.topic)
            topic = kafka_topic(aggregate)
            key = hex_id(notification.originator_id).encode()
            tp = self._partition(topic, key)
            if self._done.get(tp, 0) >= notification.id:
                stats.skipped += 1
                continue
            value, headers = self.message(notification, aggregate, name)
            futures.append(producer.send(topic, key=key, value=value, headers=headers, partition=tp.partition))
            stats.per_topic[topic] = stats.per_topic.get(topic, 0) + 1
            stats.published += 1
        self._renew_lease()  # sending a large batch takes a while: hold on to the lease before waiting for it
        self._confirm(producer, futures)
        self._position = notifications[-1].id
        stats.position = self._position
        log.info("relayed", position=self._position, published=stats.published)
        return True

    def _partition(self, topic: str, key: bytes) -> TopicPartition:
        """Where Kafka's default partitioner puts a key (murmur2 is slow in Python: remembered per aggregate)."""
        found = self._partitions.get(key)
        if found is None:
            if len(self._partitions) > _SUBJECTS_KEPT:
                self._partitions.clear()
            found = self._partitions[key] = TopicPartition(topic, (murmur2(key) & 0x7FFFFFFF) % self._counts[topic])
        return found

    def _confirm(self, producer: KafkaProducer, futures: list[Any]) -> None:
        """Wait for every acknowledgement of the batch; on any failure, stop sending at once and raise.

        Nothing after the last confirmed batch counts as published: a restarted relay finds out from the topics
        what did land. Within one producer session the broker refuses anything sent after a lost message on the
        same partition (idempotent sequence numbers), so stopping at the first failure leaves no hole with later
        events behind it. Known limit (docs/kafka.md): if the client starts a new producer session inside the
        same flush, a later message could land after a hole; start-up does not yet check partitions for holes.
        """
        try:
            producer.flush(timeout=self.flush_seconds)
        except KafkaTimeoutError as error:
            self._abandon()
            msg = (f"Kafka did not acknowledge a batch within {self.flush_seconds:.0f} s; stopped after position "
                   f"{self._position}: restart the relay")  # fmt: skip
            raise RelayFailedError(msg) from error
        failed = [future for future in futures if not future.succeeded()]
        if failed:
            self._abandon()
            msg = (f"Kafka refused {len(failed)} events of the batch after position {self._position} "
                   f"({failed[0].exception!r}); stopped there: restart the relay")  # fmt: skip
            raise RelayFailedError(msg)

    def _abandon(self) -> None:
        """Drop the producer and whatever it still holds, without waiting."""
        if self._producer is not None:
            with contextlib.suppress(Exception):
                self._producer.close(timeout=0)
            self._producer = None

    def message(self, notification: Notification, aggregate: str, name: str) -> tuple[bytes, list[tuple[str, bytes]]]:
        """The published value and its CloudEvents binary-mode headers (adapters/kafka/message.py)."""
        state: dict[str, Any] = json.loads(notification.state)
        return encode(
            notification, state, aggregate, name, source=self.source, subject=self.subject(notification, state)
        )

    def subject(self, notification: Notification, state: dict[str, Any]) -> str:
        """The case number, patrol number or registry code the event is about."""
        originator = hex_id(notification.originator_id)
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
