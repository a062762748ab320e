"""Replay from the event topics: a rebuild from Kafka equals the store-fed read models."""

from __future__ import annotations

import pytest

from tests.integration.kafka.support import Engine, read_models

pytestmark = pytest.mark.slow


def test_verify_and_rebuild_from_kafka_equal_the_read_models_fed_by_the_store(
    simulated: tuple[str, int], broker: str
) -> None:
    store, last = simulated
    engine = Engine(store, broker)
    engine("relay")  # every stored event onto the topics
    before = read_models(store)
    checked = engine.json("replay", "verify", "--from", "kafka")
    assert checked["differences"] == []
    assert set(checked["positions"].values()) == {last}
    rebuilt = engine.json("replay", "rebuild", "--from", "kafka")
    assert rebuilt["position"] == last
    assert read_models(store) == before
