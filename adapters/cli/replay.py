"""The replay and audit commands: ``gridcase replay rebuild|build|verify``, ``gridcase review``, ``gridcase audit``.

Exit codes as elsewhere (adapters/cli/common.py: 0 ok, 2 bad input, 3 refused: an
unknown case), plus 1 when a check finds something: ``replay verify`` found a row that
differs, ``audit verify`` found a broken link.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from adapters.bootstrap import bootstrap
from adapters.cli.common import (
    ActorOpt,
    Exit,
    JsonOpt,
    ReasonOpt,
    RoleOpt,
    UnitOpt,
    emit,
    err,
    fail,
    load_settings,
    local_time,
    moment,
    out,
    parse_period,
    progress_printer,
    rate,
    show_record,
    summary,
    viewer,
)
from adapters.cli.computed import export_review, output_of
from domain.case import case_id
from domain.errors import DomainError
from projections.catalogue import FACTORIES, make_projections
from projections.sql import make_engine
from replay.audit import COLUMNS, as_of, history, links_of, state_at, verify_chain
from replay.build import build, outdated, rebuild, verify
from replay.review import BadRules, load_rules, render, run_review
from replay.source import cut_off, position_known_at
from service import BadInput
from service.views import show_personal

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from eventsourcing.persistence import Notification
    from sqlalchemy import Engine

    from adapters.bootstrap import Engine as GridcaseEngine
    from adapters.settings import Settings
    from domain.base import ActorRef
    from replay.source import Reader
    from service import Service

replay_app = typer.Typer(
    help="Rebuild read models from the history, build them as of a cut-off, check they are deterministic.",
    no_args_is_help=True,
)

ProjectionsArg = Annotated[list[str] | None, typer.Argument(help="case_status, performance, intake (default all)")]
FromOpt = Annotated[
    str, typer.Option("--from", help="Event source: store, or kafka (the event topics, in store order)")
]
OccurredOpt = Annotated[
    str | None,
    typer.Option("--as-of-occurred", help="Only what happened by this time, however late it was recorded (ISO)."),
]
RecordedOpt = Annotated[
    str | None, typer.Option("--as-of-recorded", help="Only what the store held at this time (ISO).")
]


def register(app: typer.Typer) -> None:
    """Add these commands to the ``gridcase`` program."""
    app.add_typer(replay_app, name="replay")
    app.command("review")(review)
    app.command("audit")(audit)


@dataclass
class _Opened:
    """The store, its database (chain and commit clock), the read models' database, and the event source."""

    parts: GridcaseEngine
    store: Engine
    live: Engine
    read: Reader


@contextmanager
def _store(settings: Settings, source: str = "store") -> Iterator[_Opened]:
    if source not in {"store", "kafka"}:
        fail(Exit.BAD_INPUT, f"bad input: --from: {source!r} is not store or kafka")
    if source == "kafka" and not settings.kafka_enabled:
        fail(Exit.BAD_INPUT, "bad input: --from kafka: set GRIDCASE_KAFKA_BOOTSTRAP_SERVERS")
    parts = bootstrap(settings)
    store = make_engine(settings.database_url)
    live = make_engine(settings.read_url) if settings.read_url != settings.database_url else store
    topics = None

    def read(after: int, limit: int) -> list[Notification]:
        return list(parts.reader.read(after, limit))

    if source == "kafka":
        from adapters.kafka.relay import kafka_config  # noqa: PLC0415 - only replays from Kafka need a client
        from adapters.kafka.source import KafkaSource  # noqa: PLC0415

        topics = KafkaSource(kafka_config(settings.kafka_bootstrap_servers, settings.kafka_client_id))
    try:
        yield _Opened(parts, store, live, topics or read)
    finally:
        if topics is not None:
            topics.close()
        live.dispose()
        store.dispose()
        parts.close()


def _store_fed(settings: Settings) -> None:
    """Rebuilding from the store needs read models the store feeds (Kafka-fed ones track Kafka offsets)."""
    if settings.projections_source != "store":
        fail(Exit.BAD_INPUT, "bad input: the live read models are fed from Kafka (GRIDCASE_PROJECTIONS_SOURCE=kafka) "
                             "and track Kafka offsets: rebuilding or verifying them in place is not supported yet; "
                             "use replay build --into to build a copy")  # fmt: skip


@contextmanager
def _in_place(projections: list[str] | None, source: str) -> Iterator[tuple[Settings, list[str], _Opened]]:
    """The settings, the projections named and the store, to rebuild or verify the live read models."""
    settings = load_settings()
    names = _names(projections)
    _store_fed(settings)
    with _store(settings, source) as opened:
        yield settings, names, opened


def _names(projections: list[str] | None) -> list[str]:
    names = projections or list(FACTORIES)
    unknown = [name for name in names if name not in FACTORIES]
    if unknown:
        fail(Exit.BAD_INPUT, f"bad input: unknown projection {', '.join(unknown)} (known: {', '.join(FACTORIES)})")
    return names


def _progress(as_json: bool) -> Callable[[Any], None]:
    return progress_printer(as_json, lambda stats: f"replayed to position {stats.position}: {stats.events} events")


# -- replay -----------------------------------------------------------------------------------------


@replay_app.command("rebuild")
def replay_rebuild(
    projections: ProjectionsArg = None,
    only_outdated: Annotated[
        bool,
        typer.Option("--outdated", help="Only projections whose code version changed since their tables were built"),
    ] = False,
    source: FromOpt = "store",
    batch_size: Annotated[int, typer.Option(min=1, help="Events per transaction")] = 25_000,
    lease_timeout: Annotated[float, typer.Option(help="Seconds to wait for a running projector")] = 30.0,
    as_json: JsonOpt = False,
) -> None:
    """Build projections from position zero beside the live tables, then swap them in at once."""
    with _in_place(projections, source) as (settings, named, opened):
        engine, read = opened.live, opened.read
        names = named
        if only_outdated:
            stale = set(outdated(engine, settings.tz))
            names = [name for name in names if name in stale]
            if not names:
                summary(as_json, {"rebuilt": [], "position": None}, "every projection is at its code version")
                return
        from projections.runner import LeaseHeld  # noqa: PLC0415

        try:
            done = rebuild(engine, read, names, settings.tz, batch_size=batch_size, lease_timeout=lease_timeout,
                           progress=_progress(as_json))  # fmt: skip
        except LeaseHeld as error:
            fail(Exit.CONFLICT, f"conflict: not rebuilt: {error}; stop it (or wait) and try again")
    summary(
        as_json,
        {"rebuilt": done.projections, "position": done.position, "events": done.events,
         "seconds": round(done.seconds, 2)},
        f"rebuilt and swapped in {', '.join(done.projections)} at position {done.position}: "
        f"{done.events:,} events ({rate(done.events, done.seconds, idle='')})",
    )  # fmt: skip


@replay_app.command("build")
def replay_build(
    projections: ProjectionsArg = None,
    into: Annotated[
        str, typer.Option("--into", help="Database URL to build into (fresh tables, e.g. sqlite:///var/asof.db)")
    ] = "",
    as_of_occurred: OccurredOpt = None,
    as_of_recorded: RecordedOpt = None,
    source: FromOpt = "store",
    as_json: JsonOpt = False,
) -> None:
    """Build projections up to a cut-off into another database; query it with GRIDCASE_DATABASE_URL set to it."""
    settings = load_settings()
    names = _names(projections)
    occurred = moment(as_of_occurred, settings, "--as-of-occurred")
    recorded = moment(as_of_recorded, settings, "--as-of-recorded")
    if not into:
        fail(Exit.BAD_INPUT, "bad input: --into: give the database to build into (the live tables are never cut off)")
    if into == settings.database_url:
        fail(Exit.BAD_INPUT, "bad input: --into: must not be the live database")
    target = make_engine(into)
    try:
        with target.connect() as connection:
            from sqlalchemy import inspect  # noqa: PLC0415

            if inspect(connection).has_table("projection_positions"):
                fail(Exit.BAD_INPUT, f"bad input: --into: {into} already holds read models; give a fresh database")
        with _store(settings, source) as opened:
            last = None
            if recorded is not None:
                with opened.store.connect() as connection:
                    last = position_known_at(connection, recorded)
            cut = cut_off(opened.read, last=last, occurred=occurred)
            stats = build(target, cut, make_projections(names, settings.tz), progress=_progress(as_json))
    finally:
        target.dispose()
    summary(
        as_json,
        {"built": names, "into": into, "position": stats.position, "events": stats.events,
         "as_of_recorded": None if recorded is None else recorded.isoformat(),
         "as_of_occurred": None if occurred is None else occurred.isoformat()},
        f"built {', '.join(names)} into {into}: {stats.events:,} events up to position {stats.position}",
    )  # fmt: skip


@replay_app.command("verify")
def replay_verify(
    projections: ProjectionsArg = None,
    source: FromOpt = "store",
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds a projection behind the store may take to catch up before it is stuck")
    ] = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild projections into scratch tables, compare every row with the live ones, and report stuck ones.

    Exit 0: no row differs and every projection reached the store's head; 1: a row differs or a projection is
    stuck (each named on stdout). Dead letters are listed, and alone do not fail the check. Runs beside
    ``project --follow``: it takes no lease.
    """
    with _in_place(projections, source) as (settings, names, opened):
        result = verify(opened.live, opened.read, names, settings.tz, wait=wait, progress=_progress(as_json))
    rows = [
        {"table": d.table, "key": d.key, "kind": d.kind, "live": d.live, "rebuilt": d.rebuilt,
         "changed": {k: list(v) for k, v in d.changed().items()}}
        for d in result.differences
    ]  # fmt: skip
    status = {
        name: {"position": position, "behind": result.behind(name), "deadletters": result.letters.get(name, 0),
               "stuck": name in result.stuck, "short_by": result.stuck.get(name, 0), "why": result.why.get(name)}
        for name, position in result.positions.items()
    }  # fmt: skip
    if as_json:
        emit(
            {"positions": result.positions, "head": result.head, "projections": status, "rows": result.rows,
             "differences": rows, "more": result.more},
            ensure_ascii=False,
            default=str,
        )  # fmt: skip
    else:
        for d in result.differences:
            key = ", ".join(f"{k}={v}" for k, v in d.key.items())
            detail = "; ".join(f"{k}: live {a!r}, rebuilt {b!r}" for k, (a, b) in d.changed().items())
            out.print(f"{d.table} [{key}]: {d.kind}" + (f": {detail}" if detail else ""), markup=False, highlight=False)
        for name, line in _standing(result).items():
            out.print(f"{name}: {line}", markup=False, highlight=False)
        total = len(result.differences) + result.more
        where = ", ".join(f"{name} at {position}" for name, position in result.positions.items())
        out.print(f"{total} rows differ ({sum(result.rows.values()):,} compared; {where}; store at {result.head})",
                  highlight=False)  # fmt: skip
    if result.differences or result.stuck:
        raise typer.Exit(int(Exit.FOUND))


def _standing(result: Any) -> dict[str, str]:
    """A line per projection that is behind, stuck or holds dead letters."""
    lines: dict[str, str] = {}
    for name, position in result.positions.items():
        said = []
        if name in result.stuck:
            said.append(f"stuck {result.stuck[name]:,} events behind the store's head {result.head:,} "
                        f"({result.why[name]})")  # fmt: skip
        elif result.behind(name):
            said.append(f"was {result.behind(name):,} events behind the store's head {result.head:,} "
                        f"(at {position:,}) and caught up")  # fmt: skip
        if result.letters.get(name):
            count = result.letters[name]
            said.append(f"{count} dead letter{'s' if count != 1 else ''} (see gridcase deadletters)")
        if said:
            lines[name] = "; ".join(said)
    return lines


# -- review -----------------------------------------------------------------------------------------


def review(
    period: Annotated[str, typer.Option(help="The year (or month) reviewed: 2021")],
    rules: Annotated[Path, typer.Option(help="Rule file (TOML), e.g. rules/2021.toml")],
    as_of_recorded: RecordedOpt = None,
    as_of_occurred: OccurredOpt = None,
    output_format: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    output: Annotated[Path | None, typer.Option("--output", help="Write to this file instead of stdout")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The yearly review: rank grid workers, grids and street centres by a versioned rule file, reproducibly."""
    settings = load_settings()
    parse_period(period, days=False)
    fmt = "json" if as_json else output_format
    if fmt not in {"table", "csv", "json", "parquet"}:
        fail(Exit.BAD_INPUT, f"bad input: --format: {output_format!r} is not table, csv, json or parquet")
    # --format csv without --output is the review's own CSV on stdout; with it, or parquet, an export.
    exporting = fmt == "parquet" or (fmt == "csv" and output is not None)
    if exporting:
        output_of(fmt, output, as_json=False)
    try:
        loaded = load_rules(rules)
    except BadRules as error:
        fail(Exit.BAD_INPUT, f"bad input: {error}")
    recorded = moment(as_of_recorded, settings, "--as-of-recorded")
    occurred = moment(as_of_occurred, settings, "--as-of-occurred")
    # Always from the store: the inputs digest covers the stored bytes (the topics carry no personal data).
    with _store(settings) as opened:
        result = run_review(opened.read, opened.store, period, loaded, settings.tz, as_of_recorded=recorded,
                            as_of_occurred=occurred)  # fmt: skip
    if exporting:
        assert output is not None
        export_review(result, fmt, output, rules)
        return
    text = render(result, fmt)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        err.print(f"review of {period} written to {output} (rules {loaded.version}, position {result.last_position})",
                  highlight=False)  # fmt: skip
    else:
        sys.stdout.write(text)


# -- audit ------------------------------------------------------------------------------------------


def audit(
    target: Annotated[str, typer.Argument(help="A case number, or 'verify' to check every chain in the store")],
    as_json: JsonOpt = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV")] = False,
    personal_data: Annotated[
        bool, typer.Option("--personal-data", help="Show the reporter's contact unmasked (auditors, admins; --reason)")
    ] = False,
    reason: ReasonOpt = None,
    actor: ActorOpt = None,
    role: RoleOpt = None,
    unit: UnitOpt = None,
    version: Annotated[int | None, typer.Option("--version", min=1, help="Up to this version of the case")] = None,
    as_of_occurred: OccurredOpt = None,
    as_of_recorded: RecordedOpt = None,
) -> None:
    """A case's full history (every event, actor, role, both clocks, state before and after), or 'verify'.

    ``--personal-data`` is a clear view like ``case history --personal-data``: the service's rule, recorded first.
    """
    settings = load_settings()
    who = viewer(actor, role, unit) if personal_data else None
    if target == "verify":
        _audit_verify(settings, as_json)
        return
    occurred = moment(as_of_occurred, settings, "--as-of-occurred")
    recorded = moment(as_of_recorded, settings, "--as-of-recorded")
    with _store(settings) as opened:
        aggregate = case_id(target)
        stored = list(opened.parts.reader.events_of(aggregate))
        if not stored or "CaseReported" not in stored[0].topic:
            fail(Exit.REFUSED, f"refused: case {target} does not exist (command audit)")
        if personal_data:
            _clear_view(opened.parts.service, target, who, reason)
        with opened.store.connect() as connection:
            links = links_of(connection, aggregate)
            last = None if recorded is None else position_known_at(connection, recorded)
        rows = history(stored, links)
        keep = as_of(stored, rows, version=version, occurred=occurred, last=last)
        rows = [row for _, row in keep]
        for row in rows:  # sealed personal data opened (masked, clear or erased) while the store is open
            show_personal(row["data"], opened.parts.store.vault, personal_data=personal_data)
        cut = version is not None or occurred is not None or recorded is not None
        state = state_at([event for event, _ in keep]) if cut else None
        if state is not None:
            show_personal(state, opened.parts.store.vault, personal_data=personal_data)
    cut_off = {"version": version, "occurred": as_of_occurred, "recorded": as_of_recorded} if cut else None
    _print_audit(target, rows, state, settings, as_json=as_json, as_csv=as_csv, as_of=cut_off)


def _print_audit(target: str, rows: list[dict[str, Any]], state: dict[str, Any] | None, settings: Settings, *,
                 as_json: bool, as_csv: bool, as_of: dict[str, Any] | None) -> None:  # fmt: skip
    """A case's audit as JSON, CSV or tables (and its state at the cut-off, when there is one)."""
    if as_json:
        document: dict[str, Any] = {"case_number": target, "history": rows}
        if as_of is not None:
            document["as_of"] = {**as_of, "state": state}
        emit(document, ensure_ascii=False, indent=2, default=str)
        return
    if as_csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([*COLUMNS, "data"])
        for row in rows:
            writer.writerow([*("" if row[c] is None else row[c] for c in COLUMNS),
                             json.dumps(row["data"], ensure_ascii=False, sort_keys=True)])  # fmt: skip
        sys.stdout.write(buffer.getvalue())
        return
    _print_history(target, rows, settings)
    if state is not None:
        show_record(state, as_json, f"Case {target} as of the cut-off", show=_field)


def _clear_view(service: Service, number: str, who: ActorRef | None, reason: str | None) -> None:
    """The service's rule for a clear view, recorded before anything is shown; refused, nothing is shown."""
    try:
        service.clear_view(number, viewer=who, reason=reason, via="audit")
    except DomainError as error:
        fail(Exit.REFUSED, f"refused: {error}")
    except BadInput as error:
        fail(Exit.BAD_INPUT, f"bad input: {error}")


def _field(value: Any) -> str:
    """A field of the case's state: structures as JSON, no value as a dash."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return "—" if value is None else str(value)


def _print_history(number: str, rows: list[dict[str, Any]], settings: Settings) -> None:
    def local(text: str | None) -> str:
        return "—" if text is None else local_time(text, settings)

    table = Table(title=f"Audit history of case {number} (district local time)", title_justify="left")
    for column in ("pos", "v", "event", "actor", "occurred", "recorded", "committed", "state before", "state after"):
        table.add_column(column, overflow="fold")
    for row in rows:
        who = f"{row['role']}:{row['actor']}" + (f"@{row['unit']}" if row.get("unit") else "")
        times = (local(row["occurred_at"]), local(row["recorded_at"]), local(row["committed_at"]))
        table.add_row(str(row["position"] or "—"), str(row["version"]), row["event"], who, *times,
                      row["state_before"], row["state_after"])  # fmt: skip
    out.print(table)
    out.print(f"case {number}: {len(rows)} events", highlight=False)


def _audit_verify(settings: Settings, as_json: bool) -> None:
    with _store(settings) as opened:
        check = verify_chain(opened.read, opened.store, names=opened.live)
    if as_json:
        emit({"intact": check.intact, "events": check.events, "last_position": check.last_position,
              "head": check.head, "chain_version_1_links": check.unclocked,
              "broken": [{"position": b.position, "subject": b.subject, "version": b.version, "problem": b.problem}
                         for b in check.broken]},
             ensure_ascii=False)  # fmt: skip
    elif check.intact:
        old = (f" ({check.unclocked:,} links written before chain version 2: their commit times are checked for "
               "order only)") if check.unclocked else ""  # fmt: skip
        out.print(f"chain intact: {check.events:,} events up to position {check.last_position}; head {check.head}"
                  f"{old}", highlight=False)  # fmt: skip
    else:
        first = check.broken[0]
        for broken in check.broken:
            out.print(f"broken link at {broken}", markup=False, highlight=False)
        line = (f"chain broken: first at position {first.position} ({first.subject}); "
                f"{len(check.broken)} broken links in {check.events:,} events")  # fmt: skip
        out.print(line, markup=False, highlight=False)
    if not check.intact:
        raise typer.Exit(int(Exit.FOUND))
