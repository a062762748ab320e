"""The event types and the fact table's columns, read from the committed JSON Schemas (``schemas/events``).

Nothing here knows an event by name: ``index.json`` lists the types, their topics and the schema file of each
version, and each schema's properties become columns (nested objects flattened with ``_``: ``actor.id`` is
``actor_id``). A new version whose schema only adds properties adds columns; a property whose type changes
is not additive and is refused by :func:`sink.tables.migrate`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Where the schemas sit in a clone of the repository.
DEFAULT_SCHEMAS = Path(__file__).resolve().parents[1] / "schemas" / "events"

#: Columns the sink adds to every event (where it came from on Kafka, and the headers), before the schema's own.
META_COLUMNS: dict[str, str] = {
    "kafka_topic": "VARCHAR",
    "kafka_partition": "INTEGER",
    "kafka_offset": "BIGINT",
    "position": "BIGINT",
    "ce_id": "VARCHAR",
    "ce_type": "VARCHAR",
    "event_type": "VARCHAR",
    "event_version": "INTEGER",
    "ce_subject": "VARCHAR",
    "recorded_at": "TIMESTAMPTZ",
    "local_day": "DATE",
    "payload": "JSON",
}


class SchemaError(ValueError):
    """The schema folder is missing, unreadable or names a file that is not there."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the fact table: its name, DuckDB type and where the value is in the event's JSON."""

    name: str
    type: str
    path: tuple[str, ...]

    def json_path(self, root: str = "$.v") -> str:
        """The JSON path of the value, under ``root``."""
        return root + "".join(f'."{part}"' for part in self.path)


@dataclass(frozen=True)
class Catalogue:
    """Every event type and version the schemas describe, the topics they travel on, and the fact table's columns."""

    folder: Path
    #: ``gridcase.case.CaseReported.v1`` → (``gridcase.case.CaseReported``, 1)
    types: dict[str, tuple[str, int]]
    topics: tuple[str, ...]
    columns: tuple[Column, ...] = field(default=())

    def column_types(self) -> dict[str, str]:
        """Column name → DuckDB type, the sink's own columns first."""
        return {**META_COLUMNS, **{column.name: column.type for column in self.columns}}


def load(folder: Path | None = None) -> Catalogue:
    """Read ``index.json`` and every schema it names."""
    folder = folder or DEFAULT_SCHEMAS
    index_path = folder / "index.json"
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        entries: dict[str, Any] = index["events"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        msg = f"schemas: cannot read {index_path}: {error}"
        raise SchemaError(msg) from error
    types: dict[str, tuple[str, int]] = {}
    topics: set[str] = set()
    found: dict[str, Column] = {}
    for name, entry in sorted(entries.items()):
        topics.add(str(entry["kafka_topic"]))
        for version, file_name in sorted(entry["versions"].items(), key=lambda item: int(item[0])):
            types[f"{name}.v{version}"] = (name, int(version))
            try:
                schema = json.loads((folder / file_name).read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                msg = f"schemas: cannot read {folder / file_name} (named by index.json for {name} v{version}): {error}"
                raise SchemaError(msg) from error
            for column in flatten(schema, schema.get("$defs", {})):
                known = found.get(column.name)
                if known is None:
                    found[column.name] = column
                elif known.type != column.type:
                    # Two event types use one name for different types: the column keeps the text of either.
                    found[column.name] = Column(column.name, "VARCHAR", column.path)
    columns = tuple(_clear_of_meta(column) for _, column in sorted(found.items()))
    return Catalogue(folder=folder, types=types, topics=tuple(sorted(topics)), columns=columns)


def _clear_of_meta(column: Column) -> Column:
    """A property named like one of the sink's own columns gets a ``field_`` prefix."""
    if column.name in META_COLUMNS:
        return Column(f"field_{column.name}", column.type, column.path)
    return column


def flatten(schema: dict[str, Any], defs: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[Column]:
    """The columns of an object schema: one per scalar property, nested objects flattened."""
    columns: list[Column] = []
    for name, node in schema.get("properties", {}).items():
        resolved = _resolve(node, defs)
        if resolved is None:  # ``"not": {}``: never present (personal data stays in the store)
            continue
        path = (*prefix, name)
        if resolved.get("type") == "object" and resolved.get("properties"):
            columns.extend(flatten(resolved, defs, path))
        else:
            columns.append(Column("_".join(path), duck_type(resolved), path))
    return columns


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any] | None:
    """Follow ``$ref`` and take the non-null branch of ``anyOf [X, null]``."""
    if node.get("not") == {}:
        return None
    if "$ref" in node:
        target = defs.get(str(node["$ref"]).rsplit("/", 1)[-1], {})
        return _resolve({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs)
    branches = [b for b in node.get("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        return _resolve(branches[0], defs)
    if branches:
        return {}
    return node


_SCALARS = {"integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN"}


def duck_type(node: dict[str, Any]) -> str:
    """The DuckDB type of a property's schema: scalars typed, lists and free objects kept as JSON."""
    kind = node.get("type")
    if "enum" in node or "const" in node:
        return "VARCHAR"
    if kind == "string":
        return {"date-time": "TIMESTAMPTZ", "date": "DATE"}.get(str(node.get("format")), "VARCHAR")
    if isinstance(kind, str) and kind in _SCALARS:
        return _SCALARS[kind]
    return "JSON"
