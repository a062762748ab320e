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

A message Kafka refuses for good (too large, invalid: a non-retriable error that is about the message, not about
the connection, the credentials or the producer) never blocks the relay: it goes to ``gridcase.deadletter`` with
the reason and the event's position (a reference without the payload when the dead letter itself would be too
large), and the relay goes on. Start-up also reads the relay's own dead letters back, so a restart does not
dead-letter an event twice. The relay knows the broker's limit (``max_message_bytes``) and sets aside a message
over it before sending; a refusal the broker reports later stops the batch, which is then sent again one message
at a time, so that exactly the refused message is dead-lettered and every other one lands once, in order.
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
from kafka import errors as kafka_errors
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from kafka.partitioner.default import murmur2
from kafka.record.default_records import DefaultRecordBatchBuilder

from adapters.kafka.message import (
    ce_id_of,
    encode,
    hex_id,
    position_of,
    relay_dead_letter,
    relay_dead_lettered,
    relay_reference,
)
from adapters.kafka.published import DEADLETTER_TOPIC, TOPICS, ce_type, split_topic
from domain.redaction import describe_error
from projections import lease
from projections.follow import repeat

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from eventsourcing.persistence import Notification, StoredEvent
    from kafka.producer.future import FutureRecordMetadata
    from sqlalchemy import Engine

    from adapters.kafka.message import Headers

log = structlog.get_logger("gridcase.relay")

#: The most positions one batch spans; recovery looks back this far from the highest published position.
MAX_BATCH = 5_000
#: Fields of an aggregate's first event that name it (``ce_subject``): case and patrol numbers, registry codes.
_SUBJECT_FIELDS = ("case_number", "patrol_number", "code", "version")
_SUBJECTS_KEPT = 200_000
LEASE = "relay"
#: Kafka's default limit on one message (the broker's ``message.max.bytes``, the producer's ``max.request.size``).
KAFKA_MAX_MESSAGE_BYTES = 1_048_576
#: Non-retriable errors that are not about the message: the relay stops on them (exit 5) instead of setting
#: every message aside (credentials, fencing, the producer's own state, a broker that cannot do what we ask,
#: a setting of ours it does not support, an error it does not explain).
_NOT_THE_MESSAGE: tuple[type[KafkaError], ...] = (
    kafka_errors.AuthorizationError,
    kafka_errors.SaslAuthenticationFailedError,
    kafka_errors.IllegalStateError,
    kafka_errors.IllegalArgumentError,
    kafka_errors.KafkaConfigurationError,
    kafka_errors.UnsupportedVersionError,
    kafka_errors.UnrecognizedBrokerVersion,
    kafka_errors.OutOfOrderSequenceNumberError,
    kafka_errors.InvalidProducerEpochError,
    kafka_errors.UnknownProducerIdError,
    kafka_errors.InvalidProducerIdMappingError,
    kafka_errors.ProducerFencedError,
    kafka_errors.InvalidTxnStateError,
    kafka_errors.TransactionAbortedError,
    kafka_errors.InvalidRequiredAcksError,
    kafka_errors.InvalidTopicError,
    kafka_errors.InvalidRequestError,
    kafka_errors.InvalidConfigurationError,
    kafka_errors.PolicyViolationError,
    kafka_errors.SecurityDisabledError,
    kafka_errors.TransactionCoordinatorFencedError,
    kafka_errors.UnsupportedCodecError,
    kafka_errors.UnsupportedCompressionTypeError,
    kafka_errors.UnsupportedForMessageFormatError,
    kafka_errors.BrokerNotAvailableError,
    kafka_errors.UnknownBrokerIdError,
    kafka_errors.QuotaViolationError,
    kafka_errors.KafkaProtocolError,
    kafka_errors.UnknownError,
)


def refused_for_good(error: BaseException | None) -> bool:
    """Whether Kafka refused a message itself for good: sending it again cannot succeed, so it is dead-lettered.

    kafka-python marks a transient error ``retriable`` (a timeout, a lost connection, a leader moving: the relay
    stops and a restart sends again). Of the others, those that are about the connection, the credentials or
    the producer rather than the message (``_NOT_THE_MESSAGE``) stop the relay too: dead-lettering every event
    because the relay's account may not write would empty the topics into the dead-letter topic.
    """
    if not isinstance(error, KafkaError) or error.retriable:
        return False
    return not isinstance(error, _NOT_THE_MESSAGE)


def message_bytes(key: bytes, value: bytes, headers: Headers) -> int:
    """What one message weighs on the wire, as kafka-python reckons it against ``max_request_size``."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers))


class RelayRunningError(RuntimeError):
    """Another relay holds the store's relay lease."""


class RelayFailedError(RuntimeError):
    """Kafka did not take a batch: the relay stopped; a restart resumes from what the topics hold."""


class _RefusedError(Exception):
    """Kafka refused a message of the batch for good, after sending it (the batch is sent again one by one)."""

    def __init__(self, position: int, error: BaseException | None) -> None:
        super().__init__(f"position {position}: {error!r}")
        self.position = position
        self.error = error


@dataclass
class RelayStats:
    """What a relay run did."""

    published: int = 0
    skipped: int = 0
    #: Events Kafka would not take, set aside on the dead-letter topic (the relay went on past them).
    deadlettered: int = 0
    position: int = 0
    seconds: float = 0.0
    per_topic: dict[str, int] = field(default_factory=dict)
    #: The positions dead-lettered in this run, oldest first.
    deadlettered_positions: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Letter:
    """A dead letter the relay is about to send."""

    position: int
    key: bytes
    value: bytes
    headers: Headers
    reason: str
    reference: bool


@dataclass(slots=True)
class _Sent:
    """A message of the batch on its way: an event to its topic, or a dead letter."""

    notification: Notification
    topic: str
    future: FutureRecordMetadata
    letter: _Letter | None = None


@dataclass(slots=True)
class _Tally:
    """What one batch did, counted once per position even when the batch is sent again."""

    stats: RelayStats
    counted: set[int] = field(default_factory=set)

    def published(self, position: int, topic: str) -> None:
        if position not in self.counted:
            self.counted.add(position)
            self.stats.published += 1
            self.stats.per_topic[topic] = self.stats.per_topic.get(topic, 0) + 1

    def skipped(self, position: int) -> None:
        if position not in self.counted:
            self.counted.add(position)
            self.stats.skipped += 1

    def deadlettered(self, position: int) -> None:
        if position not in self.counted:
            self.counted.add(position)
            self.stats.deadlettered += 1
            self.stats.deadlettered_positions.append(position)


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


def dead_lettered_positions(config: dict[str, Any], ours: Callable[[int, str], bool]) -> set[int]:
    """The store positions the relay has dead-lettered so far (its letters on ``gridcase.deadletter``).

    Reads the whole dead-letter topic (a projector's letters are passed over): it holds what was set aside,
    which is little while the engine is healthy. A letter must be ours (``ours`` checks position and ``ce_id``
    against the store), so the letters of another store on the same cluster do not count.
    """
    consumer = KafkaConsumer(**config, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        numbers = sorted(consumer.partitions_for_topic(DEADLETTER_TOPIC) or ())
        partitions = [TopicPartition(DEADLETTER_TOPIC, p) for p in numbers]
        if not partitions:
            return set()
        ends = consumer.end_offsets(partitions)
        partitions = [tp for tp in partitions if ends[tp] > 0]
        found: set[int] = set()
        if not partitions:
            return found
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + 120
        while True:
            for messages in consumer.poll(timeout_ms=500, max_records=10_000).values():
                for message in messages:
                    position = relay_dead_lettered(message.headers)
                    if position is not None and ours(position, ce_id_of(message.headers)):
                        found.add(position)
            highs = {tp: consumer.highwater(tp) for tp in partitions}
            if all(high is not None and consumer.position(tp) >= high for tp, high in highs.items()):
                return found
            if time.monotonic() > deadline:
                msg = f"could not read {DEADLETTER_TOPIC} to its end within 120 s"
                raise TimeoutError(msg)
    finally:
        consumer.close()


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
        max_message_bytes: int = KAFKA_MAX_MESSAGE_BYTES,
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
        #: Positions the relay has dead-lettered (read back from the dead-letter topic at start-up).
        self._dead: set[int] = set()
        self._position = 0
        #: The largest message the brokers take (their ``message.max.bytes``): a larger one is dead-lettered.
        self.max_message_bytes = max_message_bytes
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
        ensure_topics(self.config, self.partitions, [*self.topics, DEADLETTER_TOPIC])
        self._producer = producer = self._new_producer()
        for topic in self.topics:
            self._counts[topic] = len(producer.partitions_for(topic))
        self._done = last_positions(self.config, self.topics, self._is_ours)
        self._dead = dead_lettered_positions(self.config, self._is_ours)
        highest = max(self._done.values(), default=0)
        self._position = max(0, highest - MAX_BATCH)
        log.info("relay recovered", highest=highest, resume_after=self._position, deadlettered=len(self._dead))
        return self._position

    def _new_producer(self) -> KafkaProducer:
        # One message never exceeds max_message_bytes (checked before sending); a request may carry several
        # batches, each of at most one message or batch_size, so requests stay large for throughput.
        return KafkaProducer(
            **self.config,
            enable_idempotence=True,
            acks="all",
            linger_ms=20,
            batch_size=min(512 * 1024, self.max_message_bytes),
            max_request_size=max(8 * 1024 * 1024, self.max_message_bytes),
            compression_type=None,
        )

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
        if self._producer is None:
            msg = "call start() first"
            raise RuntimeError(msg)
        self._renew_lease()
        # A batch spans at most batch_size positions (not just events: a gap must not widen it), which is what
        # lets start-up look back only MAX_BATCH positions.
        last = self._position + self.batch_size
        notifications = [n for n in self.read(self._position, self.batch_size) if n.id <= last]
        if not notifications:
            return False
        tally = _Tally(stats)
        try:
            self._publish(notifications, tally)
        except _RefusedError as refused:
            # The producer is unusable after a refusal (kafka-python fails it for good): start a new one, find out
            # what landed, and send the rest one message at a time, so exactly the refused one is set aside.
            told = describe_error(refused.error) if refused.error is not None else None
            log.warning("Kafka refused a message for good: sending the batch again one by one",
                        position=refused.position, error=told)  # fmt: skip
            self._restart()
            for notification in notifications:
                self._publish_alone(notification, tally)
        self._position = notifications[-1].id
        stats.position = self._position
        log.info("relayed", position=self._position, published=stats.published, deadlettered=stats.deadlettered)
        return True

    def _publish(self, notifications: Sequence[Notification], tally: _Tally) -> None:
        """Send the events (and dead letters for those Kafka cannot take) and wait for every acknowledgement.

        Raises :class:`_RefusedError` when Kafka refused one of them for good after it was sent, and
        :class:`RelayFailedError` on any other failure.
        """
        producer = self._producer
        assert producer is not None  # _batch checked
        sent: list[_Sent] = []
        for notification in notifications:
            outgoing = self._send(producer, notification, tally)
            if outgoing is not None:
                sent.append(outgoing)
        self._renew_lease()  # sending a large batch takes a while: hold on to the lease before waiting for it
        self._confirm(producer, sent, tally)

    def _publish_alone(self, notification: Notification, tally: _Tally) -> None:
        """Send one event and wait for it; dead-letter it if Kafka refuses it for good."""
        try:
            self._publish([notification], tally)
        except _RefusedError as refused:
            self._restart(tails=False)  # only this message was in flight, and it did not land
            self._dead_letter_alone(notification, f"Kafka refused it: {refused.error}", tally)

    def _dead_letter_alone(self, notification: Notification, reason: str, tally: _Tally) -> None:
        """Dead-letter one event on its own: as a copy, or (if Kafka refuses that too) as a reference."""
        aggregate, name = split_topic(notification.topic)
        topic = TOPICS.get(aggregate, "")
        key = hex_id(notification.originator_id).encode()
        try:
            value, headers = self.message(notification, aggregate, name)
        except (KeyError, ValueError, TypeError, AttributeError):
            value, headers = notification.state, None
        letter = self._letter(notification, topic, key, value, headers, reason)
        attempts = [letter]
        if not letter.reference:
            attempts.append(self._reference(notification, topic, key, reason, len(value)))
        for attempt in attempts:
            producer = self._producer
            assert producer is not None  # _restart made one
            future = self._send_letter(producer, attempt)
            try:
                self._confirm(producer, [_Sent(notification, topic, future, attempt)], tally)
            except _RefusedError:
                self._restart(tails=False)
                continue
            return
        self._abandon()
        msg = f"Kafka refused the event at position {notification.id} and even a reference to it: restart the relay"
        raise RelayFailedError(msg)

    def _send(self, producer: KafkaProducer, notification: Notification, tally: _Tally) -> _Sent | None:
        """Send one event, or its dead letter if Kafka cannot take it; None when the topics already hold it."""
        aggregate, name = split_topic(notification.topic)
        topic = TOPICS.get(aggregate, "")
        key = hex_id(notification.originator_id).encode()
        if notification.id in self._dead or (
            topic and self._done.get(self._partition(topic, key), 0) >= notification.id
        ):
            tally.skipped(notification.id)
            return None
        reason = ""
        headers: Headers | None = None
        value = notification.state
        try:
            if not topic:
                msg = f"no topic for events of {aggregate or notification.topic!r}"
                raise KeyError(msg)  # noqa: TRY301 - dead-lettered like any event the relay cannot encode
            value, headers = self.message(notification, aggregate, name)
        except (KeyError, ValueError, TypeError, AttributeError) as error:
            reason = f"the relay cannot make a message of it: {describe_error(error)}"
        else:
            size = message_bytes(key, value, headers)
            if size > self.max_message_bytes:
                reason = (f"the message would be {size:,} bytes; Kafka takes at most {self.max_message_bytes:,} "
                          "(GRIDCASE_KAFKA_MAX_MESSAGE_BYTES)")  # fmt: skip
            else:
                try:
                    future = producer.send(topic, key=key, value=value, headers=headers,
                                           partition=self._partition(topic, key).partition)  # fmt: skip
                except KafkaError as error:
                    if not refused_for_good(error):
                        raise
                    reason = f"Kafka refused it: {describe_error(error)}"
                else:
                    return _Sent(notification, topic, future)
        letter = self._letter(notification, topic, key, value, headers, reason)
        return _Sent(notification, topic, self._send_letter(producer, letter), letter)

    def _letter(
        self, notification: Notification, topic: str, key: bytes, value: bytes, headers: Headers | None, reason: str
    ) -> _Letter:
        """The dead letter of an event: the message itself and why, or a reference if that would be too large."""
        body, letter_headers = relay_dead_letter(notification, topic, value, headers, reason)
        if message_bytes(key, body, letter_headers) > self.max_message_bytes:
            return self._reference(notification, topic, key, reason, len(value))
        return _Letter(notification.id, key, body, letter_headers, reason, reference=False)

    def _reference(self, notification: Notification, topic: str, key: bytes, reason: str, size: int) -> _Letter:
        aggregate, name = split_topic(notification.topic)
        state_version = 1
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            state_version = int(json.loads(notification.state).get("class_version", 1))
        event_type = ce_type(aggregate, name, state_version) if aggregate in TOPICS else notification.topic
        body, headers = relay_reference(notification, topic, event_type, reason, size)
        return _Letter(notification.id, key, body, headers, reason, reference=True)

    def _send_letter(self, producer: KafkaProducer, letter: _Letter) -> FutureRecordMetadata:
        return producer.send(DEADLETTER_TOPIC, key=letter.key, value=letter.value, headers=letter.headers)

    def _partition(self, topic: str, key: bytes) -> TopicPartition:
        """Where Kafka's default partitioner puts a key (murmur2 is slow in Python: remembered per aggregate)."""
        found = self._partitions.get(key)
        if found is None:
            if len(self._partitions) > _SUBJECTS_KEPT:
                self._partitions.clear()
            found = self._partitions[key] = TopicPartition(topic, (murmur2(key) & 0x7FFFFFFF) % self._counts[topic])
        return found

    def _confirm(self, producer: KafkaProducer, sent: list[_Sent], tally: _Tally) -> None:
        """Wait for every acknowledgement of the batch, then count it; on a failure, stop sending at once and raise.

        A message Kafka refused for good raises :class:`_RefusedError` (the caller sends again one by one, which
        also tells apart the messages that failed only because of it); anything else stops the relay: nothing
        after the last confirmed batch counts as published, and a restarted relay finds out from the topics
        what did land. Within one producer session the broker refuses
        anything sent after a lost message on the same partition (idempotent sequence numbers), so stopping at
        the first failure leaves no hole with later events behind it. Known limit (docs/kafka.md): if the client
        starts a new producer session inside the same flush, a later message could land after a hole; start-up
        does not yet check partitions for holes.
        """
        try:
            producer.flush(timeout=self.flush_seconds)
        except KafkaTimeoutError as error:
            self._abandon()
            msg = (f"Kafka did not acknowledge a batch within {self.flush_seconds:.0f} s; stopped after position "
                   f"{self._position}: restart the relay")  # fmt: skip
            raise RelayFailedError(msg) from error
        failed = [item for item in sent if not item.future.succeeded()]
        for item in sent:
            if not item.future.succeeded():
                continue
            if item.letter is None:
                self._done_at(item)
                tally.published(item.notification.id, item.topic)
            else:
                self._dead.add(item.notification.id)
                tally.deadlettered(item.notification.id)
                log.warning("dead-lettered", position=item.notification.id, topic=item.topic or None,
                            aggregate=item.letter.key.decode(), type=item.notification.topic.rpartition(".")[2],
                            reference=item.letter.reference, reason=item.letter.reason[:300])  # fmt: skip
        if not failed:
            return
        refused = [item for item in failed if refused_for_good(item.future.exception)]
        if refused:
            # The others may have failed only because of it (kafka-python fails the producer after a refusal):
            # sent again one by one, each is told apart.
            raise _RefusedError(refused[0].notification.id, refused[0].future.exception)
        self._abandon()
        msg = (f"Kafka refused {len(failed)} events of the batch after position {self._position} "
               f"({failed[0].future.exception!r}); stopped there: restart the relay")  # fmt: skip
        raise RelayFailedError(msg)

    def _done_at(self, item: _Sent) -> None:
        """Remember that the event's partition now holds its position (a batch sent again skips it)."""
        tp = self._partition(item.topic, hex_id(item.notification.originator_id).encode())
        self._done[tp] = max(self._done.get(tp, 0), item.notification.id)

    def _restart(self, *, tails: bool = True) -> None:
        """A new producer after a refusal; with ``tails``, read again what every partition holds."""
        self._abandon()
        self._producer = self._new_producer()
        if tails:
            self._done = last_positions(self.config, self.topics, self._is_ours)

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
