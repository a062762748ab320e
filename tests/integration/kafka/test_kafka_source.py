"""The topics as a replay source: the store's events, in store order, without gaps, from a real broker."""

from __future__ import annotations

from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from kafka import KafkaProducer

from adapters.kafka.relay import kafka_config
from adapters.kafka.source import KafkaSource
from projections.case_status import CaseStatus
from projections.events import decode
from projections.intake import Intake
from projections.performance import Performance
from projections.runner import Runner
from projections.sql import make_engine
from tests.conftest import make_settings
from tests.integration.kafka.support import Engine, read_models
from tests.support import make_app

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow


def test_the_topics_give_back_the_store_in_order(simulated: tuple[str, int], broker: str, tmp_path: Path) -> None:
    store, last = simulated
    Engine(store, broker)("relay")
    producer = KafkaProducer(bootstrap_servers=broker)
    producer.send("gridcase.case.events", key=b"k", value=b"junk", partition=0)  # skipped: not an event
    producer.flush()
    producer.close()
    source = KafkaSource(kafka_config(broker, "test"))
    service = make_app(make_settings(store))
    try:
        from_store = service.reader.recorder.select_notifications(start=1, limit=last)
        from_kafka = []
        while batch := source(from_kafka[-1].id if from_kafka else 0, 3_000):
            from_kafka.extend(batch)
        assert [n.id for n in from_kafka] == list(range(1, last + 1))
        assert source.skipped == 1
        for stored, relayed in zip(from_store, from_kafka, strict=True):
            assert (relayed.originator_id, relayed.originator_version, relayed.topic) == (
                stored.originator_id, stored.originator_version, stored.topic)  # fmt: skip
            expected = decode(stored).data
            expected.pop("reporter", None)  # never published
            assert decode(relayed).data == expected
        assert [n.id for n in source(last - 5, 100)] == list(range(last - 4, last + 1)), "a rewind reads again"

        tz = ZoneInfo("Asia/Shanghai")
        url = f"sqlite:///{tmp_path / 'rebuilt.db'}"
        runner = Runner(make_engine(url), source, [CaseStatus(), Performance(tz), Intake(tz)], batch_size=2_000)
        runner.create_tables()
        assert runner.run_once().position == last
        assert read_models(url) == read_models(store)
    finally:
        source.close()
        service.close()
