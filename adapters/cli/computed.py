"""Where a query command reads, and how it hands its rows over: a table, ``--json``, or an export file.

Without a cut-off a query reads the live read models, caught up first; with
``--as-of-recorded`` or ``--as-of-occurred`` it builds the read models it needs
from the store, up to the cut, into a throw-away SQLite file, and reads that (as
``gridcase review`` does). Either way it knows the store position it was computed
at, the cut-off on the recording clock that gives exactly that position, and the
code version of the read models: what an export's side file names, so that the
export is made again later, to the digit, by the same command with
``--as-of-recorded`` (docs/commands.md, "Exports").
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from sqlalchemy import select

from adapters.cli.common import Exit, emit, fail, moment, out, read_side, show_record, show_rows
from adapters.query_export import FORMATS, BadOutput, Provenance, check_target, meta_path, write_export
from projections.sql import make_engine, projection_versions, stored_position
from replay.chain import event_chain, from_micros, to_micros
from replay.source import cut_off, head, position_known_at

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy import Connection

    from adapters.settings import Settings

FormatOpt = Annotated[
    str, typer.Option("--format", help="table, json, csv or parquet (csv and parquet need --output)")
]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", help="The export file; FILE.meta.json beside it says what it was made from")
]
OccurredOpt = Annotated[
    str | None,
    typer.Option("--as-of-occurred", help="Only what happened by this time, however late it was recorded (ISO)."),
]
RecordedOpt = Annotated[
    str | None, typer.Option("--as-of-recorded", help="Only what the store held at this time (ISO).")
]


@dataclass(frozen=True)
class Output:
    """How the rows leave: ``table``, ``json``, or an export (``csv``, ``parquet``) to a file."""

    form: str
    path: Path | None


def output_of(output_format: str, output: Path | None, as_json: bool) -> Output:
    """The output asked for; a bad format or target is bad input, before anything is computed."""
    form = "json" if as_json else output_format
    if form not in {"table", "json", *FORMATS}:
        fail(Exit.BAD_INPUT, f"bad input: --format: {output_format!r} is not one of table, json, csv, parquet")
    if form in FORMATS:
        if output is None:
            fail(Exit.BAD_INPUT, f"bad input: --output: --format {form} writes a file: give --output FILE")
        try:
            check_target(output, form)
        except BadOutput as error:
            fail(Exit.BAD_INPUT, f"bad input: --output: {error}")
    elif output is not None:
        fail(Exit.BAD_INPUT, "bad input: --output: only with --format csv or parquet")
    return Output(form, output)


@dataclass(frozen=True)
class At:
    """What rows were computed from: the store position, the cut-offs, the judging moment, the code versions."""

    position: int
    cutoff_recorded: str | None
    cutoff_occurred: str | None
    judged_at: datetime
    versions: dict[str, int]


#: A query over read models: a connection to them and the moment "overdue" is judged at, to rows.
Query = Callable[["Connection", datetime], list[dict[str, Any]]]
#: How often a live query is read again when the read models moved while it read.
_ATTEMPTS = 5


def iso(moment_: datetime) -> str:
    """A moment as the cut-offs are written: UTC, to the microsecond, with Z."""
    return from_micros(to_micros(moment_)).astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def query_at(
    settings: Settings, names: Sequence[str], recorded: str | None, occurred: str | None, query: Query
) -> tuple[list[dict[str, Any]], At]:
    """A query's rows on the read models ``names``, now or as of the cut-offs, and what they were computed from.

    With a cut-off (or read models fed from Kafka) the read models are built from the store up to it first.
    """
    cut_recorded = moment(recorded, settings, "--as-of-recorded")
    cut_occurred = moment(occurred, settings, "--as-of-occurred")
    store = make_engine(settings.database_url)
    try:
        if cut_recorded is None and cut_occurred is None and settings.projections_source == "store":
            return _live(settings, store, names, query)
        # Kafka-fed read models track offsets, not store positions: an export from them is built from the store.
        return _built(settings, store, names, cut_recorded, cut_occurred, query)
    finally:
        store.dispose()


def _live(settings: Settings, store: Any, names: Sequence[str], query: Query) -> tuple[list[dict[str, Any]], At]:
    with read_side(settings, names=names) as read, read.engine.connect() as connection:
        for _ in range(_ATTEMPTS):
            position = min(stored_position(connection, name) for name in names)
            now = datetime.now(UTC)
            rows = query(connection, now)
            # Another runner (project --follow, the API's) may have moved the read models while the query read:
            # then read again, so the rows are exactly those of one position.
            if min(stored_position(connection, name) for name in names) == position:
                break
        stored = dict(connection.execute(select(projection_versions.c.name, projection_versions.c.version)).all())
    with store.connect() as log:
        # "As the store held it at the moment of the query" names exactly this position when nothing came in
        # since the catch-up; otherwise the commit time of the position itself does.
        if position_known_at(log, now) == position:
            recorded: str | None = iso(now)
        else:
            committed = log.execute(select(event_chain.c.committed_at).where(event_chain.c.position == position))
            found = committed.scalar()
            recorded = None if found is None else iso(from_micros(int(found)))
    versions = {name: int(stored.get(name, 1)) for name in names}
    return rows, At(position, recorded, None, now, versions)


def _built(settings: Settings, store: Any, names: Sequence[str], recorded: datetime | None,
           occurred: datetime | None, query: Query) -> tuple[list[dict[str, Any]], At]:  # fmt: skip
    from adapters.bootstrap import bootstrap  # noqa: PLC0415
    from projections.catalogue import make_projections  # noqa: PLC0415
    from replay.build import build, scratch_of, temporary  # noqa: PLC0415

    with store.connect() as log:
        if recorded is not None:
            last = position_known_at(log, recorded)
            cutoff: str | None = iso(recorded)
        else:
            last, committed = head(log)
            cutoff = None if committed is None else iso(committed)
    engine = bootstrap(settings)
    try:
        projections = make_projections(names, settings.tz)
        judged = occurred or recorded or datetime.now(UTC)
        with scratch_of(temporary()) as scratch:
            build(scratch.engine, cut_off(engine.reader.read, last=last, occurred=occurred), projections)
            with scratch.engine.connect() as connection:
                rows = query(connection, judged)
    finally:
        engine.close()
    at = At(last, cutoff, None if occurred is None else iso(occurred), judged, {p.name: p.version for p in projections})
    return rows, at


def command_line(name: str, arguments: dict[str, Any], at: At, output: Output, positional: Sequence[str] = ()) -> str:
    """The command that makes this export again: the same query, the cut-offs it was computed at, the same file."""
    words = ["gridcase", *name.split(), *positional]
    for option, value in arguments.items():
        if value is True:
            words.append(f"--{option}")
        elif value not in (None, False):
            words += [f"--{option}", str(value)]
    if at.cutoff_recorded is not None:
        words += ["--as-of-recorded", at.cutoff_recorded]
    if at.cutoff_occurred is not None:
        words += ["--as-of-occurred", at.cutoff_occurred]
    words += ["--format", output.form, "--output", str(output.path)]
    return shlex.join(words)


def deliver(
    rows: list[dict[str, Any]],
    output: Output,
    *,
    name: str,
    arguments: dict[str, Any],
    at: At,
    title: str,
    columns: list[str] | None = None,
    record: bool = False,
    judged: bool = False,
    schema: dict[str, str] | None = None,
    positional: Sequence[str] = (),
) -> None:
    """The rows as a table (``record``: one record as two columns), as JSON, or exported with their provenance."""
    if output.form == "json":
        emit(rows, ensure_ascii=False)
        return
    if output.form == "table":
        if record and rows:
            show_record(rows[0], as_json=False, title=title)
        else:
            show_rows(rows, as_json=False, title=title, columns=columns)
        return
    assert output.path is not None
    provenance = Provenance(
        export=name,
        arguments={**({"positional": list(positional)} if positional else {}),
                   **{key: value for key, value in arguments.items() if value not in (None, False)}},
        rule_version={f"read model {key}": f"v{value}" for key, value in at.versions.items()},
        position=at.position,
        cutoff_recorded=at.cutoff_recorded,
        cutoff_occurred=at.cutoff_occurred,
        judged_at=iso(at.judged_at) if judged else None,
        reproduce=command_line(name, arguments, at, output, positional),
    )
    document = write_export(output.path, output.form, rows, provenance, schema)
    out.print(
        f"exported {document['rows']} rows to {output.path} ({output.form}; computed at position {at.position}, "
        f"as of recorded {at.cutoff_recorded or '—'}; see {meta_path(output.path)})",
        markup=False,
        highlight=False,
    )


def export_review(result: Any, fmt: str, output: Path, rules: Path) -> None:
    """The review as a CSV or Parquet export (adapters/query_export.py), its provenance in the side file."""
    from replay.review import review_rows  # noqa: PLC0415 - only the review's export

    header = result.header()
    cut = {"as-of-recorded": header["cutoff_recorded"], "as-of-occurred": header["cutoff_occurred"]}
    words = ["gridcase", "review", "--period", result.period, "--rules", str(rules),
             *(word for option, value in cut.items() if value for word in (f"--{option}", value)),
             "--format", fmt, "--output", str(output)]  # fmt: skip
    provenance = Provenance(
        export="review",
        arguments={"period": result.period, "rules": str(rules)},
        rule_version={"rules": header["rule_version"]},
        position=result.last_position,
        cutoff_recorded=header["cutoff_recorded"],
        cutoff_occurred=header["cutoff_occurred"],
        reproduce=shlex.join(words),
        notes=[f"{header['events']} events in, inputs digest {header['inputs_digest']}"],
    )
    document = write_export(output, fmt, review_rows(result), provenance)
    out.print(f"exported {document['rows']} rows to {output} ({fmt}; rules {header['rule_version']}, position "
              f"{result.last_position}; see {meta_path(output)})", markup=False, highlight=False)  # fmt: skip
