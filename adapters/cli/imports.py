"""``gridcase import requests|report``: another system's service-request export replayed as events (docs/import.md).

Reading the file (CSV or a JSON array, gzip or not) is :mod:`adapters.exports`'s; what a row means and the
commands it implies are :mod:`importing`'s; the figures are the read models' (:mod:`projections.imported_queries`).
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from adapters.cli.common import Exit, JsonOpt, emit, err, fail, load_settings, opened_engine, read_side, summary
from adapters.exports import imported_refs, read_rows
from importing.profile import BadProfile, parse_profile, shipped_profile, shipped_profiles
from importing.run import Importer
from projections.imported_queries import GROUPINGS, import_report

if TYPE_CHECKING:
    from importing.profile import Profile
    from importing.run import Summary

import_app = typer.Typer(help="Import another system's export, and report the city's own figures from it.",
                         no_args_is_help=True)  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add ``import requests`` and ``import report`` to the ``gridcase`` program."""
    import_app.command("requests")(import_requests)
    import_app.command("report")(report)
    app.add_typer(import_app, name="import")


def load_profile(name: str) -> Profile:
    """A shipped profile by name, or a TOML file by path; bad input otherwise."""
    try:
        found = shipped_profile(name)
        if found is not None:
            return found
        path = Path(name)
        if not path.is_file():
            shipped = ", ".join(shipped_profiles())
            fail(Exit.BAD_INPUT, f"bad input: --profile: no profile {name!r} (shipped: {shipped}; or a TOML file)")
        return parse_profile(path.read_text("utf-8"), f"profile {name}")
    except BadProfile as error:
        fail(Exit.BAD_INPUT, f"bad input: --profile: {error}")


def import_requests(
    file: Annotated[Path, typer.Argument(help="The export: CSV or a JSON array, optionally .gz.")],
    profile: Annotated[str, typer.Option("--profile", help="A shipped profile (sf311, open311) or a TOML file.")],
    batch_rows: Annotated[int, typer.Option("--batch-rows", min=1, max=10_000, help="Rows per transaction.")] = 500,
    as_json: JsonOpt = False,
) -> None:
    """Import an export's rows as the case events they imply; run it again to resume, it adds nothing twice."""
    settings = load_settings()
    chosen = load_profile(profile)
    if not file.is_file():
        fail(Exit.BAD_INPUT, f"bad input: FILE: {file} is not a file")
    shown = {"at": 0.0}

    def progress(done: Summary) -> None:
        if as_json or time.monotonic() - shown["at"] < 2:  # noqa: PLR2004 - a line every two seconds
            return
        shown["at"] = time.monotonic()
        err.print(f"{done.rows:,} rows read, {done.imported:,} imported, {done.already_imported:,} already imported, "
                  f"{done.skipped:,} skipped: {done.rows_per_second:,.0f} rows/s", highlight=False)  # fmt: skip

    with opened_engine(settings) as engine:
        known = imported_refs(engine.reader, chosen.name)
        importer = Importer(engine.service, chosen, imported=known, batch_rows=batch_rows, progress=progress)
        try:
            done = importer.run(read_rows(file, chosen.format))
        except (ValueError, csv.Error, UnicodeDecodeError) as error:
            fail(Exit.BAD_INPUT, f"bad input: {file}: {' '.join(str(error).split())}")
    document = {"file": str(file), **done.document()}
    summary(as_json, document, done.line())
    if done.refused:
        if not as_json:
            for row in done.refused[:20]:
                err.print(f"line {row['line']} ({row['ref']}): {row['error']}", markup=False, highlight=False)
        raise typer.Exit(int(Exit.REFUSED))


def report(
    ref_prefix: Annotated[str, typer.Option("--ref-prefix", help="Only imports whose references start so.")] = "",
    as_json: JsonOpt = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV: one line per group.")] = False,
) -> None:
    """The figures an analyst checks against the city's own (definitions in docs/import.md)."""
    if as_json and as_csv:
        fail(Exit.BAD_INPUT, "bad input: --json and --csv: choose one")
    with read_side(load_settings()) as read, read.engine.connect() as connection:
        found = import_report(connection, ref_prefix)
    if as_json:
        emit(found, ensure_ascii=False)
        return
    lines = flat_lines(found)
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(lines[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(lines)
        return
    show_report(found, lines)


def flat_lines(found: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per group (the whole import first): plain values, the deadline share as its parts."""
    lines = [_flat("all", "all", found["all"])]
    for grouping in GROUPINGS:
        lines += [_flat(grouping, entry[grouping], entry) for entry in found[f"by_{grouping}"]]
    return lines


def _flat(grouping: str, group: str, figures: dict[str, Any]) -> dict[str, Any]:
    share = figures["closed_by_deadline"]
    return {
        "grouping": grouping,
        "group": group,
        **{k: v for k, v in figures.items() if k not in {"closed_by_deadline", grouping, "code", "closures"}},
        "closures": figures.get("closures", ""),
        "with_deadline": share["denominator"],
        "closed_by_deadline": share["numerator"],
        "closed_by_deadline_share": "" if share["rate"] is None else share["rate"],
    }


def show_report(found: dict[str, Any], lines: list[dict[str, Any]]) -> None:
    """The report as tables for people: the whole, then each grouping."""
    from adapters.cli.common import show_rows  # noqa: PLC0415 - only the table view needs it

    title = f"Imported requests{' ' + found['ref_prefix'] if found['ref_prefix'] else ''}"
    columns = ["group", "requests", "closed", "open", "median_hours_to_close", "p90_hours_to_close",
               "median_hours_to_close_without_closed_before_opened", "p90_hours_to_close_without_closed_before_opened",
               "with_deadline", "closed_by_deadline", "closed_by_deadline_share"]  # fmt: skip
    for grouping in ("all", *GROUPINGS):
        rows = [line for line in lines if line["grouping"] == grouping]
        extra = ["closures"] if grouping == "month" else []
        heading = f"{title}, {'in all' if grouping == 'all' else 'by ' + grouping}"
        show_rows(rows, as_json=False, title=heading, columns=columns + extra)
