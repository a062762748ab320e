"""``gridcase person access-log``: who saw personal data in clear, when, of which case, and why.

Registered onto the ``person`` group (its other commands live in adapters/cli/person.py when present): the
group is looked up on the program by name and made only if nobody made it yet, so the order of registration
in adapters/cli/__init__.py is all the two modules share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from adapters.access_log import as_row
from adapters.cli.common import (
    ActorOpt,
    Exit,
    JsonOpt,
    RoleOpt,
    UnitOpt,
    emit,
    fail,
    load_settings,
    moment,
    opened_service,
    out,
    viewer,
)
from domain.errors import DomainError

if TYPE_CHECKING:
    from datetime import tzinfo

    from service.ports import AccessRecord

#: The columns of the table: the record's field, and its heading in Chinese and English.
COLUMNS = (
    ("recorded_at", "时间 when"),
    ("actor_id", "查看人 who"),
    ("role", "角色 role"),
    ("case_number", "案件 case"),
    ("reason", "理由 reason"),
    ("via", "途径 via"),
)


def person_group(app: typer.Typer) -> typer.Typer:
    """The program's ``person`` group: the one already registered, or a new one added to ``app``."""
    for group in app.registered_groups:
        if group.name == "person" and group.typer_instance is not None:
            return group.typer_instance
    person_app = typer.Typer(help="Personal data: who saw it in clear (access-log).", no_args_is_help=True)
    app.add_typer(person_app, name="person")
    return person_app


def register(app: typer.Typer) -> None:
    """Add ``person access-log`` to the ``gridcase`` program."""
    person_group(app).command("access-log")(access_log)


def access_log(
    case: Annotated[str | None, typer.Option("--case", help="Only views of this case number")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only views from this day or time on (no offset: district time)")
    ] = None,
    actor: ActorOpt = None,
    role: RoleOpt = None,
    unit: UnitOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every clear view of personal data, oldest first: who (id, role), when, which case, why, through what.

    Auditors and admins only (``--actor``, ``--role``); times in district local time with their offset.
    """
    settings = load_settings()
    start = moment(since, settings, "--since")
    who = viewer(actor, role, unit)
    with opened_service(settings) as service:
        try:
            records = service.access_records(viewer=who, case_number=case, since=start)
        except DomainError as error:
            fail(Exit.REFUSED, f"refused: {error}")
    if as_json:
        emit([as_row(record, settings.tz) for record in records], ensure_ascii=False)
        return
    print_access_log(records, settings.tz, case)


def print_access_log(records: list[AccessRecord], tz: tzinfo, case: str | None) -> None:
    """The records as a table, times in district local time with the offset."""
    title = "个人信息查看记录 Personal data access log" + (f": {case}" if case else "")
    if not records:
        out.print(f"{title}: nothing (无)", highlight=False)
        return
    table = Table(title=title, title_justify="left")
    for _, heading in COLUMNS:
        table.add_column(heading, overflow="fold")
    for record in records:
        row = as_row(record, tz)
        row["recorded_at"] = record.recorded_at.astimezone(tz).isoformat(sep=" ", timespec="seconds")
        table.add_row(*(row[name] for name, _ in COLUMNS))
    out.print(table)
    out.print(f"{len(records)} clear view{'s' if len(records) != 1 else ''} (次)", highlight=False)
