"""A small district for tests: enough registry for every command, built through commands."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from adapters.bootstrap import bootstrap
from domain.case import Case, case_id
from domain.commands import COMMANDS
from domain.sla import default_policy_rules

if TYPE_CHECKING:
    from collections.abc import Callable

    from adapters.bootstrap import Engine
    from adapters.settings import Settings
    from service import Result


class App:
    """A test's handle on the engine: the service's commands and queries, and the store beneath for checks."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.service = engine.service
        self.store = engine.store
        self.reader = engine.reader
        self.tz = engine.settings.tz

    def __getattr__(self, name: str) -> Any:
        return getattr(self.service, name)

    def load_case(self, number: str) -> Case:
        """The case aggregate itself, for tests that race the domain method and the save directly."""
        return self.service.work.load(Case, case_id(number), "case", number, "test")

    def save(self, *aggregates: Any) -> None:
        """Save as the service's unit of work does (a lost race is ConcurrentChange)."""
        self.service.work.save(*aggregates)

    def close(self) -> None:
        self.engine.close()


def make_app(settings: Settings, clock: Callable[[], datetime] | None = None) -> App:
    """The engine over a test database, as the bootstrap builds it for every entry point."""
    return App(bootstrap(settings, clock=clock))

ADMIN = {"id": "admin", "role": "admin"}
OPERATOR = {"id": "op-1", "role": "intake_operator"}
DISPATCHER = {"id": "disp-1", "role": "dispatcher"}
WORKER = {"id": "W001", "role": "grid_worker"}
OTHER_WORKER = {"id": "W002", "role": "grid_worker"}
DEPT_HANDLER = {"id": "clerk-1", "role": "department_handler", "unit": "D-CG"}
CALLBACK = {"id": "cb-1", "role": "callback_operator"}

GRID = "SN01-C01-G001"
OTHER_GRID = "SN01-C01-G002"
CATEGORY = "facility.manhole"
T0 = datetime(2021, 6, 1, 1, 0, tzinfo=UTC)  # 09:00 in Qingdao


def run(app: App, **fields: Any) -> Result:
    """Validate a command from plain fields, as ``gridcase apply`` does, and handle it."""
    return app.handle(COMMANDS.validate_python(fields))


def seed_small_district(app: App, at: datetime = T0) -> None:
    """One district, street, community, two grids, one department, two workers, two categories."""
    with app.batch():
        run(
            app,
            command="registry.org-unit",
            actor=ADMIN,
            at=at,
            code="SN",
            kind="district",
            name="市南区",
            name_en="Shinan",
        )
        run(
            app,
            command="registry.org-unit",
            actor=ADMIN,
            at=at,
            code="SN01",
            kind="street",
            name="八大湖街道",
            parent="SN",
        )
        run(
            app,
            command="registry.org-unit",
            actor=ADMIN,
            at=at,
            code="SN01-C01",
            kind="community",
            name="永嘉路社区",
            parent="SN01",
        )
        for grid in (GRID, OTHER_GRID):
            run(
                app,
                command="registry.org-unit",
                actor=ADMIN,
                at=at,
                code=grid,
                kind="grid",
                grid_kind="base",
                name=f"永嘉路社区{grid[-3:]}网格",
                parent="SN01-C01",
                households=500,
                population=1000,
                elderly=180,
            )
        run(
            app,
            command="registry.org-unit",
            actor=ADMIN,
            at=at,
            code="D-CG",
            kind="department",
            name="区城市管理局",
            name_en="Urban management bureau",
            parent="SN",
        )
        for code in ("W001", "W002"):
            run(app, command="registry.worker", actor=ADMIN, at=at, code=code, name=f"网格员{code}", kind="full_time")
        run(app, command="registry.assign", actor=ADMIN, at=at, worker="W001", grid=GRID, start="2021-01-01")
        run(app, command="registry.assign", actor=ADMIN, at=at, worker="W002", grid=OTHER_GRID, start="2021-01-01")
        # W002 also covered GRID through 2021 (the on-site checks of its cases: a grid worker verifies only in
        # grids they work, and not what they resolved themselves); from 2022 on, W002 works OTHER_GRID only.
        run(app, command="registry.assign", actor=ADMIN, at=at, worker="W002", grid=GRID, start="2021-01-01")
        run(app, command="registry.unassign", actor=ADMIN, at=at, worker="W002", grid=GRID, end="2021-12-31")
        run(
            app,
            command="registry.category",
            actor=ADMIN,
            at=at,
            code=CATEGORY,
            group="facility",
            group_name="公共设施",
            group_name_en="Public facilities",
            name="井盖",
            name_en="Manhole cover",
            default_unit="grid",
            sla_class="A",
        )
        run(
            app,
            command="registry.category",
            actor=ADMIN,
            at=at,
            code="dispute.neighbour",
            group="dispute",
            group_name="矛盾纠纷",
            group_name_en="Disputes",
            name="邻里纠纷",
            name_en="Neighbour dispute",
            default_unit="grid",
            sla_class="C",
        )
        run(
            app,
            command="registry.sla-policy",
            actor=ADMIN,
            at=at,
            version=1,
            rules=[r.model_dump() for r in default_policy_rules()],
        )


def report(app: App, at: datetime = T0, **overrides: Any) -> str:
    """File a hotline complaint about a manhole cover in GRID; returns its case number."""
    fields: dict[str, Any] = {
        "command": "case.report",
        "actor": OPERATOR,
        "at": at,
        "channel": "hotline",
        "category": CATEGORY,
        "grid": GRID,
        "description": "井盖缺失 manhole cover missing",
        "reporter": {"name": "李四", "phone": "13800000000"},
    }
    fields.update(overrides)
    return str(run(app, **fields)["case_number"])
