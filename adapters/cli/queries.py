"""The queries: a case's history and status, the public timeline, queues, overdue cases, figures.

They read the read models (caught up first) or, for a history, the store; tables for
people, ``--json`` for machines (adapters/cli/common.py).
"""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.table import Table

from adapters.cli.common import (
    ActorOpt,
    Exit,
    JsonOpt,
    Number,
    ReasonOpt,
    RoleOpt,
    UnitOpt,
    emit,
    fail,
    load_settings,
    local_time,
    one_of,
    opened_service,
    out,
    parse_period,
    read_side,
    show_record,
    show_rows,
    viewer,
)
from adapters.cli.computed import FormatOpt, OccurredOpt, OutputOpt, RecordedOpt, deliver, output_of, query_at
from adapters.query_export import case_list_schema, intake_schema, performance_schema
from domain.errors import DomainError, UnknownReference

T = TypeVar("T")

if TYPE_CHECKING:
    from collections.abc import Callable

    from adapters.settings import Settings
    from service import Result


def register(app: typer.Typer, case_app: typer.Typer) -> None:
    """Add ``case history|show|track`` and the query commands to the ``gridcase`` program."""
    case_app.command("history")(case_history)
    case_app.command("show")(case_show)
    case_app.command("track")(case_track)
    for name, command in (("queue", queue), ("overdue", overdue), ("performance", performance), ("intake", intake),
                          ("duplicates", duplicates)):  # fmt: skip
        app.command(name)(command)


def case_history(
    number: Number,
    personal_data: Annotated[
        bool,
        typer.Option("--personal-data", help="Show the reporter's contact unmasked (auditors and admins, --reason)."),
    ] = False,
    reason: ReasonOpt = None,
    actor: ActorOpt = None,
    role: RoleOpt = None,
    unit: UnitOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every event of a case: what, who (id and role), when it happened and when it was recorded.

    With ``--personal-data`` the reporter's contact is shown in clear to an auditor or admin (``--actor``,
    ``--role``) giving a ``--reason``; the view is recorded first (``gridcase person access-log``).
    """
    from service import BadInput  # noqa: PLC0415 - the write side: only a history reads the store through it

    settings = load_settings()
    who = viewer(actor, role, unit) if personal_data else None
    with opened_service(settings) as service:
        try:
            rows = service.history(number, personal_data=personal_data, viewer=who, reason=reason, via="cli")
        except DomainError as error:
            fail(Exit.REFUSED, f"refused: {error}")
        except BadInput as error:
            fail(Exit.BAD_INPUT, f"bad input: {error}")
    if as_json:
        emit(rows, ensure_ascii=False, indent=2)
        return
    print_history(number, rows, settings)


def print_history(number: str, rows: list[Result], settings: Settings) -> None:
    """A case's history as a table, times in district local time."""
    table = Table(title=f"History of case {number}", title_justify="left")
    for column in ("#", "event", "actor", "occurred", "recorded", "details"):
        table.add_column(column, overflow="fold")
    for row in rows:
        actor = row["actor"]
        who = f"{actor['role']}:{actor['id']}" + (f"@{actor['unit']}" if actor.get("unit") else "")
        details = ", ".join(
            f"{k}={_short(v)}" for k, v in row["data"].items() if v not in (None, [], {}) and k != "case_number"
        )
        times = (local_time(row["occurred_at"], settings), local_time(row["recorded_at"], settings))
        table.add_row(str(row["version"]), row["event"], who, *times, details)
    out.print(table)


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v}" for k, v in value.items() if v is not None) + "}"
    return str(value)


def _unknown(number: str) -> NoReturn:
    fail(Exit.REFUSED, f"refused: ReferenceMustExist: unknown case {number!r}")


def _found(number: str, look: Callable[[Any], T | None]) -> T:
    """What the read models hold of a case; an unknown case is refused."""
    with read_side(load_settings()) as read:
        found = look(read)
    if found is None:
        _unknown(number)
    return found


def case_show(
    number: Annotated[str | None, typer.Argument(help="Case number, e.g. SN-20211231-000123.")] = None,
    ref: Annotated[str | None, typer.Option("--ref", help="Or an imported case's external reference.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The case's status row: state, level, handler, deadlines, overdue flag, bounces."""
    if (number is None) == (ref is None):
        fail(Exit.BAD_INPUT, "bad input: give a case NUMBER or --ref, one of them")
    if ref is not None:
        from projections.imported_queries import case_number_of_ref  # noqa: PLC0415 - only --ref needs it

        def of_ref(read: Any) -> str | None:
            with read.engine.connect() as connection:
                return case_number_of_ref(connection, ref)

        number = _found(ref, of_ref)
    assert number is not None
    row = _found(number, lambda read: read.case(number))
    from adapters.settings import check_code_secret  # noqa: PLC0415
    from service.check_code import check_code  # noqa: PLC0415

    row = {**row, "check_code": check_code(check_code_secret(load_settings()), number)}  # for a citizen who lost it
    if ref is not None:
        row = {**row, "external_ref": ref}
    show_record(row, as_json, f"Case {number}" + (f" (reference {ref})" if ref else ""))


def case_track(
    number: Number,
    code: Annotated[str | None, typer.Option("--code", help="The check code on the citizen's receipt")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The public view of a case by the citizen's number and check code: no personal data, merges followed."""
    try:
        with opened_service(load_settings()) as service:  # the rule of the code is the service's
            service.track(number, code)
    except UnknownReference:
        _unknown(number)
    found = _found(number, lambda read: read.timeline(number))
    if as_json:
        emit(found, ensure_ascii=False)
        return
    title = f"Case {found['case_number']}" + (f" (asked as {number})" if number != found["case_number"] else "")
    show_rows(found["timeline"], as_json, f"{title}: {found['state']}")


#: The columns the tables show (an export has all of them).
QUEUE_COLUMNS = ["case_number", "state", "level", "category", "grid", "handler_id", "reported_at", "resolve_by",
                 "overdue"]  # fmt: skip
OVERDUE_COLUMNS = ["case_number", "state", "category", "street", "handler_kind", "handler_id", "resolve_by",
                   "suspended_seconds"]  # fmt: skip


def queue(
    unit: Annotated[str | None, typer.Option(help="Grid, community, street or department code")] = None,
    state: Annotated[str | None, typer.Option(help="reported, accepted, dispatched, in_progress, …")] = None,
    as_of_recorded: RecordedOpt = None,
    as_of_occurred: OccurredOpt = None,
    output_format: FormatOpt = "table",
    output: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cases of an org unit in a state (as of a cut-off if given; exported with --format csv|parquet --output)."""
    from domain.case_values import CaseState  # noqa: PLC0415
    from projections.case_status_queries import queue as cases  # noqa: PLC0415

    one_of(state, (s.value for s in CaseState), "--state")
    shown = output_of(output_format, output, as_json)
    settings = load_settings()
    rows, at = query_at(settings, ["case_status"], as_of_recorded, as_of_occurred,
                        lambda connection, now: cases(connection, unit, state, now))  # fmt: skip
    deliver(rows, shown, name="queue", arguments={"unit": unit, "state": state}, at=at, judged=True,
            title=f"Queue {unit or 'all'} / {state or 'any state'}", columns=QUEUE_COLUMNS,
            schema=case_list_schema())  # fmt: skip


def overdue(
    unit: Annotated[str | None, typer.Option(help="Grid, community, street or department code")] = None,
    as_of_recorded: RecordedOpt = None,
    as_of_occurred: OccurredOpt = None,
    output_format: FormatOpt = "table",
    output: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Open cases past their resolve-by deadline on the SLA clock (parked time removed); judged now or at the cut."""
    from projections.case_status_queries import overdue as late  # noqa: PLC0415

    shown = output_of(output_format, output, as_json)
    settings = load_settings()
    rows, at = query_at(settings, ["case_status"], as_of_recorded, as_of_occurred,
                        lambda connection, now: late(connection, unit, now))  # fmt: skip
    deliver(rows, shown, name="overdue", arguments={"unit": unit}, at=at, judged=True, title="Overdue cases",
            columns=OVERDUE_COLUMNS, schema=case_list_schema())  # fmt: skip


def performance(
    period: Annotated[str, typer.Option(help="2021, 2021-06 or 2021-06-01")],
    worker: Annotated[str | None, typer.Option()] = None,
    department: Annotated[str | None, typer.Option()] = None,
    grid: Annotated[str | None, typer.Option()] = None,
    community: Annotated[str | None, typer.Option()] = None,
    street: Annotated[str | None, typer.Option()] = None,
    district: Annotated[bool, typer.Option("--district", help="The whole district")] = False,
    as_of_recorded: RecordedOpt = None,
    as_of_occurred: OccurredOpt = None,
    output_format: FormatOpt = "table",
    output: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Figures of a worker, department, grid, community, street or the district for a period."""
    from projections.performance_queries import performance as figures  # noqa: PLC0415

    chosen = {"worker": worker, "department": department, "grid": grid, "community": community, "street": street}
    given = [(kind, code) for kind, code in chosen.items() if code]
    if district:
        given.append(("district", "all"))
    if len(given) != 1:
        fail(
            Exit.BAD_INPUT,
            "bad input: give exactly one of --worker, --department, --grid, --community, --street, --district",
        )
    parse_period(period)
    shown = output_of(output_format, output, as_json)
    kind, code = given[0]
    settings = load_settings()
    rows, at = query_at(settings, ["performance"], as_of_recorded, as_of_occurred,
                        lambda connection, _now: figures(connection, kind, period, code))  # fmt: skip
    arguments = {"period": period, **chosen, "district": district}
    deliver(rows, shown, name="performance", arguments=arguments, at=at, title=f"{kind} {code}, {period}",
            record=True, schema=performance_schema(kind))  # fmt: skip


def intake(
    by: Annotated[str, typer.Option(help="channel, category or street")],
    period: Annotated[str, typer.Option(help="2021, 2021-06 or 2021-06-01")],
    as_of_recorded: RecordedOpt = None,
    as_of_occurred: OccurredOpt = None,
    output_format: FormatOpt = "table",
    output: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One window, one number: received, accepted, rejected, merged, time to acceptance, by group."""
    from projections.intake_queries import intake_figures  # noqa: PLC0415

    one_of(by, ("channel", "category", "street"), "--by")
    parse_period(period)
    shown = output_of(output_format, output, as_json)
    settings = load_settings()
    rows, at = query_at(settings, ["intake"], as_of_recorded, as_of_occurred,
                        lambda connection, _now: intake_figures(connection, by, period))  # type: ignore[arg-type]
    deliver(rows, shown, name="intake", arguments={"by": by, "period": period}, at=at,
            title=f"Intake by {by}, {period}", schema=intake_schema(by))  # fmt: skip


class _NoSuchCase(LookupError):
    """The case asked about is not in the read models (at the cut-off, if one is given)."""


DUPLICATE_SCHEMA = {"case_number": "VARCHAR", "state": "VARCHAR", "reported_at": "VARCHAR", "distance_m": "DOUBLE"}


def duplicates(
    number: Number,
    as_of_recorded: RecordedOpt = None,
    as_of_occurred: OccurredOpt = None,
    output_format: FormatOpt = "table",
    output: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Open cases that may be the same matter: same category and grid, close in place and time."""
    from projections.case_status_queries import iso, status_of  # noqa: PLC0415
    from projections.intake_queries import possible_duplicates  # noqa: PLC0415

    shown = output_of(output_format, output, as_json)

    def found(connection: Any, _now: Any) -> list[dict[str, Any]]:
        if status_of(connection, number) is None:
            raise _NoSuchCase(number)
        rows = possible_duplicates(connection, number)
        return [{**row, "reported_at": iso(row["reported_at"].astimezone(UTC).replace(tzinfo=None))} for row in rows]

    try:
        rows, at = query_at(load_settings(), ["case_status"], as_of_recorded, as_of_occurred, found)
    except _NoSuchCase:
        _unknown(number)
    deliver(rows, shown, name="duplicates", arguments={}, positional=[number], at=at,
            title=f"Possible duplicates of {number}", schema=DUPLICATE_SCHEMA)  # fmt: skip
