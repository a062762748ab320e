"""Bounds through the service over a real SQLite store (issue 13): refusals write nothing, old events still load.

Also the one way to keep an old case number: ``Service.migrate_case``, for the system or an admin, never intake.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from eventsourcing.utils import get_topic
from sqlalchemy import select

from domain.base import ActorRef, Role
from domain.case import Case, CaseState, case_id
from domain.commands import ReportCase
from domain.errors import AlreadyExists, CommandRefused
from domain.patrol import Patrol, patrol_id
from projections.case_status import case_status
from service import BadInput
from tests.conftest import make_settings
from tests.support import (
    CATEGORY,
    DISPATCHER,
    GRID,
    OPERATOR,
    T0,
    WORKER,
    App,
    make_app,
    report,
    run,
    seed_small_district,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

MIGRATION = {"id": "migration", "role": "system"}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """The small district on a SQLite file."""
    engine = make_app(make_settings(f"sqlite:///{tmp_path / 'gridcase.db'}"))
    seed_small_district(engine)
    yield engine
    engine.close()


def store_as_an_older_version(app: App, *events: Any) -> None:
    """Write events as a release before the bounds did: the real mapper and recorder, no service, no checks."""
    app.store.recorder.insert_events([app.store.mapper.to_stored_event(e) for e in events])


def reported(number: str, description: str, address: str) -> Case.CaseReported:
    """A CaseReported read back as a stored one (bounds not checked), as an older release could have stored it."""
    return Case.CaseReported.model_validate({
        "originator_id": case_id(number), "originator_version": 1, "timestamp": T0.isoformat(),
        "originator_topic": get_topic(Case), "actor": OPERATOR, "occurred_at": T0.isoformat(),
        "case_number": number, "channel": "app", "category": CATEGORY, "grid": GRID, "community": "SN01-C01",
        "street": "SN01", "urgency": "normal", "location": {"address": address}, "description": description,
    })  # fmt: skip


# -- old events load -----------------------------------------------------------------------------------------


def test_a_patrol_ended_by_an_older_release_at_10_to_the_20_metres_still_loads(app: App) -> None:
    number = "PT-20210601-000001"
    ident = patrol_id(number)
    common = {"originator_id": ident, "timestamp": T0.isoformat(), "actor": WORKER}
    started = Patrol.PatrolStarted.model_validate({
        **common, "originator_version": 1, "originator_topic": get_topic(Patrol), "occurred_at": T0.isoformat(),
        "patrol_number": number, "worker": "W001", "grid": GRID, "community": "SN01-C01", "street": "SN01",
    })  # fmt: skip
    ended = Patrol.PatrolEnded.model_validate({
        **common, "originator_version": 2, "occurred_at": (T0 + timedelta(hours=1)).isoformat(),
        "duration_seconds": 3600, "distance_m": 10**20, "checkpoints": 0,
    })  # fmt: skip
    before = app.reader.last_position()
    store_as_an_older_version(app, started, ended)
    assert app.reader.last_position() == before + 2

    patrol = app.service.work.load(Patrol, ident, "patrol", number, "test")
    assert (patrol.state.value, patrol.version) == ("ended", 2)
    [_, stored_end] = list(app.store.events_of(ident))
    assert stored_end.distance_m == 10**20


def test_a_case_with_a_10_mb_description_and_a_control_character_still_loads_projects_and_takes_commands(
    app: App,
) -> None:
    number = "SN-20210601-000001"
    huge = "井盖缺失 manhole cover missing " * 350_000  # about 10 MB of UTF-8
    store_as_an_older_version(app, reported(number, huge, "永嘉路\x0112号"))

    case = app.case(number)
    assert (case.state, case.description) == (CaseState.REPORTED, huge)
    assert app.history(number)[0]["event"] == "CaseReported"
    # A new command on it is held to today's bounds, the old event is not.
    assert run(app, command="case.accept", actor=DISPATCHER, at=T0 + timedelta(minutes=5), case_number=number,
               level="community")["state"] == "accepted"  # fmt: skip
    runner = app.engine.runner()
    runner.create_tables()
    stats = runner.run_once(lease_timeout=5)
    assert stats.deadlettered == 0
    with app.engine.read_engine.connect() as connection:
        row = connection.execute(select(case_status).where(case_status.c.case_number == number)).one()
    assert (row.state, row.address) == ("accepted", "永嘉路\x0112号")


# -- what the domain decides is bounded too ----------------------------------------------------------------------


def test_a_deadline_the_policy_puts_past_the_window_is_bad_input_naming_it_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    late = datetime(2099, 12, 31, 20, 0, tzinfo=UTC)
    app = make_app(make_settings(f"sqlite:///{tmp_path / 'late.db'}"), clock=lambda: late)
    try:
        seed_small_district(app)
        number = report(app, at=late)
        run(app, command="case.accept", actor=DISPATCHER, at=late, case_number=number, level="community")
        before = app.reader.last_position()
        with pytest.raises(BadInput, match=r"^resolve_by: is outside 1970-01-01 … 2099-12-31$"):
            run(app, command="case.dispatch", actor=DISPATCHER, at=late, case_number=number,
                handler={"kind": "worker", "id": "W001"})  # fmt: skip
        assert app.reader.last_position() == before
        assert app.case(number).state is CaseState.ACCEPTED
    finally:
        app.close()


# -- keeping an old number: the migration path -------------------------------------------------------------------


def old_case(actor: dict[str, str] = MIGRATION, at: datetime = T0) -> ReportCase:
    return ReportCase.model_validate({"actor": actor, "at": at, "channel": "letter_visit", "category": CATEGORY,
                                      "grid": GRID, "description": "旧系统迁移 from the old system"})  # fmt: skip


@pytest.mark.parametrize("actor", [MIGRATION, {"id": "admin", "role": "admin"}])
def test_the_system_or_an_admin_keeps_an_old_number_and_intake_numbers_follow_it(
    app: App, actor: dict[str, str]
) -> None:
    assert app.migrate_case(old_case(actor), "SN-20210601-000001") == {
        "case_number": "SN-20210601-000001", "state": "reported"
    }  # fmt: skip
    assert app.case("SN-20210601-000001").channel.value == "letter_visit"
    assert report(app, at=T0) == "SN-20210601-000002"


@pytest.mark.parametrize("role", [r for r in Role if r not in {Role.SYSTEM, Role.ADMIN}])
def test_no_other_role_may_keep_an_old_number_and_nothing_is_written(app: App, role: Role) -> None:
    before = app.reader.last_position()
    command = old_case({"id": "someone", "role": role.value})
    with pytest.raises(CommandRefused, match="OnlyAMigrationKeepsAnOldNumber"):
        app.migrate_case(command, "SN-20210601-000001")
    assert app.reader.last_position() == before
    assert not app.case_exists("SN-20210601-000001")


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("ZZZZZZ-00000000-000000", "does not carry the district's prefix SN"),
        ("SN-20210231-000001", "20210231 is not a real day"),
        ("SN-18991231-000001", "its day is outside 1970-01-01 … 2099-12-31"),
        ("SN-20210601-000000", "sequences start at 000001"),
        ("SN-20210601-1", "is not PREFIX-YYYYMMDD-NNNNNN"),
    ],
)
def test_an_old_number_of_the_wrong_format_is_bad_input_naming_case_number(app: App, number: str, why: str) -> None:
    before = app.reader.last_position()
    with pytest.raises(BadInput, match=r"^case_number: ") as refused:
        app.migrate_case(old_case(), number)
    assert why in str(refused.value)
    assert app.reader.last_position() == before


def test_an_old_number_already_in_use_is_refused(app: App) -> None:
    number = report(app, at=T0)
    before = app.reader.last_position()
    with pytest.raises(AlreadyExists):
        app.migrate_case(old_case(), number)
    assert app.reader.last_position() == before


def test_a_migration_is_held_to_every_other_rule_of_a_report(app: App) -> None:
    before = app.reader.last_position()
    with pytest.raises(BadInput, match=r"^at: .* is in the future$"):
        app.migrate_case(old_case(at=datetime.now(UTC) + timedelta(days=1)), "SN-20210601-000001")
    with pytest.raises(CommandRefused, match="DescriptionMustNotBeEmpty"):
        app.migrate_case(old_case().model_copy(update={"description": "  "}), "SN-20210601-000001")
    assert app.reader.last_position() == before
    assert ActorRef.model_validate(MIGRATION).role is Role.SYSTEM
