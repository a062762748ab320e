"""The write commands of the case, the patrol and the registry: ``gridcase case|patrol|registry …``.

Each builds one command from its options and hands it to the service; it prints the
result (a case or patrol number, a version) or fails with the exit code of the outcome
(adapters/cli/common.py). The actor and ``--role`` are taken on trust: the CLI is the
operator's tool, run with the database in reach.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from adapters.bootstrap import describe
from adapters.cli.common import (
    ActorOpt,
    AtOpt,
    Exit,
    JsonOpt,
    Number,
    RoleOpt,
    UnitOpt,
    emit,
    fail,
    load_settings,
    moment,
    opened_engine,
    opened_service,
    out,
)
from adapters.http.catalogue import Catalogue
from domain.commands import COMMANDS
from domain.errors import DomainError
from service import BadInput, ConcurrentChange, Result, Service

if TYPE_CHECKING:
    from adapters.settings import Settings

case_app = typer.Typer(
    help="Case lifecycle: report, accept, dispatch, sign … close, feedback, reopen.", no_args_is_help=True
)
patrol_app = typer.Typer(help="Patrols: start, checkpoints, end, hazards found.", no_args_is_help=True)
registry_app = typer.Typer(
    help="Reference data: org units, workers, categories, SLA policy, calendar.", no_args_is_help=True
)

PatrolNumber = Annotated[str, typer.Argument(help="Patrol number, e.g. PT-20211231-000045.")]
Reason = Annotated[str, typer.Option("--reason", help="Why.")]


def register(app: typer.Typer) -> None:
    """Add the case, patrol and registry groups to the ``gridcase`` program."""
    app.add_typer(case_app, name="case")
    app.add_typer(patrol_app, name="patrol")
    app.add_typer(registry_app, name="registry")


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
        return Exit.CONFLICT, f"conflict: {error}"


def _iso(text: str, settings: Settings, option: str = "--at") -> str:
    found = moment(text, settings, option)
    assert found is not None
    return found.isoformat()


def _run(name: str, fields: dict[str, Any], actor: str | None, role: str | None, unit: str | None,
         at: str | None, as_json: bool) -> None:  # fmt: skip
    settings = load_settings()
    if not actor or not role:
        fail(Exit.BAD_INPUT, "bad input: actor: give --actor and --role (or GRIDCASE_ACTOR and GRIDCASE_ROLE)")
    payload = {"command": name, "actor": {"id": actor, "role": role, "unit": unit}, **fields}
    if at is not None:
        payload["at"] = _iso(at, settings)
    with opened_service(settings) as service:
        code, result = execute(service, payload)
    if code is not Exit.OK:
        fail(code, str(result))
    assert isinstance(result, dict)
    if as_json:
        emit(result, ensure_ascii=False)
    else:
        out.print(" ".join(str(v) for v in result.values()), markup=False, highlight=False)


def _grid_at(lat: float | None, lon: float | None) -> str:
    """The grid whose boundary holds a point (docs/http.md, "Where is it"), or a bad-input exit naming it."""
    if lat is None or lon is None:
        fail(Exit.BAD_INPUT, "bad input: grid: give --grid, or --lat and --lon inside the district")
    with opened_engine(load_settings()) as engine:
        catalogue = Catalogue(engine.reader)
        catalogue.refresh()
        found = catalogue.grid_at(lat, lon)
    if found is None:
        fail(Exit.BAD_INPUT, f"bad input: --lat, --lon: ({lat}, {lon}) is outside the district: in no grid")
    return found


# -- case ---------------------------------------------------------------------------


@case_app.command("report")
def case_report(
    channel: Annotated[str, typer.Option(help="hotline, window, app, wechat, letter_visit, supervision")],
    category: Annotated[str, typer.Option(help="Category code, e.g. facility.manhole")],
    description: Annotated[str, typer.Option(help="What is wrong")],
    grid: Annotated[str | None, typer.Option(help="Grid code; left out, the grid holding --lat/--lon")] = None,
    urgency: Annotated[str, typer.Option(help="normal or urgent")] = "normal",
    address: Annotated[str | None, typer.Option()] = None,
    lat: Annotated[float | None, typer.Option()] = None,
    lon: Annotated[float | None, typer.Option()] = None,
    reporter_name: Annotated[str | None, typer.Option(help="Personal data: never shown publicly")] = None,
    reporter_phone: Annotated[str | None, typer.Option(help="Personal data")] = None,
    reporter_id_number: Annotated[str | None, typer.Option(help="Personal data")] = None,
    actor: ActorOpt = None,
    role: RoleOpt = None,
    unit: UnitOpt = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a complaint under a new case number (一号受诉); prints the number."""
    if grid is None:
        grid = _grid_at(lat, lon)
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
        fail(Exit.BAD_INPUT, "bad input: handler: give exactly one of --worker or --department")
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
    fields = {"case_number": number, "resolve_by": _iso(resolve_by, load_settings(), "--resolve-by"), "reason": reason}
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


@registry_app.command("boundary")
def registry_boundary(code: Annotated[str, typer.Option(help="The org unit's code, e.g. SN08-C01-G004")],
                      geojson: Annotated[Path, typer.Option(help="GeoJSON file: a Polygon or MultiPolygon geometry "
                                                                 "(or a Feature holding one), WGS84")],
                      actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                      as_json: JsonOpt = False) -> None:  # fmt: skip
    """Draw an org unit's boundary (a new version of it; the old ones stay in its history)."""
    try:
        loaded = json.loads(geojson.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        fail(Exit.BAD_INPUT, f"bad input: geojson: {error}")
    if isinstance(loaded, dict) and loaded.get("type") == "Feature":
        loaded = loaded.get("geometry")
    _run("registry.boundary", {"code": code, "boundary": loaded}, actor, role, unit, at, as_json)


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
                      location_public: Annotated[bool, typer.Option(
                          "--location-public/--location-private",
                          help="Whether public views show where its cases are (private: only the grid)")] = True,
                      actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                      as_json: JsonOpt = False) -> None:  # fmt: skip
    """Add a category to the catalogue."""
    fields = {"code": code, "group": group, "group_name": group_name, "group_name_en": group_name_en, "name": name,
              "name_en": name_en, "default_unit": default_unit, "sla_class": sla_class,
              "location_public": location_public}  # fmt: skip
    _run("registry.category", fields, actor, role, unit, at, as_json)


@registry_app.command("category-location")
def registry_category_location(code: Annotated[str, typer.Option()],
                               location_public: Annotated[bool, typer.Option(
                                   "--public/--private", help="Public views show its cases' place, or the grid")],
                               actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                               as_json: JsonOpt = False) -> None:  # fmt: skip
    """Say whether public views may show where cases of a category are."""
    _run("registry.category-location", {"code": code, "location_public": location_public}, actor, role, unit, at,
         as_json)  # fmt: skip


@registry_app.command("sla-policy")
def registry_sla_policy(version: Annotated[int, typer.Option()],
                        rules: Annotated[Path, typer.Option(help="JSON file: a list of SLA rules")],
                        actor: ActorOpt = None, role: RoleOpt = None, unit: UnitOpt = None, at: AtOpt = None,
                        as_json: JsonOpt = False) -> None:  # fmt: skip
    """Publish the next version of the SLA policy."""
    try:
        loaded = json.loads(rules.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        fail(Exit.BAD_INPUT, f"bad input: rules: {error}")
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
