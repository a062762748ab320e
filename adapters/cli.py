"""The ``gridcase`` command line: every command of the case, the patrol and the registry.

Exit codes: 0 ok, 2 bad input, 3 refused by the domain, 4 conflict (a concurrent
change), 5 a server (Kafka) did not take the work: run it again. Each failure
prints one line on stderr naming what was wrong.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from adapters.bootstrap import BadSettings, Engine, bootstrap, describe, settings_from_environment
from adapters.http.cli import serve, token_app
from adapters.replay_cli import register as register_replay
from adapters.settings import Settings
from domain.commands import COMMANDS
from domain.errors import DomainError
from domain.numbers import format_number
from service import BadInput, ConcurrentChange, Result, Service

# Piped output is read by people in logs and CI too: do not squeeze tables into 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)


class Exit(IntEnum):
    """Process exit codes."""

    OK = 0
    BAD_INPUT = 2
    REFUSED = 3
    CONFLICT = 4
    UNAVAILABLE = 5


app = typer.Typer(
    help="gridcase: event-sourced case management for grid-based community governance.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
case_app = typer.Typer(
    help="Case lifecycle: report, accept, dispatch, sign … close, feedback, reopen.", no_args_is_help=True
)
patrol_app = typer.Typer(help="Patrols: start, checkpoints, end, hazards found.", no_args_is_help=True)
registry_app = typer.Typer(
    help="Reference data: org units, workers, categories, SLA policy, calendar.", no_args_is_help=True
)
app.add_typer(case_app, name="case")
app.add_typer(patrol_app, name="patrol")
app.add_typer(registry_app, name="registry")
app.add_typer(token_app, name="token")
app.command("serve")(serve)
register_replay(app)  # replay rebuild|build|verify, review, audit (adapters/replay_cli.py)

# -- shared options ---------------------------------------------------------------

ActorOpt = Annotated[str | None, typer.Option("--actor", envvar="GRIDCASE_ACTOR", help="Who acts (id).")]
RoleOpt = Annotated[
    str | None,
    typer.Option("--role", envvar="GRIDCASE_ROLE", help="Role acted in: grid_worker, dispatcher, admin, …"),
]
UnitOpt = Annotated[str | None, typer.Option("--unit", envvar="GRIDCASE_UNIT", help="Department of a handler.")]
AtOpt = Annotated[
    str | None, typer.Option("--at", help="When it happened (ISO 8601; no offset = district local time). Default now.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
Number = Annotated[str, typer.Argument(help="Case number, e.g. SN-20211231-000123.")]
PatrolNumber = Annotated[str, typer.Argument(help="Patrol number, e.g. PT-20211231-000045.")]
Reason = Annotated[str, typer.Option("--reason", help="Why.")]


def _settings() -> Settings:
    try:
        return settings_from_environment()
    except BadSettings as error:
        _fail(Exit.BAD_INPUT, f"bad setting: {error}")


def _fail(code: Exit, message: str) -> NoReturn:
    err.print(message, markup=False, highlight=False)
    raise typer.Exit(int(code))


def _local(text: str | None, settings: Settings) -> str | None:
    """ISO time as given; a time without offset is district local time."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        _fail(Exit.BAD_INPUT, f"bad input: {text!r} is not an ISO 8601 time")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=settings.tz)
    return moment.isoformat()


@contextmanager
def _service(settings: Settings) -> Any:
    engine = bootstrap(settings)
    try:
        yield engine.service
    finally:
        engine.close()


def execute(service: Service, fields: dict[str, Any]) -> tuple[Exit, Result | str]:
    """Validate and handle one command given as plain fields; the outcome and its result or reason."""
    try:
        command = COMMANDS.validate_python(fields)
    except ValidationError as error:
        return Exit.BAD_INPUT, f"bad input: {describe(error)}"
    try:
        return Exit.OK, service.handle(command)
    except DomainError as error:
        return Exit.REFUSED, f"refused: {error}"
    except BadInput as error:
        return Exit.BAD_INPUT, f"bad input: {error}"
    except ConcurrentChange as error:
        return Exit.CONFLICT, f"conflict: changed by someone else at the same time, try again ({error})"


def _run(name: str, fields: dict[str, Any], actor: str | None, role: str | None, unit: str | None,
         at: str | None, as_json: bool) -> None:  # fmt: skip
    settings = _settings()
    if not actor or not role:
        _fail(Exit.BAD_INPUT, "bad input: actor: give --actor and --role (or GRIDCASE_ACTOR and GRIDCASE_ROLE)")
    payload = {"command": name, "actor": {"id": actor, "role": role, "unit": unit}, **fields}
    if at is not None:
        payload["at"] = _local(at, settings)
    with _service(settings) as service:
        code, result = execute(service, payload)
    if code is not Exit.OK:
        _fail(code, str(result))
    assert isinstance(result, dict)
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        out.print(" ".join(str(v) for v in result.values()), markup=False, highlight=False)


# -- case ---------------------------------------------------------------------------


@case_app.command("report")
def case_report(
    channel: Annotated[str, typer.Option(help="hotline, window, app, wechat, letter_visit, supervision")],
    category: Annotated[str, typer.Option(help="Category code, e.g. facility.manhole")],
    grid: Annotated[str, typer.Option(help="Grid code")],
    description: Annotated[str, typer.Option(help="What is wrong")],
    urgency: Annotated[str, typer.Option(help="normal or urgent")] = "normal",
    address: Annotated[str | None, typer.Option()] = None,
    lat: Annotated[float | None, typer.Option()] = None,
    lon: Annotated[float | None, typer.Option()] = None,
    reporter_name: Annotated[str | None, typer.Option(help="Personal data: never shown publicly")] = None,
    reporter_phone: Annotated[str | None, typer.Option(help="Personal data")] = None,
    reporter_id_number: Annotated[str | None, typer.Option(help="Personal data")] = None,
    case_number: Annotated[str | None, typer.Option(help="Only for migrations: keep an existing number")] = None,
    actor: ActorOpt = None,
    role: RoleOpt = None,
    unit: UnitOpt = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a complaint under a new case number (一号受诉); prints the number."""
    reporter = {"name": reporter_name, "phone": reporter_phone, "id_number": reporter_id_number}
    fields: dict[str, Any] = {
        "channel": channel,
        "category": category,
        "grid": grid,
        "description": description,
        "urgency": urgency,
        "location": {"address": address, "lat": lat, "lon": lon},
        "reporter": reporter if any(reporter.values()) else None,
    }
    if case_number:
        fields["case_number"] = case_number
    _run("case.report", fields, actor, role, unit, at, as_json)


@case_app.command("accept")
def case_accept(number: Number, level: Annotated[str, typer.Option(help="community, street or district")] = "community",
                actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                as_json: JsonOpt = False) -> None:  # fmt: skip
    """Take the case on at a level (受理)."""
    _run("case.accept", {"case_number": number, "level": level}, actor, role, unit, at, as_json)


@case_app.command("reject")
def case_reject(number: Number, reason: Reason, actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None,
                at: AtOpt = None, as_json: JsonOpt = False) -> None:  # fmt: skip
    """Decline the case, saying why."""
    _run("case.reject", {"case_number": number, "reason": reason}, actor, role, unit, at, as_json)


@case_app.command("merge")
def case_merge(number: Number, into: Annotated[str, typer.Option("--into", help="Master case number")],
               actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
               as_json: JsonOpt = False) -> None:  # fmt: skip
    """Mark the case a duplicate of an open master; its number will lead to the master."""
    _run("case.merge", {"case_number": number, "master_case_number": into}, actor, role, unit, at, as_json)


@case_app.command("dispatch")
def case_dispatch(number: Number, worker: Annotated[str | None, typer.Option(help="Grid worker code")] = None,
                  department: Annotated[str | None, typer.Option(help="Department code")] = None,
                  actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                  as_json: JsonOpt = False) -> None:  # fmt: skip
    """Send the case to a grid worker or refer it to a department; deadlines come from the SLA policy."""
    if (worker is None) == (department is None):
        _fail(Exit.BAD_INPUT, "bad input: handler: give exactly one of --worker or --department")
    handler = {"kind": "worker", "id": worker} if worker else {"kind": "department", "id": department}
    _run("case.dispatch", {"case_number": number, "handler": handler}, actor, role, unit, at, as_json)


def _simple_case_command(name: str, doc: str) -> None:
    def command(number: Number, actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None,
                at: AtOpt = None, as_json: JsonOpt = False) -> None:  # fmt: skip
        _run(f"case.{name}", {"case_number": number}, actor, role, unit, at, as_json)

    command.__doc__ = doc
    case_app.command(name)(command)


def _reason_case_command(name: str, doc: str, field: str = "reason") -> None:
    # A default-value option: the flag name is only known here, and annotations are evaluated lazily.
    def command(number: Number, reason: str = typer.Option(..., f"--{field}", help=f"The {field}."),
                actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                as_json: JsonOpt = False) -> None:  # fmt: skip
        _run(f"case.{name}", {"case_number": number, field: reason}, actor, role, unit, at, as_json)

    command.__doc__ = doc
    case_app.command(name)(command)


_simple_case_command("sign", "The handler takes the case on (签收).")
_reason_case_command("return", "The handler sends the case back: not theirs (退单).")
_reason_case_command("suspend", "Park the case (缓办); the SLA clock stops.")
_simple_case_command("resume", "Restart a parked case.")
_reason_case_command("note", "Write down progress on an open case.", field="note")
_simple_case_command("verify", "A grid worker confirms on site that it is fixed.")
_reason_case_command("reject-resolution", "A grid worker finds on site that it is not fixed (返工).")
_simple_case_command("close", "Close a verified case (结案).")
_reason_case_command("reopen", "Bring a closed case back to the centre.")


@case_app.command("escalate")
def case_escalate(number: Number, to: Annotated[str, typer.Option("--to", help="street or district")], reason: Reason,
                  actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                  as_json: JsonOpt = False) -> None:  # fmt: skip
    """Move the case up a level: community → street → district."""
    _run("case.escalate", {"case_number": number, "to_level": to, "reason": reason}, actor, role, unit, at, as_json)


@case_app.command("extend")
def case_extend(number: Number, resolve_by: Annotated[str, typer.Option("--resolve-by", help="New deadline (ISO)")],
                reason: Reason, actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None,
                at: AtOpt = None, as_json: JsonOpt = False) -> None:  # fmt: skip
    """Move the resolve-by deadline later."""
    settings = _settings()
    fields = {"case_number": number, "resolve_by": _local(resolve_by, settings), "reason": reason}
    _run("case.extend", fields, actor, role, unit, at, as_json)


@case_app.command("resolve")
def case_resolve(number: Number, result: Annotated[str, typer.Option(help="What was done")],
                 evidence: Annotated[list[str] | None, typer.Option(help="Evidence reference (repeatable)")] = None,
                 actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                 as_json: JsonOpt = False) -> None:  # fmt: skip
    """The handler reports the matter fixed."""
    fields = {"case_number": number, "result": result, "evidence": evidence or []}
    _run("case.resolve", fields, actor, role, unit, at, as_json)


@case_app.command("feedback")
def case_feedback(number: Number,
                  satisfaction: Annotated[str, typer.Option(help="satisfied, basically_satisfied, dissatisfied")],
                  resolved: Annotated[bool, typer.Option("--resolved/--not-resolved", help="Is it really fixed?")],
                  actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                  as_json: JsonOpt = False) -> None:  # fmt: skip
    """Record the callback; "not resolved" reopens the case."""
    fields = {"case_number": number, "satisfaction": satisfaction, "resolved": resolved}
    _run("case.feedback", fields, actor, role, unit, at, as_json)


@case_app.command("history")
def case_history(
    number: Number,
    personal_data: Annotated[
        bool, typer.Option("--personal-data", help="Show the reporter's contact unmasked (auditors only).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Every event of a case: what, who (id and role), when it happened and when it was recorded."""
    settings = _settings()
    with _service(settings) as service:
        try:
            rows = service.history(number, personal_data=personal_data)
        except DomainError as error:
            _fail(Exit.REFUSED, f"refused: {error}")
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    print_history(number, rows, settings)


def print_history(number: str, rows: list[Result], settings: Settings) -> None:
    """A case's history as a table, times in district local time."""

    def local(text: str) -> str:
        return datetime.fromisoformat(text).astimezone(settings.tz).strftime("%Y-%m-%d %H:%M:%S")

    table = Table(title=f"History of case {number}", title_justify="left")
    for column in ("#", "event", "actor", "occurred", "recorded", "details"):
        table.add_column(column, overflow="fold")
    for row in rows:
        actor = row["actor"]
        who = f"{actor['role']}:{actor['id']}" + (f"@{actor['unit']}" if actor.get("unit") else "")
        details = ", ".join(
            f"{k}={_short(v)}" for k, v in row["data"].items() if v not in (None, [], {}) and k != "case_number"
        )
        table.add_row(str(row["version"]), row["event"], who, local(row["occurred_at"]), local(row["recorded_at"]),
                      details)  # fmt: skip
    out.print(table)


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v}" for k, v in value.items() if v is not None) + "}"
    return str(value)


# -- patrol -------------------------------------------------------------------------


@patrol_app.command("start")
def patrol_start(worker: Annotated[str, typer.Option(help="Worker code")], grid: Annotated[str, typer.Option()],
                 actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                 as_json: JsonOpt = False) -> None:  # fmt: skip
    """Start a patrol of a grid; prints the patrol number."""
    _run("patrol.start", {"worker": worker, "grid": grid}, actor, role, unit, at, as_json)


@patrol_app.command("checkpoint")
def patrol_checkpoint(number: PatrolNumber,
                      kind: Annotated[str, typer.Option(help="household_visit or place_inspection")],
                      target: Annotated[str, typer.Option(help="Household or place identifier")],
                      notes: Annotated[str, typer.Option()] = "",
                      elderly: Annotated[bool, typer.Option("--elderly", help="An elderly visit (敲门行动)")] = False,
                      actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                      as_json: JsonOpt = False) -> None:  # fmt: skip
    """Log a household visit or a place inspected."""
    fields = {"patrol_number": number, "kind": kind, "target": target, "notes": notes, "elderly_visit": elderly}
    _run("patrol.checkpoint", fields, actor, role, unit, at, as_json)


@patrol_app.command("end")
def patrol_end(number: PatrolNumber, distance: Annotated[int, typer.Option(help="Metres walked")] = 0,
               actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
               as_json: JsonOpt = False) -> None:  # fmt: skip
    """End the patrol."""
    _run("patrol.end", {"patrol_number": number, "distance_m": distance}, actor, role, unit, at, as_json)


@patrol_app.command("hazard")
def patrol_hazard(number: PatrolNumber, category: Annotated[str, typer.Option()],
                  description: Annotated[str, typer.Option()], urgency: Annotated[str, typer.Option()] = "normal",
                  address: Annotated[str | None, typer.Option()] = None,
                  actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                  as_json: JsonOpt = False) -> None:  # fmt: skip
    """Report a hazard found on patrol: a new case with channel patrol; prints its number."""
    fields = {"patrol_number": number, "category": category, "description": description, "urgency": urgency,
              "location": {"address": address}}  # fmt: skip
    _run("patrol.hazard", fields, actor, role, unit, at, as_json)


# -- registry -----------------------------------------------------------------------


@registry_app.command("org-unit")
def registry_org_unit(code: Annotated[str, typer.Option()], kind: Annotated[str, typer.Option(
                          help="district, street, community, grid, department")],
                      name: Annotated[str, typer.Option()], name_en: Annotated[str | None, typer.Option()] = None,
                      parent: Annotated[str | None, typer.Option()] = None,
                      grid_kind: Annotated[str | None, typer.Option(help="base or dedicated (grids only)")] = None,
                      households: int = 0, population: int = 0, elderly: int = 0,
                      actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                      as_json: JsonOpt = False) -> None:  # fmt: skip
    """Set up a district, street, community, grid or department."""
    fields = {"code": code, "kind": kind, "name": name, "name_en": name_en, "parent": parent, "grid_kind": grid_kind,
              "households": households, "population": population, "elderly": elderly}  # fmt: skip
    _run("registry.org-unit", fields, actor, role, unit, at, as_json)


@registry_app.command("grid-figures")
def registry_grid_figures(grid: Annotated[str, typer.Option()], households: Annotated[int, typer.Option()],
                          population: Annotated[int, typer.Option()], elderly: int = 0,
                          actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                          as_json: JsonOpt = False) -> None:  # fmt: skip
    """Record a new count of a grid's households and residents."""
    fields = {"grid": grid, "households": households, "population": population, "elderly": elderly}
    _run("registry.grid-figures", fields, actor, role, unit, at, as_json)


@registry_app.command("grid-leader")
def registry_grid_leader(grid: Annotated[str, typer.Option()], worker: Annotated[str, typer.Option()],
                         actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                         as_json: JsonOpt = False) -> None:  # fmt: skip
    """Make a worker the grid's leader (网格长)."""
    _run("registry.grid-leader", {"grid": grid, "worker": worker}, actor, role, unit, at, as_json)


@registry_app.command("worker")
def registry_worker(code: Annotated[str, typer.Option()], name: Annotated[str, typer.Option()],
                    kind: Annotated[str, typer.Option(help="full_time, professional or part_time")],
                    department: Annotated[str | None, typer.Option()] = None,
                    actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                    as_json: JsonOpt = False) -> None:  # fmt: skip
    """Register a grid worker."""
    fields = {"code": code, "name": name, "kind": kind, "department": department}
    _run("registry.worker", fields, actor, role, unit, at, as_json)


@registry_app.command("assign")
def registry_assign(worker: Annotated[str, typer.Option()], grid: Annotated[str, typer.Option()],
                    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD)")],
                    actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                    as_json: JsonOpt = False) -> None:  # fmt: skip
    """Assign a worker to a grid from a date."""
    _run("registry.assign", {"worker": worker, "grid": grid, "start": start}, actor, role, unit, at, as_json)


@registry_app.command("unassign")
def registry_unassign(worker: Annotated[str, typer.Option()], grid: Annotated[str, typer.Option()],
                      end: Annotated[str, typer.Option(help="Last day (YYYY-MM-DD)")],
                      actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                      as_json: JsonOpt = False) -> None:  # fmt: skip
    """End a worker's assignment to a grid."""
    _run("registry.unassign", {"worker": worker, "grid": grid, "end": end}, actor, role, unit, at, as_json)


@registry_app.command("category")
def registry_category(code: Annotated[str, typer.Option()], group: Annotated[str, typer.Option()],
                      group_name: Annotated[str, typer.Option()], group_name_en: Annotated[str, typer.Option()],
                      name: Annotated[str, typer.Option()], name_en: Annotated[str, typer.Option()],
                      default_unit: Annotated[str, typer.Option(help="'grid' or a department code")],
                      sla_class: Annotated[str, typer.Option(help="A, B or C")],
                      actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                      as_json: JsonOpt = False) -> None:  # fmt: skip
    """Add a category to the catalogue."""
    fields = {"code": code, "group": group, "group_name": group_name, "group_name_en": group_name_en, "name": name,
              "name_en": name_en, "default_unit": default_unit, "sla_class": sla_class}  # fmt: skip
    _run("registry.category", fields, actor, role, unit, at, as_json)


@registry_app.command("sla-policy")
def registry_sla_policy(version: Annotated[int, typer.Option()],
                        rules: Annotated[Path, typer.Option(help="JSON file: a list of SLA rules")],
                        actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                        as_json: JsonOpt = False) -> None:  # fmt: skip
    """Publish the next version of the SLA policy."""
    try:
        loaded = json.loads(rules.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        _fail(Exit.BAD_INPUT, f"bad input: rules: {error}")
    _run("registry.sla-policy", {"version": version, "rules": loaded}, actor, role, unit, at, as_json)


@registry_app.command("calendar")
def registry_calendar(version: Annotated[int, typer.Option()],
                      holiday: Annotated[list[str] | None, typer.Option(help="A public holiday (repeatable)")] = None,
                      workday: Annotated[list[str] | None, typer.Option(help="A make-up workday (repeatable)")] = None,
                      actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                      as_json: JsonOpt = False) -> None:  # fmt: skip
    """Publish the next version of the holiday calendar."""
    fields = {"version": version, "holidays": holiday or [], "workdays": workday or []}
    _run("registry.calendar", fields, actor, role, unit, at, as_json)


# -- batch --------------------------------------------------------------------------


@app.command("apply")
def apply(
    file: Annotated[str, typer.Argument(help="JSON Lines file of commands, or - for stdin")],
    stop_on_error: Annotated[bool, typer.Option("--stop-on-error", help="Stop at the first bad line")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Apply commands written one JSON object per line, in order (docs/commands.md)."""
    settings = _settings()
    try:
        stream = sys.stdin if file == "-" else Path(file).open(encoding="utf-8")  # noqa: SIM115
    except OSError as error:
        _fail(Exit.BAD_INPUT, f"bad input: {file}: {error.strerror}")
    totals = {"accepted": 0, "refused": 0, "bad_input": 0, "conflict": 0}
    worst = Exit.OK
    with stream, _service(settings) as service:
        for line_number, line in enumerate(stream, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            result: Result | str
            try:
                fields = json.loads(line)
                if not isinstance(fields, dict):
                    raise TypeError("a line must be a JSON object")  # noqa: TRY301
            except (ValueError, TypeError) as error:
                code, result = Exit.BAD_INPUT, f"bad input: malformed JSON: {error}"
            else:
                code, result = execute(service, fields)
            key = {Exit.OK: "accepted", Exit.REFUSED: "refused", Exit.BAD_INPUT: "bad_input", Exit.CONFLICT: "conflict"}
            totals[key[code]] += 1
            worst = max(worst, code)
            _report_line(line_number, code, result, as_json)
            if code is not Exit.OK and stop_on_error:
                break
    summary = f"{sum(totals.values())} lines: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in totals.items())
    if as_json:
        print(json.dumps({"summary": totals}))
    else:
        out.print(summary, markup=False, highlight=False)
    raise typer.Exit(int(worst))


def _report_line(line_number: int, code: Exit, result: Result | str, as_json: bool) -> None:
    if as_json:
        row: dict[str, Any] = {"line": line_number, "outcome": code.name.lower()}
        row.update({"result": result} if code is Exit.OK else {"reason": result})
        print(json.dumps(row, ensure_ascii=False))
    elif code is Exit.OK:
        assert isinstance(result, dict)
        out.print(f"line {line_number}: accepted " + " ".join(str(v) for v in result.values()), markup=False,
                  highlight=False)  # fmt: skip
    else:
        out.print(f"line {line_number}: {result}", markup=False, highlight=False)


# -- read models --------------------------------------------------------------------


@contextmanager
def _read_side(settings: Settings, *, catch_up: bool = True) -> Any:
    engine = bootstrap(settings)
    read = engine.read_side()
    try:
        if catch_up:
            read.catch_up()
        yield read
    finally:
        read.close()
        engine.close()


def _cell(value: Any) -> str:
    """A figure for a table: rates as fraction and percentage, no value as a dash."""
    if isinstance(value, dict) and "rate" in value:
        if value["rate"] is None:
            return f"{value['numerator']}/{value['denominator']} (—)"
        return f"{value['numerator']}/{value['denominator']} ({value['rate'] * 100:.1f}%)"
    return "—" if value is None else str(value)


def _show(rows: list[dict[str, Any]], as_json: bool, title: str, columns: list[str] | None = None) -> None:
    """Rows as a table for people, or as a JSON list of objects for machines."""
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        out.print(f"{title}: nothing", highlight=False)
        return
    names = columns or list(rows[0])
    table = Table(title=title, title_justify="left")
    for name in names:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(name)) for name in names))
    out.print(table)


def _vertical(row: dict[str, Any], as_json: bool, title: str) -> None:
    """One record as a two-column table (or a JSON object)."""
    if as_json:
        print(json.dumps(row, ensure_ascii=False))
        return
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("figure")
    table.add_column("value", overflow="fold")
    for key, value in row.items():
        table.add_row(key, _cell(value))
    out.print(table)


def _check_period(period: str) -> None:
    """A period is a year, a month or a day: 2021, 2021-06, 2021-06-01."""
    if not re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", period):
        _fail(Exit.BAD_INPUT, f"bad input: period: {period!r} is not YYYY, YYYY-MM or YYYY-MM-DD")


class Source(StrEnum):
    """Where projections read events from."""

    STORE = "store"
    KAFKA = "kafka"


def _member(text: str) -> tuple[int, int]:
    """``i/n``: this process is member i (from 0) of n sharing the partitions."""
    found = re.fullmatch(r"(\d+)/(\d+)", text)
    if not found or not 0 <= int(found[1]) < int(found[2]):
        _fail(Exit.BAD_INPUT, f"bad input: member: {text!r} is not i/n with 0 <= i < n (e.g. 0/2)")
    return int(found[1]), int(found[2])


@app.command("project")
def project(
    follow: Annotated[bool, typer.Option("--follow", help="Keep following the store")] = False,
    source: Annotated[Source, typer.Option("--from", help="store, or kafka (the relay's topics)")] = Source.STORE,
    member: Annotated[str, typer.Option(help="With --from kafka: this process is member i of n, as i/n")] = "0/1",
    batch_size: Annotated[int, typer.Option(min=1, help="Events per transaction")] = 25_000,
    as_json: JsonOpt = False,
) -> None:
    """Run the projections (case status, performance, intake): catch up once, or follow."""
    import signal  # noqa: PLC0415

    settings = _settings()
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    def progress(stats: Any) -> None:
        if not as_json:
            done = getattr(stats, "events", None) or getattr(stats, "messages", 0)
            err.print(f"projected to position {stats.position}: {done} events", highlight=False)

    if source is Source.KAFKA:
        _project_from_kafka(settings, _member(member), min(batch_size, 10_000), follow, stopping, progress, as_json)
        return
    engine = bootstrap(settings)
    with contextlib.closing(engine):
        read = engine.read_side(batch_size=batch_size)
        try:
            if follow:
                stats = read.runner.follow(stop=lambda: bool(stopping), progress=progress)
            else:
                stats = read.runner.run_once(progress=progress)
        except KeyboardInterrupt:
            stats = None
        finally:
            read.runner.release()
            read.close()
    if stats is None:
        return
    summary = {"events": stats.events, "batches": stats.batches, "position": stats.position,
               "seconds": round(stats.seconds, 2), "per_projection": stats.per_projection}  # fmt: skip
    if as_json:
        print(json.dumps(summary))
    else:
        rate = f"{stats.events / stats.seconds:,.0f} events/s" if stats.seconds else "nothing new"
        out.print(f"projections at position {stats.position}: {stats.events} events applied ({rate})", highlight=False)


def _project_from_kafka(settings: Settings, member: tuple[int, int], batch_size: int, follow: bool,
                        stopping: list[bool], progress: Any, as_json: bool) -> None:  # fmt: skip
    from kafka.errors import KafkaError  # noqa: PLC0415

    from adapters.kafka.wiring import KafkaNotConfiguredError  # noqa: PLC0415

    try:
        projector = bootstrap(settings).kafka_projector(member=member, batch_size=batch_size)
    except KafkaNotConfiguredError as error:
        _fail(Exit.BAD_INPUT, f"bad setting: {error}")
    try:
        projector.start()
        if follow:
            stats = projector.follow(stop=lambda: bool(stopping), progress=progress)
        else:
            stats = projector.run_once(progress=progress)
    except KeyboardInterrupt:
        return
    except KafkaError as error:
        _fail(Exit.UNAVAILABLE, f"unavailable: Kafka: {error}")
    finally:
        projector.close()
    summary = {"messages": stats.messages, "applied": stats.applied, "deadlettered": stats.deadlettered,
               "batches": stats.batches, "position": stats.position, "seconds": round(stats.seconds, 2),
               "per_projection": stats.per_projection, "member": f"{member[0]}/{member[1]}"}  # fmt: skip
    if as_json:
        print(json.dumps(summary))
    else:
        rate = f"{stats.messages / stats.seconds:,.0f} messages/s" if stats.seconds else "nothing new"
        out.print(
            f"Kafka-fed projections (member {member[0]}/{member[1]}) at position {stats.position}: "
            f"{stats.messages} messages, {stats.deadlettered} dead-lettered ({rate})",
            highlight=False,
        )


@app.command("relay")
def relay(
    follow: Annotated[bool, typer.Option("--follow", help="Keep publishing as events are stored")] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=5_000, help="Events per flushed batch")] = 5_000,
    as_json: JsonOpt = False,
) -> None:
    """Publish every stored event to Kafka (GRIDCASE_KAFKA_BOOTSTRAP_SERVERS), in store order, exactly once."""
    import signal  # noqa: PLC0415

    from kafka.errors import KafkaError  # noqa: PLC0415

    from adapters.kafka.relay import RelayFailedError, RelayRunningError  # noqa: PLC0415
    from adapters.kafka.wiring import KafkaNotConfiguredError  # noqa: PLC0415

    settings = _settings()
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    def progress(stats: Any) -> None:
        if not as_json:
            err.print(f"relayed to position {stats.position}: {stats.published} published", highlight=False)

    with contextlib.closing(bootstrap(settings)) as engine:
        try:
            publisher = engine.relay(batch_size=batch_size)
        except KafkaNotConfiguredError as error:
            _fail(Exit.BAD_INPUT, f"bad setting: {error}")
        try:
            try:
                publisher.start()
            except RelayRunningError as error:
                _fail(Exit.CONFLICT, f"conflict: {error}")
            if follow:
                stats = publisher.follow(stop=lambda: bool(stopping), progress=progress)
            else:
                stats = publisher.run_once(progress=progress)
        except KeyboardInterrupt:
            return
        except (RelayFailedError, KafkaError) as error:
            _fail(Exit.UNAVAILABLE, f"unavailable: {error}")
        finally:
            publisher.close()
    summary = {"published": stats.published, "skipped": stats.skipped, "position": stats.position,
               "seconds": round(stats.seconds, 2), "per_topic": stats.per_topic}  # fmt: skip
    if as_json:
        print(json.dumps(summary))
    else:
        rate = f"{stats.published / stats.seconds:,.0f} events/s" if stats.seconds else "nothing new"
        out.print(
            f"relay at position {stats.position}: {stats.published} published, "
            f"{stats.skipped} already on Kafka ({rate})",
            highlight=False,
        )


@case_app.command("show")
def case_show(number: Number, as_json: JsonOpt = False) -> None:
    """The case's status row: state, level, handler, deadlines, overdue flag, bounces."""
    settings = _settings()
    with _read_side(settings) as read:
        row = read.case(number)
    if row is None:
        _fail(Exit.REFUSED, f"refused: ReferenceMustExist: unknown case {number!r}")
    _vertical(row, as_json, f"Case {number}")


@case_app.command("track")
def case_track(number: Number, as_json: JsonOpt = False) -> None:
    """The public view of a case by the citizen's number: no personal data, merged numbers followed."""
    settings = _settings()
    with _read_side(settings) as read:
        found = read.timeline(number)
    if found is None:
        _fail(Exit.REFUSED, f"refused: ReferenceMustExist: unknown case {number!r}")
    if as_json:
        print(json.dumps(found, ensure_ascii=False))
        return
    title = f"Case {found['case_number']}" + (f" (asked as {number})" if number != found["case_number"] else "")
    _show(found["timeline"], as_json, f"{title}: {found['state']}")


@app.command("queue")
def queue(
    unit: Annotated[str | None, typer.Option(help="Grid, community, street or department code")] = None,
    state: Annotated[str | None, typer.Option(help="reported, accepted, dispatched, in_progress, …")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Cases of an org unit in a state."""
    settings = _settings()
    with _read_side(settings) as read:
        rows = read.queue(unit, state)
    columns = [
        "case_number",
        "state",
        "level",
        "category",
        "grid",
        "handler_id",
        "reported_at",
        "resolve_by",
        "overdue",
    ]
    _show(rows, as_json, f"Queue {unit or 'all'} / {state or 'any state'}", columns)


@app.command("overdue")
def overdue(
    unit: Annotated[str | None, typer.Option(help="Grid, community, street or department code")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Open cases past their resolve-by deadline on the SLA clock (parked time removed)."""
    settings = _settings()
    with _read_side(settings) as read:
        rows = read.overdue(unit)
    columns = [
        "case_number",
        "state",
        "category",
        "street",
        "handler_kind",
        "handler_id",
        "resolve_by",
        "suspended_seconds",
    ]
    _show(rows, as_json, "Overdue cases", columns)


@app.command("performance")
def performance(
    period: Annotated[str, typer.Option(help="2021, 2021-06 or 2021-06-01")],
    worker: Annotated[str | None, typer.Option()] = None,
    department: Annotated[str | None, typer.Option()] = None,
    grid: Annotated[str | None, typer.Option()] = None,
    community: Annotated[str | None, typer.Option()] = None,
    street: Annotated[str | None, typer.Option()] = None,
    district: Annotated[bool, typer.Option("--district", help="The whole district")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Figures of a worker, department, grid, community, street or the district for a period."""
    from projections.performance_queries import performance as figures  # noqa: PLC0415

    chosen = {"worker": worker, "department": department, "grid": grid, "community": community, "street": street}
    given = [(kind, code) for kind, code in chosen.items() if code]
    if district:
        given.append(("district", "all"))
    if len(given) != 1:
        _fail(
            Exit.BAD_INPUT,
            "bad input: give exactly one of --worker, --department, --grid, --community, --street, --district",
        )
    _check_period(period)
    kind, code = given[0]
    settings = _settings()
    with _read_side(settings) as read, read.engine.connect() as connection:
        rows = figures(connection, kind, period, code)
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    _vertical(rows[0], as_json, f"{kind} {code}, {period}")


@app.command("intake")
def intake(
    by: Annotated[str, typer.Option(help="channel, category or street")],
    period: Annotated[str, typer.Option(help="2021, 2021-06 or 2021-06-01")],
    as_json: JsonOpt = False,
) -> None:
    """One window, one number: received, accepted, rejected, merged, time to acceptance, by group."""
    from projections.intake_queries import intake_figures  # noqa: PLC0415

    if by not in {"channel", "category", "street"}:
        _fail(Exit.BAD_INPUT, f"bad input: by: {by!r} is not channel, category or street")
    _check_period(period)
    settings = _settings()
    with _read_side(settings) as read, read.engine.connect() as connection:
        rows = intake_figures(connection, by, period)  # type: ignore[arg-type]
    _show(rows, as_json, f"Intake by {by}, {period}")


@app.command("duplicates")
def duplicates(number: Number, as_json: JsonOpt = False) -> None:
    """Open cases that may be the same matter: same category and grid, close in place and time."""
    from projections.intake_queries import possible_duplicates  # noqa: PLC0415

    settings = _settings()
    with _read_side(settings) as read:
        if read.case(number) is None:
            _fail(Exit.REFUSED, f"refused: ReferenceMustExist: unknown case {number!r}")
        with read.engine.connect() as connection:
            rows = possible_duplicates(connection, number)
    _show(rows, as_json, f"Possible duplicates of {number}")


@app.command("deadletters")
def deadletters_command(
    retry: Annotated[bool, typer.Option("--retry", help="Apply each dead-lettered event again")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Events a projection could not apply, with the error; --retry applies them again."""
    from sqlalchemy import select  # noqa: PLC0415

    from projections.sql import deadletters  # noqa: PLC0415

    settings = _settings()
    with _read_side(settings, catch_up=False) as read:
        outcome = read.runner.retry_deadletters(read.fetch) if retry else None
        with read.engine.connect() as connection:
            rows = [
                dict(r) for r in connection.execute(select(deadletters).order_by(deadletters.c.position)).mappings()
            ]
    for row in rows:
        row["failed_at"] = str(row["failed_at"])
        row["error"] = row["error"].strip().splitlines()[-1] if not as_json else row["error"]
    if outcome is not None and not as_json:
        out.print(f"retried: {outcome[0]} applied, {outcome[1]} still failing", highlight=False)
    _show(rows, as_json, "Dead letters", ["projection", "position", "event_type", "attempts", "failed_at", "error"])


# -- reference district and the tour -------------------------------------------------

REFERENCE_AT = "2021-01-01T00:00:00+08:00"


def _load_reference(engine: Engine, as_json: bool) -> dict[str, int]:
    from rich.progress import Progress  # noqa: PLC0415

    from district.reference import load_reference_district  # noqa: PLC0415

    at = datetime.fromisoformat(REFERENCE_AT)
    with Progress(console=err, transient=True, disable=as_json or not err.is_terminal) as progress:
        task = progress.add_task("loading the reference district", total=None)

        shown = [0]

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)
            # Without a terminal, a line per quarter is progress enough for a log.
            if not err.is_terminal and not as_json and (done - shown[0] >= total // 4 or done == total):
                shown[0] = done
                err.print(f"loading the reference district: {done}/{total} commands", highlight=False)

        counts = load_reference_district(engine.service, engine.reader, at, progress=advance)
    if not as_json and not counts.get("skipped"):
        err.print(
            f"reference district loaded: {counts.get('events', 0)} events, {counts.get('base_grids', 0)} base + "
            f"{counts.get('dedicated_grids', 0)} dedicated grids",
            highlight=False,
        )
    return counts


@app.command("load-reference")
def load_reference(as_json: JsonOpt = False) -> None:
    """Load the reference district (Shinan: 10 streets, 573 grids, 3,606 workers…) unless already there."""
    settings = _settings()
    with contextlib.closing(bootstrap(settings)) as engine:
        counts = _load_reference(engine, as_json)
    if as_json:
        print(json.dumps(counts))
    else:
        out.print("reference district: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()),
                  highlight=False)  # fmt: skip


@app.command("simulate")
def simulate(
    days: Annotated[int, typer.Option(min=1, help="Days to simulate")] = 7,
    seed: Annotated[int, typer.Option(help="Same seed, same event stream")] = 1,
    start: Annotated[str, typer.Option(help="First simulated day (YYYY-MM-DD, district local)")] = "2021-06-01",
    grids: Annotated[int | None, typer.Option(min=1, help="Simulate only this many base grids (spread out)")] = None,
    intensity: Annotated[float, typer.Option(min=0.0, help="Multiplier on the complaint rate")] = 1.0,
    rate: Annotated[
        float | None, typer.Option(min=0.001, help="Pace for demos: simulated seconds per real second")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Do nothing if the first day was simulated already")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Drive the reference district through N days of plausible life, through the engine's own commands."""
    from district.reference import reference_commands  # noqa: PLC0415
    from district.simulator import SimulationConfig, Simulator, World  # noqa: PLC0415

    settings = _settings()
    try:
        first = datetime.strptime(start, "%Y-%m-%d").date()  # noqa: DTZ007 - a calendar day, not a moment
    except ValueError:
        _fail(Exit.BAD_INPUT, f"bad input: start: {start!r} is not YYYY-MM-DD")
    config = SimulationConfig(days=days, seed=seed, start=first, grids=grids, intensity=intensity, rate=rate)
    with contextlib.closing(bootstrap(settings)) as engine:
        service = engine.service
        _load_reference(engine, as_json)
        if once and service.case_exists(format_number(settings.case_prefix, first, 1)):
            out.print(f"{first} has cases already: not simulating again (--once)", highlight=False)
            return
        world = World(reference_commands(datetime.fromisoformat(REFERENCE_AT)), grids)

        def on_day(day: date, stored: dict[str, int]) -> None:
            if as_json:
                return
            err.print(
                f"{day:%Y-%m-%d %a}: {sum(stored.values()):>6} events, {stored.get('PatrolStarted', 0):>4} patrols, "
                f"{stored.get('CaseReported', 0):>4} reported, {stored.get('CaseClosed', 0):>4} closed",
                highlight=False,
            )

        totals = Simulator(service, engine.reader, world, config).run(on_day).as_dict()
    if as_json:
        print(json.dumps(totals, ensure_ascii=False))
        return
    out.print(
        f"simulated {days} days of {len(world.grids)} grids: {totals['events']} events "
        f"({totals['events_per_second']}/s), {totals['cases_reported']} cases, median resolution "
        f"{totals['median_resolution_hours']} h, overdue {totals['overdue_share']}, "
        f"refused {totals['intended_refusals']} on purpose and {totals['unexpected_refusals']} otherwise; "
        f"digest {totals['digest'][:16]}",
        highlight=False,
    )


@app.command("walkthrough")
def walkthrough(as_json: JsonOpt = False) -> None:
    """Load the reference district if absent, walk one complaint through its whole life, print its history."""
    from district.reference import reference_commands  # noqa: PLC0415
    from district.walkthrough import tour_cast, walk_one_complaint  # noqa: PLC0415

    settings = _settings()
    with contextlib.closing(bootstrap(settings)) as engine:
        service = engine.service
        _load_reference(engine, as_json)
        cast = tour_cast(list(reference_commands(datetime.fromisoformat(REFERENCE_AT))))
        start = datetime.now(settings.tz).replace(microsecond=0) - timedelta(hours=6)
        number = walk_one_complaint(service, cast, start)
        rows = service.history(number)
    from projections.performance_queries import performance as figures  # noqa: PLC0415

    with _read_side(settings) as read, read.engine.connect() as connection:
        status = read.case(number)
        day = datetime.fromisoformat(rows[-1]["occurred_at"]).astimezone(settings.tz).date().isoformat()
        handler = figures(connection, "worker", day, cast["handler"])[0]
    if as_json:
        print(json.dumps({"case_number": number, "history": rows, "status": status, "handler": handler},
                         ensure_ascii=False, indent=2))  # fmt: skip
        return
    print_history(number, rows, settings)
    assert status is not None
    _vertical(status, as_json, f"Case status of {number} (read model)")
    _vertical(handler, as_json, f"Handling worker {cast['handler']} on {day}")
    out.print(f"case {number}: {len(rows)} events, reported by hotline, closed after a satisfied callback; "
              f"see it again with: gridcase case history {number}", highlight=False)  # fmt: skip


def main() -> None:
    """Entry point of the ``gridcase`` program."""
    app()
