"""What the relay would publish for every event of a simulated district validates against the committed schemas.

The messages are the relay's own (``Relay.message``: the value and the CloudEvents headers), made without a
broker: the value against the schema its ``ce_type`` header names, the headers against the headers schema.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from adapters.kafka.published import split_topic
from adapters.kafka.relay import Relay
from adapters.kafka.schemas import HEADERS, ROOT, event_types
from district.reference import load_reference_district, reference_commands
from district.simulator import SimulationConfig, Simulator, World
from domain.base import ActorRef, Role
from domain.personal import LookupKind, is_sealed
from tests.conftest import make_settings
from tests.support import App, make_app, run

if TYPE_CHECKING:
    from pathlib import Path
    from uuid import UUID

    from eventsourcing.persistence import StoredEvent

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


@dataclass(frozen=True)
class Message:
    """One event as stored and as the relay publishes it."""

    stored: dict[str, Any]
    value: dict[str, Any]
    headers: dict[str, str]

    @property
    def ce_type(self) -> str:
        return self.headers["ce_type"]


Published = list[Message]


def published_stream(service: App) -> Published:
    """Every stored event, in store order, with the value and headers the relay publishes for it."""
    recorder = service.reader.recorder

    def first_event(originator_id: UUID) -> StoredEvent | None:
        found = recorder.select_events(originator_id, limit=1)
        return found[0] if found else None

    relay = Relay(lambda _after, _limit: [], first_event, {}, source="urn:gridcase:sn")
    found, position = [], 0
    while batch := recorder.select_notifications(start=position, limit=5000, inclusive_of_start=False):
        for n in batch:
            aggregate, name = split_topic(n.topic)
            value, headers = relay.message(n, aggregate, name)
            decoded = {key: raw.decode() for key, raw in headers}
            assert len(decoded) == len(headers), "no header twice"
            found.append(Message(json.loads(service.vault.clear_state(n.state)), json.loads(value), decoded))
        position = batch[-1].id
    return found


def erase_one_reporter(service: App) -> None:
    """Erase the personal data of the first reporter who gave a phone number."""
    for notification in service.reader.read(0, 100_000):
        state = json.loads(notification.state)
        if notification.topic.endswith("CaseReported") and state.get("reporter"):
            admin = ActorRef(id="admin", role=Role.ADMIN)
            rows = service.history(state["case_number"], personal_data=True, viewer=admin, reason="to erase it")
            result = service.erase_person(LookupKind.PHONE, rows[0]["data"]["reporter"]["phone"], reason="test",
                                          actor=admin)  # fmt: skip
            assert result["erased"] == 1
            return
    raise AssertionError("no reporter with a phone")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """The reference district and a simulated week of thirty grids (every event type occurs), published."""
    path: Path = tmp_path_factory.mktemp("published") / "gridcase.db"
    service = make_app(make_settings(f"sqlite:///{path}"))
    try:
        reader = service.reader
        load_reference_district(service, reader, REFERENCE_AT)
        world = World(reference_commands(REFERENCE_AT), 30)
        Simulator(service, reader, world, SimulationConfig(days=7, seed=11, grids=30, start=date(2021, 6, 1))).run()
        erase_one_reporter(service)  # PersonalDataErased occurs too
        run(service, command="registry.category-location", actor={"id": "admin", "role": "admin"},
            at=datetime(2021, 6, 8, tzinfo=UTC),
            code="facility.manhole", location_public=False)  # and LocationVisibilitySet  # fmt: skip
        return published_stream(service)
    finally:
        service.close()


@pytest.mark.slow
def test_every_published_event_validates_against_the_schema_its_type_names(simulated: Published) -> None:
    validators, declared = {}, {}
    for event in event_types():
        schema = json.loads((ROOT / event.filename()).read_text("utf-8"))
        validators[event.ce_type()] = Draft202012Validator(schema, format_checker=FORMATS)
        declared[event.ce_type()] = set(schema["properties"])
    headers = Draft202012Validator(json.loads((ROOT / HEADERS).read_text("utf-8")), format_checker=FORMATS)
    seen: Counter[str] = Counter()
    failures = []
    for message in simulated:
        kind = message.ce_type
        seen[kind] += 1
        errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validators[kind].iter_errors(message.value)]
        # Objects are open for later releases; today's messages carry nothing the schema does not name.
        errors += [f"{name}: not declared by the schema" for name in sorted(set(message.value) - declared[kind])]
        errors += [f"header {'.'.join(map(str, e.path))}: {e.message}" for e in headers.iter_errors(message.headers)]
        errors += [
            f"header {name}: not declared" for name in sorted(set(message.headers) - set(headers.schema["properties"]))
        ]
        if errors and len(failures) < 10:
            failures.append((kind, errors))
    assert failures == []
    assert set(validators) - set(seen) == set(), "simulate longer: some event types did not occur"
    assert seen["gridcase.case.CaseReported.v1"] > 100


@pytest.mark.slow
def test_a_published_report_carries_no_personal_data(simulated: Published) -> None:
    reports = [m for m in simulated if m.ce_type == "gridcase.case.CaseReported.v1"]
    contacts = [m.stored["reporter"] for m in reports if m.stored.get("reporter")]
    assert len(contacts) > 20, "the simulator gives some reporters a contact"
    assert any(not m.value["has_reporter_contact"] for m in reports), "patrol findings have none"
    for m in reports:
        assert "reporter" not in m.value
        assert m.value["has_reporter_contact"] is bool(m.stored.get("reporter"))
        text = json.dumps([m.value, m.headers], ensure_ascii=False)
        assert [v for v in distinctive(m.stored.get("reporter")) if v in text] == [], m.value["case_number"]
    # Nor does any other message carry them, in its value or its headers.
    everything = json.dumps([[m.value, m.headers] for m in simulated], ensure_ascii=False)
    assert {v for contact in contacts for v in distinctive(contact) if v in everything} == set()


def distinctive(contact: dict[str, str | None] | None) -> list[str]:
    """The contact's values that cannot occur by chance (the simulator names every reporter 市民, "a citizen",
    a word its descriptions use too; phone numbers are eleven digits). An erased contact stays sealed: no values."""
    if is_sealed(contact):
        return []
    return [v for v in (contact or {}).values() if v and len(v) >= 5]


def test_the_headers_schema_refuses_headers_that_are_not_ours() -> None:
    validator = Draft202012Validator(json.loads((ROOT / HEADERS).read_text("utf-8")), format_checker=FORMATS)
    headers = {
        "ce_specversion": "1.0", "ce_id": f"{'ab' * 16}-3", "ce_source": "urn:gridcase:sn",
        "ce_type": "gridcase.case.CaseReported.v1", "ce_time": "2021-06-01T01:00:00Z",
        "ce_subject": "SN-20210601-000001", "content-type": "application/json", "gridcase_position": "42",
        "gridcase_recorded_at": "2021-06-01T01:00:05.123000Z",
    }  # fmt: skip
    assert list(validator.iter_errors(headers)) == []
    assert not validator.is_valid({**headers, "ce_type": "CaseReported"})
    assert not validator.is_valid({**headers, "ce_time": "2021-06-01T09:00:00"}), "no offset"
    assert not validator.is_valid({**headers, "gridcase_position": "0"})
    assert not validator.is_valid({k: v for k, v in headers.items() if k != "ce_id"})
