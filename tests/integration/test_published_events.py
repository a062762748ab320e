"""Every event a simulated district stores, in its published form, validates against its committed schema."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from adapters.kafka.published import ce_type, published_form, split_topic
from adapters.kafka.schemas import HEADERS, ROOT, event_types
from adapters.reference import load_reference_district, reference_commands
from adapters.service import Gridcase
from adapters.simulator import SimulationConfig, Simulator, World
from tests.conftest import make_settings

if TYPE_CHECKING:
    from pathlib import Path

REFERENCE_AT = datetime.fromisoformat("2021-01-01T00:00:00+08:00")
#: RFC 3339 as JSON Schema means it: a date, a time and an offset (jsonschema checks it only with extra packages).
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")

FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str) or not RFC3339.fullmatch(value):
        return False
    datetime.fromisoformat(value)
    return True


@FORMATS.checks("date", raises=ValueError)
def _date(value: object) -> bool:
    return isinstance(value, str) and bool(date.fromisoformat(value))


Published = list[tuple[str, dict[str, Any], dict[str, Any]]]


def published_stream(service: Gridcase) -> Published:
    """(ce_type, stored state, published value) of every stored event, in store order."""
    found, position = [], 0
    recorder = service.store.recorder
    while batch := recorder.select_notifications(start=position, limit=5000, inclusive_of_start=False):
        for n in batch:
            aggregate, name = split_topic(n.topic)
            state = json.loads(n.state)
            version = state.get("class_version", 1)
            value = published_form(name, state, n.originator_id.hex, n.originator_version)
            found.append((ce_type(aggregate, name, version), state, value))
        position = batch[-1].id
    return found


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """The reference district and a simulated week of thirty grids (every event type occurs), published."""
    path: Path = tmp_path_factory.mktemp("published") / "gridcase.db"
    service = Gridcase(make_settings(f"sqlite:///{path}"))
    try:
        load_reference_district(service, REFERENCE_AT)
        world = World(reference_commands(REFERENCE_AT), 30)
        Simulator(service, world, SimulationConfig(days=7, seed=11, grids=30, start=date(2021, 6, 1))).run()
        return published_stream(service)
    finally:
        service.close()


@pytest.mark.slow
def test_every_published_event_validates_against_the_schema_its_type_names(
    simulated: Published,
) -> None:
    validators, declared = {}, {}
    for event in event_types():
        schema = json.loads((ROOT / event.filename()).read_text("utf-8"))
        validators[event.ce_type()] = Draft202012Validator(schema, format_checker=FORMATS)
        declared[event.ce_type()] = set(schema["properties"])
    seen: Counter[str] = Counter()
    failures = []
    for kind, _, value in simulated:
        seen[kind] += 1
        errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validators[kind].iter_errors(value)]
        # Objects are open for later releases; today's messages carry nothing the schema does not name.
        errors += [f"{name}: not declared by the schema" for name in sorted(set(value) - declared[kind])]
        if errors and len(failures) < 10:
            failures.append((kind, errors))
    assert failures == []
    assert set(validators) - set(seen) == set(), "simulate longer: some event types did not occur"
    assert seen["gridcase.case.CaseReported.v1"] > 100


@pytest.mark.slow
def test_a_published_report_carries_no_personal_data(simulated: Published) -> None:
    reports = [(stored, value) for kind, stored, value in simulated if kind == "gridcase.case.CaseReported.v1"]
    contacts = [stored["reporter"] for stored, _ in reports if stored.get("reporter")]
    assert len(contacts) > 20, "the simulator gives some reporters a contact"
    assert any(not value["has_reporter_contact"] for _, value in reports), "patrol findings have none"
    for stored, value in reports:
        assert "reporter" not in value
        assert value["has_reporter_contact"] is bool(stored.get("reporter"))
        text = json.dumps(value, ensure_ascii=False)
        assert [v for v in distinctive(stored.get("reporter")) if v in text] == [], value["case_number"]
    # Nor does any other event carry them.
    everything = json.dumps([value for _, _, value in simulated], ensure_ascii=False)
    assert {v for contact in contacts for v in distinctive(contact) if v in everything} == set()


def distinctive(contact: dict[str, str | None] | None) -> list[str]:
    """The contact's values that cannot occur by chance (the simulator names every reporter 市民, "a citizen",
    a word its descriptions use too; phone numbers are eleven digits)."""
    return [v for v in (contact or {}).values() if v and len(v) >= 5]


def test_the_headers_schema_accepts_the_headers_described_in_the_design() -> None:
    validator = Draft202012Validator(json.loads((ROOT / HEADERS).read_text("utf-8")), format_checker=FORMATS)
    headers = {
        "ce_specversion": "1.0", "ce_id": "gridcase:42", "ce_source": "urn:gridcase:store",
        "ce_type": "gridcase.case.CaseReported.v1", "ce_time": "2021-06-01T01:00:00Z",
        "ce_subject": "SN-20210601-000001",
    }  # fmt: skip
    assert list(validator.iter_errors(headers)) == []
    assert not validator.is_valid({**headers, "ce_type": "CaseReported"})
    assert not validator.is_valid({k: v for k, v in headers.items() if k != "ce_id"})
