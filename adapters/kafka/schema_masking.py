"""Touches to an event's JSON Schema node by node: masked free-text fields marked, objects left open (docs/kafka.md)."""

from __future__ import annotations

from typing import Any

#: What a masked field's description says (docs/kafka.md, docs/privacy.md).
MASKED_NOTE = (
    "Free text, published masked: phone numbers, ID numbers and e-mail addresses typed into it show as "
    "139****5678, 3702**********1234, w***@example.com (the stored text is kept for staff)."
)


def mark_masked(schema: dict[str, Any], field: str) -> None:
    """Mark a (dotted) field of the schema ``"x-gridcase-masked": true`` and say so in its description.

    A field the event (a version of it) does not have is left out.
    """
    node: dict[str, Any] = schema
    for name in field.split("."):
        while "$ref" in node or "properties" not in node:
            ref = node.get("$ref") or next(
                (b["$ref"] for b in node.get("anyOf", ()) if isinstance(b, dict) and "$ref" in b), None
            )
            if ref is None:
                msg = f"{schema.get('title')}: no object to find {field!r} in"
                raise KeyError(msg)
            node = schema["$defs"][ref.rsplit("/", 1)[1]]
        if name not in node["properties"]:
            return  # not in this version of the event
        node = node["properties"][name]
    node["x-gridcase-masked"] = True
    node["description"] = f"{node['description']} {MASKED_NOTE}" if node.get("description") else MASKED_NOTE


def open_objects(node: Any) -> None:
    """Every object schema accepts properties it does not name (optional fields added by a later release)."""
    if isinstance(node, dict):
        if "properties" in node:
            node["additionalProperties"] = True
        for value in node.values():
            open_objects(value)
    elif isinstance(node, list):
        for value in node:
            open_objects(value)
