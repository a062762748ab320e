"""The Kafka-fed projector sets aside an event whose rows it cannot write, like one it cannot apply (issue 13).

The poison is a real stored event relayed to a real broker (see tests/integration/test_poison_events.py for
how it is stored): a PatrolEnded of 10^20 metres on SQLite, a population of 3·10^9 on PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from adapters.kafka.published import DEADLETTER_TOPIC
from projections.case_status import case_status
from projections.sql import make_engine
from tests.conftest import make_settings
from tests.integration.kafka.support import Engine, headers, topic_messages
from tests.integration.test_poison_events import POISON, backend, store_poison
from tests.support import ADMIN, GRID, OTHER_GRID, T0, WORKER, make_app, report, run, seed_small_district

if TYPE_CHECKING:
    from typing import Any

pytestmark = pytest.mark.slow


def test_an_event_whose_rows_cannot_be_written_goes_to_the_dead_letter_topic_and_the_projector_goes_on(
    database_url: str, broker: str
) -> None:
    app = make_app(make_settings(database_url))
    try:
        seed_small_district(app)
        patrol = str(run(app, command="patrol.start", actor=WORKER, at=T0, worker="W001", grid=GRID)["patrol_number"])
        run(app, command="patrol.end", patrol_number=patrol, actor=WORKER, at=T0 + timedelta(hours=1),
            distance_m=800)  # fmt: skip
        run(app, command="registry.grid-figures", actor=ADMIN, at=T0 + timedelta(hours=1), grid=GRID,
            households=510, population=1010, elderly=181)  # fmt: skip
        event_type, changes = POISON[backend(database_url)]
        poison = store_poison(app, event_type, **changes)
        number = report(app, at=T0 + timedelta(hours=4), grid=OTHER_GRID)
        last = app.reader.last_position()
    finally:
        app.close()

    engine = Engine(database_url, broker, extra={"GRIDCASE_PROJECTIONS_SOURCE": "kafka"})
    assert engine.json("relay")["published"] == last
    summary = engine.json("project", "--from", "kafka")
    assert summary["messages"] == last
    assert summary["deadlettered"] == 1
    [letter] = topic_messages(broker, DEADLETTER_TOPIC)
    said: dict[str, Any] = headers(letter)
    assert int(said["gridcase_position"]) == poison
    assert said["gridcase_projection"] == "performance"
    assert "could not write its rows" in said["gridcase_error"], said["gridcase_error"]
    assert json.loads(letter.value)["originator_version"] >= 1

    # The rest was written: the case reported after the poison is there.
    read = make_engine(database_url)
    try:
        with read.connect() as connection:
            states = connection.execute(select(case_status.c.state).where(case_status.c.case_number == number)).all()
        assert states == [("reported",)]
    finally:
        read.dispose()
    # And the offsets moved past it: a second run finds nothing to do, nothing is dead-lettered again.
    again = engine.json("project", "--from", "kafka")
    assert (again["messages"], again["deadlettered"]) == (0, 0)
    assert len(topic_messages(broker, DEADLETTER_TOPIC)) == 1
