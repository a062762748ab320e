"""The JSON Schemas of the published events: ``python -m adapters.kafka.schemas`` (``make schemas``).

One file per event type and class version under ``schemas/events/``, named by the CloudEvents type
(``gridcase.case.CaseReported.v1.schema.json``); an index (``index.json``) lists them, and
``cloudevents-headers.schema.json`` describes the Kafka headers. They are the contract with downstream
consumers, so the generator refuses to overwrite a committed schema with one that breaks it: a field of a
published version may not be removed or retyped, only optional fields may be added. A breaking change needs
a new ``class_version`` and an ``upcast_vN_vN+1`` method; the new version gets its own file and the old
version's file stays (the generator writes only current versions and never deletes a file).

What the schemas describe is the published form (``adapters/kafka/published.py``): the stored JSON of the
event without personal data, with ``originator_id`` and ``originator_version``. Every object is open
(``additionalProperties: true``) so that a consumer holding an older copy of a schema still accepts messages
of a release that added an optional field.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eventsourcing.utils import get_topic

from adapters.kafka.published import MASKED_FIELDS, PERSONAL_DATA, ce_type, event_classes, kafka_topic, split_topic
from adapters.kafka.schema_masking import mark_masked, open_objects

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2] / "schemas" / "events"
BASE_URI = "https://gridcase.example/schemas/events/"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
INDEX = "index.json"
HEADERS = "cloudevents-headers.schema.json"

#: Keywords that constrain a value beyond its type: a change to any of them, either way, is breaking (a looser
#: rule lets through messages that older copies reject; a stricter one rejects messages already published).
#: The type itself (type, enum, const, items, anyOf) is compared as a whole; titles, descriptions and defaults
#: only annotate and may change.
_CONSTRAINTS = (
    "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "multipleOf", "minItems", "maxItems", "uniqueItems", "additionalProperties",
)  # fmt: skip


@dataclass(frozen=True)
class EventType:
    """One event class as published: its aggregate, its name and its model (which fixes the current version)."""

    model: type[BaseModel]
    #: The topic the store records it under, e.g. ``domain.case:Case.CaseReported``.
    stored_topic: str

    @classmethod
    def of(cls, model: type[BaseModel]) -> EventType:
        """The event type of a domain event class."""
        return cls(model=model, stored_topic=get_topic(model))

    @property
    def aggregate(self) -> str:
        """The aggregate's class name, e.g. ``Case``."""
        return split_topic(self.stored_topic)[0]

    @property
    def name(self) -> str:
        """The event's class name, e.g. ``CaseReported``."""
        return split_topic(self.stored_topic)[1]

    @property
    def version(self) -> int:
        """The current class version."""
        version: int = getattr(self.model, "class_version", 1)
        return version

    @property
    def family(self) -> str:
        """The CloudEvents type without its version, e.g. ``gridcase.case.CaseReported``."""
        return ce_type(self.aggregate, self.name, self.version).rpartition(".")[0]

    def ce_type(self, version: int | None = None) -> str:
        """The CloudEvents type of a version (the current one by default)."""
        return ce_type(self.aggregate, self.name, self.version if version is None else version)

    def filename(self, version: int | None = None) -> str:
        """The schema file of a version (the current one by default)."""
        return f"{self.ce_type(version)}.schema.json"

    def describe(self) -> str:
        """How a developer finds the class: ``Case.CaseReported (domain.case)``."""
        return f"{self.model.__qualname__} ({self.model.__module__})"


def event_types() -> list[EventType]:
    """Every event type the domain defines, in a stable order."""
    return sorted((EventType.of(model) for _, model in event_classes().values()), key=lambda t: t.family)


# -- generating ----------------------------------------------------------------------------------------------


def event_schema(event: EventType) -> dict[str, Any]:
    """The schema of the published form of the event type's current version."""
    schema = event.model.model_json_schema(mode="serialization")
    properties: dict[str, Any] = schema["properties"]
    # Fields with a default are left out of "required": events stored before the field was added lack it.
    required = set(schema.get("required", ()))
    for field in PERSONAL_DATA.get(event.name, ()):
        properties[field] = {"not": {}, "description": "Personal data: stays in the store, never published."}
        required.discard(field)
        properties["has_reporter_contact"] = {
            "type": "boolean",
            "description": "Whether the stored event holds the reporter's contact (which is not published).",
        }
        required.add("has_reporter_contact")
    for field in MASKED_FIELDS.get(event.name, ()):
        mark_masked(schema, field)
    properties["originator_id"] = {
        "type": "string",
        "pattern": "^[0-9a-f]{32}$",
        "description": "The aggregate's id: a UUID as 32 lower-case hex digits. The Kafka key.",
    }
    properties["originator_version"] = {
        "type": "integer",
        "minimum": 1,
        "description": "The aggregate's version after this event: 1 for the event that created it.",
    }
    required |= {"originator_id", "originator_version"}
    if event.version > 1:
        properties["class_version"] = {"const": event.version, "description": "The event's class version."}
        required.add("class_version")
    schema["required"] = sorted(required)
    open_objects(schema)
    _prune_definitions(schema)
    # The library rebinds each event class to a subclass without a docstring: take the one it inherits.
    doc = inspect.getdoc(event.model)
    where = (
        f"The published form of {event.aggregate}.{event.name} version {event.version} (stored as "
        f"{event.stored_topic}) on the Kafka topic {kafka_topic(event.aggregate)}, CloudEvents type {event.ce_type()}."
    )
    schema.update(
        {
            "$schema": DRAFT,
            "$id": BASE_URI + event.filename(),
            "title": event.ce_type(),
            "description": f"{doc}\n\n{where}" if doc else where,
        }
    )
    return schema


def _prune_definitions(schema: dict[str, Any]) -> None:
    """Drop definitions nothing refers to any more (the reporter's contact, once it is left out)."""
    definitions = schema.get("$defs", {})
    while True:
        text = json.dumps({k: v for k, v in schema.items() if k != "$defs"}) + json.dumps(definitions)
        unused = [name for name in definitions if f'"#/$defs/{name}"' not in text]
        if not unused:
            break
        for name in unused:
            del definitions[name]
    if not definitions:
        schema.pop("$defs", None)


def headers_schema() -> dict[str, Any]:
    """The Kafka headers of every message on the general topics (CloudEvents binary mode), values as UTF-8."""
    properties = _header_properties()
    return {
        "$schema": DRAFT,
        "$id": BASE_URI + HEADERS,
        "title": "gridcase Kafka message headers (CloudEvents binary mode)",
        "description": (
            "The headers of every message on gridcase.case.events, gridcase.patrol.events and "
            "gridcase.registry.events, each decoded as UTF-8. ce_type names the event type and version; the "
            "message value validates against the schema of that name (index.json). Further headers are strings."
        ),
        "type": "object",
        "properties": properties,
        "required": sorted(properties),
        "additionalProperties": {"type": "string"},
    }


def _header_properties() -> dict[str, Any]:
    """Every header the relay sets, all of them on every message."""
    return {
        "ce_specversion": {"const": "1.0", "description": "CloudEvents specification version."},
        "ce_id": {
            "type": "string",
            "pattern": "^[0-9a-f]{32}-[1-9][0-9]*$",
            "description": "<aggregate id>-<aggregate version>: unique per event, the same if published again.",
        },
        "ce_source": {
            "type": "string",
            "minLength": 1,
            "description": "urn:gridcase:<case prefix>, e.g. urn:gridcase:sn.",
        },
        "ce_type": {
            "type": "string",
            "pattern": r"^gridcase\.(case|patrol|registry|person)\.[A-Z][A-Za-z0-9]*\.v[1-9][0-9]*$",
            "description": "Event type and class version, e.g. gridcase.case.CaseReported.v1.",
        },
        "ce_time": {"type": "string", "format": "date-time", "description": "When it happened: occurred_at."},
        "ce_subject": {"type": "string", "minLength": 1, "description": "The case or patrol number, or the code."},
        "content-type": {"const": "application/json", "description": "The value is JSON."},
        "gridcase_position": {
            "type": "string",
            "pattern": "^[1-9][0-9]*$",
            "description": "The event's position in the store's global order.",
        },
        "gridcase_recorded_at": {
            "type": "string",
            "format": "date-time",
            "description": "When the store recorded it: the event's timestamp.",
        },
    }


def _committed_versions(root: Path, family: str) -> list[int]:
    pattern = re.compile(re.escape(family) + r"\.v([1-9][0-9]*)\.schema\.json")
    found = (pattern.fullmatch(path.name) for path in root.glob(f"{family}.v*.schema.json"))
    return sorted(int(match.group(1)) for match in found if match)


def index(root: Path, types: Iterable[EventType]) -> dict[str, Any]:
    """Each event type's topics and schema files, the committed older versions included."""
    events = {}
    for event in types:
        versions = sorted({*_committed_versions(root, event.family), event.version})
        events[event.family] = {
            "aggregate": event.aggregate,
            "stored_topic": event.stored_topic,
            "kafka_topic": kafka_topic(event.aggregate),
            "current_version": event.version,
            "versions": {str(v): event.filename(v) for v in versions},
        }
    return {
        "$comment": "Generated by python -m adapters.kafka.schemas (make schemas). Do not edit.",
        "headers": HEADERS,
        "events": events,
    }


def _text(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def rendered(root: Path = ROOT, types: Iterable[EventType] | None = None) -> dict[Path, str]:
    """Every file the generator writes and its text: the current versions, the headers and the index."""
    types = event_types() if types is None else list(types)
    files = {root / event.filename(): _text(event_schema(event)) for event in types}
    files[root / HEADERS] = _text(headers_schema())
    files[root / INDEX] = _text(index(root, types))
    return files


# -- checking compatibility ----------------------------------------------------------------------------------


def breaking_changes(committed: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What in ``current`` breaks consumers of ``committed`` (two schemas of one event type and version).

    Compatible: the same fields with the same types and constraints, plus new optional fields. Anything else
    (a field removed, retyped, newly required, a value added to or taken from an enumeration, a constraint
    changed) is listed, one line per field, naming the field and what changed.
    """
    comparison = _Comparison(committed, current)
    comparison.compare(committed, current, "")
    return comparison.problems


def _resolve(node: Any, root: dict[str, Any]) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/$defs/"):
            msg = f"only local references are supported, got {ref!r}"
            raise ValueError(msg)
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        node = {**root["$defs"][ref.removeprefix("#/$defs/")], **siblings}
    return node


def _describe(node: Any, root: dict[str, Any]) -> str:
    """A short, order-independent name of a schema's type: ``string (date-time)``, ``one of "a", "b"``."""
    node = _resolve(node, root)
    if node is True or node is False:
        return "anything" if node else "never present"
    if node.get("not") == {}:
        return "never present"
    branches = node.get("anyOf", node.get("oneOf"))
    if branches is not None:
        return " or ".join(sorted(_describe(branch, root) for branch in branches))
    if "const" in node:
        return f"exactly {json.dumps(node['const'], ensure_ascii=False)}"
    if "enum" in node:
        return "one of " + ", ".join(sorted(json.dumps(v, ensure_ascii=False) for v in node["enum"]))
    return _describe_type(node, root)


def _describe_type(node: dict[str, Any], root: dict[str, Any]) -> str:
    kind = node.get("type", "anything")
    if isinstance(kind, list):
        return " or ".join(sorted(kind))
    if kind == "array":
        return "array of " + _describe(node.get("items", True), root)
    if kind == "string" and "format" in node:
        return f"string ({node['format']})"
    return str(kind)


class _Comparison:
    """Walks a committed schema and the current one side by side, collecting what breaks."""

    def __init__(self, old_root: dict[str, Any], new_root: dict[str, Any]) -> None:
        self.old_root, self.new_root = old_root, new_root
        self.problems: list[str] = []

    def compare(self, old: Any, new: Any, path: str) -> None:
        old, new = _resolve(old, self.old_root), _resolve(new, self.new_root)
        where = path or "(the event)"
        was, now = _describe(old, self.old_root), _describe(new, self.new_root)
        if was != now:
            self.problems.append(f"`{where}` changed type: was {was}, now {now}")
            return
        if not isinstance(old, dict) or not isinstance(new, dict):
            return
        self.problems += [
            f"`{where}` changed {key}: was {old.get(key)!r}, now {new.get(key)!r}"
            for key in _CONSTRAINTS
            if old.get(key) != new.get(key)
        ]
        for keyword in ("anyOf", "oneOf"):
            # Same description, so the same kinds of branch: compare each with its namesake in turn (two objects
            # describe alike and may differ inside).
            olds = self._by_description(old.get(keyword, ()), self.old_root)
            news = self._by_description(new.get(keyword, ()), self.new_root)
            for name, branches in news.items():
                for old_branch, new_branch in zip(olds.get(name, ()), branches, strict=False):
                    self.compare(old_branch, new_branch, path)
        if "items" in old and "items" in new:
            self.compare(old["items"], new["items"], f"{path}[]")
        self._compare_properties(old, new, f"{path}." if path else "")

    @staticmethod
    def _by_description(branches: Iterable[Any], root: dict[str, Any]) -> dict[str, list[Any]]:
        grouped: dict[str, list[Any]] = {}
        for branch in branches:
            grouped.setdefault(_describe(branch, root), []).append(branch)
        return grouped

    def _compare_properties(self, old: dict[str, Any], new: dict[str, Any], prefix: str) -> None:
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        for name, schema in old_props.items():
            if name in new_props:
                self.compare(schema, new_props[name], prefix + name)
            else:
                self.problems.append(f"`{prefix}{name}` was removed (it was {_describe(schema, self.old_root)})")
        for name in sorted(set(new.get("required", ())) - set(old.get("required", ()))):
            if name in old_props:
                self.problems.append(f"`{prefix}{name}` became required: events already published may lack it")
            else:
                self.problems.append(
                    f"`{prefix}{name}` was added as a required field: events already published lack it "
                    "(give it a default to add it as an optional field)"
                )


@dataclass(frozen=True)
class Problem:
    """Something in the committed schemas or the models that breaks the contract, and what to do about it."""

    event: str
    message: str

    def __str__(self) -> str:
        return f"{self.event}: {self.message}"


def _new_version_advice(event: EventType) -> str:
    n = event.version
    return (
        f"Consumers of {event.ce_type()} rely on the committed schema {event.filename()}. Keep the field as it "
        f"was, or make a new version: set `class_version: ClassVar[int] = {n + 1}` on {event.describe()} and add "
        f"a static method `upcast_v{n}_v{n + 1}(state)` that turns a stored version {n} event into version "
        f"{n + 1}; then `make schemas` writes {event.filename(n + 1)} beside {event.filename()}, which stays."
    )


def check(root: Path = ROOT, types: Iterable[EventType] | None = None) -> list[Problem]:
    """Everything that breaks the contract between the committed schemas under ``root`` and the models."""
    types = event_types() if types is None else list(types)
    problems: list[Problem] = []
    families = {event.family for event in types}
    for path in sorted(root.glob("*.v*.schema.json")):
        family = path.name.rsplit(".v", 1)[0]
        if family not in families:
            problems.append(
                Problem(
                    path.name.removesuffix(".schema.json"),
                    "the schema is committed but the domain no longer defines the event: stored events of it "
                    "can no longer be read or published. Bring the event class back.",
                )
            )
    for event in types:
        problems += [
            Problem(
                event.ce_type(),
                f"{event.describe()} is at class_version {event.version} but has no static method "
                f"`upcast_v{version}_v{version + 1}(state)`: stored version {version} events cannot be read.",
            )
            for version in range(1, event.version)
            if not hasattr(event.model, f"upcast_v{version}_v{version + 1}")
        ]
        committed = _committed_versions(root, event.family)
        missing = sorted(set(range(1, event.version)) - set(committed))
        if missing:
            problems.append(
                Problem(
                    event.ce_type(),
                    "the schema files of older versions "
                    + ", ".join(event.filename(v) for v in missing)
                    + " are missing: consumers still receive those versions (stored events keep their version). "
                    "Restore them from the repository's history.",
                )
            )
        newer = [v for v in committed if v > event.version]
        if newer:
            problems.append(
                Problem(
                    event.ce_type(),
                    f"{event.filename(newer[-1])} is committed but {event.describe()} is at class_version "
                    f"{event.version}: a class version never goes down.",
                )
            )
        path = root / event.filename()
        if path.exists():
            changes = breaking_changes(json.loads(path.read_text("utf-8")), event_schema(event))
            problems += [Problem(event.ce_type(), f"{c}. {_new_version_advice(event)}") for c in changes]
    return problems


class BreakingChange(Exception):
    """The models no longer match the committed schemas in a way that breaks consumers."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def write(root: Path = ROOT, types: Iterable[EventType] | None = None) -> list[Path]:
    """Write the schema files that changed and return them; refuse (writing nothing) if that breaks the contract."""
    types = event_types() if types is None else list(types)
    problems = check(root, types)
    if problems:
        raise BreakingChange(problems)
    written = []
    for path, text in rendered(root, types).items():
        if not path.exists() or path.read_text("utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def main() -> int:
    """Write the event schemas; exit 1 naming every breaking change, having written nothing."""
    try:
        written = write()
    except BreakingChange as error:
        for problem in error.problems:
            print(f"breaking change: {problem}", file=sys.stderr)  # noqa: T201
        print(f"{len(error.problems)} breaking change(s); no schema written", file=sys.stderr)  # noqa: T201
        return 1
    for path in written:
        print(f"wrote {path.relative_to(ROOT.parents[1])}")  # noqa: T201
    types = event_types()
    print(f"event schemas: {len(types)} event types, {len(written)} file(s) changed")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
