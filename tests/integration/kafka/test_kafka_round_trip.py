"""Store → relay → Kafka → projector, against a real broker: the Kafka-fed read models equal the store-fed ones."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import time
from collections import defaultdict
from typing import TYPE_CHECKING

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from adapters.kafka.published import DEADLETTER_TOPIC
from tests.conftest import _fresh_database
from tests.integration.kafka.support import GRIDCASE, Engine, headers, read_models, simulate, topic_messages

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

pytestmark = pytest.mark.slow
TOPICS = ("gridcase.case.events", "gridcase.patrol.events", "gridcase.registry.events")


def _read_url(database_url: str, tmp_path: Path, name: str, request: pytest.FixtureRequest) -> str:
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / name}"
    return _fresh_database(request.getfixturevalue("pg_server_url"))


def _all_published(bootstrap: str) -> list:
    return [m for topic in TOPICS for m in topic_messages(bootstrap, topic)]


def _assert_exactly_once_in_order(messages: list, last: int) -> None:
    positions = [int(headers(m)["gridcase_position"]) for m in messages]
    assert sorted(positions) == list(range(1, last + 1)), "every stored event once, none twice"
    versions: dict[bytes, list[int]] = defaultdict(list)
    for message in messages:  # partition by partition, in offset order
        versions[message.key].append(json.loads(message.value)["originator_version"])
    for key, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), f"aggregate {key!r} out of order: {seen[:20]}"


def test_round_trip_equals_store_fed(database_url: str, broker: str, tmp_path: Path,
                                     request: pytest.FixtureRequest) -> None:  # fmt: skip
    if database_url.startswith("sqlite"):
        database_url, last = request.getfixturevalue("simulated")
        engine = Engine(database_url, broker)
    else:
        engine = Engine(database_url, broker)
        last = simulate(engine)

    relayed = engine.json("relay")
    assert relayed["published"] == last
    assert relayed["position"] == last
    again = engine.json("relay")
    assert again["published"] == 0, "a second run publishes nothing twice"

    kafka_fed = engine.with_reads(_read_url(database_url, tmp_path, "read.db", request))
    summary = kafka_fed.json("project", "--from", "kafka")
    assert summary["messages"] == last
    assert summary["deadlettered"] == 0
    assert read_models(kafka_fed.read_database_url) == read_models(database_url)
    _assert_exactly_once_in_order(_all_published(broker), last)


def test_members_share_the_partitions(simulated: tuple[str, int], broker: str, tmp_path: Path) -> None:
    sqlite_url, last = simulated
    engine = Engine(sqlite_url, broker)
    engine("relay")
    shared = engine.with_reads(f"sqlite:///{tmp_path / 'shared.db'}")
    first = shared.json("project", "--from", "kafka", "--member", "0/2")
    second = shared.json("project", "--from", "kafka", "--member", "1/2")
    registry = len(topic_messages(broker, "gridcase.registry.events"))
    assert first["messages"] + second["messages"] == last + registry, "each reads its partitions and the registry"
    assert read_models(shared.read_database_url) == read_models(sqlite_url)
    assert shared.json("project", "--from", "kafka", "--member", "1/2")["messages"] == 0


def test_published_messages_carry_cloudevents_headers_and_no_personal_data(sqlite_url: str, broker: str) -> None:
    engine = Engine(sqlite_url, broker)
    engine("load-reference")
    engine("case", "report", "--channel", "hotline", "--category", "facility.manhole", "--grid", "SN08-C01-G004",
           "--description", "井盖缺失", "--reporter-name", "张三", "--reporter-phone", "13912345678",
           "--actor", "hotline-01", "--role", "intake_operator")  # fmt: skip
    engine("relay")
    [message] = topic_messages(broker, "gridcase.case.events")
    meta = headers(message)
    assert meta["ce_specversion"] == "1.0"
    assert meta["ce_type"] == "gridcase.case.CaseReported.v1"
    assert meta["ce_subject"].startswith("SN-")
    assert meta["content-type"] == "application/json"
    assert meta["ce_time"].endswith("Z")
    value = json.loads(message.value)
    assert message.key.decode() == value["originator_id"]
    assert value["has_reporter_contact"] is True
    assert "reporter" not in value
    assert "13912345678" not in message.value.decode()
    assert "张三" not in message.value.decode()


def test_no_kafka_configured_is_a_clear_error(sqlite_url: str) -> None:
    result = Engine(sqlite_url)("relay", check=False)
    assert result.returncode == 2
    assert "GRIDCASE_KAFKA_BOOTSTRAP_SERVERS" in result.stderr
    result = Engine(sqlite_url)("project", "--from", "kafka", check=False)
    assert result.returncode == 2
    assert "GRIDCASE_KAFKA_BOOTSTRAP_SERVERS" in result.stderr


def _kill_at_random(
    engine: Engine, args: tuple[str, ...], progress: Callable[[], int], rng: random.Random, times: int
) -> None:
    """Start the process and SIGKILL it at a random moment once it has made progress, several times."""
    for _ in range(times):
        before = progress()
        process = engine.start(*args)
        deadline = time.monotonic() + 60
        while progress() == before and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        # Soon after its first progress: the Kafka-fed projector commits thousands of messages a second, so a
        # longer wait lets four runs finish the work and the kills interrupt nothing.
        time.sleep(rng.uniform(0, 0.1))
        process.send_signal(signal.SIGKILL)
        process.wait()


def _published_count(bootstrap: str) -> Callable[[], int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    partitions: list[TopicPartition] = []

    def count() -> int:
        if not partitions:
            consumer.poll(timeout_ms=0)  # refresh metadata
            partitions.extend(TopicPartition(t, p) for t in TOPICS for p in consumer.partitions_for_topic(t) or ())
        return sum(consumer.end_offsets(partitions).values()) if partitions else 0

    return count


def _applied_offsets(url: str) -> Callable[[], int]:
    path = url.removeprefix("sqlite:///")

    def count() -> int:
        try:
            with sqlite3.connect(path, timeout=5) as connection:
                return int(connection.execute("SELECT COALESCE(SUM(next_offset), 0) FROM kafka_offsets").fetchone()[0])
        except sqlite3.OperationalError:
            return 0  # not created yet

    return count


def test_relay_killed_at_random_points_publishes_everything_exactly_once(
    simulated: tuple[str, int], broker: str
) -> None:
    sqlite_url, last = simulated
    engine = Engine(sqlite_url, broker)
    _kill_at_random(engine, ("relay", "--batch-size", "250"), _published_count(broker), random.Random(11), times=4)
    on_kafka = len(_all_published(broker))
    assert 0 < on_kafka < last, "the kills interrupted the publishing"
    final = engine.json("relay")
    assert final["published"] == last - on_kafka
    _assert_exactly_once_in_order(_all_published(broker), last)


def test_projector_killed_at_random_points_equals_a_clean_build(
    simulated: tuple[str, int], broker: str, tmp_path: Path
) -> None:
    sqlite_url, last = simulated
    engine = Engine(sqlite_url, broker)
    engine("relay")
    kafka_fed = engine.with_reads(f"sqlite:///{tmp_path / 'read.db'}")
    applied = _applied_offsets(kafka_fed.read_database_url)
    _kill_at_random(kafka_fed, ("project", "--from", "kafka", "--batch-size", "300"), applied, random.Random(5), 4)
    final = kafka_fed.json("project", "--from", "kafka")
    assert 0 < final["messages"] < last, "the kills interrupted the projector after some batches"
    assert read_models(kafka_fed.read_database_url) == read_models(sqlite_url)


def test_a_poison_message_goes_to_the_dead_letter_topic_and_the_projector_goes_on(
    simulated: tuple[str, int], broker: str, tmp_path: Path
) -> None:
    sqlite_url, last = simulated
    engine = Engine(sqlite_url, broker)
    engine("relay")
    producer = KafkaProducer(bootstrap_servers=broker)
    looks_like_ours = [("ce_type", b"gridcase.case.CaseReported.v1"), ("gridcase_position", b"999999")]
    producer.send("gridcase.case.events", key=b"k", value=b"{not json", partition=0, headers=looks_like_ours)
    producer.send("gridcase.patrol.events", key=b"k", value=b'{"a": 1}', partition=1)
    producer.flush()
    producer.close()
    kafka_fed = engine.with_reads(f"sqlite:///{tmp_path / 'read.db'}")
    summary = kafka_fed.json("project", "--from", "kafka")
    assert summary["deadlettered"] == 2
    letters = topic_messages(broker, DEADLETTER_TOPIC)
    assert sorted(m.value for m in letters) == [b'{"a": 1}', b"{not json"]
    errors = sorted(headers(m)["gridcase_error"] for m in letters)
    assert "not a gridcase event" in errors[0]
    assert any("gridcase.case.events" in headers(m)["gridcase_source"] for m in letters)
    assert read_models(kafka_fed.read_database_url) == read_models(sqlite_url)

    # The strays now end two partitions, one with a position far beyond the store's: the relay sees past them.
    engine("case", "report", "--channel", "hotline", "--category", "facility.manhole", "--grid", "SN08-C01-G004",
           "--description", "井盖缺失", "--actor", "hotline-01", "--role", "intake_operator")  # fmt: skip
    assert engine.json("relay")["published"] == 1
    _assert_exactly_once_in_order([m for m in _all_published(broker) if m.key != b"k"], last + 1)


def test_a_second_relay_on_the_same_store_is_refused(sqlite_url: str, broker: str) -> None:
    # A lease comfortably longer than one batch takes on a busy machine (the others use 2 s to restart fast).
    engine = Engine(sqlite_url, broker, extra={"GRIDCASE_RELAY_LEASE_SECONDS": "10"})
    engine("load-reference")
    first = engine.start("relay", "--follow")
    try:
        deadline = time.monotonic() + 60
        while _published_count(broker)() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        second = engine("relay", check=False)
        assert second.returncode == 4
        assert "another relay is running" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
    assert engine.json("relay")["published"] == 0, "the lease is released on a clean stop; nothing was left"


def test_a_relay_that_loses_kafka_stops_with_exit_5_and_claims_nothing(
    simulated: tuple[str, int], broker_process: Callable[[], tuple[str, Any]]
) -> None:
    address, process = broker_process()
    engine = Engine(simulated[0], address)
    relay = subprocess.Popen([str(GRIDCASE), "relay", "--follow", "--batch-size", "200"], env=engine.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    progress = _published_count(address)
    deadline = time.monotonic() + 60
    while progress() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()
    _, stderr = relay.communicate(timeout=120)
    assert relay.returncode == 5, stderr[-2000:]
    assert "unavailable" in stderr


@pytest.mark.parametrize("members", [("0/1", "0/1"), ("0/2", "1/2")])
def test_projectors_running_at_the_same_time_apply_each_event_once(
    database_url: str, broker: str, tmp_path: Path, request: pytest.FixtureRequest, members: tuple[str, str]
) -> None:
    if database_url.startswith("sqlite"):
        store, _ = request.getfixturevalue("simulated")
    else:
        store = database_url
        simulate(Engine(store))
    engine = Engine(store, broker)
    engine("relay")
    kafka_fed = engine.with_reads(_read_url(database_url, tmp_path, "read.db", request))
    running = [kafka_fed.start("project", "--from", "kafka", "--member", m, "--batch-size", "500") for m in members]
    assert [p.wait(timeout=300) for p in running] == [0, 0]
    kafka_fed("project", "--from", "kafka", "--member", members[0])
    kafka_fed("project", "--from", "kafka", "--member", members[1])
    assert read_models(kafka_fed.read_database_url) == read_models(store)
