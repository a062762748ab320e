"""Issue 13: one event Kafka will not take never stops the relay; it is dead-lettered once and the rest go on.

Against a real broker, with the relay run as ``gridcase relay``. The poison events are stored through the store
itself, bypassing the service, as an older engine version (without the size guard) would have stored them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent
from kafka import TopicPartition
from kafka import errors as kafka_errors
from kafka.producer.future import FutureProduceResult, FutureRecordMetadata

from adapters.kafka.published import DEADLETTER_TOPIC
from adapters.kafka.relay import Relay, kafka_config, refused_for_good
from adapters.kafka.source import KafkaSource
from domain.case import case_id
from tests.conftest import make_settings
from tests.integration.kafka.support import Engine, headers, topic_messages
from tests.support import make_app, report, seed_small_district

if TYPE_CHECKING:
    from kafka import KafkaProducer

    from tests.support import App

pytestmark = pytest.mark.slow
TOPICS = ("gridcase.case.events", "gridcase.patrol.events", "gridcase.registry.events")


def _store_directly(app: App, topic: str, state: bytes) -> int:
    """Store one event of a new aggregate through the store's recorder; its position."""
    [position] = app.store.recorder.insert_events([StoredEvent(uuid4(), 1, topic, state)]) or [0]
    return int(position)


def _reported(app: App, number: str) -> tuple[str, dict[str, Any]]:
    """The stored topic and state of a case's CaseReported."""
    [stored] = app.store.recorder.select_events(case_id(number), limit=1)
    return stored.topic, json.loads(stored.state)


def _published(broker: str) -> list[Any]:
    return [m for topic in TOPICS for m in topic_messages(broker, topic)]


def _assert_in_order(messages: list[Any], expected: list[int]) -> None:
    positions = [int(headers(m)["gridcase_position"]) for m in messages]
    assert sorted(positions) == expected, "every other event once, none twice"
    versions: dict[bytes, list[int]] = defaultdict(list)
    for message in messages:  # partition by partition, in offset order
        versions[message.key].append(json.loads(message.value)["originator_version"])
    for key, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), f"aggregate {key!r} out of order: {seen}"


def _relay(engine: Engine) -> tuple[dict[str, Any], str]:
    run = engine("relay", "--json")
    return json.loads(run.stdout), run.stderr


def _assert_reference(letter: Any, position: int) -> None:
    """Too large to carry even as a dead letter: a reference to the event, without its payload."""
    meta = headers(letter)
    assert meta["gridcase_reference"] == "true"
    assert meta["gridcase_source"] == f"store/{position}"
    assert meta["gridcase_topic"] == "gridcase.case.events"
    assert "Kafka takes at most 1,048,576" in meta["gridcase_error"]
    reference = json.loads(letter.value)
    assert reference["position"] == position
    assert reference["topic"] == "gridcase.case.events"
    assert reference["type"] == "gridcase.case.CaseReported.v1"
    assert reference["aggregate"] == letter.key.decode()
    assert reference["bytes"] > 1_048_576
    assert "1,048,576" in reference["reason"]
    assert len(letter.value) < 2_000


def test_oversized_events_are_dead_lettered_once_as_references_and_the_later_events_go_on(
    sqlite_url: str, broker: str
) -> None:
    app = make_app(make_settings(sqlite_url))
    seed_small_district(app)
    first = report(app)
    topic, state = _reported(app, first)
    # The case: a 10 MB description (3 bytes a character), over any limit the relay's producer has.
    ten_mb = {**state, "case_number": "SN-20210601-999998", "description": "井" * 3_400_000}
    huge = _store_directly(app, topic, json.dumps(ten_mb, ensure_ascii=False).encode())
    later = [report(app) for _ in range(3)]
    # 1.5 MB: over Kafka's default 1 MiB message; stored last, so its partition holds nothing after it.
    big = {**state, "case_number": "SN-20210601-999999", "description": "井" * 500_000}
    oversized = _store_directly(app, topic, json.dumps(big, ensure_ascii=False).encode())
    last = app.reader.read(0, 10_000)[-1].id
    app.close()

    engine = Engine(sqlite_url, broker)
    relayed, log = _relay(engine)
    assert relayed["deadlettered"] == 2
    assert relayed["deadlettered_positions"] == [huge, oversized]
    assert relayed["published"] == last - 2
    assert relayed["position"] == last
    assert "dead-lettered" in log
    assert str(huge) in log

    _assert_in_order(_published(broker), [p for p in range(1, last + 1) if p not in {huge, oversized}])
    numbers = {json.loads(m.value).get("case_number") for m in topic_messages(broker, "gridcase.case.events")}
    assert set(later) <= numbers, "the events stored after the oversized one reached Kafka"

    letters = {int(headers(m)["gridcase_position"]): m for m in topic_messages(broker, DEADLETTER_TOPIC)}
    assert sorted(letters) == [huge, oversized]
    for position, letter in letters.items():
        _assert_reference(letter, position)

    again, _ = _relay(engine)
    assert (again["published"], again["deadlettered"]) == (0, 0), "a second run re-sends nothing"
    assert len(topic_messages(broker, DEADLETTER_TOPIC)) == 2

    # A replay from Kafka passes over what the relay set aside instead of stopping before it for good.
    source = KafkaSource(kafka_config(broker, "test"))
    try:
        replayed = [n.id for n in source(0, 10_000)]
    finally:
        source.close()
    assert replayed == [p for p in range(1, last + 1) if p not in {huge, oversized}]
    assert source.set_aside == 2

    app = make_app(make_settings(sqlite_url))
    newest = report(app)
    app.close()
    after, _ = _relay(engine)
    assert (after["published"], after["deadlettered"]) == (1, 0)
    assert newest in {json.loads(m.value).get("case_number") for m in topic_messages(broker, "gridcase.case.events")}


def test_an_event_the_relay_cannot_encode_is_dead_lettered_with_its_payload(sqlite_url: str, broker: str) -> None:
    app = make_app(make_settings(sqlite_url))
    seed_small_district(app)
    topic, _ = _reported(app, report(app))
    broken_state = b'{"description":"no occurred_at"}'
    broken = _store_directly(app, topic, broken_state)
    later = report(app)
    last = app.reader.read(0, 10_000)[-1].id
    app.close()

    engine = Engine(sqlite_url, broker)
    relayed, _ = _relay(engine)
    assert (relayed["published"], relayed["deadlettered"]) == (last - 1, 1)
    _assert_in_order(_published(broker), [p for p in range(1, last + 1) if p != broken])
    assert later in {json.loads(m.value).get("case_number") for m in topic_messages(broker, "gridcase.case.events")}
    [letter] = topic_messages(broker, DEADLETTER_TOPIC)
    assert letter.value == broken_state, "small enough to carry: the stored event itself"
    meta = headers(letter)
    assert int(meta["gridcase_position"]) == broken
    assert meta["gridcase_source"] == f"store/{broken}"
    assert "occurred_at" in meta["gridcase_error"]
    assert "gridcase_reference" not in meta
    again, _ = _relay(engine)
    assert (again["published"], again["deadlettered"]) == (0, 0)


@pytest.mark.parametrize(
    ("error", "for_good"),
    [
        (kafka_errors.MessageSizeTooLargeError(), True),
        (kafka_errors.RecordListTooLargeError(), True),
        (kafka_errors.InvalidRecordError(), True),
        (kafka_errors.InvalidTimestampError(), True),
        (kafka_errors.KafkaTimeoutError(), False),
        (kafka_errors.NotLeaderForPartitionError(), False),
        (kafka_errors.KafkaConnectionError(), False),
        (kafka_errors.RequestTimedOutError(), False),
        (kafka_errors.TopicAuthorizationFailedError(), False),
        (kafka_errors.ClusterAuthorizationFailedError(), False),
        (kafka_errors.OutOfOrderSequenceNumberError(), False),
        (kafka_errors.IllegalStateError(), False),
        (kafka_errors.UnsupportedCompressionTypeError(), False),
        (kafka_errors.BrokerNotAvailableError(), False),
        (kafka_errors.UnknownError(), False),
        (ValueError("not Kafka's"), False),
        (None, False),
    ],
)
def test_only_a_refusal_of_the_message_itself_is_dead_lettered(error: BaseException | None, for_good: bool) -> None:
    # Retriable errors stop the relay (a restart sends again); so do permanent ones about the cluster or the
    # producer, which would otherwise send every event to the dead-letter topic.
    assert refused_for_good(error) is for_good


class _RefusingBroker:
    """The relay's real producer, refusing one position as a broker with a lower message.max.bytes would.

    Tansu, the test broker, enforces no message limit at all, so this stands in for a broker's refusal arriving
    after the send: the refused message's future fails with MessageSizeTooLargeError, and, as kafka-python does
    once its idempotent producer has failed, every later send of the same producer fails too.
    """

    def __init__(self, real: KafkaProducer, refused: int) -> None:
        self.real, self.refused, self.failed = real, refused, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def send(self, topic: str, **message: Any) -> Any:
        position = int(dict(message.get("headers") or ()).get("gridcase_position", b"0"))
        if topic != DEADLETTER_TOPIC and (position == self.refused or self.failed):
            self.failed = True
            error = kafka_errors.MessageSizeTooLargeError("over message.max.bytes") if position == self.refused else (
                kafka_errors.IllegalStateError("the producer failed earlier"))  # fmt: skip
            result = FutureProduceResult(TopicPartition(topic, message.get("partition") or 0))
            return FutureRecordMetadata(result, -1, None, None, 0, 0, 0).failure(error)
        return self.real.send(topic, **message)


def test_a_refusal_after_sending_sets_aside_exactly_that_message(sqlite_url: str, broker: str) -> None:
    app = make_app(make_settings(sqlite_url))
    seed_small_district(app)
    for _ in range(6):
        report(app)
    notifications = app.reader.read(0, 10_000)
    refused = notifications[-3].id

    class Relay_(Relay):  # noqa: N801 - the relay, over the refusing broker
        def _new_producer(self) -> Any:
            return _RefusingBroker(super()._new_producer(), refused)

    relay = Relay_(app.reader.read, app.reader.first_event, kafka_config(broker, "test"), partitions=4)
    relay.start()
    try:
        stats = relay.run_once()
    finally:
        relay.close()
    assert (stats.published, stats.deadlettered, stats.deadlettered_positions) == (len(notifications) - 1, 1, [refused])
    _assert_in_order(_published(broker), [n.id for n in notifications if n.id != refused])
    [letter] = topic_messages(broker, DEADLETTER_TOPIC)
    assert int(headers(letter)["gridcase_position"]) == refused
    assert "MessageSizeTooLargeError" in headers(letter)["gridcase_error"]
    assert json.loads(letter.value)["originator_version"] == 1, "small enough: the message itself"

    again = Relay(app.reader.read, app.reader.first_event, kafka_config(broker, "test"), partitions=4)
    again.start()
    try:
        second = again.run_once()
        assert (second.published, second.deadlettered) == (0, 0), "a second run re-sends nothing"
    finally:
        again.close()
    app.close()
