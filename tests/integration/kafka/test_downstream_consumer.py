"""A downstream consumer written only against ``schemas/``: it accepts every message the relay published.

The consumer here imports nothing of gridcase: it reads the schema files, reads the topics from a real broker
with plain kafka-python, and validates each message's headers and value with jsonschema.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from tests.integration.kafka.support import Engine, headers, topic_messages

pytestmark = pytest.mark.slow
SCHEMAS = Path(__file__).resolve().parents[3] / "schemas" / "events"
TOPICS = ("gridcase.case.events", "gridcase.patrol.events", "gridcase.registry.events")
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    return isinstance(value, str) and bool(RFC3339.fullmatch(value)) and bool(datetime.fromisoformat(value))


def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / name).read_text()), format_checker=FORMATS)


def test_a_consumer_built_from_the_schema_files_accepts_every_published_message(
    simulated: tuple[str, int], broker: str
) -> None:
    store, last = simulated
    Engine(store, broker)("relay")
    header_check = _validator("cloudevents-headers.schema.json")
    index = json.loads((SCHEMAS / "index.json").read_text())
    assert index, "the index lists the event types"
    validators: dict[str, Draft202012Validator] = {}
    seen: Counter[str] = Counter()
    for topic in TOPICS:
        for message in topic_messages(broker, topic):
            meta = headers(message)
            problems = [e.message for e in header_check.iter_errors(meta)]
            assert not problems, f"{topic}@{message.offset} headers: {problems}"
            kind = meta["ce_type"]
            if kind not in validators:
                validators[kind] = _validator(f"{kind}.schema.json")
            value = json.loads(message.value)
            problems = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validators[kind].iter_errors(value)]
            assert not problems, f"{topic}@{message.offset} {kind}: {problems}"
            assert message.key.decode() == value["originator_id"]
            seen[kind] += 1
    assert sum(seen.values()) == last, "every stored event was published and checked"
    assert len(seen) >= 20, f"the history exercises most event types: {sorted(seen)}"
