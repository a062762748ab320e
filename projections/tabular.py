"""Query rows as flat tables a spreadsheet or a BI tool opens: every cell one value, every number a number.

A rate (``{"numerator", "denominator", "rate"}``) becomes three columns side by side,
``X_numerator``, ``X_denominator`` and ``X`` (the rate, empty when nothing was counted);
any other nested value becomes its JSON text. Used by the exports of the query
commands (adapters/query_export.py) and by the review's CSV (replay/review.py).
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

_RATE_KEYS = frozenset({"numerator", "denominator", "rate"})


def is_rate(value: Any) -> bool:
    """Whether a figure is a rate kept as its fraction."""
    return isinstance(value, dict) and set(value) == _RATE_KEYS


def flat_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """One row with its rates spread over three columns and any other nested value as JSON text."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if is_rate(value):
            flat[f"{key}_numerator"] = value["numerator"]
            flat[f"{key}_denominator"] = value["denominator"]
            flat[key] = value["rate"]
        elif isinstance(value, dict | list):
            flat[key] = json.dumps(value, ensure_ascii=False, sort_keys=True)
        else:
            flat[key] = value
    return flat


def flat_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every row flat (:func:`flat_row`)."""
    return [flat_row(row) for row in rows]


def column_names(rows: Sequence[Mapping[str, Any]], first: Sequence[str] = ()) -> list[str]:
    """The columns of flat rows: ``first`` (those given), then every other key in the order it first appears."""
    names = dict.fromkeys(first)
    for row in rows:
        names.update(dict.fromkeys(row))
    ordered: list[str] = []
    for name in names:  # a rate's numerator and denominator right before it, wherever they first appeared
        base, _, part = name.rpartition("_")
        if part in {"numerator", "denominator"} and base in names:
            continue
        ordered += [f"{name}_{part}" for part in ("numerator", "denominator") if f"{name}_{part}" in names]
        ordered.append(name)
    return ordered


def column_types(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, str]:
    """The SQL type of each column from its values: BOOLEAN, BIGINT, DOUBLE or VARCHAR (no value at all: VARCHAR)."""
    types: dict[str, str] = {}
    for name in names:
        seen = {_kind(row.get(name)) for row in rows} - {None}
        if seen == {"BOOLEAN"}:
            types[name] = "BOOLEAN"
        elif seen and seen <= {"BIGINT", "DOUBLE"}:
            types[name] = "DOUBLE" if "DOUBLE" in seen else "BIGINT"
        else:
            types[name] = "VARCHAR"
    return types


def _kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT"
    if isinstance(value, float):
        return "DOUBLE"
    return "VARCHAR"


def csv_cell(value: Any) -> str:
    """A value as CSV text: no value empty, booleans ``true``/``false``, numbers as Python writes them (exact)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def csv_text(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    """Flat rows as CSV: a header of column names, then one line per row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow([csv_cell(row.get(name)) for name in names])
    return buffer.getvalue()
