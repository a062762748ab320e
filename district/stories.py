"""The simulator's stories: a day's patrols and complaints, registry upkeep, a patrol, a case from intake to callback.

Each story is a generator: it acts now through :meth:`Stories.do` and yields
when it acts next; the :class:`~district.simulator.Simulator` runs them in
simulated time. The probabilities here are the ones docs/simulator.md
describes. Every draw comes from the simulator's one seeded generator, in the
order the stories run, so moving a draw changes the event stream.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import random
    from collections.abc import Generator, Iterable
    from zoneinfo import ZoneInfo

    from district.ports import Service
    from district.simulator import SimulationConfig, Totals
    from district.world import Category, Grid, World

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


class Stories:
    """The stories a simulator runs; the simulator supplies the scheduler (``spawn``) and the command (``do``)."""

    service: Service
    world: World
    config: SimulationConfig
    rng: random.Random
    tz: ZoneInfo
    now: datetime
    totals: Totals
    diligence: dict[str, float]

    def spawn(self, at: datetime, story: Generator[datetime, None, None]) -> None:
        """Start a story; it first acts at ``at``."""
        raise NotImplementedError

    def do(self, fields: dict[str, Any], *, expect_refusal: bool = False) -> dict[str, Any] | None:
        """Issue one command now (or at its own ``at``); a refusal is counted, never raised."""
        raise NotImplementedError

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
        if grid.part_time and not self.service.worker_registered(newcomer):
            self.do({"command": "registry.unassign", "actor": admin, "worker": grid.part_time[0], "grid": grid.code,
                     "end": day.isoformat()})  # fmt: skip
            self.do({"command": "registry.worker", "actor": admin, "code": newcomer, "name": "新志愿者",
                     "kind": "part_time"})  # fmt: skip
            self.do({"command": "registry.assign", "actor": admin, "worker": newcomer, "grid": grid.code,
                     "start": day.isoformat()})  # fmt: skip
            self.world.replace_part_timer(grid.code, grid.part_time[0], newcomer)
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
                verifier = self._verifier(grid, handler)
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

    def _verifier(self, grid: Grid, handler: dict[str, str]) -> dict[str, str]:
        """Who checks a resolution on site: a worker assigned to the grid now, never the one who resolved it."""
        now = self.world.grid(grid.code)
        resolver = handler["id"] if handler["kind"] == "worker" else None
        others = [w for w in (now.part_time or (now.full_time,)) if w != resolver]
        return {"id": self.rng.choice(others or [now.full_time]), "role": "grid_worker"}

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

