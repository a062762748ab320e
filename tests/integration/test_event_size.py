"""Issue 13: an event that would not fit in one Kafka message cannot be stored in the first place.

The guard is the unit of work's, with the limit from the settings (GRIDCASE_MAX_EVENT_BYTES), so it holds for the
CLI, ``apply`` and HTTP alike. The limit is set low here rather than relying on how large one field may be: the
field bounds (domain/) are another line of defence; this one is for the sum.
"""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from adapters.bootstrap import BadSettings, settings_from_environment
from adapters.kafka.message import dead_letter_headers
from adapters.kafka.published import split_topic
from adapters.kafka.relay import Relay, message_bytes
from adapters.settings import Settings
from domain.case import case_id
from service import BadInput
from service.unit_of_work import ENVELOPE_MARGIN, published_size
from tests.conftest import KEY_VAR
from tests.integration.kafka.support import GRIDCASE
from tests.support import CATEGORY, GRID, OPERATOR, make_app, report, run, seed_small_district

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support import App

LIMIT = 10_000
#: 700 characters of 3 bytes: 2.1 KB of description, well within any sane bound on one field, but with the rest
#: of the event and the envelope margin over a 10 KB limit.
LONG = "井" * 700


@pytest.fixture
def small_limit(sqlite_url: str) -> Iterator[App]:
    """The engine with events limited to 10 KB (and a Kafka that takes 10 KB messages)."""
    app = make_app(Settings(database_url=sqlite_url, max_event_bytes=LIMIT, kafka_max_message_bytes=LIMIT))
    seed_small_district(app)
    yield app
    app.close()


def _stored(app: App) -> int:
    return len(app.reader.read(0, 100_000))


def test_a_command_whose_event_would_be_too_large_is_bad_input_naming_it_and_writes_nothing(small_limit: App) -> None:
    before = _stored(small_limit)
    with pytest.raises(BadInput) as refused:
        report(small_limit, description=LONG)
    message = str(refused.value)
    assert message.startswith("case.report: the event CaseReported would be ")
    assert message.endswith("; the limit is 10 KB")
    assert _stored(small_limit) == before, "nothing written"

    number = report(small_limit)  # an ordinary report still goes through under the same limit
    assert number.endswith("-000001"), "the refused report issued no number"
    assert _stored(small_limit) == before + 1


def test_one_oversized_command_in_a_batch_writes_none_of_the_batch(small_limit: App) -> None:
    before = _stored(small_limit)
    number = ""

    def batch() -> None:
        nonlocal number
        with small_limit.batch():
            number = report(small_limit)
            run(small_limit, command="case.note", actor=OPERATOR, case_number=number, note=LONG)

    with pytest.raises(BadInput, match=r"^case\.note: the event ProgressNoted would be "):
        batch()
    assert _stored(small_limit) == before
    assert not small_limit.case_exists(number)


def test_an_event_the_guard_lets_through_fits_in_one_kafka_message(small_limit: App) -> None:
    # The longest description the guard takes, found by trying: its message must fit, with room for the headers
    # a projector adds when it dead-letters it.
    low, high = 0, len(LONG)
    while high - low > 1:
        middle = (low + high) // 2
        try:
            report(small_limit, description="井" * middle)
        except BadInput:
            high = middle
        else:
            low = middle
    assert low > 0
    notification = small_limit.reader.read(0, 100_000)[-1]
    relay = Relay(small_limit.reader.read, small_limit.reader.first_event, {})
    value, headers = relay.message(notification, *split_topic(notification.topic))
    assert "井" * low in value.decode(), "the last event stored is the longest accepted report"
    key = notification.originator_id.hex.encode()
    record = ConsumerRecord("gridcase.case.events", 999, -1, 10**12, 0, 0, key, value, headers, None, 0, 0, 0)
    letter = dead_letter_headers(record, "x" * 10_000, "case_status")
    assert message_bytes(key, value, letter) <= LIMIT


def test_the_limit_comes_from_the_environment_and_must_fit_on_kafka(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDCASE_MAX_EVENT_BYTES", "20000")
    assert settings_from_environment(configure_logs=False).max_event_bytes == 20_000
    defaults = Settings.model_fields
    assert defaults["max_event_bytes"].default < defaults["kafka_max_message_bytes"].default == 1_048_576
    monkeypatch.setenv("GRIDCASE_MAX_EVENT_BYTES", "2000000")
    with pytest.raises(BadSettings, match=r"GRIDCASE_MAX_EVENT_BYTES .* must not exceed GRIDCASE_KAFKA_MAX_MESSAGE"):
        settings_from_environment(configure_logs=False)


def test_the_cli_refuses_it_in_one_line_with_exit_2(sqlite_url: str) -> None:
    app = make_app(Settings(database_url=sqlite_url))
    seed_small_district(app)
    before = _stored(app)
    app.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_") or k == KEY_VAR}
    env |= {"GRIDCASE_DATABASE_URL": sqlite_url, "GRIDCASE_MAX_EVENT_BYTES": str(LIMIT)}
    result = subprocess.run(
        [str(GRIDCASE), "case", "report", "--channel", "hotline", "--category", CATEGORY, "--grid", GRID,
         "--description", LONG, "--actor", OPERATOR["id"], "--role", OPERATOR["role"]],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("bad input: case.report: the event CaseReported would be ")
    assert line.endswith("; the limit is 10 KB")
    app = make_app(Settings(database_url=sqlite_url))
    assert _stored(app) == before, "nothing written"
    app.close()


def test_the_guard_measures_the_json_the_store_writes(small_limit: App) -> None:
    number = report(small_limit, description='井盖缺失 "quoted" \\ backslash ' + "井" * 100)
    [event] = small_limit.store.events_of(case_id(number))
    [stored] = small_limit.store.recorder.select_events(case_id(number))
    assert published_size(event) == len(stored.state) + ENVELOPE_MARGIN
