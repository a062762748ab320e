"""A district simulator: N days of plausible life, driven through the application's own commands.

Every case and every patrol is a small story (a Python generator) that says
what happens next and when; a scheduler runs the stories in simulated time.
Commands go through :meth:`Gridcase.handle` like any other client's, never by
writing events directly. Randomness comes from one seeded generator and the
recording clock is the simulated clock, so a seed gives the same event stream
every time. The figures it aims for are in docs/simulator.md.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from domain import commands as c
from domain.base import RECORDING_CLOCK
from domain.commands import COMMANDS
from domain.errors import DomainError
from domain.registry import GridKind, OrgKind, worker_id

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable
    from zoneinfo import ZoneInfo

    from adapters.service import Gridcase

CHANNEL_MIX = (("hotline", 45), ("window", 17), ("app", 15), ("wechat", 15), ("letter_visit", 4), ("supervision", 4))
#: Relative weight of each category group by month (1..12): heating in winter, garbage and noise in summer.
SEASON = {
    "facility": [1.0] * 12,
    "appearance": [0.8, 0.8, 0.9, 1.0, 1.1, 1.3, 1.4, 1.4, 1.2, 1.0, 0.9, 0.8],
    "safety": [1.3, 1.2, 1.0, 0.9, 0.9, 1.0, 1.0, 1.0, 0.9, 1.0, 1.2, 1.3],
    "dispute": [1.1, 1.2, 1.0, 1.0, 1.0, 1.0, 1.1, 1.1, 1.0, 1.0, 1.0, 1.1],
    "livelihood": [1.3, 1.2, 1.0, 0.9, 0.8, 0.8, 0.8, 0.8, 0.9, 1.0, 1.2, 1.3],
}
#: Categories that only come up in the heating season (November to March).
HEATING_ONLY = {"livelihood.heating", "facility.heating-cover"}
#: What a worker on patrol notices.
PATROL_FINDINGS = (
    "facility.manhole", "facility.drain-cover", "facility.street-light", "facility.road", "appearance.garbage",
    "appearance.flyposting", "appearance.street-vending", "safety.fire-lane", "safety.ebike-charging",
    "safety.kitchen-fire", "safety.gas",
)  # fmt: skip
#: Median hours from signing to resolution, by SLA class.
RESOLVE_MEDIAN_HOURS = {"A": 5.0, "B": 30.0, "C": 100.0}
COMPLAINTS_PER_1000_RESIDENTS_PER_DAY = 0.45
#: A department bounces a case at most this often before someone takes it.
MAX_BOUNCES = 2


@dataclass(frozen=True)
class Grid:
    """A grid of the reference district as the simulator sees it."""

    code: str
    street: str
    population: int
    elderly_share: float
    full_time: str
    part_time: tuple[str, ...]


@dataclass(frozen=True)
class Category:
    """A category: where it goes by default and how fast it must move."""

    code: str
    group: str
    default_unit: str
    sla_class: str


@dataclass
class SimulationConfig:
    """What to simulate."""

    days: int
    seed: int
    start: date = date(2021, 6, 1)
    grids: int | None = None
    intensity: float = 1.0
    rate: float | None = None


@dataclass
class Totals:
    """What the simulation did."""

    commands: int = 0
    events: int = 0
    intended_refusals: int = 0
    unexpected_refusals: int = 0
    refusal_reasons: Counter[str] = field(default_factory=Counter)
    event_types: Counter[str] = field(default_factory=Counter)
    channels: Counter[str] = field(default_factory=Counter)
    resolution_hours: list[float] = field(default_factory=list)
    resolved: int = 0
    resolved_late: int = 0
    late_patrol_logs: int = 0
    digest: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain values for ``--json``."""
        hours = sorted(self.resolution_hours)
        median = hours[len(hours) // 2] if hours else None
        total_channels = sum(self.channels.values()) or 1
        return {
            "commands": self.commands,
            "events": self.events,
            "events_per_second": round(self.events / self.seconds, 1) if self.seconds else None,
            "seconds": round(self.seconds, 2),
            "cases_reported": sum(self.channels.values()),
            "channel_share": {k: round(v / total_channels, 3) for k, v in sorted(self.channels.items())},
            "median_resolution_hours": round(median, 1) if median is not None else None,
            "resolved": self.resolved,
            "overdue_share": round(self.resolved_late / self.resolved, 3) if self.resolved else None,
            "late_patrol_logs": self.late_patrol_logs,
            "intended_refusals": self.intended_refusals,
            "unexpected_refusals": self.unexpected_refusals,
            "refusal_reasons": dict(self.refusal_reasons.most_common(10)),
            "event_types": dict(sorted(self.event_types.items())),
            "digest": self.digest,
        }


class World:
    """The reference district's grids, workers, departments and categories, read from its commands."""

    def __init__(self, commands: Iterable[c.AnyCommand], grids: int | None) -> None:
        units: dict[str, c.CreateOrgUnit] = {}
        assigned: dict[str, list[str]] = {}
        self.categories: list[Category] = []
        self.departments: list[str] = []
        for command in commands:
            if isinstance(command, c.CreateOrgUnit):
                units[command.code] = command
                if command.kind is OrgKind.DEPARTMENT:
                    self.departments.append(command.code)
            elif isinstance(command, c.AssignWorker):
                assigned.setdefault(command.grid, []).append(command.worker)
            elif isinstance(command, c.DefineCategory):
                self.categories.append(Category(command.code, command.group, command.default_unit, command.sla_class))
        base = sorted(
            code for code, unit in units.items() if unit.kind is OrgKind.GRID and unit.grid_kind is GridKind.BASE
        )
        if grids is not None:
            # Spread the chosen grids over the whole district rather than take one street.
            step = max(1, len(base) // max(1, grids))
            base = base[::step][:grids]
        self.grids: list[Grid] = []
        for code in base:
            unit = units[code]
            community = units[unit.parent or ""]
            workers = assigned.get(code, [])
            self.grids.append(
                Grid(
                    code=code,
                    street=community.parent or "",
                    population=unit.population,
                    elderly_share=unit.elderly / unit.population if unit.population else 0.0,
                    full_time=next(w for w in workers if w.startswith("W")),
                    part_time=tuple(w for w in workers if w.startswith("V")),
                )
            )


class Simulator:
    """Runs the district through simulated days."""

    def __init__(self, service: Gridcase, world: World, config: SimulationConfig) -> None:
        self.service = service
        self.world = world
        self.config = config
        self.rng = random.Random(config.seed)  # noqa: S311 - a reproducible simulation, not security
        self.tz: ZoneInfo = service.tz
        self.now = datetime.combine(config.start, datetime.min.time(), self.tz).astimezone(UTC)
        self.end = self.now + timedelta(days=config.days)
        self.totals = Totals()
        self._queue: list[tuple[datetime, int, Generator[datetime, None, None]]] = []
        self._sequence = 0
        self._position = 0
        self._digest = hashlib.sha256()
        # Workers differ in diligence, so their figures spread.
        people = sorted({g.full_time for g in world.grids} | {d + "-desk" for d in world.departments})
        self.diligence = {p: min(1.0, max(0.2, self.rng.gauss(0.75, 0.15))) for p in people}

    # -- running ----------------------------------------------------------------

    def spawn(self, at: datetime, story: Generator[datetime, None, None]) -> None:
        """Start a story; it first acts at ``at``."""
        self._sequence += 1
        heapq.heappush(self._queue, (at, self._sequence, story))

    def run(self, on_day: Callable[[date, dict[str, int]], None] | None = None) -> Totals:
        """Simulate every day; ``on_day`` gets each finished day and the events it stored, by type."""
        started = time.perf_counter()
        self._position = int(self.service.store.recorder.max_notification_id() or 0)
        token = RECORDING_CLOCK.set(lambda: self.now)
        previous_clock = self.service.clock
        self.service.clock = lambda: self.now
        try:
            for day in range(self.config.days):
                self.spawn(self.now + timedelta(days=day), self._day(self.config.start + timedelta(days=day)))
            day_start = self.now
            while day_start < self.end:
                day_end = day_start + timedelta(days=1)
                self._run_until(day_end)
                stored = self._tally()
                if on_day is not None:
                    on_day(day_start.astimezone(self.tz).date(), stored)
                day_start = day_end
        finally:
            RECORDING_CLOCK.reset(token)
            self.service.clock = previous_clock
        self.totals.seconds = time.perf_counter() - started
        self.totals.digest = self._digest.hexdigest()
        return self.totals

    def _tally(self) -> dict[str, int]:
        """Read back what was stored since the last tally: counts by event type, and the running digest."""
        counts: Counter[str] = Counter()
        recorder = self.service.store.recorder
        while True:
            batch = recorder.select_notifications(start=self._position, limit=5000, inclusive_of_start=False)
            if not batch:
                break
            for notification in batch:
                self._digest.update(notification.topic.encode())
                self._digest.update(str(notification.originator_id).encode())
                self._digest.update(str(notification.originator_version).encode())
                self._digest.update(notification.state)
                counts[notification.topic.rsplit(".", 1)[-1]] += 1
            self._position = batch[-1].id
        self.totals.event_types.update(counts)
        self.totals.events += sum(counts.values())
        return dict(counts)

    def _run_until(self, until: datetime) -> None:
        paced = self.config.rate is not None
        while self._queue and self._queue[0][0] < until:
            # One transaction per simulated hour, unless paced for a demo (then every command shows at once).
            hour_end = min(until, self._queue[0][0].replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
            if paced:
                self._step_until(hour_end)
            else:
                with self.service.batch():
                    self._step_until(hour_end)
        self.now = max(self.now, until)

    def _step_until(self, until: datetime) -> None:
        while self._queue and self._queue[0][0] < until:
            at, _, story = heapq.heappop(self._queue)
            if self.config.rate:
                time.sleep(max(0.0, (at - self.now).total_seconds() / self.config.rate))
            self.now = max(self.now, at)
            try:
                following = next(story)
            except StopIteration:
                continue
            self.spawn(max(following, self.now), story)

    def do(self, fields: dict[str, Any], *, expect_refusal: bool = False) -> dict[str, Any] | None:
        """Issue one command now (or at its own ``at``); a refusal is counted, never raised."""
        fields.setdefault("at", self.now)
        command = COMMANDS.validate_python(fields)
        self.totals.commands += 1
        try:
            result = self.service.handle(command)
        except DomainError as error:
            if expect_refusal:
                self.totals.intended_refusals += 1
            else:
                self.totals.unexpected_refusals += 1
                self.totals.refusal_reasons[f"{command.command}: {error.rule}"] += 1
            return None
        if expect_refusal:
            self.totals.unexpected_refusals += 1
            self.totals.refusal_reasons[f"{command.command}: accepted but meant to be refused"] += 1
        return result

    # -- helpers ----------------------------------------------------------------

    def local(self, day: date, hour: float) -> datetime:
        """A local time of a day, as UTC."""
        return (datetime.combine(day, datetime.min.time(), self.tz) + timedelta(hours=hour)).astimezone(UTC)

    def minutes(self, low: float, high: float) -> timedelta:
        """A random span between two numbers of minutes."""
        return timedelta(minutes=self.rng.uniform(low, high))

    def chance(self, probability: float) -> bool:
        """True with the given probability."""
        return self.rng.random() < probability

    def pick(self, weighted: Iterable[tuple[Any, float]]) -> Any:
        """One item by weight."""
        items = list(weighted)
        return self.rng.choices([i for i, _ in items], weights=[w for _, w in items])[0]

    # -- a day ------------------------------------------------------------------

    def _day(self, day: date) -> Generator[datetime, None, None]:
        """Set the day's patrols and complaints going; once a month, recount some grids."""
        weekend = day.weekday() >= 5  # noqa: PLR2004
        for grid in self.world.grids:
            worker = grid.full_time
            if self.chance((0.25 if weekend else 0.7) + 0.25 * self.diligence[worker]):
                self.spawn(self.local(day, self.rng.uniform(8.3, 10.0)), self._patrol(grid, worker))
            rate = grid.population / 1000 * COMPLAINTS_PER_1000_RESIDENTS_PER_DAY * self.config.intensity
            for _ in range(self._poisson(rate * (0.7 if weekend else 1.0))):
                hour = self.pick(
                    (h, w) for h, w in zip(range(7, 23), (2, 5, 8, 9, 8, 6, 6, 7, 8, 8, 7, 5, 4, 4, 3, 2), strict=True)
                )
                self.spawn(self.local(day, hour + self.rng.random()), self._complaint(grid, day))
        if day.day == 1 or day == self.config.start:
            self.spawn(self.local(day, 7.0), self._registry_upkeep(day))
        return
        yield  # a generator that acts once, at its start

    def _poisson(self, mean: float) -> int:
        # Knuth's method: small means only.
        limit, k, p = math.exp(-mean), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= limit:
                return k
            k += 1

    def _registry_upkeep(self, day: date) -> Generator[datetime, None, None]:
        """Monthly recount of a few grids; a part-time worker moves on and a new one starts."""
        admin = {"id": "registry-clerk", "role": "admin"}
        for grid in self.rng.sample(self.world.grids, k=min(3, len(self.world.grids))):
            drift = self.rng.uniform(0.98, 1.02)
            population = max(1, round(grid.population * drift))
            self.do({"command": "registry.grid-figures", "actor": admin, "grid": grid.code,
                     "households": population // 2, "population": population,
                     "elderly": round(population * grid.elderly_share)})  # fmt: skip
        grid = self.rng.choice(self.world.grids)
        newcomer = f"V9{day:%y%m%d}"
        if grid.part_time and not self.service.store.exists(worker_id(newcomer)):
            self.do({"command": "registry.unassign", "actor": admin, "worker": grid.part_time[0], "grid": grid.code,
                     "end": day.isoformat()})  # fmt: skip
            self.do({"command": "registry.worker", "actor": admin, "code": newcomer, "name": "新志愿者",
                     "kind": "part_time"})  # fmt: skip
            self.do({"command": "registry.assign", "actor": admin, "worker": newcomer, "grid": grid.code,
                     "start": day.isoformat()})  # fmt: skip
        return
        yield

    # -- patrols ----------------------------------------------------------------

    def _patrol(self, grid: Grid, worker: str) -> Generator[datetime, None, None]:
        """A walk of the grid: household visits (more to the elderly where many live), places, maybe a hazard."""
        actor = {"id": worker, "role": "grid_worker"}
        diligence = self.diligence[worker]
        start = self.now
        stops = max(2, round(self.rng.gauss(3 + 8 * diligence, 2)))
        moments, at = [], start
        for _ in range(stops):
            at += self.minutes(8, 25)
            moments.append(at)
        end = at + self.minutes(5, 20)
        late = self.chance(0.1)
        if late:
            # The log is uploaded hours later: every command carries its own occurred_at.
            self.totals.late_patrol_logs += 1
            yield end + timedelta(hours=self.rng.uniform(2, 10))
        result = self.do({"command": "patrol.start", "actor": actor, "worker": worker, "grid": grid.code, "at": start})
        if result is None:
            return
        number = result["patrol_number"]
        hazard_at = self.rng.randrange(stops) if self.chance(0.12) else None
        for index, moment in enumerate(moments):
            if not late:
                yield moment
            household = self.chance(0.7)
            self.do({
                "command": "patrol.checkpoint", "actor": actor, "patrol_number": number, "at": moment,
                "kind": "household_visit" if household else "place_inspection",
                "target": f"{grid.code}-H{self.rng.randrange(1, 500):03d}" if household else f"{grid.code}-P{index}",
                "elderly_visit": household and self.chance(min(0.9, grid.elderly_share * 2.2)),
            })  # fmt: skip
            if hazard_at == index:
                category = self.rng.choice(PATROL_FINDINGS)
                found = self.do({"command": "patrol.hazard", "actor": actor, "patrol_number": number, "at": moment,
                                 "category": category, "description": "巡查发现隐患 (found on patrol)",
                                 "location": {"address": f"{grid.code} 巡查点{index}"}})  # fmt: skip
                if found is not None:
                    self.totals.channels["patrol"] += 1
                    first = max(self.now, moment) + self.minutes(5, 40)
                    self.spawn(first, self._case(found["case_number"], grid, self._category(category), moment))
        if not late:
            yield end
        self.do({"command": "patrol.end", "actor": actor, "patrol_number": number, "at": end,
                 "distance_m": round(stops * self.rng.uniform(150, 400))})  # fmt: skip

    # -- complaints -------------------------------------------------------------

    def _category(self, code: str) -> Category:
        return next(cat for cat in self.world.categories if cat.code == code)

    def _complaint(self, grid: Grid, day: date) -> Generator[datetime, None, None]:
        """A citizen calls, writes or walks in; sometimes neighbours report the same thing too."""
        month = day.month
        heating = month in {11, 12, 1, 2, 3}
        category: Category = self.pick(
            (cat, SEASON[cat.group][month - 1] * (0.0 if cat.code in HEATING_ONLY and not heating else 1.0))
            for cat in self.world.categories
        )
        channel = self.pick(CHANNEL_MIX)
        number = self._report(grid, category, channel)
        if number is None:
            return
        reported = self.now
        if self.chance(0.07):
            for _ in range(self.rng.randint(1, 3)):
                other = self.pick(CHANNEL_MIX)
                self.spawn(self.now + self.minutes(10, 90), self._duplicate(grid, category, other, number))
        yield self.now + self.minutes(5, 60)
        yield from self._case(number, grid, category, reported)

    def _report(self, grid: Grid, category: Category, channel: str) -> str | None:
        operator = {"id": f"intake-{channel}", "role": "intake_operator"}
        result = self.do({
            "command": "case.report", "actor": operator, "channel": channel, "category": category.code,
            "grid": grid.code, "description": f"市民反映: {category.code}",
            "location": {"address": f"{grid.code} 附近"},
            "reporter": {"name": "市民", "phone": f"13{self.rng.randrange(10**8, 10**9)}"},
            "urgency": "urgent" if self.chance(0.08) else "normal",
        })  # fmt: skip
        if result is None:
            return None
        self.totals.channels[channel] += 1
        return str(result["case_number"])

    def _duplicate(self, grid: Grid, category: Category, channel: str, master: str) -> Generator[datetime, None, None]:
        """Another caller about the same thing: the operator merges it, or handles it if the first is done."""
        number = self._report(grid, category, channel)
        if number is None:
            return
        reported = self.now
        yield self.now + self.minutes(3, 30)
        if self.service.case(master).is_open:
            operator = {"id": f"intake-{channel}", "role": "intake_operator"}
            if self.do({"command": "case.merge", "actor": operator, "case_number": number,
                        "master_case_number": master}) is not None:  # fmt: skip
                return
        yield from self._case(number, grid, category, reported)

    # -- a case after intake ----------------------------------------------------

    def _case(self, number: str, grid: Grid, category: Category, reported: datetime) -> Generator[datetime, None, None]:  # noqa: C901, PLR0912, PLR0915
        """From acceptance to the callback: dispatch, bounces, escalation, work, verification, closure."""
        dispatcher = {"id": f"centre-{grid.street}", "role": "dispatcher"}
        system = {"id": "policy:overdue", "role": "system"}
        case_cmd = {"case_number": number}

        def act(command: str, actor: dict[str, Any], **fields: Any) -> bool:
            return self.do({"command": command, "actor": actor, **case_cmd, **fields}) is not None

        if self.chance(0.06):
            act("case.reject", dispatcher, reason="不属于受理范围 (out of scope)")
            return
        level = "street" if category.sla_class == "C" and self.chance(0.3) else "community"
        if not act("case.accept", dispatcher, level=level):
            return
        handler = self._default_handler(grid, category)
        if level == "community" and self.chance(0.03):
            yield self.now + self.minutes(5, 30)
            act("case.escalate", dispatcher, to_level="street", reason="需街道协调 (needs the street)")
            level = "street"
        bounces = 0
        while True:
            # -- dispatch and signing
            yield self.now + self.minutes(5, 40)
            if not act("case.dispatch", dispatcher, handler=handler):
                return
            desk = self._actor_for(handler)
            diligence = self.diligence.get(
                desk["unit"] + "-desk" if handler["kind"] == "department" else handler["id"], 0.7
            )
            if handler["kind"] == "department" and bounces < MAX_BOUNCES and self.chance(0.1):
                yield self.now + self.minutes(20, 240)
                act("case.return", desk, reason="不属本单位职责 (not ours)")
                bounces += 1
                handler = self._other_handler(grid, handler)
                continue
            case = self.service.case(number)
            sign_at = self.now + timedelta(minutes=self.rng.expovariate(1 / (20 + 90 * (1 - diligence))))
            if case.sign_by is not None and sign_at > case.sign_by and level != "district" and self.chance(0.5):
                # Not signed in time: the overdue policy moves it up and it is dispatched again.
                yield case.sign_by + self.minutes(1, 10)
                level = "district" if level == "street" else "street"
                act("case.escalate", system, to_level=level, reason="超时未签收 (not signed in time)")
                handler = self._department_for(category)
                continue
            if self.chance(0.01):
                # Someone else's worker tries to sign it: the engine must refuse (counted as intended).
                intruder = self.rng.choice(self.world.grids).full_time
                if intruder != handler["id"]:
                    self.do({"command": "case.sign", "actor": {"id": intruder, "role": "grid_worker"}, **case_cmd},
                            expect_refusal=True)  # fmt: skip
            yield sign_at
            if not act("case.sign", desk):
                return
            signed = self.now
            # -- the work
            if self.chance(0.03):
                yield self.now + self.minutes(30, 600)
                if level != "district":
                    level = "district" if level == "street" else "street"
                    act("case.escalate", dispatcher, to_level=level, reason="情况复杂 (complex)")
                    handler = self._department_for(category)
                    continue
            if self.chance(0.3):
                yield self.now + self.minutes(10, 120)
                act("case.note", desk, note="正在处理 (in hand)")
            suspended = timedelta()
            if self.chance(0.05):
                yield self.now + self.minutes(30, 300)
                act("case.suspend", dispatcher, reason="等待配件或当事人 (waiting)")
                pause = timedelta(hours=self.rng.uniform(12, 72))
                yield self.now + pause
                act("case.resume", dispatcher)
                suspended = pause
            hours = self.rng.lognormvariate(math.log(RESOLVE_MEDIAN_HOURS[category.sla_class]), 0.8)
            hours *= 1.6 - diligence
            due = self.service.case(number).resolve_by
            if due is not None and self.now + timedelta(hours=hours) > due + suspended and self.chance(0.35):
                yield self.now + self.minutes(10, 120)
                act(
                    "case.extend",
                    dispatcher,
                    resolve_by=(self.now + timedelta(hours=hours * 1.3)).isoformat(),
                    reason="需更多时间 (more time)",
                )
            rework_left = 2
            while True:
                yield self.now + timedelta(hours=hours)
                if not act("case.resolve", desk, result="已处理 (done)", evidence=["photo:after.jpg"]):
                    return
                yield self.now + self.minutes(30, 480)
                verifier = {"id": self.rng.choice(grid.part_time or (grid.full_time,)), "role": "grid_worker"}
                if rework_left and self.chance(0.08 + 0.2 * (1 - diligence)):
                    act("case.reject-resolution", verifier, reason="现场未整改到位 (not fixed)")
                    rework_left -= 1
                    hours = self.rng.uniform(2, 24)
                    continue
                act("case.verify", verifier)
                break
            case = self.service.case(number)
            self.totals.resolved += 1
            self.totals.resolution_hours.append((self.now - reported).total_seconds() / 3600)
            if case.resolve_by is not None and self.now - timedelta(seconds=case.suspended_seconds) > case.resolve_by:
                self.totals.resolved_late += 1
            del signed
            # -- closure and callback
            yield self.now + self.minutes(20, 240)
            act("case.close", dispatcher)
            yield self.now + timedelta(hours=self.rng.uniform(18, 48))
            callback = {"id": "callback-01", "role": "callback_operator"}
            resolved = not self.chance(0.03 + 0.05 * (1 - diligence))
            satisfaction = self.pick((
                ("satisfied", 60 + 30 * diligence), ("basically_satisfied", 20), ("dissatisfied", 12 - 8 * diligence)
            )) if resolved else "dissatisfied"  # fmt: skip
            act("case.feedback", callback, satisfaction=satisfaction, resolved=resolved)
            if not resolved:
                pass  # the callback policy has reopened it already
            elif satisfaction == "dissatisfied" and self.chance(0.3):
                yield self.now + self.minutes(30, 240)
                act("case.reopen", dispatcher, reason="市民不满意 (citizen dissatisfied)")
            else:
                return
            handler = self._default_handler(grid, category)

    def _default_handler(self, grid: Grid, category: Category) -> dict[str, str]:
        if category.default_unit == "grid":
            return {"kind": "worker", "id": grid.full_time}
        return {"kind": "department", "id": category.default_unit}

    def _department_for(self, category: Category) -> dict[str, str]:
        unit = category.default_unit if category.default_unit != "grid" else "D-CG"
        return {"kind": "department", "id": unit}

    def _other_handler(self, grid: Grid, bounced: dict[str, str]) -> dict[str, str]:
        """After a bounce the centre tries the grid's own worker, or another department."""
        if self.chance(0.5):
            return {"kind": "worker", "id": grid.full_time}
        others = [d for d in self.world.departments if d != bounced["id"]]
        return {"kind": "department", "id": self.rng.choice(others)}

    @staticmethod
    def _actor_for(handler: dict[str, str]) -> dict[str, Any]:
        if handler["kind"] == "worker":
            return {"id": handler["id"], "role": "grid_worker", "unit": None}
        return {"id": f"{handler['id']}-desk", "role": "department_handler", "unit": handler["id"]}
