"""Exports of the query commands: a CSV or Parquet file, and beside it what it was computed from (``FILE.meta.json``).

One module for every command that exports (``performance``, ``intake``, ``queue``,
``overdue``, ``duplicates``, ``review``): the command hands over its rows (as its
``--json`` prints them) and a :class:`Provenance`; the rows are made flat
(projections/tabular.py: a rate is its numerator, denominator and rate, each a
number in its own column), written to a temporary file beside the target and
renamed into place, then the side file is written. Parquet is written by DuckDB
(from the same rows as newline-delimited JSON, with each column's type given), so
the types are the side file's: BOOLEAN, BIGINT, DOUBLE, VARCHAR (times stay ISO 8601
text with their offset, as in ``--json``).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from projections.tabular import column_names, column_types, csv_text, flat_rows

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

FORMATS = ("csv", "parquet")
META_SUFFIX = ".meta.json"


@dataclass(frozen=True)
class Provenance:
    """What an export was computed from, so it can be made again to the digit.

    ``rule_version``: the versions of the code or rules that computed the figures (a read model's code version,
    a review's rule file); ``position``: the last store position its read models had applied; ``cutoff_recorded``:
    the as-of-recorded cut-off (given, or the moment the store held exactly those events); ``cutoff_occurred``: the
    as-of-occurred one, if given; ``judged_at``: the moment "overdue" was judged at, for the case lists.
    """

    export: str
    arguments: dict[str, Any]
    rule_version: dict[str, Any]
    position: int
    cutoff_recorded: str | None
    cutoff_occurred: str | None = None
    judged_at: str | None = None
    reproduce: str = ""
    notes: list[str] = field(default_factory=list)


class BadOutput(ValueError):
    """An export target that cannot be written (no such folder, a folder, an unknown format)."""


def meta_path(path: Path) -> Path:
    """The side file of an export: ``FILE.meta.json`` beside ``FILE``."""
    return path.with_name(path.name + META_SUFFIX)


def check_target(path: Path, form: str) -> None:
    """Refuse a target that cannot be written before anything is computed; nothing is written."""
    if form not in FORMATS:
        msg = f"{form!r} is not one of {', '.join(FORMATS)}"
        raise BadOutput(msg)
    if path.is_dir():
        msg = f"{str(path)!r} is a folder; give a file name"
        raise BadOutput(msg)
    if not path.parent.is_dir():
        msg = f"the folder {str(path.parent)!r} does not exist"
        raise BadOutput(msg)


def write_export(
    path: Path, form: str, rows: Sequence[Mapping[str, Any]], provenance: Provenance,
    schema: Mapping[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Write the rows as ``form`` to ``path`` and the provenance beside it; the side file's document is returned.

    ``schema``: the query's columns and their types, in order, so that an export has the same columns of the
    same types whatever rows it holds (none, or a figure that happens to be whole); columns it does not name
    follow, typed from their values.
    """
    check_target(path, form)
    flat = flat_rows(rows)
    names = column_names(flat, list(schema or ()))
    types = {**column_types(flat, names), **(schema or {})}
    # Beside the target (the same file system, so the rename is atomic), made like any new file (the umask's mode).
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        if form == "csv":
            temporary.write_text(csv_text(flat, names), encoding="utf-8")
        else:
            _write_parquet(temporary, flat, names, types)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    document = {
        "file": path.name,
        "format": form,
        "rows": len(flat),
        "columns": [{"name": name, "type": types[name]} for name in names],
        **asdict(provenance),
    }
    meta_path(path).write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return document


# -- the columns of each query ---------------------------------------------------------------


def performance_schema(kind: str) -> dict[str, str]:
    """The columns of ``gridcase performance`` for a kind of subject: each rate as three, means as DOUBLE."""
    from projections.performance_queries import FIGURES, MEANS, RATES  # noqa: PLC0415

    schema = {"kind": "VARCHAR", "subject": "VARCHAR", "period": "VARCHAR"}
    for figure in FIGURES["area" if kind in {"grid", "community", "street", "district"} else kind]:
        if figure in RATES:
            schema |= {f"{figure}_numerator": "BIGINT", f"{figure}_denominator": "BIGINT", figure: "DOUBLE"}
        elif figure in MEANS or figure in {"patrol_hours", "cases_per_1000_residents"}:
            schema[figure] = "DOUBLE"
        else:
            schema[figure] = "BIGINT"
    return schema


def intake_schema(by: str) -> dict[str, str]:
    """The columns of ``gridcase intake --by BY``."""
    from projections.intake_queries import COUNTED  # noqa: PLC0415

    return {by: "VARCHAR", **dict.fromkeys(COUNTED, "BIGINT"), "mean_minutes_to_accept": "DOUBLE",
            "p90_minutes_to_accept": "DOUBLE"}  # fmt: skip


def case_list_schema() -> dict[str, str]:
    """The columns of a case list (``queue``, ``overdue``): the case-status row as its query returns it."""
    from sqlalchemy import Boolean, Float, Integer  # noqa: PLC0415

    from projections.case_status import case_status  # noqa: PLC0415

    def kind(column: Any) -> str:
        if isinstance(column.type, Boolean):
            return "BOOLEAN"
        if isinstance(column.type, Integer):  # BigInteger too
            return "BIGINT"
        return "DOUBLE" if isinstance(column.type, Float) else "VARCHAR"  # times: ISO 8601 text, as in --json

    schema = {column.name: kind(column) for column in case_status.columns if column.name != "description"}
    return {**schema, "overdue": "BOOLEAN"}


def _write_parquet(path: Path, rows: Sequence[Mapping[str, Any]], names: Sequence[str], types: dict[str, str]) -> None:
    """The flat rows as one Parquet file, each column of its type, through DuckDB."""
    import duckdb  # noqa: PLC0415 - only a Parquet export pays for DuckDB

    columns = ", ".join(f"{_quote(name)} {types[name]}" for name in names)
    with tempfile.TemporaryDirectory(prefix="gridcase-export-") as folder:
        lines = Path(folder) / "rows.jsonl"
        lines.write_text("".join(json.dumps({n: row.get(n) for n in names}) + "\n" for row in rows), encoding="utf-8")
        connection = duckdb.connect()
        try:
            connection.execute(f"CREATE TABLE export ({columns})")
            if rows:
                kinds = "{" + ", ".join(f"{_literal(name)}: {_literal(types[name])}" for name in names) + "}"
                selected = ", ".join(_quote(name) for name in names)
                connection.execute(
                    f"INSERT INTO export SELECT {selected} FROM read_json({_literal(str(lines))}, "  # noqa: S608 - names quoted
                    f"format = 'newline_delimited', columns = {kinds})"
                )
            connection.execute(f"COPY export TO {_literal(str(path))} (FORMAT parquet)")
        finally:
            connection.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
