"""Open311's XML forms: the same objects as the JSON ones, one element per field."""

from __future__ import annotations

import re
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

#: What XML 1.0 cannot carry at all, even escaped: C0 controls but tab and line breaks, lone surrogates,
#: U+FFFE and U+FFFF. Old stored texts may hold them; new input refuses them (domain/bounds.py).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: str) -> str:
    """A text XML can carry: each character it cannot shown as U+FFFD (the replacement character)."""
    return _NOT_XML.sub("\ufffd", value)


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
        parent.text = xml_text(str(value))


def to_xml(root: str, item: str, items: list[dict[str, Any]]) -> str:
    """A list of objects as ``<root><item>…</item>…</root>``."""
    element = Element(root)
    for value in items:
        _fill(SubElement(element, item), value)
    return '<?xml version="1.0" encoding="utf-8"?>' + tostring(element, encoding="unicode")


def error_xml(code: int, description: str) -> str:
    """The spec's error list in XML."""
    return to_xml("errors", "error", [{"code": code, "description": description}])
