"""Open311's XML forms: the same objects as the JSON ones, one element per field."""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring


def _fill(parent: Element, value: Any) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if isinstance(inner, list):
                holder = SubElement(parent, key)
                for item in inner:
                    _fill(SubElement(holder, key.removesuffix("s") or "item"), item)
            else:
                _fill(SubElement(parent, key), inner)
    elif value is None:
        return
    elif isinstance(value, bool):
        parent.text = "true" if value else "false"
    else:
        parent.text = str(value)


def to_xml(root: str, item: str, items: list[dict[str, Any]]) -> str:
    """A list of objects as ``<root><item>…</item>…</root>``."""
    element = Element(root)
    for value in items:
        _fill(SubElement(element, item), value)
    return '<?xml version="1.0" encoding="utf-8"?>' + tostring(element, encoding="unicode")


def error_xml(code: int, description: str) -> str:
    """The spec's error list in XML."""
    return to_xml("errors", "error", [{"code": code, "description": description}])
