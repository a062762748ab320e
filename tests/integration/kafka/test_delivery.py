"""Proof of delivery on a real broker: the relay's lag while it is stopped, none once it caught up, the readers'
offsets, and a poison message in the one dead-letter view beside the database's (issue 17 item 3)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from kafka import KafkaProducer

from tests.conftest import make_settings
from tests.e2e.http.conftest import serving
from tests.integration.kafka.support import Engine
from tests.support import T0, make_app, report, seed_small_district

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow
CASES = "gridcase.case.events"


def _stored(url: str, *, reports: int, at: Any = T0) -> int:
    """Write ``reports`` new cases (and the small district the first time); the store's last position."""
    app = make_app(make_settings(url))
    try:
        if at == T0:
            seed_small_district(app)
        for n in range(reports):
            report(app, at=at + timedelta(minutes=n))
        return app.reader.last_position()
    finally:
        app.close()


def _case_partitions(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in view["topics"] if row["topic"] == CASES]


def test_delivery_shows_the_lag_while_the_relay_is_stopped_and_none_once_it_caught_up(
    tmp_path: Path, broker: str
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    first = _stored(url, reports=3)
    engine = Engine(url, broker, extra={"GRIDCASE_PROJECTIONS_SOURCE": "kafka"})

    never = engine.json("delivery")  # nothing published yet: every stored event is lag, no topic is created
    assert (never["store_head"], never["published_up_to"], never["lag"]) == (first, 0, first)
    assert sum(row["lag"] for row in never["topics"]) == first

    engine("relay")
    engine("project", "--from", "kafka")
    caught_up = engine.json("delivery")
    assert (caught_up["store_head"], caught_up["published_up_to"], caught_up["lag"]) == (first, first, 0)
    for row in caught_up["topics"]:
        assert row["lag"] == 0
        assert row["last_stored"] == row["last_published"]
    assert max(row["last_published"] for row in _case_partitions(caught_up)) == first
    readers = caught_up["readers"]
    assert {row["reader"] for row in readers} >= {"kafka_offsets: case_status", "kafka_offsets: performance"}
    assert all(row["behind"] == 0 for row in readers)

    last = _stored(url, reports=2, at=T0 + timedelta(hours=2))  # the relay is stopped: two cases wait
    waiting = engine.json("delivery")
    assert (waiting["store_head"], waiting["published_up_to"], waiting["lag"]) == (last, first, last - first)
    behind = [row for row in _case_partitions(waiting) if row["lag"]]
    assert sum(row["lag"] for row in behind) == last - first
    assert max(row["last_stored"] for row in behind) == last
    assert all(row["last_published"] < row["last_stored"] for row in behind)
    shown = engine("delivery").stdout
    assert f"{last - first} events not published yet" in shown

    engine("relay")
    published = engine.json("delivery")
    assert (published["published_up_to"], published["lag"]) == (last, 0)
    assert any(row["behind"] for row in published["readers"])  # the projector has not read them yet


def test_a_poison_message_is_in_the_one_dead_letter_view_of_the_cli_and_the_api(tmp_path: Path, broker: str) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    fed = {"kafka_bootstrap_servers": broker, "kafka_partitions": 4, "projections_source": "kafka"}
    with serving(url, **fed) as api:  # the small district, and the API over it
        engine = Engine(url, broker, extra={"GRIDCASE_PROJECTIONS_SOURCE": "kafka"})
        engine("relay")
        producer = KafkaProducer(bootstrap_servers=broker)
        producer.send(CASES, key=b"not-an-aggregate", value=b"{not json", partition=0).get(timeout=30)
        producer.close()
        assert engine.json("project", "--from", "kafka")["deadlettered"] == 1

        [letter] = [row for row in engine.json("deadletters") if row["where"] == "kafka"]
        assert letter["projection"] == "projector: undecodable"
        assert "not a gridcase event" in letter["error"]
        assert letter["source"].startswith("gridcase.deadletter[")
        assert letter["came_from"].startswith(f"{CASES}/0/")
        listed = engine("deadletters").stdout
        assert "kafka" in listed
        assert "not a gridcase event" in listed
        assert "nothing" not in listed
        view = engine.json("delivery")
        assert [row for row in view["dead_letters"] if row["where"] == "kafka"] == [letter]
        assert view["lag"] == 0  # a stray message on a topic is not the store's, and no event is missing

        with api.client("admin") as admin:
            assert admin.get("/api/v1/deadletters").json() == engine.json("deadletters")
            served = admin.get("/api/v1/delivery").json()
        assert served["dead_letters"] == view["dead_letters"]
        assert (served["store_head"], served["lag"], served["topics"]) == (view["store_head"], 0, view["topics"])
        with api.client("dispatcher") as dispatcher:
            assert dispatcher.get("/api/v1/delivery").status_code == 403
