"""Hostile values for every command field and query parameter, for the fuzz suites (issue 13, item 9).

The fields come from the committed command schema (``schemas/commands/command.schema.json``,
kept equal to ``domain/commands.py`` by a unit test), so a field added to a command is fuzzed
without editing this module. Each hostile value says whether any sane engine must refuse it
(``must_refuse``: a lone surrogate, a control character, a moment outside 1970..2099, a Unix
integer where a time is wanted, 10**20, NaN, a string over its bound or over the broker's
message limit, a wrong type, an extra field, a huge list, deep nesting) or may take it
(emoji, right-to-left marks, a string at its bound…): either way it must never crash an
entry point, and a refused one must write nothing.

The entry points' suites: ``tests/e2e/test_fuzz_apply.py`` (``gridcase apply``),
``tests/e2e/test_fuzz_cli.py`` (the ``gridcase`` commands) and ``tests/e2e/http/test_fuzz.py``
(the HTTP API). ``FUZZ_DEEP`` (the ``fuzz_deep`` marker) makes the values bigger and the runs longer.
"""

from __future__ import annotations

import copy
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from tests.conftest import KEY_VAR
from tests.support import ADMIN, CATEGORY, GRID

ROOT = Path(__file__).resolve().parent.parent
COMMAND_SCHEMA = ROOT / "schemas" / "commands" / "command.schema.json"
OPENAPI = ROOT / "schemas" / "openapi.json"

#: A Kafka broker's default message limit (``message.max.bytes``, about 1 MB): an event bigger than this
#: cannot be relayed, so no command may store a value this big (issue 13, item 3).
BROKER_LIMIT = 1_048_588
#: A string certainly over any bound and over the broker's limit: 1.5 MB (the deep run also sends
#: 10 MB, the size of the description the native API took before issue 13).
HUGE = 1_500_000
DEEP_HUGE = 10_000_000
#: A list certainly too long: the 100,000 evidence items the native API took before issue 13.
HUGE_LIST = 100_000
#: Over any bound of a query parameter or a form field, under the sizes HTTP clients and parsers refuse
#: before the application sees them (httpx: 64 KiB of URL; starlette: 1 MiB per form field).
QUERY_HUGE = 10_000
FORM_HUGE = 200_000
#: Nesting deep enough to hurt a recursive validator, shallow enough for ``json.loads``.
DEEP_NESTING = 200
#: Nesting past Python's recursion limit: ``json.loads`` itself raises RecursionError on it.
ABYSS = 100_000


#: No shrinking: each example costs a process or a request, and a failure message is already a reproduction.
PHASES = (Phase.explicit, Phase.generate)


def fuzz_settings(examples: int) -> settings:
    """Hypothesis settings for a fuzz test: reproducible (derandomized, no database), bounded in time."""
    return settings(
        max_examples=examples,
        phases=PHASES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


# -- the fields, from the committed schema ------------------------------------------------


@cache
def command_schema() -> dict[str, Any]:
    """The committed JSON Schema of every command."""
    loaded: dict[str, Any] = json.loads(COMMAND_SCHEMA.read_text("utf-8"))
    return loaded


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its ``$ref`` followed (one level: the command schema keeps every model in ``$defs``)."""
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**command_schema()["$defs"][name], **rest}
    return schema


def non_null(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The schema without its ``null`` branch, and whether null was allowed."""
    schema = resolve(schema)
    branches = schema.get("anyOf")
    if branches is None:
        return schema, schema.get("type") == "null"
    others = [resolve(b) for b in branches if b.get("type") != "null"]
    nullable = len(others) < len(branches)
    if len(others) == 1:
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return {**others[0], **rest}, nullable
    return {"anyOf": others}, nullable


@cache
def command_names() -> tuple[str, ...]:
    """Every command's name (``case.report`` …), in the schema's order."""
    return tuple(resolve(branch)["properties"]["command"]["const"] for branch in command_schema()["oneOf"])


def command_model(name: str) -> dict[str, Any]:
    """The schema of one command, by name."""
    for branch in command_schema()["oneOf"]:
        model = resolve(branch)
        if model["properties"]["command"]["const"] == name:
            return model
    raise KeyError(name)


Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class FieldSpec:
    """One field of a command, nested fields by their path: ``("location", "address")``, ``("rules", 0)``."""

    command: str
    path: Path_
    schema: dict[str, Any]
    required: bool
    nullable: bool

    @property
    def dotted(self) -> str:
        """The path as the errors name it: ``location.address``, ``rules.0.sla_class``."""
        return ".".join(str(p) for p in self.path)

    @property
    def name(self) -> str:
        """The innermost named part of the path: what an error must name at least."""
        return next(str(p) for p in reversed(self.path) if isinstance(p, str))

    @property
    def kind(self) -> str:
        """What sort of value it holds: text, datetime, date, enum, integer, number, boolean, array, object."""
        schema = self.schema
        if "enum" in schema or "const" in schema:
            return "enum"
        kind = schema.get("type")
        if kind == "string":
            return {"date-time": "datetime", "date": "date"}.get(schema.get("format", ""), "text")
        if kind in {"integer", "number", "boolean", "array", "object"}:
            return str(kind)
        return "other"


def _walk(command: str, schema: dict[str, Any], path: Path_, required: bool, out: list[FieldSpec]) -> None:
    schema, nullable = non_null(schema)
    spec = FieldSpec(command, path, schema, required, nullable)
    out.append(spec)
    if spec.kind == "object":
        needed = set(schema.get("required", ()))
        for name, sub in schema.get("properties", {}).items():
            _walk(command, sub, (*path, name), name in needed, out)
    elif spec.kind == "array" and "items" in schema:
        _walk(command, schema["items"], (*path, 0), True, out)


@cache
def fields_of(command: str) -> tuple[FieldSpec, ...]:
    """Every field of a command but ``command`` itself, nested ones too (``actor.id``, ``location.lat`` …)."""
    model = command_model(command)
    out: list[FieldSpec] = []
    needed = set(model.get("required", ()))
    for name, sub in model["properties"].items():
        if name != "command":
            _walk(command, sub, (name,), name in needed, out)
    return tuple(out)


@cache
def all_fields() -> tuple[FieldSpec, ...]:
    """Every field of every command."""
    return tuple(spec for name in command_names() for spec in fields_of(name))


# -- a command that is fine but for one field ------------------------------------------------


@dataclass
class Context:
    """What exists in the store the commands run against: numbers to act on."""

    case_number: str
    other_case_number: str
    patrol_number: str


#: Values that make a command mean something in the small district of tests/support.py, by field name;
#: any other field gets a value built from its schema (so a new field needs nothing here).
KNOWN: dict[str, Any] = {
    "actor": ADMIN,
    "category": CATEGORY,
    "grid": GRID,
    "worker": "W001",
    "parent": "SN",
    "department": "D-CG",
    "channel": "hotline",
    "description": "fuzz: 井盖缺失",
    "handler": {"kind": "worker", "id": "W001"},
    "resolve_by": "2030-06-01T01:00:00+00:00",
    "to_level": "street",
    "target": "SN01-C01-G001-0001",
    "start": "2021-06-01",
    "end": "2021-12-31",
}


def value_for(schema: dict[str, Any], name: str = "") -> Any:  # noqa: C901, PLR0911 - one answer per kind of schema
    """A plain valid value for a schema (KNOWN by name first)."""
    if name in KNOWN:
        return copy.deepcopy(KNOWN[name])
    schema, _ = non_null(schema)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return copy.deepcopy(schema["default"])
    if "examples" in schema:
        return schema["examples"][0]
    kind = schema.get("type")
    if kind == "string":
        return {"date-time": "2021-06-02T01:00:00+00:00", "date": "2021-06-02"}.get(schema.get("format", ""), "fuzz")
    if kind == "integer":
        return max(int(schema.get("minimum", 0)), int(schema.get("exclusiveMinimum", 0)) + 1, 1)
    if kind == "number":
        return 0.5
    if kind == "boolean":
        return False
    if kind == "array":
        return [value_for(schema["items"])] if schema.get("minItems") else []
    if kind == "object" or "properties" in schema:
        needed = schema.get("required", ())
        return {key: value_for(sub, key) for key, sub in schema.get("properties", {}).items() if key in needed}
    if "anyOf" in schema:
        return value_for(schema["anyOf"][0], name)
    return "fuzz"


def baseline(command: str, context: Context) -> dict[str, Any]:
    """A command whose required fields all hold plain values acting on the context's case or patrol."""
    model = command_model(command)
    fields: dict[str, Any] = {"command": command}
    for name in model.get("required", ()):
        fields[name] = value_for(model["properties"][name], name)
    if "case_number" in model["properties"] and command != "case.report":
        fields["case_number"] = context.case_number
    if "master_case_number" in fields:
        fields["master_case_number"] = context.other_case_number
    if "patrol_number" in fields:
        fields["patrol_number"] = context.patrol_number
    return fields


def _place(fields: dict[str, Any], spec: FieldSpec, value: Any) -> None:
    """Set the value at the spec's path, building the parents it needs."""
    target: Any = fields
    parents: list[FieldSpec] = [s for s in fields_of(spec.command) if s.path == spec.path[: len(s.path)]]
    for depth, part in enumerate(spec.path[:-1]):
        parent = next(s for s in parents if len(s.path) == depth + 1)
        if isinstance(target, dict):
            if not isinstance(target.get(part), dict | list) or (isinstance(part, str) and target.get(part) == []):
                target[part] = value_for(parent.schema, str(part))
                if parent.kind == "array" and not target[part]:
                    target[part] = [value_for(parent.schema["items"])]
            target = target[part]
        else:
            target = target[int(part)]
    last = spec.path[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


@dataclass(frozen=True)
class Hostile:
    """A hostile value, what it is, and whether every sane engine must refuse it."""

    label: str
    value: Any
    must_refuse: bool


@dataclass
class Mutation:
    """A command that is fine but for one hostile value at one field."""

    spec: FieldSpec
    hostile: Hostile
    context: Context = field(repr=False)
    #: An extra top-level key instead of a hostile value (the field it names is then the key).
    extra_key: str | None = None

    @property
    def must_refuse(self) -> bool:
        """Whether the whole command must be refused."""
        return self.hostile.must_refuse

    @property
    def names(self) -> str:
        """What a clear refusal must name."""
        return self.extra_key or self.spec.name

    def fields(self) -> dict[str, Any]:
        """The command as plain fields (``apply``'s line, before JSON)."""
        fields = baseline(self.spec.command, self.context)
        if self.extra_key is not None:
            fields[self.extra_key] = self.hostile.value
        else:
            _place(fields, self.spec, self.hostile.value)
        return fields

    def line(self) -> str:
        """The command as one ``apply`` line (NaN and surrogates written as JSON allows)."""
        return json.dumps(self.fields(), ensure_ascii=True, allow_nan=True)

    def describe(self) -> str:
        """One line for a failure message (values shortened)."""
        return f"{self.spec.command} {self.extra_key or self.spec.dotted} = {self.hostile.label}"


# -- hostile values --------------------------------------------------------------------------

#: Characters no stored text may carry (issue 13: the store's JSON encoder and XML listings break on them).
LONE_SURROGATES = ("\ud800", "\udfff", "\udc80")
CONTROLS = ("\x00", "\x01", "\x07", "\x08", "\x0b", "\x1b", "\x7f", "\x85", "\x9b")
#: Characters a text may well carry: it must be shown, not crash anything.
ODD_BUT_FINE = (
    "🚧🦺👩🏽‍🔧",  # emoji, a zero-width joiner, a skin-tone modifier
    "\u202eevil\u202c",  # right-to-left override
    "\u200f\u200e\u061c",  # RTL / LTR / Arabic letter marks
    "e\u0301\u0301\u0301\u0301",  # stacked combining marks
    "\ufeff",  # byte-order mark
    "\u2028\u2029",  # line and paragraph separators
    "'; DROP TABLE events; --",
    "<a>&amp;</a>]]>",
    "%s%n{0}${x}",
    " ",
    "\n",
    "\t",
    "中文井盖",
)

MOMENTS_OUT_OF_WINDOW = (
    "0001-01-01T00:00:00+00:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59+00:00",
    "9999-12-31T23:59:59-12:00",
    "1969-12-31T23:59:59+00:00",
    "2100-01-01T00:00:00+00:00",
)
DATES_OUT_OF_WINDOW = ("0001-01-01", "9999-12-31", "1969-12-31", "2100-01-01")
#: Unix times where an ISO 8601 moment is wanted: pydantic's lax mode reads them as seconds since 1970.
UNIX_TIMES = (1622509200, 0, -1, 1622509200.5, "1622509200", 10**20)
UNIX_DAYS = (1622505600, "1622505600", 0)


def _text_values(spec: FieldSpec) -> list[Hostile]:
    schema = spec.schema
    values = [Hostile(f"lone surrogate {c!r}", f"fuzz{c}x", must_refuse=True) for c in LONE_SURROGATES]
    values += [Hostile(f"control {c!r}", f"fu{c}zz", must_refuse=True) for c in CONTROLS]
    values += [Hostile(f"odd but fine {c!r}", f"fuzz {c}", must_refuse=False) for c in ODD_BUT_FINE]
    values.append(Hostile(f"{HUGE:,} characters", "界" + "x" * HUGE, must_refuse=True))
    limit = schema.get("maxLength")
    if limit is not None:
        values.append(Hostile(f"{limit + 1} characters (over maxLength)", "x" * (limit + 1), must_refuse=True))
        values.append(Hostile(f"{limit} characters (at maxLength)", "x" * limit, must_refuse=False))
    else:
        values.append(Hostile("20,000 characters (no maxLength in the schema)", "字" * 20_000, must_refuse=False))
    values += _wrong_types(spec, str)
    return values


def _wrong_types(spec: FieldSpec, wanted: type) -> list[Hostile]:
    values = [
        Hostile("an object", {"$gt": ""}, must_refuse=True),
        Hostile("a list", ["x"], must_refuse=True),
        Hostile(f"nested {DEEP_NESTING} deep", _nested(DEEP_NESTING), must_refuse=True),
    ]
    if wanted is not int and wanted is not float:
        values += [Hostile("the number 12", 12, must_refuse=True), Hostile("1.5", 1.5, must_refuse=True)]
    if wanted is not bool:
        values.append(Hostile("true", True, must_refuse=wanted is str))
    if spec.required or not spec.nullable:
        values.append(Hostile("null", None, must_refuse=True))
    return values


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def _datetime_values(spec: FieldSpec) -> list[Hostile]:
    values = [Hostile(f"moment {m}", m, must_refuse=True) for m in MOMENTS_OUT_OF_WINDOW]
    values += [Hostile(f"Unix time {u!r}", u, must_refuse=True) for u in UNIX_TIMES]
    values += [
        Hostile("no such day", "2021-02-30T00:00:00+00:00", must_refuse=True),
        Hostile("no offset", "2021-06-01T09:00:00", must_refuse=True),
        Hostile("not a time", "yesterday\x00", must_refuse=True),
        Hostile("lone surrogate", "2021-06-01T09:00:00+08:00\ud800", must_refuse=True),
        Hostile("offset +23:59", "2021-06-01T09:00:00+23:59", must_refuse=False),
        Hostile("1970-01-01 exactly", "1970-01-01T00:00:00+00:00", must_refuse=False),
        Hostile("2099-12-31 late", "2099-12-31T23:59:59+00:00", must_refuse=False),
        Hostile("nanoseconds", "2021-06-01T09:00:00.123456789+08:00", must_refuse=False),
    ]
    values += _wrong_types(spec, object)
    return values


def _date_values(spec: FieldSpec) -> list[Hostile]:
    values = [Hostile(f"date {d}", d, must_refuse=True) for d in DATES_OUT_OF_WINDOW]
    values += [Hostile(f"Unix day {u!r}", u, must_refuse=True) for u in UNIX_DAYS]
    values += [
        Hostile("no such day", "2021-02-30", must_refuse=True),
        Hostile("a moment", "2021-06-01T09:00:00+08:00", must_refuse=False),
        Hostile("1970-01-01", "1970-01-01", must_refuse=False),
        Hostile("2099-12-31", "2099-12-31", must_refuse=False),
    ]
    values += _wrong_types(spec, object)
    return values


def _integer_values(spec: FieldSpec) -> list[Hostile]:
    schema = spec.schema
    values = [
        Hostile("10**20", 10**20, must_refuse=True),
        Hostile("-10**20", -(10**20), must_refuse=True),
        Hostile("2**63", 2**63, must_refuse=True),
        Hostile("NaN", float("nan"), must_refuse=True),
        Hostile("Infinity", float("inf"), must_refuse=True),
        Hostile("-Infinity", float("-inf"), must_refuse=True),
        Hostile("1e308", 1e308, must_refuse=True),
        Hostile("1.5", 1.5, must_refuse=True),
        Hostile("'12' as text", "12", must_refuse=False),
        Hostile("2**31", 2**31, must_refuse=False),
        Hostile("-1", -1, must_refuse="minimum" in schema or "exclusiveMinimum" in schema),
    ]
    if "maximum" in schema:
        values.append(Hostile("maximum + 1", schema["maximum"] + 1, must_refuse=True))
        values.append(Hostile("maximum", schema["maximum"], must_refuse=False))
    values += _wrong_types(spec, int)
    return values


def _number_values(spec: FieldSpec) -> list[Hostile]:
    values = [
        Hostile("NaN", float("nan"), must_refuse=True),
        Hostile("Infinity", float("inf"), must_refuse=True),
        Hostile("-Infinity", float("-inf"), must_refuse=True),
        Hostile("1e308", 1e308, must_refuse=True),
        Hostile("10**20", 10**20, must_refuse=True),
        Hostile("10**400 (no float holds it)", 10**400, must_refuse=True),
        Hostile("-0.0", -0.0, must_refuse=False),
        Hostile("5e-324", 5e-324, must_refuse=False),
    ]
    values += _wrong_types(spec, float)
    return values


def _enum_values(spec: FieldSpec) -> list[Hostile]:
    first = str(value_for(spec.schema))
    values = [
        Hostile("nope", "nope", must_refuse=True),
        Hostile("empty", "", must_refuse=True),
        Hostile("with NUL", f"{first}\x00", must_refuse=True),
        Hostile("with a lone surrogate", f"{first}\ud800", must_refuse=True),
        Hostile(f"{HUGE:,} characters", "x" * HUGE, must_refuse=True),
        Hostile("upper case", first.upper(), must_refuse=first.upper() != first),
    ]
    values += _wrong_types(spec, str)
    return values


def _boolean_values(spec: FieldSpec) -> list[Hostile]:
    return [
        Hostile("'maybe'", "maybe", must_refuse=True),
        Hostile("2", 2, must_refuse=True),
        Hostile("'yes'", "yes", must_refuse=False),
        Hostile("1", 1, must_refuse=False),
        *_wrong_types(spec, bool),
    ]


def _array_values(spec: FieldSpec) -> list[Hostile]:
    item = value_for(spec.schema.get("items", {}))
    size = len(json.dumps(item)) + 2
    # Enough items to be over the broker's limit, and never fewer than the 100,000 evidence items of issue 13.
    count = HUGE_LIST if size < 20 else max(2 * BROKER_LIMIT // size, 2_000)
    return [
        Hostile(f"{count:,} items", [item] * count, must_refuse=True),
        Hostile("a text instead of a list", "x", must_refuse=True),
        Hostile(f"nested {DEEP_NESTING} deep", _nested(DEEP_NESTING), must_refuse=True),
        Hostile("an object", {"0": item}, must_refuse=True),
        Hostile("100 items", [item] * 100, must_refuse=False),
    ]


def _object_values(spec: FieldSpec) -> list[Hostile]:
    plain = value_for(spec.schema)
    return [
        Hostile("a text instead of an object", "x", must_refuse=True),
        Hostile("a list", [plain], must_refuse=True),
        Hostile("an extra key", {**plain, "zz_extra": 1}, must_refuse=True),
        Hostile(f"nested {DEEP_NESTING} deep", _nested(DEEP_NESTING), must_refuse=True),
        Hostile("the number 12", 12, must_refuse=True),
    ]


_BY_KIND = {
    "text": _text_values,
    "datetime": _datetime_values,
    "date": _date_values,
    "integer": _integer_values,
    "number": _number_values,
    "enum": _enum_values,
    "boolean": _boolean_values,
    "array": _array_values,
    "object": _object_values,
}


def hostile_values(spec: FieldSpec) -> list[Hostile]:
    """Every hostile value of the catalogue for one field."""
    return _BY_KIND.get(spec.kind, _text_values)(spec)


# -- strategies ------------------------------------------------------------------------------

#: Characters that make any text unfit to store: lone surrogates, and control characters but line breaks/tabs.
bad_characters = st.characters(categories=["Cs"]) | st.characters(categories=["Cc"]).filter(lambda c: c not in "\n\t")
#: Any character a text may carry, the odd ones included (no surrogates, no controls).
fine_characters = st.characters(exclude_categories=["Cs", "Cc"])


@st.composite
def poisoned_text(draw: st.DrawFn) -> Hostile:
    """A text with one character no text may carry, somewhere in it."""
    head = draw(st.text(fine_characters, max_size=20))
    tail = draw(st.text(fine_characters, max_size=20))
    bad = draw(bad_characters)
    return Hostile(f"text with U+{ord(bad):04X}", head + bad + tail, must_refuse=True)


def odd_text() -> st.SearchStrategy[Hostile]:
    """Texts a client may send that a sane engine may store (it must then show them and not crash)."""
    return st.text(fine_characters, min_size=1, max_size=40).map(lambda t: Hostile("odd text", t, must_refuse=False))


def hostile_for(spec: FieldSpec) -> st.SearchStrategy[Hostile]:
    """A hostile value for one field: from the catalogue, or generated text (for text fields)."""
    catalogue = st.sampled_from(hostile_values(spec))
    if spec.kind == "text":
        return st.one_of(catalogue, poisoned_text(), odd_text())
    return catalogue


def mutations(context: Context, *, commands: tuple[str, ...] | None = None) -> st.SearchStrategy[Mutation]:
    """A command fine but for one hostile value at one field (or one extra key), of any command."""
    specs = [s for s in all_fields() if commands is None or s.command in commands]

    def for_spec(spec: FieldSpec) -> st.SearchStrategy[Mutation]:
        return hostile_for(spec).map(lambda h: Mutation(spec, h, context))

    extra = st.sampled_from([s for s in specs if len(s.path) == 1]).map(
        lambda s: Mutation(s, Hostile("an extra field", "x", must_refuse=True), context, extra_key="zz_not_a_field")
    )
    return st.one_of(st.sampled_from(specs).flatmap(for_spec), extra)


def is_big(value: Any) -> bool:
    """Whether a value is one of the huge ones (costly to send: the default run sends them sparingly)."""
    return (isinstance(value, str) and len(value) > 100_000) or (isinstance(value, list) and len(value) > 1_000)


def size_matters(spec: FieldSpec) -> bool:
    """Whether a field's size is what is at stake: a free text with no length in the schema, or a list."""
    return spec.kind == "array" or (spec.kind == "text" and not {"maxLength", "pattern"} & set(spec.schema))


def every_mutation(context: Context, *, deep: bool = False) -> list[Mutation]:
    """Every field with every value of the catalogue: the deterministic sweep the apply suite runs.

    The huge values go to the fields whose size is at stake (free texts with no bound in the schema,
    lists); the deep run sends them to every field, and 10 MB texts to the free texts too.
    """
    found = []
    for spec in all_fields():
        values = hostile_values(spec)
        if deep and spec.kind == "text" and "maxLength" not in spec.schema:
            values.append(Hostile(f"{DEEP_HUGE:,} characters", "x" * DEEP_HUGE, must_refuse=True))
        found += [
            Mutation(spec, hostile, context)
            for hostile in values
            if deep or not is_big(hostile.value) or size_matters(spec)
        ]
    return found


def python_source(value: Any) -> str:  # noqa: PLR0911 - one way of writing per kind of value
    """Python that rebuilds a value, huge repeats and deep nesting written short (for reproductions)."""
    if isinstance(value, str) and len(value) > 200 and len(set(value[1:])) == 1:
        return f"{value[0]!r} + {value[1]!r} * {len(value) - 1}"
    if isinstance(value, list) and len(value) > 20 and all(v == value[0] for v in value):
        return f"[{python_source(value[0])}] * {len(value)}"
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        depth, inner = 0, value
        while isinstance(inner, list) and len(inner) == 1:
            depth, inner = depth + 1, inner[0]
        if depth > 5:
            return f"functools.reduce(lambda v, _: [v], range({depth}), {python_source(inner)})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {python_source(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(python_source(v) for v in value) + "]"
    if isinstance(value, float) and value != value:  # noqa: PLR0124 - NaN
        return "float('nan')"
    if isinstance(value, float) and value in {float("inf"), float("-inf")}:
        return f"float({str(value)!r})"
    return repr(value)


def json_command(value: Any) -> str:
    """A shell command printing the value as one JSON line, however big: ``python3 -c '…'``."""
    source = f"import functools, json; print(json.dumps({python_source(value)}))"
    return f"python3 -c {shell_quote(source)}"


def shell_quote(text: str) -> str:
    """A shell word for a text, readable when it has no single quote (Python source mostly has many)."""
    if "'" not in text:
        return shlex.quote(text)
    return '"' + "".join("\\" + c if c in '\\"$`' else c for c in text) + '"'


# -- query parameters -------------------------------------------------------------------------

#: Hostile values for the queries' parameters (HTTP query strings and CLI options), by what they hold.
PERIODS = (
    Hostile("month 13", "2021-13", must_refuse=True),
    Hostile("day 0", "2021-06-00", must_refuse=True),
    Hostile("30 February", "2021-02-30", must_refuse=True),
    Hostile("year 1", "0001", must_refuse=True),
    Hostile("year 9999", "9999-12-31", must_refuse=True),
    Hostile("year 10000", "10000", must_refuse=True),
    Hostile("lone surrogate", "2021\ud800", must_refuse=True),
    Hostile("NUL", "2021\x00", must_refuse=True),
    Hostile("Unix time", "1622509200", must_refuse=True),
    Hostile(f"{QUERY_HUGE:,} characters", "2" * QUERY_HUGE, must_refuse=True),
    Hostile("1970", "1970", must_refuse=False),
    Hostile("2099-12", "2099-12", must_refuse=False),
)
MOMENTS = (
    *(Hostile(f"moment {m}", m, must_refuse=True) for m in MOMENTS_OUT_OF_WINDOW),
    Hostile("Unix time", "1622509200", must_refuse=True),
    Hostile("not a time", "soon", must_refuse=True),
    Hostile("lone surrogate", "2021-06-01T00:00:00Z\ud800", must_refuse=True),
    Hostile("2021-06-01T00:00:00Z", "2021-06-01T00:00:00Z", must_refuse=False),
)
#: Codes a query looks up (a unit, a number, a subject): an odd one finds nothing or is refused, never a 5xx.
CODES = (
    Hostile("lone surrogate", "SN\ud800", must_refuse=False),
    Hostile("control", "SN\x1b[2J", must_refuse=False),
    Hostile("65 characters", "S" * 65, must_refuse=False),
    Hostile(f"{QUERY_HUGE:,} characters", "S" * QUERY_HUGE, must_refuse=False),
    Hostile("emoji", "SN🚧", must_refuse=False),
    Hostile("RTL", "\u202eNS", must_refuse=False),
)
#: Page numbers and sizes: too big may be refused or capped (issue 13, item 7), never a 5xx.
COUNTS = (
    Hostile("-1", "-1", must_refuse=True),
    Hostile("NaN", "NaN", must_refuse=True),
    Hostile("1.5", "1.5", must_refuse=True),
    Hostile("10**20", str(10**20), must_refuse=False),
    Hostile("10**9", "1000000000", must_refuse=False),
)


# -- running gridcase, and what must hold after a run ----------------------------------------

GRIDCASE = Path(sys.executable).parent / "gridcase"


@dataclass
class Ran:
    """One ``gridcase`` run: the command line (a ready reproduction), the exit code, what it printed."""

    command: str
    code: int
    stdout: str
    stderr: str

    def show(self) -> str:
        """The run for a failure message: how to reproduce it and what came out (shortened)."""
        return f"$ {self.command}\nexit {self.code}\nstderr: {self.stderr[-1500:]}\nstdout: {self.stdout[-800:]}"


def gridcase(database_url: str, *args: str | bytes, stdin: bytes | None = None, shown_stdin: str = "",
             timeout: float = 120) -> Ran:  # fmt: skip
    """Run the installed ``gridcase`` on a database, as a user would; arguments may be raw bytes (bad UTF-8).

    A run that outlives ``timeout`` (a runner retrying forever) is reported as exit -9 with what it printed.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_") or k == KEY_VAR}
    env["GRIDCASE_DATABASE_URL"] = database_url
    words = [a.decode("utf-8", "surrogateescape") if isinstance(a, bytes) else a for a in args]
    line = " ".join(shlex.quote(w) if w.isprintable() else _ansi_c(w) for w in words)
    command = f"{shown_stdin}GRIDCASE_DATABASE_URL={database_url} gridcase {line}"
    argv = [os.fsencode(GRIDCASE), *(a if isinstance(a, bytes) else a.encode("utf-8", "surrogateescape") for a in args)]
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as expired:
        out = (expired.stdout or b"").decode("utf-8", "backslashreplace")
        err = (expired.stderr or b"").decode("utf-8", "backslashreplace")
        return Ran(command, -9, out, err + f"\n[still running after {timeout:.0f} s: killed]")
    return Ran(command, done.returncode, done.stdout.decode("utf-8", "backslashreplace"),
               done.stderr.decode("utf-8", "backslashreplace"))  # fmt: skip


def _ansi_c(word: str) -> str:
    """A shell ``$'…'`` word for text with control characters or undecodable bytes (lone surrogates)."""
    raw = word.encode("utf-8", "surrogateescape")
    return "$'" + "".join(chr(b) if 0x20 <= b < 0x7F and chr(b) not in "'\\" else f"\\x{b:02x}" for b in raw) + "'"


def crashed(ran: Ran) -> str | None:
    """Why a run counts as a crash (a traceback, an undocumented exit code, a stderr of many lines), or None."""
    if "Traceback (most recent call last)" in ran.stderr:
        return "a traceback on stderr"
    if ran.code not in {0, 2, 3, 4}:
        return f"exit code {ran.code} (documented: 0 ok, 2 bad input, 3 refused, 4 conflict)"
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    if ran.code != 0 and len(lines) > 1:
        return f"{len(lines)} lines on stderr (a failure is one line)"
    return None


def store_head(database_url: str) -> int:
    """The store's last notification position, read as the store reader does (0 when empty)."""
    from tests.conftest import make_settings  # noqa: PLC0415 - the fixtures' module imports this one
    from tests.support import make_app  # noqa: PLC0415

    app = make_app(make_settings(database_url))
    try:
        return app.reader.last_position()
    finally:
        app.close()


def projection_positions(database_url: str) -> dict[str, int]:
    """Each projection's checkpoint (the ``projection_positions`` rows of the read database)."""
    from sqlalchemy import create_engine, text  # noqa: PLC0415

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT name, position FROM projection_positions")).all()
    finally:
        engine.dispose()
    return {str(name): int(position) for name, position in rows}


def settled(database_url: str, *, expected_deadletters: int = 0) -> list[str]:
    """What is wrong with the read models after a fuzz run: each problem with its reproduction.

    Catching up once must finish, every projection must reach the store's head, ``deadletters``
    must hold only what was set aside on purpose, and ``replay verify`` must find no row that differs.
    """
    problems = []
    project = gridcase(database_url, "project", timeout=90)
    if project.code != 0 or crashed(project):
        problems.append(f"catching up failed (a read model stuck?):\n{project.show()}")
    head = store_head(database_url)
    behind = {name: at for name, at in projection_positions(database_url).items() if at < head}
    if behind:
        problems.append(f"projections behind the store's head {head} after catching up: {behind} (stuck)\n"
                        f"$ sqlite3 {database_url.removeprefix('sqlite:///')} 'select * from projection_positions'")
    letters = gridcase(database_url, "deadletters", "--json")
    try:
        rows = json.loads(letters.stdout) if letters.code == 0 else None
    except ValueError:
        rows = None
    if rows is None or len(rows) != expected_deadletters:
        problems.append(f"dead letters (expected {expected_deadletters}):\n{letters.show()}")
    verify = gridcase(database_url, "replay", "verify", timeout=180)
    if verify.code != 0 or crashed(verify):
        problems.append(f"replay verify found differences or failed:\n{verify.show()}")
    return problems


def report_problems(problems: list[str], limit: int = 60) -> str:
    """The problems grouped by what happened, the first few of each kind in full.

    With ``GRIDCASE_FUZZ_REPORT`` set to a file, every problem in full is appended to it as well.
    """
    dump = os.environ.get("GRIDCASE_FUZZ_REPORT")
    if dump:
        with Path(dump).open("a", encoding="utf-8", errors="backslashreplace") as file:
            file.write("\n\n".join(problems) + "\n\n")
    groups: dict[str, list[str]] = {}
    for problem in problems:
        head = problem.split("\n", 1)[0]
        key = head.split(": ", 1)[1][:70] if ": " in head else head[:70]
        groups.setdefault(key, []).append(problem)
    shown = [f"{len(problems)} problems in {len(groups)} groups"]
    for key, members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        shown.append(f"\n== {len(members)} × {key}")
        shown += [member[:3000] for member in members[: max(2, limit // max(len(groups), 1))]]
    return "\n".join(shown)
