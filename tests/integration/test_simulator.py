"""The simulator: deterministic, complete, plausible, and never refused by accident."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import date, datetime
from typing import TYPE_CHECKING

import pytest

from district.reference import load_reference_district, reference_commands
from district.simulator import SimulationConfig, Simulator, Totals, World
from domain import case as case_module
from domain import patrol as patrol_module
from domain import registry as registry_module
from domain.base import Aggregate
from tests.conftest import make_settings
from tests.support import App, make_app

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

REFERENCE_AT = datetime.fromisoformat("2021-01-01T00:00:00+08:00")

#: (event, state before) for every row of DESIGN.md's lifecycle table.
LIFECYCLE = {
    ("CaseAccepted", "reported"), ("CaseRejected", "reported"), ("DuplicateMerged", "reported"),
    ("CaseDispatched", "accepted"), ("DispatchSigned", "dispatched"), ("DispatchReturned", "dispatched"),
    ("CaseEscalated", "accepted"), ("CaseEscalated", "dispatched"), ("CaseEscalated", "in_progress"),
    ("DeadlineExtended", "in_progress"), ("CaseSuspended", "in_progress"), ("CaseResumed", "suspended"),
    ("CaseResolved", "in_progress"), ("ResolutionVerified", "resolved"), ("ResolutionRejected", "resolved"),
    ("CaseClosed", "verified"), ("CitizenFeedbackRecorded", "closed"), ("CaseReopened", "closed"),
}  # fmt: skip
AFTER = {
    "CaseReported": "reported", "CaseAccepted": "accepted", "CaseRejected": "rejected", "DuplicateMerged": "merged",
    "CaseDispatched": "dispatched", "DispatchSigned": "in_progress", "DispatchReturned": "accepted",
    "CaseEscalated": "accepted", "CaseSuspended": "suspended", "CaseResumed": "in_progress",
    "CaseResolved": "resolved", "ResolutionVerified": "verified", "ResolutionRejected": "in_progress",
    "CaseClosed": "closed", "CaseReopened": "accepted",
}  # fmt: skip


@pytest.fixture(scope="module")
def reference_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file holding the reference district, loaded once and copied for each test."""
    path = tmp_path_factory.mktemp("reference") / "reference.db"
    service = make_app(make_settings(f"sqlite:///{path}"))
    reader = service.reader
    load_reference_district(service, reader, REFERENCE_AT)
    service.close()
    return path


@pytest.fixture
def fresh(reference_db: Path, tmp_path: Path) -> Iterator[App]:
    """A service on a copy of the reference district."""
    copy = tmp_path / "gridcase.db"
    shutil.copyfile(reference_db, copy)
    service = make_app(make_settings(f"sqlite:///{copy}"))
    yield service
    service.close()


def simulate(service: App, *, days: int, seed: int, grids: int, start: date = date(2021, 6, 1)) -> Totals:
    world = World(reference_commands(REFERENCE_AT), grids)
    reader = service.reader
    return Simulator(service, reader, world, SimulationConfig(days=days, seed=seed, grids=grids, start=start)).run()


#: Event types a district's ordinary days do not make, so the simulator does not either.
NOT_A_DAYS_WORK = {"LocationVisibilitySet"}


def event_classes() -> set[str]:
    """Every event type the domain defines."""
    names = set()
    for module in (case_module, patrol_module, registry_module):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Aggregate) and value is not Aggregate:
                names.update(
                    name
                    for name, inner in vars(value).items()
                    if isinstance(inner, type)
                    and issubclass(inner, Aggregate.Event)
                    and name not in {"Event", "Created"}
                )
    return names


def test_same_seed_same_stream_and_another_seed_another(reference_db: Path, tmp_path: Path) -> None:
    digests = []
    for run, seed in enumerate((7, 7, 8)):
        copy = tmp_path / f"run{run}.db"
        shutil.copyfile(reference_db, copy)
        service = make_app(make_settings(f"sqlite:///{copy}"))
        totals = simulate(service, days=3, seed=seed, grids=10)
        service.close()
        assert totals.events > 300
        digests.append(totals.digest)
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]


@pytest.mark.slow
def test_a_month_hits_every_event_type_and_transition_and_looks_like_a_district(fresh: App) -> None:
    totals = simulate(fresh, days=30, seed=2021, grids=20)

    # Every command it issued was accepted, except those it sent to be refused.
    assert totals.unexpected_refusals == 0, totals.refusal_reasons
    assert totals.intended_refusals > 0

    # Every event type appears in the store (the reference load made the registry's creations).
    recorder = fresh.store.recorder
    stored_types: Counter[str] = Counter()
    transitions: set[tuple[str, str]] = set()
    state: dict[object, str] = {}
    position = 0
    while batch := recorder.select_notifications(start=position, limit=5000, inclusive_of_start=False):
        for notification in batch:
            name = notification.topic.rsplit(".", 1)[-1]
            stored_types[name] += 1
            if notification.topic.startswith("domain.case:"):
                before = state.get(notification.originator_id, "")
                transitions.add((name, before))
                state[notification.originator_id] = AFTER.get(name, before)
        position = batch[-1].id
    # A category's change of visibility is the registrar's, not a day's work: tests/integration/
    # test_published_events.py makes one and checks it against its schema.
    assert event_classes() - set(stored_types) - NOT_A_DAYS_WORK == set()
    assert LIFECYCLE - transitions == set()
    # A callback saying "not resolved" reopens; so does a dispatcher after a dissatisfied one.
    reopened = [json.loads(e.state) for e in _events_of(fresh, "CaseReopened")]
    assert {r["actor"]["role"] for r in reopened} == {"system", "dispatcher"}

    figures = totals.as_dict()
    citizens = {k: v for k, v in totals.channels.items() if k != "patrol"}
    hotline_share = citizens["hotline"] / sum(citizens.values())
    assert 0.35 <= hotline_share <= 0.55, citizens
    assert max(citizens, key=citizens.__getitem__) == "hotline"
    assert citizens["letter_visit"] < citizens["window"]
    assert 8 <= figures["median_resolution_hours"] <= 48
    assert 0.03 <= figures["overdue_share"] <= 0.20
    assert totals.late_patrol_logs > 0


def _events_of(service: App, name: str) -> list[object]:
    found, position = [], 0
    while batch := service.reader.read(position, 5000):
        found += [n for n in batch if n.topic.endswith("." + name)]
        position = batch[-1].id
    return found


def test_late_patrol_logs_are_recorded_after_they_occurred(fresh: App) -> None:
    simulate(fresh, days=2, seed=3, grids=15)
    lags = []
    for notification in _events_of(fresh, "PatrolStarted"):
        data = json.loads(notification.state)
        lag = datetime.fromisoformat(data["timestamp"]) - datetime.fromisoformat(data["occurred_at"])
        lags.append(lag.total_seconds() / 3600)
    assert any(lag > 2 for lag in lags), "some patrol logs arrive hours late"
    assert sum(lag < 0.01 for lag in lags) > len(lags) / 2, "most are logged as they happen"
