"""Cases, patrols and daily counts per unit, folded from the events as a reporting team would fold them.

Written from docs/read-models.md and the JSON Schemas alone: a count goes to the district-local day its
deciding event occurred, and a rate is kept as its numerator and denominator (two metrics) summed separately.
The metrics and their names are the engine's own performance counts, so the two can be compared row by row
(``gridcase sink verify``). Subjects are (kind, subject, community, street): ``worker`` and ``department``
rows carry ``""`` as community and street, ``grid`` rows their community and street (areas are sums of grids).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import tzinfo

#: (kind, subject, community, street, day, metric)
CountKey = tuple[str, str, str, str, str, str]
Subject = tuple[str, str, str, str]

LEVEL_RANK = {"community": 0, "street": 1, "district": 2}
LEVELS = {rank: level for level, rank in LEVEL_RANK.items()}
SATISFIED = {"satisfied", "basically_satisfied"}
#: The state a case is in after each event (events not named leave it where it was).
STATE_AFTER = {
    "CaseReported": "reported", "CaseAccepted": "accepted", "CaseRejected": "rejected", "DuplicateMerged": "merged",
    "CaseDispatched": "dispatched", "DispatchSigned": "in_progress", "DispatchReturned": "accepted",
    "CaseEscalated": "accepted", "CaseSuspended": "suspended", "CaseResumed": "in_progress",
    "CaseResolved": "resolved", "ResolutionVerified": "verified", "ResolutionRejected": "in_progress",
    "CaseClosed": "closed", "CaseReopened": "accepted",
}  # fmt: skip


def parse_time(text: str) -> datetime:
    """An ISO 8601 time as the topics carry it."""
    return datetime.fromisoformat(text)


class Fold:
    """Folds one event at a time into a case's or a patrol's row and the counts it adds to."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self.deltas: dict[CountKey, float] = {}

    def day(self, moment: datetime) -> str:
        """The district-local day of a moment."""
        return moment.astimezone(self.tz).date().isoformat()

    def add(self, subjects: list[Subject], day: str, metric: str, amount: float = 1) -> None:
        """Add to a metric of several subjects on one day."""
        deltas = self.deltas
        for kind, subject, community, street in subjects:
            if subject:
                key = (kind, subject, community, street, day, metric)
                deltas[key] = deltas.get(key, 0) + amount

    # -- patrols ------------------------------------------------------------------

    def patrol(self, row: dict[str, Any] | None, name: str, data: dict[str, Any], patrol_id: str) -> dict[str, Any]:
        """The patrol's row after the event (a new one for PatrolStarted)."""
        if name == "PatrolStarted":
            row = {"patrol_id": patrol_id, "patrol_number": data.get("patrol_number"), "worker": data["worker"],
                   "grid": data["grid"], "community": data["community"], "street": data["street"],
                   "started_at": data["occurred_at"], "day": self.day(parse_time(data["occurred_at"])),
                   "ended_at": None, "duration_seconds": None, "distance_m": None, "checkpoints": 0,
                   "households_visited": 0, "elderly_visits": 0, "places_inspected": 0, "events": 0}  # fmt: skip
            self.add(self._patrol_subjects(row), row["day"], "patrols")
        elif row is None:
            msg = f"patrol {patrol_id}: {name} before PatrolStarted"
            raise LookupError(msg)
        else:
            row = dict(row)
            subjects = self._patrol_subjects(row)
            if name == "PatrolCheckpointLogged":
                row["checkpoints"] += 1
                if data["kind"] == "household_visit":
                    row["households_visited"] += 1
                    self.add(subjects, row["day"], "households_visited")
                    if data.get("elderly_visit"):
                        row["elderly_visits"] += 1
                        self.add(subjects, row["day"], "elderly_visits")
                else:
                    row["places_inspected"] += 1
                    self.add(subjects, row["day"], "places_inspected")
            elif name == "PatrolEnded":
                row["ended_at"] = data["occurred_at"]
                row["duration_seconds"] = data["duration_seconds"]
                row["distance_m"] = data["distance_m"]
                self.add(subjects, row["day"], "patrol_seconds", data["duration_seconds"])
                self.add(subjects, row["day"], "patrol_metres", data["distance_m"])
        row["events"] += 1
        row["last_event"] = name
        row["last_event_at"] = data["occurred_at"]
        return row

    @staticmethod
    def _patrol_subjects(row: dict[str, Any]) -> list[Subject]:
        return [("worker", row["worker"], "", ""), ("grid", row["grid"], row["community"], row["street"])]

    # -- cases --------------------------------------------------------------------

    def case(self, row: dict[str, Any] | None, name: str, data: dict[str, Any], case_id: str) -> dict[str, Any]:
        """The case's row after the event (a new one for CaseReported)."""
        at = parse_time(data["occurred_at"])
        day = self.day(at)
        if name == "CaseReported":
            actor = data["actor"]
            row = {
                "case_id": case_id, "case_number": data["case_number"], "state": "reported",
                "channel": data["channel"], "category": data["category"], "grid": data["grid"],
                "community": data["community"], "street": data["street"], "urgency": data["urgency"],
                "reporter": actor["id"] if actor["role"] == "grid_worker" else None,
                "reported_at": data["occurred_at"], "reported_day": day, "level": None, "max_level": 0,
                "handler_kind": None, "handler_id": None, "dispatched_at": None, "sign_by": None,
                "resolve_by": None, "signed_at": None, "resolved_at": None, "closed_at": None,
                "suspended_seconds": 0, "suspended_at_dispatch": 0, "resolver_kind": None, "resolver_id": None,
                "bounces": 0, "escalations": 0, "reopenings": 0, "satisfaction": None, "feedback_resolved": None,
                "master_case_number": None, "due_day": None, "due_department": None, "due_suspended": 0,
                "closed_day": None, "closed_on_time": 0, "events": 0,
            }  # fmt: skip
            self.add(self._areas(row), day, "reported")
            if row["reporter"]:
                self.add([("worker", row["reporter"], "", "")], day, "reported")
        elif row is None:
            msg = f"case {case_id}: {name} before CaseReported"
            raise LookupError(msg)
        else:
            row = dict(row)
            self._case_event(row, name, data, at, day)
        row["state"] = STATE_AFTER.get(name, row["state"])
        row["events"] += 1
        row["last_event"] = name
        row["last_event_at"] = data["occurred_at"]
        return row

    @staticmethod
    def _areas(row: dict[str, Any]) -> list[Subject]:
        return [("grid", row["grid"], row["community"], row["street"])]

    @staticmethod
    def _holder(row: dict[str, Any], prefix: str = "handler") -> list[Subject]:
        kind, subject = row[f"{prefix}_kind"], row[f"{prefix}_id"]
        if not kind:
            return []
        return [("worker" if kind == "worker" else "department", subject, "", "")]

    def _case_event(  # noqa: C901, PLR0912, PLR0915 - one branch per event type, as in docs/read-models.md
        self, row: dict[str, Any], name: str, data: dict[str, Any], at: datetime, day: str
    ) -> None:
        areas = self._areas(row)
        reporter: list[Subject] = [("worker", row["reporter"], "", "")] if row["reporter"] else []
        add = self.add
        if name == "CaseAccepted":
            row["level"] = data["level"]
            row["max_level"] = max(row["max_level"], LEVEL_RANK[data["level"]])
            add(areas, day, "accepted")
            add(reporter, day, "report_valid")
            add(reporter, day, "report_judged")
        elif name == "CaseRejected":
            add(areas, day, "rejected")
            add(reporter, day, "report_judged")
        elif name == "DuplicateMerged":
            row["master_case_number"] = data["master_case_number"]
        elif name == "CaseDispatched":
            row["handler_kind"], row["handler_id"] = data["handler"]["kind"], data["handler"]["id"]
            row["level"] = data["level"]
            row["dispatched_at"] = data["occurred_at"]
            row["sign_by"], row["resolve_by"] = data["sign_by"], data["resolve_by"]
            row["suspended_at_dispatch"] = row["suspended_seconds"]
            add(areas + self._holder(row), day, "dispatched")
            department = data["handler"]["id"] if data["handler"]["kind"] == "department" else None
            self._move_due(row, self.day(parse_time(data["resolve_by"])), department)
        elif name == "DispatchSigned":
            holder = self._holder(row)
            row["signed_at"] = data["occurred_at"]
            add(holder, day, "handled")
            add(holder + areas, day, "signed")
            add(holder + areas, day, "signed_on_time", 1 if at <= parse_time(row["sign_by"]) else 0)
            add(holder, day, "sign_seconds", (at - parse_time(row["dispatched_at"])).total_seconds())
        elif name == "DispatchReturned":
            row["bounces"] += 1
            add(self._holder(row) + areas, day, "bounces")
            row["handler_kind"] = row["handler_id"] = None
        elif name == "CaseEscalated":
            row["escalations"] += 1
            row["level"] = data["to_level"]
            row["max_level"] = max(row["max_level"], LEVEL_RANK[data["to_level"]])
            add(areas, day, "escalated")
            row["handler_kind"] = row["handler_id"] = None
        elif name == "DeadlineExtended":
            row["resolve_by"] = data["resolve_by"]
            self._move_due(row, self.day(parse_time(data["resolve_by"])), row["due_department"])
        elif name == "CaseSuspended":
            # Parked (缓办) for the assessment while it stays parked: a resumed case is back in the count.
            if row["due_day"] and not row["due_suspended"]:
                row["due_suspended"] = 1
                self._add_due(row, "due_suspended", 1)
        elif name == "CaseResumed":
            row["suspended_seconds"] += int(data["suspended_seconds"])
            if row["due_suspended"]:
                row["due_suspended"] = 0
                self._add_due(row, "due_suspended", -1)
        elif name == "CaseResolved":
            holder = self._holder(row)
            parked = row["suspended_seconds"] - row["suspended_at_dispatch"]
            dispatched = parse_time(row["dispatched_at"])
            allowed = (parse_time(row["resolve_by"]) - dispatched).total_seconds()
            row["resolved_at"] = data["occurred_at"]
            add(holder, day, "resolved")
            add(holder, day, "resolved_on_time", 1 if (at - dispatched).total_seconds() - parked <= allowed else 0)
            add(holder, day, "resolve_seconds", (at - parse_time(row["signed_at"])).total_seconds() - parked)
            row["resolver_kind"], row["resolver_id"] = row["handler_kind"], row["handler_id"]
        elif name in {"ResolutionVerified", "ResolutionRejected"}:
            resolver = self._holder(row, "resolver")
            add(resolver, day, "verified")
            if name == "ResolutionRejected":
                add(resolver, day, "rework")
        elif name == "CaseClosed":
            row["closed_at"] = data["occurred_at"]
            add(areas, day, "closed")
            add(areas, day, "closed_in_community", 1 if row["max_level"] == 0 else 0)
            if row["due_day"]:
                parked = row["suspended_seconds"] - row["suspended_at_dispatch"]
                late = (at - parse_time(row["resolve_by"])).total_seconds() - parked > 0
                row["closed_day"] = row["due_day"]
                row["closed_on_time"] = 0 if late else 1
                self._add_due(row, "due_closed", 1)
                self._add_due(row, "due_closed_on_time", row["closed_on_time"])
        elif name == "CitizenFeedbackRecorded":
            resolver = self._holder(row, "resolver")
            row["satisfaction"], row["feedback_resolved"] = data["satisfaction"], bool(data["resolved"])
            add(areas + resolver, day, "feedback")
            add(areas + resolver, day, "feedback_satisfied", 1 if data["satisfaction"] in SATISFIED else 0)
            add(areas, day, "feedback_resolved", 1 if data["resolved"] else 0)
        elif name == "CaseReopened":
            row["reopenings"] += 1
            row["closed_at"] = None
            add(areas, day, "reopened")
            # Closed is not fixed: a reopened case no longer counts as closed for the assessment.
            if row["closed_day"]:
                self._add_due(row, "due_closed", -1, day=row["closed_day"])
                self._add_due(row, "due_closed_on_time", -row["closed_on_time"], day=row["closed_day"])
                row["closed_day"] = None
                row["closed_on_time"] = 0
            row["handler_kind"] = row["handler_id"] = None

    # -- the digital city-management assessment: due, suspended, closed -----------

    def _add_due(self, row: dict[str, Any], metric: str, amount: int, day: str | None = None) -> None:
        subjects = self._areas(row)
        if row["due_department"]:
            subjects.append(("department", row["due_department"], "", ""))
        when = day or row["due_day"]
        self.add(subjects, when, metric, amount)
        if row["urgency"] == "urgent":
            self.add(subjects, when, f"urgent_{metric}", amount)

    def _move_due(self, row: dict[str, Any], new_day: str, department: str | None) -> None:
        """A case is due once, on its current resolve-by day, for its street and its department."""
        if row["due_day"]:
            self._add_due(row, "due", -1)
            if row["due_suspended"]:
                self._add_due(row, "due_suspended", -1)
        row["due_day"] = new_day
        row["due_department"] = department
        self._add_due(row, "due", 1)
        if row["due_suspended"]:
            self._add_due(row, "due_suspended", 1)
