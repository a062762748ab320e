"""Case status: one row per case, the public timeline, queues and the overdue list."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import BigInteger, Column, DateTime, Float, Integer, MetaData, String, Table, Text, delete, select

from domain import case as domain_case
from domain.masking import mask_personal_text
from projections.base import Projection
from projections.events import parse_time
from projections.sql import RowCache, upsert, utc_naive

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from projections.events import ProjectedEvent

metadata = MetaData()

case_status = Table(
    "case_status",
    metadata,
    Column("case_number", String(32), primary_key=True),
    Column("case_id", String(36), nullable=False, unique=True),
    Column("state", String(16), nullable=False),
    Column("level", String(16)),
    Column("max_level", String(16)),
    Column("channel", String(16), nullable=False),
    Column("category", String(64), nullable=False),
    Column("grid", String(64), nullable=False),
    Column("community", String(64), nullable=False),
    Column("street", String(64), nullable=False),
    Column("urgency", String(16), nullable=False),
    Column("patrol_number", String(32)),
    #: The address and the description as the public sees them: masked (domain.masking), so a Kafka-fed copy,
    #: fed the published (masked) form, holds the same rows; staff read the stored text from the case's history.
    Column("address", String(500)),
    Column("description", Text),
    Column("lat", Float),
    Column("lon", Float),
    Column("handler_kind", String(16)),
    Column("handler_id", String(64)),
    Column("reported_at", DateTime, nullable=False),
    Column("accepted_at", DateTime),
    Column("dispatched_at", DateTime),
    Column("signed_at", DateTime),
    Column("sign_by", DateTime),
    Column("resolve_by", DateTime),
    Column("suspended_since", DateTime),
    Column("suspended_seconds", BigInteger, nullable=False),
    # Parked seconds when the current dispatch began: the SLA clock of this dispatch removes only what came after.
    Column("suspended_at_dispatch", BigInteger, nullable=False),
    Column("resolved_at", DateTime),
    Column("closed_at", DateTime),
    Column("merged_into", String(32)),
    Column("returns", Integer, nullable=False),
    Column("escalations", Integer, nullable=False),
    Column("reopenings", Integer, nullable=False),
    Column("satisfaction", String(32)),
    Column("feedback_resolved", Integer),
    Column("last_event", String(64), nullable=False),
    Column("last_event_at", DateTime, nullable=False),
    Column("version", Integer, nullable=False),
)

case_timeline = Table(
    "case_timeline",
    metadata,
    Column("case_number", String(32), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("event", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("occurred_at", DateTime, nullable=False),
    Column("note", Text, nullable=False),
)

LEVELS = ("community", "street", "district")
#: The state a case is in after each event; events not listed leave it where it was.
#: The lifecycle as the domain defines it, as the strings the rows hold.
STATE_AFTER = {event: state.value for event, state in domain_case.STATE_AFTER.items()}
OPEN_STATES = tuple(sorted(state.value for state in domain_case.OPEN_STATES))
CLOSED_STATES = tuple(sorted(state.value for state in domain_case.CLOSED_STATES))
#: Where the deadline clock runs: dispatched to someone and not yet resolved.
CLOCK_STATES = tuple(sorted(state.value for state in domain_case.CLOCK_STATES))


def _public_note(event: ProjectedEvent, data: dict[str, Any]) -> str:  # noqa: PLR0911 - one answer per event type
    """What a citizen may see of an event: no names, no phone numbers, no free text."""
    match event.type:
        case "CaseReported":
            return f"registered via {data['channel']}"
        case "CaseAccepted":
            return f"accepted at {data['level']} level"
        case "CaseDispatched":
            target = "a grid worker" if data["handler"]["kind"] == "worker" else f"department {data['handler']['id']}"
            return f"dispatched to {target}"
        case "CaseEscalated":
            return f"escalated to {data['to_level']} level"
        case "DuplicateMerged":
            return f"merged into case {data['master_case_number']}"
        case "CitizenFeedbackRecorded":
            return "callback recorded"
        case _:
            return ""


def _masked(text: str | None) -> str | None:
    return None if text is None else mask_personal_text(text)


class CaseStatus(Projection):
    """Where each case is: state, level, handler, deadlines, bounces; and its public timeline."""

    name: ClassVar[str] = "case_status"
    #: 2: the address is kept masked and the masked description is kept too (issue 18).
    version: ClassVar[int] = 2
    metadata: ClassVar[MetaData] = metadata
    handles: ClassVar[frozenset[str]] = frozenset(
        {"CaseReported", "ProgressNoted", "DeadlineExtended", "CitizenFeedbackRecorded", *STATE_AFTER}
    )

    per_aggregate: ClassVar[bool] = True

    def __init__(self) -> None:
        self.rows = RowCache(case_status)
        self.timeline: list[dict[str, Any]] = []
        self._numbers: dict[str, str] = {}

    def prepare(self, connection: Connection, events: list[ProjectedEvent]) -> None:
        """Load the rows of every case the batch touches in a few queries (later events carry no number)."""
        born = {e.originator_id for e in events if e.type == "CaseReported"}
        ids = {e.originator_id for e in events if e.originator_id not in born}
        for row in self.rows.prefetch_by(connection, "case_id", ids):
            self._numbers[row["case_id"]] = row["case_number"]

    def apply(self, connection: Connection, event: ProjectedEvent) -> None:
        """Fold one case event into the case's row and timeline."""
        data = event.data
        at = utc_naive(parse_time(data["occurred_at"]))
        assert at is not None
        if event.type == "CaseReported":
            number = data["case_number"]
            self._numbers[event.originator_id] = number
            location = data.get("location") or {}
            row: dict[str, Any] = {
                "case_number": number,
                "case_id": event.originator_id,
                "state": "reported",
                "level": None,
                "max_level": None,
                "channel": data["channel"],
                "category": data["category"],
                "grid": data["grid"],
                "community": data["community"],
                "street": data["street"],
                "urgency": data["urgency"],
                "patrol_number": data.get("patrol_id"),
                "address": _masked(location.get("address")),
                "description": _masked(data.get("description")),
                "lat": location.get("lat"),
                "lon": location.get("lon"),
                "handler_kind": None,
                "handler_id": None,
                "reported_at": at,
                "accepted_at": None,
                "dispatched_at": None,
                "signed_at": None,
                "sign_by": None,
                "resolve_by": None,
                "suspended_since": None,
                "suspended_seconds": 0,
                "suspended_at_dispatch": 0,
                "resolved_at": None,
                "closed_at": None,
                "merged_into": None,
                "returns": 0,
                "escalations": 0,
                "reopenings": 0,
                "satisfaction": None,
                "feedback_resolved": None,
            }
        else:
            number = self._number(connection, event)
            found = self.rows.get(connection, (number,))
            if found is None:
                msg = f"case {number}: {event.type} before CaseReported"
                raise LookupError(msg)
            row = dict(found)
            self._change(row, event, data, at)
        row["state"] = STATE_AFTER.get(event.type, row["state"])
        row["last_event"] = event.type
        row["last_event_at"] = at
        row["version"] = event.version
        self.rows.put((number,), row)
        self.timeline.append(
            {
                "case_number": number,
                "version": event.version,
                "event": event.type,
                "state": row["state"],
                "occurred_at": at,
                "note": _public_note(event, data),
            }
        )

    def _number(self, connection: Connection, event: ProjectedEvent) -> str:
        number = self._numbers.get(event.originator_id)
        if number is None:
            found = connection.execute(
                select(case_status.c.case_number).where(case_status.c.case_id == event.originator_id)
            ).scalar()
            if found is None:
                msg = f"no case known for aggregate {event.originator_id}"
                raise LookupError(msg)
            number = str(found)
            self._numbers[event.originator_id] = number
        return number

    @staticmethod
    def _change(row: dict[str, Any], event: ProjectedEvent, data: dict[str, Any], at: datetime) -> None:  # noqa: C901, PLR0912
        match event.type:
            case "CaseAccepted":
                row["accepted_at"] = row["accepted_at"] or at
                row["level"] = data["level"]
                row["max_level"] = _higher(row["max_level"], data["level"])
            case "DuplicateMerged":
                row["merged_into"] = data["master_case_number"]
            case "CaseDispatched":
                row["handler_kind"] = data["handler"]["kind"]
                row["handler_id"] = data["handler"]["id"]
                row["dispatched_at"] = at
                row["sign_by"] = utc_naive(parse_time(data["sign_by"]))
                row["resolve_by"] = utc_naive(parse_time(data["resolve_by"]))
                row["suspended_at_dispatch"] = row["suspended_seconds"]
            case "DispatchSigned":
                row["signed_at"] = at
            case "DispatchReturned" | "CaseEscalated" | "CaseReopened":
                # Back with the centre: nobody holds it, and the old deadlines no longer run.
                row["handler_kind"] = row["handler_id"] = None
                row["sign_by"] = row["resolve_by"] = None
                if event.type == "DispatchReturned":
                    row["returns"] += 1
                elif event.type == "CaseEscalated":
                    row["escalations"] += 1
                    row["level"] = data["to_level"]
                    row["max_level"] = _higher(row["max_level"], data["to_level"])
                else:
                    row["reopenings"] += 1
                    row["closed_at"] = None
            case "DeadlineExtended":
                row["resolve_by"] = utc_naive(parse_time(data["resolve_by"]))
            case "CaseSuspended":
                row["suspended_since"] = at
            case "CaseResumed":
                row["suspended_since"] = None
                row["suspended_seconds"] += int(data["suspended_seconds"])
            case "CaseResolved":
                row["resolved_at"] = at
            case "CaseClosed":
                row["closed_at"] = at
            case "CitizenFeedbackRecorded":
                row["satisfaction"] = data["satisfaction"]
                row["feedback_resolved"] = 1 if data["resolved"] else 0

    def forget(self, connection: Connection, aggregate: str) -> None:
        """Delete a case's row and its timeline."""
        query = select(case_status.c.case_number).where(case_status.c.case_id == aggregate)
        number = connection.execute(query).scalar()
        if number is not None:
            connection.execute(delete(case_timeline).where(case_timeline.c.case_number == number))
        connection.execute(delete(case_status).where(case_status.c.case_id == aggregate))

    def flush(self, connection: Connection) -> None:
        """Write the changed case rows, their timeline entries and the id → number lookup."""
        self.rows.flush(connection)
        upsert(connection, case_timeline, self.timeline)
        self.discard()

    def discard(self) -> None:
        """Forget the batch."""
        self.rows.clear()
        self.timeline = []
        self._numbers = {}


def _higher(current: str | None, level: str) -> str:
    if current is None:
        return level
    return max(current, level, key=LEVELS.index)


def is_overdue(row: Any, now: datetime) -> bool:
    """Overdue on the SLA clock: time since the current dispatch, time parked since then removed, past resolve-by."""
    if row.state not in CLOCK_STATES or row.resolve_by is None:
        return False
    parked = timedelta(seconds=(row.suspended_seconds or 0) - (row.suspended_at_dispatch or 0))
    if row.suspended_since is not None:
        parked += now - row.suspended_since
    return bool(now - parked > row.resolve_by)
