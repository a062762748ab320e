"""A district simulator: N days of plausible life, driven through the application's own commands.

Every case and every patrol is a small story (a Python generator, in
:mod:`district.stories`) that says what happens next and when; a scheduler
(here) runs the stories in simulated time. Commands go through the service's
``handle`` like any other client's, never by writing events directly; what was
stored is read back through a :class:`~district.ports.StoreReader`.
Randomness comes from one seeded generator and the recording clock is the
simulated clock, so a seed gives the same event stream every time. The figures
it aims for are in docs/simulator.md.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from district.stories import Stories
from district.world import Category, Grid, World
from domain.base import RECORDING_CLOCK
from domain.commands import COMMANDS
from domain.errors import DomainError

if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from zoneinfo import ZoneInfo

    from district.ports import Service, StoreReader

__all__ = ["Category", "Grid", "SimulationConfig", "Simulator", "Totals", "World"]


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



class Simulator(Stories):
    """Runs the district through simulated days: a scheduler of stories in simulated time."""

    def __init__(self, service: Service, reader: StoreReader, world: World, config: SimulationConfig) -> None:
        self.service = service
        self.reader = reader
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
        self._position = self.reader.last_position()
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
        while True:
            batch = self.reader.read(self._position, 5000)
            if not batch:
                break
            for notification in batch:
                self._digest.update(notification.topic.encode())
                self._digest.update(str(notification.originator_id).encode())
                self._digest.update(str(notification.originator_version).encode())
                # The clear form: sealing draws random nonces, the digest stays that of what was said.
                vault = getattr(self.service, "vault", None)
                self._digest.update(notification.state if vault is None else vault.clear_state(notification.state))
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

