"""The published form masks every free-text field (published.MASKED_FIELDS), checked against the models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from adapters.kafka.published import MASKED_FIELDS, event_classes, published_form
from adapters.kafka.schemas import event_schema, event_types
from domain.bounded import Bound
from domain.masking import id_check_digit

ID17 = "37020219900101123"
ID_NUMBER = ID17 + id_check_digit(ID17)
TYPED = f"电话 13912345678，身份证 {ID_NUMBER}, mail wang@example.com"


def _free_text_fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every text a person types: a multiline bounded text, or the address of a location (any nesting)."""
    found = set()
    for name, info in model.model_fields.items():
        if any(isinstance(m, Bound) and m.multiline for m in info.metadata) or (prefix and name == "address"):
            found.add(prefix + name)
        annotation: Any = info.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel) and name != "reporter":
                found |= _free_text_fields(candidate, f"{prefix}{name}.")
    return found


def test_masked_fields_name_every_free_text_field_of_every_event_type() -> None:
    declared = {name: set(fields) for name, fields in MASKED_FIELDS.items()}
    found = {name: fields for name, (_, cls) in event_classes().items() if (fields := _free_text_fields(cls))}
    assert found == declared


def _get(value: dict[str, Any], field: str) -> Any:
    for name in field.split("."):
        value = value[name]
    return value


def _set(value: dict[str, Any], field: str, text: str) -> None:
    *path, last = field.split(".")
    for name in path:
        value = value.setdefault(name, {})
    value[last] = text


def test_the_published_form_masks_every_declared_field_and_leaves_the_stored_form_alone() -> None:
    for name, fields in MASKED_FIELDS.items():
        state: dict[str, Any] = {"case_number": "SN-20210601-000001"}
        for field in fields:
            _set(state, field, TYPED)
        value = published_form(name, state, "0" * 32, 2)
        for field in fields:
            published = _get(value, field)
            assert "13912345678" not in published
            assert ID_NUMBER not in published
            assert "wang@" not in published
            assert "139****5678" in published
            assert _get(state, field) == TYPED
        assert value["case_number"] == "SN-20210601-000001"


def test_the_schemas_say_which_fields_are_masked() -> None:
    for event in event_types():
        schema = event_schema(event)
        for field in MASKED_FIELDS.get(event.name, ()):
            node: dict[str, Any] = schema
            for name in field.split("."):
                if "properties" not in node:
                    node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
                node = node["properties"][name]
            assert node["x-gridcase-masked"] is True
            assert "published masked" in node["description"]
