"""Command handlers of the reference data: org units, workers and their grids, categories, SLA policy, calendar."""

from __future__ import annotations

from typing import TYPE_CHECKING

from domain import commands as c
from domain.errors import AlreadyExists
from domain.registry import (
    CALENDAR_ID,
    SLA_POLICY_ID,
    Category,
    HolidayCalendar,
    OrgUnit,
    SlaPolicy,
    Worker,
    category_id,
    org_unit_id,
    worker_id,
)
from service.errors import BadInput, ConcurrentChange
from service.geometry import boundary_problem
from service.handling import Handlers, Handling, Result

if TYPE_CHECKING:
    from uuid import UUID

    from domain.base import Aggregate

handlers = Handlers()


def _fresh(handling: Handling, aggregate_id: UUID, kind: str, code: str, command: str) -> None:
    if handling.work.exists(aggregate_id):
        raise AlreadyExists(kind, code, command=command)


def _save_new(handling: Handling, aggregate: Aggregate, kind: str, code: str, command: str) -> None:
    try:
        handling.work.save(aggregate)
    except ConcurrentChange:
        raise AlreadyExists(kind, code, command=command) from None


def load_worker(handling: Handling, code: str, command: str) -> Worker:
    """A worker by code."""
    return handling.load(Worker, worker_id(code), "worker", code, command)


@handlers.of(c.CreateOrgUnit)
def _org_unit(handling: Handling, command: c.CreateOrgUnit) -> Result:
    at = handling.when(command)
    _fresh(handling, org_unit_id(command.code), command.kind.value, command.code, command.command)
    parent = (
        handling.load(OrgUnit, org_unit_id(command.parent), "org unit", command.parent, command.command)
        if command.parent
        else None
    )
    unit = OrgUnit.create(
        code=command.code,
        kind=command.kind,
        name=command.name,
        name_en=command.name_en,
        parent=parent,
        grid_kind=command.grid_kind,
        households=command.households,
        population=command.population,
        elderly=command.elderly,
        actor=command.actor,
        at=at,
    )
    _save_new(handling, unit, command.kind.value, command.code, command.command)
    return {"code": unit.code, "kind": unit.kind.value}


@handlers.of(c.UpdateGridFigures)
def _grid_figures(handling: Handling, command: c.UpdateGridFigures) -> Result:
    at = handling.when(command)
    grid = handling.grid(command.grid, command.command)
    grid.update_figures(command.actor, command.households, command.population, command.elderly, at)
    handling.work.save(grid)
    return {"code": grid.code, "households": grid.households, "population": grid.population}


@handlers.of(c.AppointGridLeader)
def _grid_leader(handling: Handling, command: c.AppointGridLeader) -> Result:
    at = handling.when(command)
    grid = handling.grid(command.grid, command.command)
    load_worker(handling, command.worker, command.command)
    grid.appoint_leader(command.actor, command.worker, at)
    handling.work.save(grid)
    return {"code": grid.code, "leader": command.worker}


@handlers.of(c.SetBoundary)
def _boundary(handling: Handling, command: c.SetBoundary) -> Result:
    at = handling.when(command)
    unit = handling.load(OrgUnit, org_unit_id(command.code), "org unit", command.code, command.command)
    problem = boundary_problem(command.boundary)
    if problem is not None:
        msg = f"{command.command}: boundary: {problem}"
        raise BadInput(msg)
    unit.set_boundary(command.actor, command.boundary, at)
    handling.work.save(unit)
    return {"code": unit.code, "kind": unit.kind.value, "boundary": command.boundary.type}


@handlers.of(c.RegisterWorker)
def _register_worker(handling: Handling, command: c.RegisterWorker) -> Result:
    at = handling.when(command)
    _fresh(handling, worker_id(command.code), "worker", command.code, command.command)
    if command.department is not None:
        handling.department(command.department, command.command)
    worker = Worker.register(
        code=command.code,
        name=command.name,
        kind=command.kind,
        department=command.department,
        actor=command.actor,
        at=at,
    )
    _save_new(handling, worker, "worker", command.code, command.command)
    return {"code": worker.code, "kind": worker.kind.value}


@handlers.of(c.AssignWorker)
def _assign(handling: Handling, command: c.AssignWorker) -> Result:
    at = handling.when(command)
    worker = load_worker(handling, command.worker, command.command)
    handling.grid(command.grid, command.command)
    worker.assign(command.actor, command.grid, command.start, at)
    handling.work.save(worker)
    return {"code": worker.code, "grids": sorted(worker.assignments)}


@handlers.of(c.UnassignWorker)
def _unassign(handling: Handling, command: c.UnassignWorker) -> Result:
    at = handling.when(command)
    worker = load_worker(handling, command.worker, command.command)
    worker.unassign(command.actor, command.grid, command.end, at)
    handling.work.save(worker)
    return {"code": worker.code, "grids": sorted(worker.assignments)}


@handlers.of(c.DefineCategory)
def _category(handling: Handling, command: c.DefineCategory) -> Result:
    at = handling.when(command)
    _fresh(handling, category_id(command.code), "category", command.code, command.command)
    if command.default_unit != "grid":
        handling.department(command.default_unit, command.command)
    category = Category.define(
        code=command.code,
        group=command.group,
        group_name=command.group_name,
        group_name_en=command.group_name_en,
        name=command.name,
        name_en=command.name_en,
        default_unit=command.default_unit,
        sla_class=command.sla_class,
        location_public=command.location_public,
        actor=command.actor,
        at=at,
    )
    _save_new(handling, category, "category", command.code, command.command)
    return {"code": category.code, "sla_class": category.sla_class}


@handlers.of(c.SetCategoryLocation)
def _category_location(handling: Handling, command: c.SetCategoryLocation) -> Result:
    at = handling.when(command)
    category = handling.load(Category, category_id(command.code), "category", command.code, command.command)
    category.set_location_visibility(command.actor, command.location_public, at)
    handling.work.save(category)
    return {"code": category.code, "location_public": category.location_public}


@handlers.of(c.PublishSlaPolicy)
def _sla_policy(handling: Handling, command: c.PublishSlaPolicy) -> Result:
    at = handling.when(command)
    if handling.work.exists(SLA_POLICY_ID):
        policy = handling.load(SlaPolicy, SLA_POLICY_ID, "SLA policy", "sla", command.command)
    else:
        policy = SlaPolicy.start(command.actor, at)
    policy.publish(command.actor, command.version, command.rules, at)
    handling.work.save(policy)
    return {"sla_policy_version": policy.current_version}


@handlers.of(c.PublishCalendar)
def _calendar(handling: Handling, command: c.PublishCalendar) -> Result:
    at = handling.when(command)
    if handling.work.exists(CALENDAR_ID):
        calendar = handling.load(HolidayCalendar, CALENDAR_ID, "calendar", "calendar", command.command)
    else:
        calendar = HolidayCalendar.start(command.actor, at)
    calendar.publish(command.actor, command.version, command.holidays, command.workdays, at)
    handling.work.save(calendar)
    return {"calendar_version": calendar.calendar.version}
