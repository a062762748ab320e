"""Commands: what someone asks the engine to do, in the imperative.

The same models serve the CLI, ``gridcase apply`` (one JSON object per line)
and the HTTP API, and generate ``schemas/commands/``. ``at`` is when it
happened (``occurred_at``); left out, it means now.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from domain.base import ActorRef, Code
from domain.bounded import (
    Bound,
    CalendarDays,
    Day,
    Description,
    Distance,
    Evidence,
    LongText,
    Moment,
    Notes,
    Reason,
    Version,
)
from domain.bounds import SLA_RULES_MAX
from domain.case import Channel, ExternalReference, HandlerRef, Level, Location, ReporterContact, Satisfaction, Urgency
from domain.geometry import Boundary
from domain.patrol import CheckpointKind
from domain.registry import Count, GridKind, Name, OrgKind, WorkerKind
from domain.sla import SlaClass, SlaRule

CaseNumber = Annotated[str, Field(pattern=r"^[A-Z]{2,6}-[0-9]{8}-[0-9]{6}$", examples=["SN-20211231-000123"])]


class Command(BaseModel):
    """Fields every command carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The command's name, ``group.name``; each command class fixes it to one literal.
    command: str
    actor: ActorRef
    at: Moment | None = None


class CaseCommand(Command):
    """A command on an existing case, named by its number."""

    case_number: CaseNumber


class ReportCase(Command):
    """Register a complaint or finding under a new case number; the engine issues the number."""

    command: Literal["case.report"] = "case.report"
    channel: Channel
    category: Code
    grid: Code
    location: Location = Location()
    description: Description
    reporter: ReporterContact | None = None
    urgency: Urgency = Urgency.NORMAL
    #: Only an import sets it: the old system's id of the case, and the anomalies kept (issue 14).
    external: ExternalReference | None = None


class AcceptCase(CaseCommand):
    """Take the case on at a level."""

    command: Literal["case.accept"] = "case.accept"
    level: Level = Level.COMMUNITY


class RejectCase(CaseCommand):
    """Decline the case, saying why."""

    command: Literal["case.reject"] = "case.reject"
    reason: Reason


class MergeDuplicate(CaseCommand):
    """Mark the case a duplicate of an open master case."""

    command: Literal["case.merge"] = "case.merge"
    master_case_number: CaseNumber


class DispatchCase(CaseCommand):
    """Send the case to a grid worker or refer it to a department; deadlines come from the SLA policy."""

    command: Literal["case.dispatch"] = "case.dispatch"
    handler: HandlerRef
    #: A resolve-by decided elsewhere (an imported export's own deadline): the SLA policy is not asked, and the
    #: dispatch records policy and calendar version 0. Sign-by is the same moment.
    resolve_by: Moment | None = None


class SignDispatch(CaseCommand):
    """The handler takes the case on."""

    command: Literal["case.sign"] = "case.sign"


class ReturnDispatch(CaseCommand):
    """The handler sends the case back: not theirs."""

    command: Literal["case.return"] = "case.return"
    reason: Reason


class EscalateCase(CaseCommand):
    """Move the case up a level."""

    command: Literal["case.escalate"] = "case.escalate"
    to_level: Level
    reason: Reason


class ExtendDeadline(CaseCommand):
    """Move the resolve-by deadline later."""

    command: Literal["case.extend"] = "case.extend"
    resolve_by: Moment
    reason: Reason


class SuspendCase(CaseCommand):
    """Park the case; the SLA clock stops."""

    command: Literal["case.suspend"] = "case.suspend"
    reason: Reason


class ResumeCase(CaseCommand):
    """Restart a parked case."""

    command: Literal["case.resume"] = "case.resume"


class NoteProgress(CaseCommand):
    """Write down progress."""

    command: Literal["case.note"] = "case.note"
    note: LongText


class ResolveCase(CaseCommand):
    """The handler reports it fixed."""

    command: Literal["case.resolve"] = "case.resolve"
    result: LongText
    evidence: Evidence = ()


class VerifyResolution(CaseCommand):
    """A grid worker confirms on site that it is fixed."""

    command: Literal["case.verify"] = "case.verify"


class RejectResolution(CaseCommand):
    """A grid worker finds on site that it is not fixed."""

    command: Literal["case.reject-resolution"] = "case.reject-resolution"
    reason: Reason


class CloseCase(CaseCommand):
    """Close a verified case."""

    command: Literal["case.close"] = "case.close"


class RecordFeedback(CaseCommand):
    """Record the citizen's answer on the callback."""

    command: Literal["case.feedback"] = "case.feedback"
    satisfaction: Satisfaction
    resolved: bool


class ReopenCase(CaseCommand):
    """Bring a closed case back."""

    command: Literal["case.reopen"] = "case.reopen"
    reason: Reason


class StartPatrol(Command):
    """A worker starts patrolling a grid; returns the patrol number."""

    command: Literal["patrol.start"] = "patrol.start"
    worker: Code
    grid: Code


class PatrolCommand(Command):
    """A command on an existing patrol."""

    patrol_number: CaseNumber


class LogCheckpoint(PatrolCommand):
    """Log a household visit or a place inspected."""

    command: Literal["patrol.checkpoint"] = "patrol.checkpoint"
    kind: CheckpointKind
    target: Code
    notes: Notes = ""
    elderly_visit: bool = False


class EndPatrol(PatrolCommand):
    """End the patrol."""

    command: Literal["patrol.end"] = "patrol.end"
    distance_m: Distance = 0


class ReportHazard(PatrolCommand):
    """Report a hazard found on patrol: a new case with channel ``patrol``."""

    command: Literal["patrol.hazard"] = "patrol.hazard"
    category: Code
    location: Location = Location()
    description: Description
    urgency: Urgency = Urgency.NORMAL


class CreateOrgUnit(Command):
    """Set up a district, street, community, grid or department."""

    command: Literal["registry.org-unit"] = "registry.org-unit"
    code: Code
    kind: OrgKind
    name: Name
    name_en: Name | None = None
    parent: Code | None = None
    grid_kind: GridKind | None = None
    households: Count = 0
    population: Count = 0
    elderly: Count = 0


class UpdateGridFigures(Command):
    """Record a new count of a grid's households and residents."""

    command: Literal["registry.grid-figures"] = "registry.grid-figures"
    grid: Code
    households: Count
    population: Count
    elderly: Count = 0


class AppointGridLeader(Command):
    """Make a worker the grid's leader."""

    command: Literal["registry.grid-leader"] = "registry.grid-leader"
    grid: Code
    worker: Code


class SetBoundary(Command):
    """Draw an org unit's boundary: a GeoJSON Polygon or MultiPolygon in WGS84 (longitude, latitude)."""

    command: Literal["registry.boundary"] = "registry.boundary"
    #: The org unit's code (``--code``: the CLI's ``--unit`` is the acting handler's department).
    code: Code
    boundary: Annotated[Boundary, Field(examples=[{"type": "Polygon", "coordinates": [[
        [120.365, 36.052], [120.369, 36.052], [120.369, 36.055], [120.365, 36.055], [120.365, 36.052]]]}])]


class RegisterWorker(Command):
    """Register a grid worker."""

    command: Literal["registry.worker"] = "registry.worker"
    code: Code
    name: Name
    kind: WorkerKind
    department: Code | None = None


class AssignWorker(Command):
    """Assign a worker to a grid from a date."""

    command: Literal["registry.assign"] = "registry.assign"
    worker: Code
    grid: Code
    start: Day


class UnassignWorker(Command):
    """End a worker's assignment to a grid."""

    command: Literal["registry.unassign"] = "registry.unassign"
    worker: Code
    grid: Code
    end: Day


class DefineCategory(Command):
    """Add a category to the catalogue."""

    command: Literal["registry.category"] = "registry.category"
    code: Code
    group: Code
    group_name: Name
    group_name_en: Name
    name: Name
    name_en: Name
    default_unit: Code
    sla_class: SlaClass
    #: Whether public views may show where its cases are; False shows only the grid (docs/privacy.md).
    location_public: bool = True


class SetCategoryLocation(Command):
    """Say whether public views may show where cases of a category are (False: only the grid)."""

    command: Literal["registry.category-location"] = "registry.category-location"
    code: Code
    location_public: bool


class PublishSlaPolicy(Command):
    """Publish the next version of the SLA policy."""

    command: Literal["registry.sla-policy"] = "registry.sla-policy"
    version: Version
    rules: Annotated[tuple[SlaRule, ...], Bound(max_items=SLA_RULES_MAX)]


class PublishCalendar(Command):
    """Publish the next version of the holiday calendar."""

    command: Literal["registry.calendar"] = "registry.calendar"
    version: Version
    holidays: CalendarDays = ()
    workdays: CalendarDays = ()


AnyCommand = Annotated[
    ReportCase
    | AcceptCase
    | RejectCase
    | MergeDuplicate
    | DispatchCase
    | SignDispatch
    | ReturnDispatch
    | EscalateCase
    | ExtendDeadline
    | SuspendCase
    | ResumeCase
    | NoteProgress
    | ResolveCase
    | VerifyResolution
    | RejectResolution
    | CloseCase
    | RecordFeedback
    | ReopenCase
    | StartPatrol
    | LogCheckpoint
    | EndPatrol
    | ReportHazard
    | CreateOrgUnit
    | UpdateGridFigures
    | AppointGridLeader
    | SetBoundary
    | RegisterWorker
    | AssignWorker
    | UnassignWorker
    | DefineCategory
    | SetCategoryLocation
    | PublishSlaPolicy
    | PublishCalendar,
    Field(discriminator="command"),
]

COMMANDS: TypeAdapter[AnyCommand] = TypeAdapter(AnyCommand)  # type: ignore[arg-type, unused-ignore]  # a union
