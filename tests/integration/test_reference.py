"""The reference district: DESIGN.md's figures, loaded once, the same every time."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

from district.reference import (
    CHUNK,
    DISTRICT,
    LOADER,
    PUBLIC_HOLIDAYS,
    holiday_calendar,
    load_reference_district,
    reference_commands,
)
from domain.errors import AlreadyExists
from domain.registry import (
    CALENDAR_ID,
    SLA_POLICY_ID,
    Category,
    HolidayCalendar,
    OrgUnit,
    SlaPolicy,
    Worker,
    org_unit_id,
    worker_id,
)
from domain.sla import default_policy_rules
from tests.conftest import make_settings
from tests.support import App, make_app, seed_small_district

if TYPE_CHECKING:
    from collections.abc import Iterator

AT = datetime(2021, 1, 1, tzinfo=UTC)
STREETS = ("八大峡", "云南路", "中山路", "江苏路", "八大关", "湛山", "香港中路", "八大湖", "金门路", "珠海路")
NAMED_COMMUNITIES = {
    "永嘉路社区": "八大湖街道",
    "仙游路社区": "金门路街道",
    "仰口路社区": "湛山街道",
    "辛家庄社区": "珠海路街道",
    "广州路社区": "云南路街道",
    "西藏路社区": "八大峡街道",
}
FIGURES = {
    "streets": 10,
    "base_grids": 505,
    "dedicated_grids": 68,
    "full_time": 505,
    "professional": 453,
    "part_time": 2_648,
}


def commands_digest(at: datetime = AT) -> str:
    lines = (command.model_dump_json() for command in reference_commands(at))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def last_position(app: App) -> int:
    return int(app.store.recorder.max_notification_id() or 0)


def stored_events(app: App) -> list[Any]:
    """Every stored event, in notification order."""
    events: list[Any] = []
    start, last = 1, last_position(app)
    while start <= last:
        page = app.store.recorder.select_notifications(start=start, limit=1_000)
        events.extend(app.store.mapper.to_domain_event(n) for n in page)
        start = page[-1].id + 1
    return events


class Registry:
    """The registry as the store holds it, rebuilt from its events."""

    def __init__(self, events: list[Any]) -> None:
        self.units = {e.code: e for e in events if isinstance(e, OrgUnit.OrgUnitCreated)}
        code_of = {
            e.originator_id: e.code for e in events if isinstance(e, OrgUnit.OrgUnitCreated | Worker.WorkerRegistered)
        }
        self.workers = {e.code: e for e in events if isinstance(e, Worker.WorkerRegistered)}
        self.assignments: dict[str, list[str]] = defaultdict(list)
        for e in events:
            if isinstance(e, Worker.WorkerAssigned):
                self.assignments[code_of[e.originator_id]].append(e.grid)
        self.leaders: dict[str, list[str]] = defaultdict(list)
        for e in events:
            if isinstance(e, OrgUnit.GridLeaderAppointed):
                self.leaders[code_of[e.originator_id]].append(e.worker)
        self.categories = {e.code: e for e in events if isinstance(e, Category.CategoryDefined)}

    def of_kind(self, kind: str, grid_kind: str | None = None) -> list[Any]:
        return [u for u in self.units.values() if u.kind == kind and (grid_kind is None or u.grid_kind == grid_kind)]

    def street_of(self, grid: str) -> str:
        community = self.units[self.units[grid].parent]
        return str(community.parent)

    def figures(self) -> dict[str, int]:
        kinds = Counter(w.kind.value for w in self.workers.values())
        return {
            "streets": len(self.of_kind("street")),
            "base_grids": len(self.of_kind("grid", "base")),
            "dedicated_grids": len(self.of_kind("grid", "dedicated")),
            "full_time": kinds["full_time"],
            "professional": kinds["professional"],
            "part_time": kinds["part_time"],
        }


def test_the_command_list_is_the_same_on_every_call() -> None:
    assert commands_digest() == commands_digest()
    commands = list(reference_commands(AT))
    assert {(command.actor, command.at) for command in commands} == {(LOADER, AT)}
    assert LOADER.model_dump(exclude_none=True) == {"id": "reference-loader", "role": "system"}
    assert commands_digest(datetime(2022, 1, 1, tzinfo=UTC)) != commands_digest()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """The reference district loaded once into a fresh SQLite file, for the tests that only read it."""
    app = make_app(make_settings(f"sqlite:///{tmp_path_factory.mktemp('reference') / 'gridcase.db'}"))
    calls: list[tuple[int, int]] = []
    result = load_reference_district(app, app.reader, AT, progress=lambda done, total: calls.append((done, total)))
    yield Loaded(app, result, calls, Registry(stored_events(app)))
    app.close()


class Loaded(NamedTuple):
    app: App
    result: dict[str, int]
    progress: list[tuple[int, int]]
    registry: Registry


def test_loading_gives_the_figures_of_the_design(loaded: Loaded) -> None:
    result, registry = loaded.result, loaded.registry
    assert {k: result[k] for k in FIGURES} == FIGURES
    assert registry.figures() == FIGURES
    assert result["skipped"] == 0
    assert result["events"] == last_position(loaded.app) > 8_000
    assert result["communities"] == len(registry.of_kind("community")) >= 50
    assert result["departments"] == len(registry.of_kind("department"))
    assert result["categories"] == len(registry.categories)
    grids = registry.of_kind("grid")
    assert result["households"] == sum(g.households for g in grids)
    assert result["population"] == sum(g.population for g in grids)
    total = loaded.progress[-1][1]
    assert [done for done, _ in loaded.progress] == [*range(CHUNK, total, CHUNK), total]


def test_the_ten_streets_and_the_named_communities(loaded: Loaded) -> None:
    registry = loaded.registry
    district = registry.units[DISTRICT]
    assert (district.kind, district.name, district.parent) == ("district", "市南区", None)
    streets = sorted(registry.of_kind("street"), key=lambda u: u.code)
    assert [(s.code, s.name, s.parent) for s in streets] == [
        (f"SN{n:02d}", f"{name}街道", DISTRICT) for n, name in enumerate(STREETS, start=1)
    ]
    assert all(s.name_en and s.name_en.endswith(" Street") for s in streets)
    assert registry.units["SN08"].name_en == "Badahu Street"
    street_names = {s.code: s.name for s in streets}
    for community, street in NAMED_COMMUNITIES.items():
        [unit] = [u for u in registry.of_kind("community") if u.name == community]
        assert street_names[unit.parent] == street, community
    assert all(4 <= n <= 7 for n in Counter(u.parent for u in registry.of_kind("community")).values())
    assert registry.units["SN08-C01"].name == "永嘉路社区"
    assert registry.units["SN08-C01-G004"].name == "永嘉路社区004网格"


def test_grids_hold_about_a_thousand_people_and_dedicated_grids_fewer(loaded: Loaded) -> None:
    registry = loaded.registry
    base = registry.of_kind("grid", "base")
    assert all(400 <= g.households <= 600 and 800 <= g.population <= 1_250 for g in base)
    assert 950 <= sum(g.population for g in base) / len(base) <= 1_050
    shares = [g.elderly / g.population for g in base]
    assert 0.10 <= min(shares) < 0.12
    assert 0.33 < max(shares) <= 0.35
    for grid in base:
        community = registry.units[grid.parent]
        assert grid.code.startswith(f"{community.code}-G")
        assert grid.name == f"{community.name}{grid.code[-3:]}网格"
    dedicated = registry.of_kind("grid", "dedicated")
    assert len({g.name for g in dedicated}) == len(dedicated)
    assert all(g.name.endswith("专属网格") for g in dedicated)
    assert {"香港中路商圈专属网格", "青岛大学附属医院专属网格"} <= {g.name for g in dedicated}
    assert max(g.population for g in dedicated) < min(g.population for g in base)
    assert all(registry.units[g.parent].kind == "community" for g in dedicated)


def test_every_base_grid_is_led_by_its_full_time_worker(loaded: Loaded) -> None:
    registry = loaded.registry
    base = registry.of_kind("grid", "base")
    full_time = {c for c, w in registry.workers.items() if w.kind == "full_time"}
    assert sorted(full_time) == [f"W{n:05d}" for n in range(1, 506)]
    for grid in base:
        [leader] = registry.leaders[grid.code]
        assert leader in full_time
        assert registry.assignments[leader] == [grid.code]
    assert not any(registry.leaders[g.code] for g in registry.of_kind("grid", "dedicated"))
    assert sorted(g for w in full_time for g in registry.assignments[w]) == sorted(g.code for g in base)
    grid = loaded.app.store.repository.get(org_unit_id("SN08-C01-G004"))
    assert isinstance(grid, OrgUnit)
    worker = loaded.app.store.repository.get(worker_id(str(grid.leader)))
    assert isinstance(worker, Worker)
    assert worker.assignments == {"SN08-C01-G004": date(2021, 1, 1)}


def test_professional_and_part_time_workers_cover_the_grids(loaded: Loaded) -> None:
    registry = loaded.registry
    departments = {u.code for u in registry.of_kind("department")}
    covered: set[str] = set()
    per_grid: Counter[str] = Counter()
    for code, worker in registry.workers.items():
        grids = registry.assignments[code]
        if worker.kind == "professional":
            assert code.startswith("P")
            assert worker.department in departments
            assert 1 <= len(grids) <= 2
            assert len({registry.street_of(g) for g in grids}) == 1
            covered.update(grids)
        else:
            assert worker.department is None
        if worker.kind == "part_time":
            assert code.startswith("V")
            [grid] = grids
            assert registry.units[grid].grid_kind == "base"
            per_grid[grid] += 1
    assert {g.code for g in registry.of_kind("grid", "dedicated")} <= covered
    assert set(per_grid) == {g.code for g in registry.of_kind("grid", "base")}
    assert set(per_grid.values()) <= {5, 6}
    assert len({w.name for w in registry.workers.values()}) > 1_000


def test_the_catalogue_policy_and_calendar(loaded: Loaded) -> None:
    registry = loaded.registry
    departments = {u.code for u in registry.of_kind("department")}
    assert {"D-CG", "D-SW", "D-ZJ", "D-GA", "D-SJ", "D-YJ", "D-MZ", "D-SF", "D-GD", "D-RQ", "D-RL"} <= departments
    assert all(u.name and u.name_en and u.parent == DISTRICT for u in registry.of_kind("department"))
    categories = registry.categories.values()
    assert len(categories) >= 25
    assert {(c.group, c.group_name, c.group_name_en) for c in categories} == {
        ("facility", "公共设施", "Public facilities"),
        ("appearance", "市容环境", "City appearance"),
        ("safety", "安全隐患", "Safety hazards"),
        ("dispute", "矛盾纠纷", "Disputes"),
        ("livelihood", "民生服务", "Livelihood services"),
    }
    assert {c.default_unit for c in categories} <= departments | {"grid"}
    assert {c.sla_class for c in categories} == {"A", "B", "C"}
    assert all(c.code.startswith(f"{c.group}.") and c.name_en for c in categories)
    names = {c.name for c in categories}
    assert {"井盖", "路灯", "雨水篦子", "供热管井盖", "燃气", "厨房用火", "消防通道"} <= names
    assert {"邻里纠纷", "物业纠纷", "劳资纠纷", "法律援助", "心理咨询", "为老服务"} <= names

    policy = loaded.app.store.repository.get(SLA_POLICY_ID)
    assert isinstance(policy, SlaPolicy)
    assert (policy.current_version, policy.rules) == (1, default_policy_rules())
    calendar = loaded.app.store.repository.get(CALENDAR_ID)
    assert isinstance(calendar, HolidayCalendar)
    assert calendar.calendar.version == 1
    assert not calendar.calendar.is_working_day(date(2024, 10, 1))
    assert calendar.calendar.is_working_day(date(2024, 10, 12))  # a Saturday worked in lieu (调休)


def test_loading_twice_writes_nothing_the_second_time(app: App) -> None:
    first = load_reference_district(app, app.reader, AT)
    position = last_position(app)
    assert first["events"] == position
    assert Registry(stored_events(app)).figures() == FIGURES

    calls: list[tuple[int, int]] = []
    second = load_reference_district(app, app.reader, AT, progress=lambda done, total: calls.append((done, total)))

    assert second["skipped"] == 1
    assert second["events"] == 0
    assert calls == []
    assert last_position(app) == position
    assert {k: second[k] for k in FIGURES} == FIGURES


def test_an_interrupted_load_resumes_where_it_stopped(sqlite_app: App) -> None:
    class Interrupted(Exception):
        pass

    def stop_after_three_chunks(done: int, total: int) -> None:
        if done >= 3 * CHUNK:
            raise Interrupted

    with pytest.raises(Interrupted):
        load_reference_district(sqlite_app, sqlite_app.reader, AT, progress=stop_after_three_chunks)
    partial = last_position(sqlite_app)
    assert sqlite_app.store.exists(org_unit_id(DISTRICT))

    calls: list[int] = []
    resumed = load_reference_district(
        sqlite_app, sqlite_app.reader, AT, progress=lambda done, _total: calls.append(done)
    )

    assert resumed["resumed"] == 1
    assert calls[0] == 4 * CHUNK
    assert partial + resumed["events"] == last_position(sqlite_app)
    assert load_reference_district(sqlite_app, sqlite_app.reader, AT)["skipped"] == 1
    registry = Registry(stored_events(sqlite_app))
    assert registry.figures() == FIGURES
    assert all(len(leaders) == 1 for leaders in registry.leaders.values())
    assert all(len(grids) == len(set(grids)) for grids in registry.assignments.values())


def test_a_district_not_made_by_the_loader_is_left_alone(sqlite_app: App) -> None:
    seed_small_district(sqlite_app)
    position = last_position(sqlite_app)

    with pytest.raises(AlreadyExists, match="district 'SN' already exists"):
        load_reference_district(sqlite_app, sqlite_app.reader, AT)

    assert last_position(sqlite_app) == position


def test_the_holiday_calendar_is_consistent() -> None:
    holidays, workdays = holiday_calendar()
    assert not set(holidays) & set(workdays)
    assert all(day.weekday() >= 5 for day in workdays)  # make-up days are weekend days worked
    for year in range(2021, 2027):
        assert {date(year, 1, 1), date(year, 5, 1), date(year, 10, 1), date(year, 10, 2), date(year, 10, 3)} <= set(
            holidays
        )
        assert sum(name.startswith(str(year)) for name, *_ in PUBLIC_HOLIDAYS) in {6, 7}
    for name, first, last, _make_up in PUBLIC_HOLIDAYS:
        assert first <= last, name
        assert (date.fromisoformat(last) - date.fromisoformat(first)).days < 9, name
