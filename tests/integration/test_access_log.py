"""The personal data access log on SQLite and PostgreSQL: every clear view recorded first, refusals record nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from adapters.access_log import ACCESS_TABLE, SqlAccessLog
from domain.base import ActorRef, Role
from domain.errors import UnknownReference
from domain.personal_data import OnlyAuditorsAndAdminsSeePersonalData
from service import BadInput, Service
from tests.support import report, seed_small_district

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support import App

AUDITOR = ActorRef(id="aud-1", role=Role.AUDITOR)
ADMIN = ActorRef(id="admin", role=Role.ADMIN)
PHONE = "13800000000"


@pytest.fixture
def filed(app: App) -> tuple[App, str]:
    """A district with one complaint carrying the reporter's contact."""
    seed_small_district(app)
    return app, report(app)


def entries(app: App, **where: str | datetime) -> list[tuple[str, str, str, str, str]]:
    """What the log holds, as (actor, role, case, reason, via)."""
    return [(e.actor_id, e.role, e.case_number, e.reason, e.via)
            for e in app.service.access_records(viewer=AUDITOR, **where)]  # fmt: skip


def test_a_clear_view_is_recorded_with_who_which_case_why_and_how(filed: tuple[App, str]) -> None:
    app, number = filed
    before = datetime.now(UTC)
    rows = app.service.history(number, personal_data=True, viewer=AUDITOR, reason=" 回访核实 callback ", via="http")
    assert rows[0]["data"]["reporter"]["phone"] == PHONE
    assert entries(app) == [("aud-1", "auditor", number, "回访核实 callback", "http")]
    [entry] = app.service.access_records(viewer=ADMIN)
    assert before - timedelta(seconds=1) <= entry.recorded_at <= datetime.now(UTC) + timedelta(seconds=1)
    app.service.clear_view(number, viewer=ADMIN, reason="audit 2021", via="audit")
    assert [e[4] for e in entries(app)] == ["http", "audit"]


def test_a_masked_view_records_nothing(filed: tuple[App, str]) -> None:
    app, number = filed
    rows = app.service.history(number, viewer=AUDITOR, reason="nothing to see")
    assert rows[0]["data"]["reporter"]["phone"] == "138****0000"
    assert entries(app) == []


@pytest.mark.parametrize("role", [r for r in Role if r not in {Role.AUDITOR, Role.ADMIN}])
def test_another_role_is_refused_and_nothing_is_recorded(filed: tuple[App, str], role: Role) -> None:
    app, number = filed
    with pytest.raises(OnlyAuditorsAndAdminsSeePersonalData, match=f"role {role.value}"):
        app.service.history(number, personal_data=True, viewer=ActorRef(id="x", role=role), reason="curious")
    with pytest.raises(OnlyAuditorsAndAdminsSeePersonalData):
        app.service.access_records(viewer=ActorRef(id="x", role=role))
    assert entries(app) == []


@pytest.mark.parametrize("reason", [None, "", "   ", "a\x1bb", "two\nlines", "x" * 2001])
def test_a_clear_view_without_a_fit_reason_is_bad_input(filed: tuple[App, str], reason: str | None) -> None:
    app, number = filed
    with pytest.raises(BadInput, match=r"^reason: "):
        app.service.history(number, personal_data=True, viewer=AUDITOR, reason=reason)
    assert entries(app) == []


def test_no_viewer_and_an_unknown_case_are_refused_and_record_nothing(filed: tuple[App, str]) -> None:
    app, _ = filed
    with pytest.raises(OnlyAuditorsAndAdminsSeePersonalData, match="nobody named"):
        app.service.history(filed[1], personal_data=True, reason="why not")
    with pytest.raises(UnknownReference):
        app.service.history("SN-20210601-000999", personal_data=True, viewer=AUDITOR, reason="look")
    with pytest.raises(UnknownReference):
        app.service.clear_view("SN-20210601-000999", viewer=AUDITOR, reason="look", via="audit")
    assert entries(app) == []


def test_the_log_is_read_by_case_and_from_a_moment_on(filed: tuple[App, str]) -> None:
    app, first = filed
    second = report(app)
    app.service.history(first, personal_data=True, viewer=AUDITOR, reason="one")
    app.service.history(second, personal_data=True, viewer=ADMIN, reason="two")
    assert [e[3] for e in entries(app)] == ["one", "two"]
    assert [e[3] for e in entries(app, case_number=second)] == ["two"]
    assert entries(app, since=datetime.now(UTC) + timedelta(minutes=1)) == []
    assert len(entries(app, since=datetime.now(UTC) - timedelta(minutes=1))) == 2


def test_the_log_is_append_only_in_the_database(filed: tuple[App, str]) -> None:
    app, number = filed
    app.service.history(number, personal_data=True, viewer=AUDITOR, reason="kept")
    engine = app.engine.access_log.engine
    for statement in (f"UPDATE {ACCESS_TABLE} SET reason = 'nothing'", f"DELETE FROM {ACCESS_TABLE}"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    assert [e[3] for e in entries(app)] == ["kept"]


def test_the_log_is_in_the_event_stores_database(filed: tuple[App, str]) -> None:
    app, number = filed
    app.service.history(number, personal_data=True, viewer=AUDITOR, reason="where")
    assert app.engine.access_log.database_url == app.engine.settings.database_url
    with app.engine.access_log.engine.connect() as connection:
        assert connection.execute(text(f"SELECT count(*) FROM {ACCESS_TABLE}")).scalar() == 1


def test_nothing_is_shown_when_the_record_cannot_be_written(filed: tuple[App, str], tmp_path: Path) -> None:
    app, number = filed
    unwritable = SqlAccessLog(f"sqlite:///{tmp_path / 'no such directory' / 'log.db'}")
    service = Service(app.engine.store, tz=app.engine.settings.tz, access_log=unwritable, vault=app.engine.store.vault)
    with pytest.raises(DBAPIError):
        service.history(number, personal_data=True, viewer=AUDITOR, reason="will fail")
    without = Service(app.engine.store, tz=app.engine.settings.tz, vault=app.engine.store.vault)
    with pytest.raises(RuntimeError, match="no access log"):
        without.history(number, personal_data=True, viewer=AUDITOR, reason="no log")
    assert without.history(number)[0]["data"]["reporter"]["phone"] == "138****0000"
