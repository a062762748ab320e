"""The fact table's columns come from the committed schemas: flattened, typed, personal data left out."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest

from sink.schema import SchemaError, load

if TYPE_CHECKING:
    from pathlib import Path


def test_the_committed_schemas_give_typed_flattened_columns() -> None:
    catalogue = load()
    types = catalogue.column_types()
    assert catalogue.topics == ("gridcase.case.events", "gridcase.patrol.events", "gridcase.person.events",
                                "gridcase.registry.events")  # fmt: skip
    assert catalogue.types["gridcase.case.CaseReported.v1"] == ("gridcase.case.CaseReported", 1)
    expected = {
        "occurred_at": "TIMESTAMPTZ", "actor_id": "VARCHAR", "actor_role": "VARCHAR", "location_lat": "DOUBLE",
        "handler_kind": "VARCHAR", "originator_version": "BIGINT", "has_reporter_contact": "BOOLEAN",
        "external_flags": "JSON", "start": "DATE", "position": "BIGINT", "local_day": "DATE",
    }  # fmt: skip
    assert {name: types[name] for name in expected} == expected
    assert "reporter" not in types, "personal data is never published, so it has no column"


def _folder(tmp_path: Path, schemas: dict[str, dict[str, object]]) -> Path:
    events = {}
    for name, properties in schemas.items():
        (tmp_path / f"{name}.v1.schema.json").write_text(json.dumps({"type": "object", "properties": properties}))
        events[name] = {"kafka_topic": "t", "current_version": 1, "versions": {"1": f"{name}.v1.schema.json"}}
    (tmp_path / "index.json").write_text(json.dumps({"events": events}))
    return tmp_path


def test_one_name_of_two_types_is_text_and_a_name_of_the_sinks_own_is_prefixed(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {
        "x.a.One": {"size": {"type": "integer"}, "position": {"type": "string"}},
        "x.a.Two": {"size": {"type": "string"}, "where": {"type": "object", "properties": {"lat": {"type": "number"}}}},
    })  # fmt: skip
    columns = {column.name: column.type for column in load(folder).columns}
    assert columns == {"size": "VARCHAR", "field_position": "VARCHAR", "where_lat": "DOUBLE"}


def test_a_schema_folder_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=re.escape(f"cannot read {tmp_path / 'index.json'}")):
        load(tmp_path)
    (tmp_path / "index.json").write_text(json.dumps({"events": {"x.a.One": {
        "kafka_topic": "t", "current_version": 1, "versions": {"1": "missing.json"}}}}))  # fmt: skip
    with pytest.raises(SchemaError, match=re.escape("missing.json (named by index.json for x.a.One v1)")):
        load(tmp_path)
