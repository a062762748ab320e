"""Rules that once lived only at the HTTP edge, now in the core: every entry point refuses alike."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from domain.errors import CommandRefused
from projections.imported_queries import case_number_of_ref
from projections.sql import deadletters
from tests.support import (
    ADMIN,
    CATEGORY,
    DEPT_HANDLER,
    DISPATCHER,
    GRID,
    OPERATOR,
    OTHER_GRID,
    OTHER_WORKER,
    T0,
    WORKER,
    report,
    run,
    seed_small_district,
)

if TYPE_CHECKING:
    from tests.support import App

OTHER_CLERK = {"id": "clerk-2", "role": "department_handler", "unit": "D-JT"}


def refused(app: App, rule: str, **fields: Any) -> CommandRefused:
    """The command is refused by ``rule`` and nothing is written."""
    before = app.reader.last_position()
    with pytest.raises(CommandRefused) as caught:
        run(app, **fields)
    assert caught.value.rule == rule, caught.value
    assert app.reader.last_position() == before
    return caught.value


def dispatched(app: App, handler: dict[str, str], at: Any = T0) -> str:
    number = report(app, at=at)
    run(app, command="case.accept", actor=DISPATCHER, at=at, case_number=number, level="community")
    run(app, command="case.dispatch", actor=DISPATCHER, at=at, case_number=number, handler=handler)
    return number


def test_a_grid_worker_acts_only_in_grids_assigned_at_the_time(sqlite_app: App) -> None:
    seed_small_district(sqlite_app)
    refused(sqlite_app, "GridWorkerActsOnlyInTheirGrids", command="case.report", actor=WORKER, at=T0,
            channel="patrol", category="facility.manhole", grid=OTHER_GRID, description="x")  # fmt: skip
    refused(sqlite_app, "GridWorkerActsOnlyInTheirGrids", command="patrol.start", actor=WORKER, at=T0,
            worker="W001", grid=OTHER_GRID)  # fmt: skip
    number = dispatched(sqlite_app, {"kind": "worker", "id": "W001"})
    # W002 covered GRID through 2021 only (tests/support.py): a note in 2022 is outside their grids.
    later = T0.replace(year=2022)
    refused(sqlite_app, "GridWorkerActsOnlyInTheirGrids", command="case.note", actor=OTHER_WORKER, at=later,
            case_number=number, note="not my grid any more")  # fmt: skip
    run(sqlite_app, command="case.note", actor=OTHER_WORKER, at=T0, case_number=number, note="in 2021 it was")


def test_a_case_is_dispatched_only_to_a_worker_of_its_grid(sqlite_app: App) -> None:
    seed_small_district(sqlite_app)
    number = report(sqlite_app)
    run(sqlite_app, command="case.accept", actor=DISPATCHER, at=T0, case_number=number, level="community")
    refused(sqlite_app, "CaseIsDispatchedToAWorkerOfItsGrid", command="case.dispatch", actor=DISPATCHER,
            at=T0.replace(year=2022), case_number=number, handler={"kind": "worker", "id": "W002"})  # fmt: skip
    run(sqlite_app, command="case.dispatch", actor=DISPATCHER, at=T0, case_number=number,
        handler={"kind": "department", "id": "D-CG"})  # fmt: skip


def test_a_department_handler_acts_only_on_its_departments_cases(sqlite_app: App) -> None:
    seed_small_district(sqlite_app)
    to_worker = dispatched(sqlite_app, {"kind": "worker", "id": "W001"})
    refused(sqlite_app, "DepartmentHandlerActsOnlyOnItsDepartmentsCases", command="case.note", actor=DEPT_HANDLER,
            at=T0, case_number=to_worker, note="ours?")  # fmt: skip
    ours = dispatched(sqlite_app, {"kind": "department", "id": "D-CG"})
    refused(sqlite_app, "DepartmentHandlerActsOnlyOnItsDepartmentsCases", command="case.sign", actor=OTHER_CLERK,
            at=T0, case_number=ours)  # fmt: skip
    run(sqlite_app, command="case.sign", actor=DEPT_HANDLER, at=T0, case_number=ours)


def test_a_patrols_findings_happen_within_the_patrol(sqlite_app: App) -> None:
    seed_small_district(sqlite_app)
    start = T0 + timedelta(days=12)
    number = str(run(sqlite_app, command="patrol.start", actor=WORKER, at=start, worker="W001", grid=GRID)[
        "patrol_number"])  # fmt: skip
    hazard = {"command": "patrol.hazard", "actor": WORKER, "patrol_number": number, "category": "facility.manhole",
              "description": "井盖松动 loose cover"}  # fmt: skip
    refused(sqlite_app, "PatrolFindingsHappenWithinThePatrol", at=T0, **hazard)
    refused(sqlite_app, "PatrolFindingsHappenWithinThePatrol", command="patrol.checkpoint", actor=WORKER, at=T0,
            patrol_number=number, kind="place_inspection", target="P-1")  # fmt: skip
    run(sqlite_app, command="patrol.end", actor=WORKER, at=start + timedelta(hours=1), patrol_number=number,
        distance_m=800)  # fmt: skip
    refused(sqlite_app, "PatrolFindingsHappenWithinThePatrol", at=start + timedelta(hours=2), **hazard)
    run(sqlite_app, at=start + timedelta(minutes=30), **hazard)


def test_the_worker_who_resolved_a_case_does_not_verify_it(sqlite_app: App) -> None:
    seed_small_district(sqlite_app)
    number = dispatched(sqlite_app, {"kind": "worker", "id": "W001"})
    run(sqlite_app, command="case.sign", actor=WORKER, at=T0, case_number=number)
    run(sqlite_app, command="case.resolve", actor=WORKER, at=T0, case_number=number, result="fixed")
    refused(sqlite_app, "ResolverDoesNotVerifyTheirOwnResolution", command="case.verify", actor=WORKER, at=T0,
            case_number=number)  # fmt: skip
    refused(sqlite_app, "ResolverDoesNotVerifyTheirOwnResolution", command="case.reject-resolution", actor=WORKER,
            at=T0, case_number=number, reason="still loose")  # fmt: skip
    run(sqlite_app, command="case.verify", actor=OTHER_WORKER, at=T0, case_number=number)


def test_only_a_migration_keeps_another_systems_reference_or_gives_its_own_deadline(sqlite_app: App) -> None:
    """An intake operator cannot pass a case off as imported; a dispatcher cannot pick a deadline over the SLA's."""
    seed_small_district(sqlite_app)
    external = {"ref": "SF311-1", "source": "sf311"}
    refused(sqlite_app, "OnlyAMigrationKeepsAnExternalReference", command="case.report", actor=OPERATOR, at=T0,
            channel="hotline", category=CATEGORY, grid=GRID, description="x", external=external)  # fmt: skip
    first = run(sqlite_app, command="case.report", actor=ADMIN, at=T0, channel="hotline", category=CATEGORY,
                grid=GRID, description="x", external=external)["case_number"]  # fmt: skip
    # An administrator may file a second case under the same reference: the read models take it, not set it aside.
    run(sqlite_app, command="case.report", actor=ADMIN, at=T0 + timedelta(minutes=1), channel="hotline",
        category=CATEGORY, grid=GRID, description="again", external=external)  # fmt: skip
    read = sqlite_app.engine.read_side()
    read.catch_up()
    with read.engine.connect() as connection:
        assert connection.execute(select(deadletters)).all() == []
        assert case_number_of_ref(connection, "SF311-1") == first
    read.close()
    number = report(sqlite_app)
    run(sqlite_app, command="case.accept", actor=DISPATCHER, at=T0, case_number=number, level="community")
    far = T0 + timedelta(days=365)
    refused(sqlite_app, "OnlyAMigrationGivesItsOwnDeadline", command="case.dispatch", actor=DISPATCHER, at=T0,
            case_number=number, handler={"kind": "department", "id": "D-CG"}, resolve_by=far)  # fmt: skip
    run(sqlite_app, command="case.dispatch", actor=ADMIN, at=T0, case_number=number,
        handler={"kind": "department", "id": "D-CG"}, resolve_by=far)  # fmt: skip
