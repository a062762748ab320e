"""The event schemas under schemas/events are the models' and a change that breaks a consumer fails here.

The modified events below stand for a developer's edit of ``Case.CaseReported``: they are built from its real
fields with one change each, and checked against the committed schema exactly as the real class is.
"""

from __future__ import annotations

import copy
import json
import shutil
from typing import TYPE_CHECKING, Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import create_model

from adapters.kafka.published import TOPICS
from adapters.kafka.schemas import (
    HEADERS,
    INDEX,
    ROOT,
    BreakingChange,
    EventType,
    breaking_changes,
    check,
    event_schema,
    event_types,
    rendered,
    write,
)
from domain.base import Aggregate
from domain.case import Case

if TYPE_CHECKING:
    from pathlib import Path

REPORTED = EventType.of(Case.CaseReported)
COMMITTED_REPORTED = ROOT / "gridcase.case.CaseReported.v1.schema.json"


def committed(event: EventType, version: int | None = None) -> dict[str, Any]:
    return json.loads((ROOT / event.filename(version)).read_text("utf-8"))


def reported_variant(*, drop: tuple[str, ...] = (), class_version: int = 1, **changes: Any) -> EventType:
    """``Case.CaseReported`` as a developer might edit it: fields dropped, retyped or added."""
    own = {
        name: (field.annotation, field)
        for name, field in Case.CaseReported.model_fields.items()
        if name not in Aggregate.Created.model_fields and name not in drop
    }
    own.update(changes)
    model: Any = create_model("CaseReported", __base__=Aggregate.Created, __doc__="Edited.", **own)
    model.class_version = class_version
    if class_version > 1:
        model.upcast_v1_v2 = staticmethod(lambda _state: None)
    return EventType(model=model, stored_topic=REPORTED.stored_topic)


def domain_with(variant: EventType) -> list[EventType]:
    """The domain's event types with ``Case.CaseReported`` replaced by an edited one."""
    return [variant if t.family == variant.family else t for t in event_types()]


# -- (1) the committed files are the generated ones ---------------------------------------------------------


def test_committed_event_schemas_are_up_to_date() -> None:
    stale = [str(path) for path, text in rendered().items() if not path.exists() or path.read_text("utf-8") != text]
    assert stale == [], "run `make schemas` (python -m adapters.kafka.schemas) and commit the result"


def test_every_event_type_of_every_aggregate_has_a_valid_schema_named_by_its_cloudevents_type() -> None:
    types = event_types()
    assert {t.aggregate for t in types} == set(TOPICS)
    names = {t.filename() for t in types}
    assert "gridcase.case.CaseReported.v1.schema.json" in names
    assert "gridcase.registry.WorkerRegistered.v1.schema.json" in names
    for event in types:
        schema = committed(event)
        Draft202012Validator.check_schema(schema)
        assert schema["$id"].endswith("/" + event.filename())
        assert schema["title"] == event.ce_type()
        assert {"originator_id", "originator_version", "actor", "occurred_at", "timestamp"} <= set(schema["required"])
    Draft202012Validator.check_schema(json.loads((ROOT / HEADERS).read_text("utf-8")))


def test_the_index_lists_every_type_with_its_topics_and_every_committed_version() -> None:
    listed = json.loads((ROOT / INDEX).read_text("utf-8"))["events"]
    assert set(listed) == {t.family for t in event_types()}
    entry = listed["gridcase.case.CaseReported"]
    assert entry == {
        "aggregate": "Case",
        "stored_topic": "domain.case:Case.CaseReported",
        "kafka_topic": "gridcase.case.events",
        "current_version": 1,
        "versions": {"1": "gridcase.case.CaseReported.v1.schema.json"},
    }
    for family, entry in listed.items():
        for version, filename in entry["versions"].items():
            assert (ROOT / filename).exists(), (family, version)


def test_generating_twice_gives_the_same_bytes() -> None:
    assert rendered() == rendered()


def test_personal_data_is_declared_absent_and_the_contact_flag_required() -> None:
    schema = committed(REPORTED)
    validator = Draft202012Validator(schema)
    assert "ReporterContact" not in schema.get("$defs", {})
    assert "has_reporter_contact" in schema["required"]
    message = {
        "originator_id": "0" * 32, "originator_version": 1, "originator_topic": "domain.case:Case",
        "timestamp": "2021-06-01T01:00:00Z", "occurred_at": "2021-06-01T01:00:00Z",
        "actor": {"id": "op-1", "role": "intake_operator"}, "case_number": "SN-20210601-000001",
        "channel": "hotline", "category": "facility.manhole", "grid": "G", "community": "C", "street": "S",
        "location": {"address": "永嘉路"}, "description": "井盖缺失", "urgency": "normal",
        "has_reporter_contact": True,
    }  # fmt: skip
    assert list(validator.iter_errors(message)) == []
    leaked = {**message, "reporter": {"name": "王五", "phone": "13912345678"}}
    assert [e.path[0] for e in validator.iter_errors(leaked)] == ["reporter"]


# -- (2) compatibility: a removed or retyped field fails, naming the event, the field and the remedy --------


def test_the_current_models_keep_every_committed_schema() -> None:
    problems = check()
    assert problems == [], "\n".join(map(str, problems))


def test_a_removed_field_is_caught_and_named() -> None:
    problems = check(types=domain_with(reported_variant(drop=("location",))))
    assert len(problems) == 1
    text = str(problems[0])
    assert text.startswith("gridcase.case.CaseReported.v1: `location` was removed (it was object)")
    assert "class_version: ClassVar[int] = 2" in text
    assert "upcast_v1_v2(state)" in text
    assert "gridcase.case.CaseReported.v2.schema.json" in text


def test_a_retyped_field_is_caught_and_named() -> None:
    problems = check(types=domain_with(reported_variant(urgency=(int, ...))))
    assert [p.message.split(". ")[0] for p in problems] == [
        '`urgency` changed type: was one of "normal", "urgent", now integer'
    ]


def test_a_field_that_becomes_nullable_is_a_retype() -> None:
    problems = check(types=domain_with(reported_variant(street=(str | None, None))))
    assert [p.message.split(". ")[0] for p in problems] == ["`street` changed type: was string, now null or string"]


def test_changes_inside_nested_objects_enumerations_and_constraints_are_caught() -> None:
    old = committed(REPORTED)
    new = copy.deepcopy(old)
    new["$defs"]["Location"]["properties"]["lat"]["anyOf"][0]["type"] = "string"
    new["$defs"]["Channel"]["enum"].append("email")
    new["$defs"]["ActorRef"]["properties"]["id"]["maxLength"] = 128
    del new["$defs"]["Location"]["properties"]["address"]
    assert breaking_changes(old, new) == [
        "`actor.id` changed maxLength: was 64, now 128",
        (
            '`channel` changed type: was one of "app", "hotline", "letter_visit", "patrol", "supervision", '
            '"wechat", "window", now one of "app", "email", "hotline", "letter_visit", "patrol", "supervision", '
            '"wechat", "window"'
        ),
        "`location.address` was removed (it was null or string)",
        "`location.lat` changed type: was null or number, now null or string",
    ]


def test_a_new_required_field_breaks_but_a_new_optional_one_does_not() -> None:
    required = check(types=domain_with(reported_variant(priority=(int, ...))))
    assert [p.message.split(" (")[0] for p in required] == [
        "`priority` was added as a required field: events already published lack it"
    ]
    assert check(types=domain_with(reported_variant(priority=(int, 0)))) == []


def test_descriptions_and_titles_may_change() -> None:
    old = committed(REPORTED)
    new = copy.deepcopy(old)
    new["description"] = "Reworded."
    new["properties"]["case_number"]["title"] = "Number"
    assert breaking_changes(old, new) == []


# -- versions: a breaking change goes into a new version, the old file stays --------------------------------


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    """A copy of the committed event schemas to run the generator on."""
    root = tmp_path / "events"
    shutil.copytree(ROOT, root)
    return root


def test_the_generator_refuses_a_breaking_change_and_writes_nothing(schema_dir: Path) -> None:
    before = {p.name: p.read_bytes() for p in schema_dir.iterdir()}
    with pytest.raises(BreakingChange, match=r"CaseReported\.v1: `location` was removed"):
        write(schema_dir, domain_with(reported_variant(drop=("location",))))
    assert {p.name: p.read_bytes() for p in schema_dir.iterdir()} == before


def test_a_new_class_version_gets_its_own_file_and_the_old_one_stays(schema_dir: Path) -> None:
    v1 = (schema_dir / "gridcase.case.CaseReported.v1.schema.json").read_bytes()
    v2 = reported_variant(drop=("location",), class_version=2)
    written = {p.name for p in write(schema_dir, domain_with(v2))}
    assert "gridcase.case.CaseReported.v2.schema.json" in written
    assert (schema_dir / "gridcase.case.CaseReported.v1.schema.json").read_bytes() == v1
    schema = json.loads((schema_dir / "gridcase.case.CaseReported.v2.schema.json").read_text("utf-8"))
    assert "location" not in schema["properties"]
    assert schema["properties"]["class_version"]["const"] == 2
    assert "class_version" in schema["required"]
    entry = json.loads((schema_dir / INDEX).read_text("utf-8"))["events"]["gridcase.case.CaseReported"]
    assert entry["current_version"] == 2
    assert entry["versions"] == {
        "1": "gridcase.case.CaseReported.v1.schema.json",
        "2": "gridcase.case.CaseReported.v2.schema.json",
    }
    assert check(schema_dir, domain_with(v2)) == []


def test_a_missing_old_version_or_upcaster_is_reported(schema_dir: Path) -> None:
    v2 = reported_variant(class_version=2)
    (schema_dir / "gridcase.case.CaseReported.v1.schema.json").unlink()
    del v2.model.upcast_v1_v2
    messages = [p.message for p in check(schema_dir, domain_with(v2))]
    assert len(messages) == 2
    assert "has no static method `upcast_v1_v2(state)`" in messages[0]
    assert "gridcase.case.CaseReported.v1.schema.json are missing" in messages[1]


def test_a_committed_schema_of_an_event_the_domain_lost_is_reported(schema_dir: Path) -> None:
    others = [t for t in event_types() if t.name != "CaseClosed"]
    problems = check(schema_dir, others)
    assert [p.event for p in problems] == ["gridcase.case.CaseClosed.v1"]
    assert "no longer defines the event" in problems[0].message


def test_every_version_from_one_to_the_current_has_a_committed_file() -> None:
    for event in event_types():
        for version in range(1, event.version + 1):
            assert (ROOT / event.filename(version)).exists(), event.filename(version)


def test_the_published_originator_id_and_version_are_described_as_published() -> None:
    schema = event_schema(EventType.of(Case.CaseAccepted))
    validator = Draft202012Validator(schema)
    base = {"timestamp": "2021-06-01T01:00:00Z", "occurred_at": "2021-06-01T01:00:00Z", "level": "community",
            "actor": {"id": "d", "role": "dispatcher"}, "originator_version": 2}  # fmt: skip
    assert validator.is_valid({**base, "originator_id": "ab" * 16})
    assert not validator.is_valid({**base, "originator_id": "6c1f0d8e-3a8b-5d7e-9a51-2f0b7c4e9d10"})


def test_a_union_that_gains_a_branch_or_changes_inside_one_is_caught() -> None:
    def event(*branches: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "properties": {"handler": {"anyOf": [*branches, {"type": "null"}]}}}

    worker = {"type": "object", "properties": {"id": {"type": "string"}}}
    department = {"type": "object", "properties": {"code": {"type": "string"}}}
    retyped = {"type": "object", "properties": {"id": {"type": "integer"}}}
    assert breaking_changes(event(worker), event(worker, department)) == [
        "`handler` changed type: was null or object, now null or object or object"
    ]
    assert breaking_changes(event(worker), event(retyped)) == ["`handler.id` changed type: was string, now integer"]
    assert breaking_changes(event(worker), event(worker)) == []
