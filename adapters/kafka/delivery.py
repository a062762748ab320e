"""Proof of delivery: the topics against the store, the readers against the topics, and every dead letter.

- **Topics.** Per topic and partition: the last store position that belongs there (the relay's partitioner: murmur2
  of the aggregate id), the last one published (the partition's last message of this store, as the relay reads
  it at start-up), the lag (stored events of that partition not on it yet; the relay's own dead letters are not
  lag, they are listed below) and the partition's end offset. The relay publishes in store order and flushes each
  batch, so every event up to the highest published position is on the topics or dead-lettered: only the events
  after it are read from the store.
- **Readers.** The Kafka-fed projectors keep their offsets in the read models' database (``kafka_offsets``, per
  projection and partition, adapters/kafka/consumer.py); consumer groups (downstream consumers that commit to
  Kafka) where the broker lists them. Each with the partition's end offset and how many messages it is behind.
- **Dead letters.** ``projection_deadletters`` (events a store-fed projection could not apply or write) and the
  messages on ``gridcase.deadletter`` (what the relay could not publish, what a Kafka-fed projector could not
  decode, apply or write), each with its reason.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2
from sqlalchemy import inspect, select

from adapters.kafka.consumer import kafka_offsets
from adapters.kafka.message import STORE_SOURCE, hex_id, position_of
from adapters.kafka.published import DEADLETTER_TOPIC, TOPICS, split_topic
from adapters.kafka.relay import dead_lettered_positions, kafka_config, last_positions
from projections.sql import deadletters

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from eventsourcing.persistence import Notification
    from sqlalchemy import Engine

    from adapters.settings import Settings

    Read = Callable[[int, int], Sequence[Notification]]

EVENT_TOPICS = sorted(set(TOPICS.values()))
_TAIL_BATCH = 10_000


def database_letters(engine: Engine) -> list[dict[str, Any]]:
    """The read models' dead letters, oldest position first, as rows of the one dead-letter view."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(deadletters.name):
            return []
        rows = connection.execute(select(deadletters).order_by(deadletters.c.position, deadletters.c.id)).mappings()
        return [
            {"where": "database", "projection": row["projection"], "position": row["position"],
             "event_type": row["event_type"], "attempts": row["attempts"], "failed_at": _naive_iso(row["failed_at"]),
             "error": row["error"], "source": f"{deadletters.name} #{row['id']}"}
            for row in rows
        ]  # fmt: skip


def topic_letters(config: dict[str, Any], *, wait: float = 30.0) -> list[dict[str, Any]]:
    """Every message on the dead-letter topic, partition by partition, with who set it aside and why."""
    letters: list[dict[str, Any]] = []
    for message in _read_all(config, DEADLETTER_TOPIC, wait=wait):
        said = {key: value.decode(errors="replace") for key, value in message.headers or ()}
        source = said.get("gridcase_source", "")
        by = "relay" if source.startswith(STORE_SOURCE) else said.get("gridcase_projection") or "projector: undecodable"
        letters.append({
            "where": "kafka",
            "projection": by,
            "position": position_of(message.headers),
            "event_type": said.get("ce_type"),
            "attempts": None,
            "failed_at": datetime.fromtimestamp(message.timestamp / 1000, UTC).isoformat().replace("+00:00", "Z"),
            "error": said.get("gridcase_error", "(no reason given)"),
            "source": f"{DEADLETTER_TOPIC}[{message.partition}]@{message.offset}",
            "came_from": source or None,
        })  # fmt: skip
    return letters


def delivery(config: dict[str, Any], read: Read, head: int, read_engine: Engine, partitions: int) -> dict[str, Any]:
    """The whole view: topics against the store, readers against the topics, and the dead-letter topic's letters."""

    def ours(position: int, ce_id: str) -> bool:
        found = read(position - 1, 1)
        return bool(found) and found[0].id == position and (
            ce_id == f"{hex_id(found[0].originator_id)}-{found[0].originator_version}"
        )

    # Never ask for a topic that is not there: asking would create it, with the broker's default partitions.
    consumer = KafkaConsumer(**config, group_id=None, enable_auto_commit=False, allow_auto_create_topics=False)
    try:
        existing = [topic for topic in EVENT_TOPICS if topic in consumer.topics()]
        counts = dict.fromkeys(EVENT_TOPICS, partitions)
        counts |= {topic: len(consumer.partitions_for_topic(topic) or ()) or partitions for topic in existing}
        every = [TopicPartition(t, p) for t in EVENT_TOPICS for p in range(counts[t])]
        known = [tp for tp in every if tp.topic in existing]
        ends = _high_waters(consumer, known)
        letters_there = DEADLETTER_TOPIC in consumer.topics()
    finally:
        consumer.close()
    published = last_positions(config, existing, ours) if existing else {}
    highest = max(published.values(), default=0)
    dead = dead_lettered_positions(config, ours) if letters_there else set()
    stored = {tp: published.get(tp, 0) for tp in every}
    lag = dict.fromkeys(every, 0)
    after = highest
    while after < head:
        batch = read(after, _TAIL_BATCH)
        if not batch:
            break
        for notification in batch:
            if notification.id in dead or notification.id > head:
                continue
            topic = TOPICS.get(split_topic(notification.topic)[0])
            if topic is None:
                continue
            key = hex_id(notification.originator_id).encode()
            tp = TopicPartition(topic, (murmur2(key) & 0x7FFFFFFF) % counts[topic])
            stored[tp] = max(stored[tp], notification.id)
            lag[tp] += 1
        after = batch[-1].id
    topics = [
        {"topic": tp.topic, "partition": tp.partition, "last_stored": stored[tp],
         "last_published": published.get(tp, 0), "lag": lag[tp], "end_offset": ends.get(tp, 0)}
        for tp in every
    ]  # fmt: skip
    readers = _offsets_table(read_engine, ends) + _groups(config, ends)
    return {"store_head": head, "published_up_to": highest, "lag": sum(lag.values()), "topics": topics,
            "readers": readers, "kafka_letters": topic_letters(config) if letters_there else []}  # fmt: skip


def _offsets_table(engine: Engine, ends: dict[TopicPartition, int]) -> list[dict[str, Any]]:
    """What each Kafka-fed projection has read: its next offset per partition, from the read models' database."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(kafka_offsets.name):
            return []
        order = (kafka_offsets.c.projection, kafka_offsets.c.topic, kafka_offsets.c.partition, kafka_offsets.c.scope)
        rows = connection.execute(select(kafka_offsets).order_by(*order)).mappings()
        found = []
        for row in rows:
            end = ends.get(TopicPartition(row["topic"], row["partition"]), 0)
            scope = f" ({row['scope']})" if row["scope"] else ""
            found.append({"reader": f"{kafka_offsets.name}: {row['projection']}{scope}", "topic": row["topic"],
                          "partition": row["partition"], "next_offset": row["next_offset"], "end_offset": end,
                          "behind": max(0, end - row["next_offset"])})  # fmt: skip
        return found


def _groups(config: dict[str, Any], ends: dict[TopicPartition, int]) -> list[dict[str, Any]]:
    """Consumer groups' committed offsets on the event topics, where the broker lists groups (else none)."""
    try:
        admin = KafkaAdminClient(**config, request_timeout_ms=5_000)
    except KafkaError:
        return []
    found = []
    try:
        for group in sorted(str(g[0]) for g in admin.list_consumer_groups()):
            for tp, committed in sorted(admin.list_consumer_group_offsets(group).items()):
                if tp.topic in EVENT_TOPICS and committed.offset >= 0:
                    end = ends.get(tp, 0)
                    found.append({"reader": f"consumer group: {group}", "topic": tp.topic, "partition": tp.partition,
                                  "next_offset": committed.offset, "end_offset": end,
                                  "behind": max(0, end - committed.offset)})  # fmt: skip
    except Exception:  # noqa: BLE001 - a broker that cannot list groups (kafka-python fails in its own ways on one)
        return found  # the offsets table still answers
    finally:
        admin.close()
    return found


def _high_waters(
    consumer: KafkaConsumer, partitions: list[TopicPartition], wait: float = 10.0
) -> dict[TopicPartition, int]:
    """The end offset of each partition as a fetch reports it (the high-water mark).

    Some brokers answer "latest offset" with the start of the last record batch rather than its end (see
    adapters/kafka/relay.py), so the answer is only where to start fetching from.
    """
    if not partitions:
        return {}
    reported = consumer.end_offsets(partitions)
    holding = [tp for tp in partitions if reported[tp] > 0]  # an empty partition is empty on every broker
    if holding:
        consumer.assign(holding)
        for tp in holding:
            consumer.seek(tp, reported[tp] - 1)
        deadline = time.monotonic() + wait
        while any(consumer.highwater(tp) is None for tp in holding) and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200, max_records=1_000)
    return {tp: max(reported[tp], consumer.highwater(tp) or 0) if reported[tp] else 0 for tp in partitions}


def _read_all(config: dict[str, Any], topic: str, *, wait: float) -> list[Any]:
    """Every message on a topic, in partition and offset order."""
    consumer = KafkaConsumer(**config, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                             allow_auto_create_topics=False)  # fmt: skip
    try:
        if topic not in consumer.topics():
            return []
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = _high_waters(consumer, partitions)
        partitions = [tp for tp in partitions if ends[tp] > 0]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        messages: list[Any] = []
        deadline = time.monotonic() + wait
        while True:
            for batch in consumer.poll(timeout_ms=300, max_records=10_000).values():
                messages.extend(batch)
            if all(consumer.position(tp) >= ends[tp] for tp in partitions):
                break
            if time.monotonic() > deadline:
                msg = f"could not read {topic} to its end within {wait:.0f} s"
                raise TimeoutError(msg)
        return sorted(messages, key=lambda m: (m.partition, m.offset))
    finally:
        consumer.close()


def _naive_iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def reason(letter: dict[str, Any]) -> str:
    """A dead letter's reason in one line: the last line of a traceback, the whole of a short message."""
    lines = str(letter.get("error") or "").strip().splitlines()
    return lines[-1] if lines else ""



def dead_letter_view(settings: Settings, read_engine: Engine) -> list[dict[str, Any]]:
    """The one dead-letter view: the database's, then the dead-letter topic's when Kafka is configured."""
    letters = database_letters(read_engine)
    if settings.kafka_enabled:
        letters += topic_letters(kafka_config(settings.kafka_bootstrap_servers, settings.kafka_client_id))
    return letters


def delivery_view(settings: Settings, read: Read, head: int, read_engine: Engine) -> dict[str, Any]:
    """What ``gridcase delivery`` and ``GET /api/v1/delivery`` show: topics, readers and the one dead-letter view."""
    letters = database_letters(read_engine)
    if not settings.kafka_enabled:
        return {"kafka": None, "store_head": head, "published_up_to": None, "lag": None, "topics": [], "readers": [],
                "dead_letters": letters}  # fmt: skip
    config = kafka_config(settings.kafka_bootstrap_servers, settings.kafka_client_id)
    found = delivery(config, read, head, read_engine, settings.kafka_partitions)
    letters += found.pop("kafka_letters")
    return {"kafka": settings.kafka_bootstrap_servers, **found, "dead_letters": letters}
