"""The case: a citizen complaint or a patrol finding, from intake to closure (values: case_values.py)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from eventsourcing.domain import event
from pydantic import Field

from domain import bounds
from domain.base import ActorRef, Aggregate, Code, Role, UtcDatetime, as_utc
from domain.bounded import Bound, Description, Evidence, LongText, Reason, SuspendedSeconds
from domain.case_guards import CaseGuards
from domain.case_values import (
    CALLBACK,
    CALLBACK_POLICY,
    CLOCK_STATES,
    CLOSED_STATES,
    DISPATCHERS,
    ESCALATORS,
    INTAKE,
    MERGERS,
    NOTE_TAKERS,
    OPEN_STATES,
    STATE_AFTER,
    VERIFIERS,
    CaseState,
    Channel,
    ExternalReference,
    HandlerKind,
    HandlerRef,
    Level,
    Location,
    ReporterContact,
    Satisfaction,
    Urgency,
    case_id,
)
from domain.personal import Sealed

if TYPE_CHECKING:
    from uuid import UUID

__all__ = [
    "CALLBACK", "CALLBACK_POLICY", "CLOCK_STATES", "CLOSED_STATES", "DISPATCHERS", "ESCALATORS", "INTAKE", "MERGERS",
    "NOTE_TAKERS", "OPEN_STATES", "STATE_AFTER", "VERIFIERS", "Case", "CaseState", "Channel", "ExternalReference",
    "HandlerKind",
    "HandlerRef", "Level", "Location", "ReporterContact", "Satisfaction", "Urgency", "case_id",
]  # fmt: skip


class Case(CaseGuards, Aggregate):
    """A citizen complaint or a patrol finding, from intake to closure."""

    class CaseReported(Aggregate.Created):
        """A complaint or finding registered under a new case number."""

        case_number: Code
        channel: Channel
        category: Code
        grid: Code
        community: Code
        street: Code
        location: Location
        description: Description
        #: Sealed when read back from the store (domain.personal); the clear contact only on the way in.
        reporter: ReporterContact | Sealed | None = None
        urgency: Urgency
        patrol_id: Code | None = None
        #: Set on a case imported from another system's export (issue 14); optional, so v1 still holds, and left
        #: out of the stored and published form when unset, so every other case is stored byte for byte as before.
        external: ExternalReference | None = Field(default=None, exclude_if=lambda value: value is None)

    class CaseAccepted(Aggregate.Event):
        """The centre takes the case on at a level."""

        level: Level

    class CaseRejected(Aggregate.Event):
        """The centre declines the case."""

        reason: Reason

    class DuplicateMerged(Aggregate.Event):
        """The case is a duplicate; its number now resolves to the master case."""

        master_case_number: Code

    class CaseDispatched(Aggregate.Event):
        """The case is sent to a handler with deadlines decided now, from a policy version."""

        handler: HandlerRef
        level: Level
        sign_by: UtcDatetime
        resolve_by: UtcDatetime
        sla_policy_version: Annotated[int, Bound(ge=0, le=bounds.VERSION_MAX)]
        calendar_version: Annotated[int, Bound(ge=0, le=bounds.VERSION_MAX)]

    class DispatchSigned(Aggregate.Event):
        """The handler takes the case on (签收)."""

    class DispatchReturned(Aggregate.Event):
        """The handler sends the case back: not theirs (退单)."""

        reason: Reason

    class CaseEscalated(Aggregate.Event):
        """The case moves up a level and goes back to the centre to be dispatched again."""

        from_level: Level
        to_level: Level
        reason: Reason

    class DeadlineExtended(Aggregate.Event):
        """The resolve-by deadline is moved later."""

        resolve_by: UtcDatetime
        reason: Reason

    class CaseSuspended(Aggregate.Event):
        """Work is parked (缓办); the SLA clock stops."""

        reason: Reason

    class CaseResumed(Aggregate.Event):
        """Work restarts; the SLA clock runs again."""

        suspended_seconds: SuspendedSeconds

    class ProgressNoted(Aggregate.Event):
        """Someone on the case writes down what happened."""

        note: LongText

    class CaseResolved(Aggregate.Event):
        """The handler says it is fixed."""

        result: LongText
        evidence: Evidence = ()

    class ResolutionVerified(Aggregate.Event):
        """A grid worker checked on site: it is fixed."""

    class ResolutionRejected(Aggregate.Event):
        """A grid worker checked on site: it is not fixed (返工)."""

        reason: Reason

    class CaseClosed(Aggregate.Event):
        """The centre closes the case."""

    class CitizenFeedbackRecorded(Aggregate.Event):
        """What the citizen said on the callback."""

        satisfaction: Satisfaction
        resolved: bool

    class CaseReopened(Aggregate.Event):
        """A closed case comes back to the centre."""

        reason: Reason

    # -- creation -------------------------------------------------------------

    @classmethod
    def report(
        cls,
        *,
        case_number: str,
        channel: Channel,
        category: str,
        grid: str,
        community: str,
        street: str,
        location: Location,
        description: str,
        reporter: ReporterContact | None,
        urgency: Urgency,
        patrol_id: str | None,
        actor: ActorRef,
        at: datetime,
        external: ExternalReference | None = None,
    ) -> Case:
        """Register a complaint or finding under a new case number (一号受诉)."""
        cls._check_report(case_number, channel, description, patrol_id, actor)
        created: Case = cls(
            id=case_id(case_number),
            case_number=case_number,
            channel=channel,
            category=category,
            grid=grid,
            community=community,
            street=street,
            location=location,
            description=description.strip(),
            reporter=reporter,
            urgency=urgency,
            patrol_id=patrol_id,
            actor=actor,
            occurred_at=at,
            external=external,
        )
        return created

    @event(CaseReported)
    def __init__(
        self,
        *,
        id: UUID,  # noqa: A002 - the library wants it named so
        case_number: str,
        channel: Channel,
        category: str,
        grid: str,
        community: str,
        street: str,
        location: Location,
        description: str,
        reporter: ReporterContact | Sealed | None,
        urgency: Urgency,
        patrol_id: str | None,
        actor: ActorRef,
        occurred_at: datetime,
        external: ExternalReference | None = None,
    ) -> None:
        self.case_number = case_number
        self.channel = channel
        self.category = category
        self.grid = grid
        self.community = community
        self.street = street
        self.location = location
        self.description = description
        self.urgency = urgency
        self.patrol_id = patrol_id
        self.reported_by = actor
        self.reported_at = occurred_at
        self.last_occurred_at = occurred_at
        self.state = CaseState.REPORTED
        self.level: Level | None = None
        self.handler: HandlerRef | None = None
        self.sign_by: datetime | None = None
        self.resolve_by: datetime | None = None
        self.sla_policy_version: int | None = None
        self.merged_into: str | None = None
        self.suspended_since: datetime | None = None
        self.suspended_seconds = 0
        self.returns = 0
        self.escalations = 0
        self.resolved_by: HandlerRef | None = None
        self.feedback_recorded = False
        self.has_reporter_contact = reporter is not None
        self.external = external

    # -- intake ---------------------------------------------------------------

    def accept(self, actor: ActorRef, level: Level, at: datetime) -> None:
        """The centre takes the case on at a level (受理)."""
        self._check("accept", actor, at, states=[CaseState.REPORTED], roles=DISPATCHERS)
        self._accepted(level=level, actor=actor, occurred_at=at)

    @event(CaseAccepted)
    def _accepted(self, level: Level, actor: ActorRef, occurred_at: datetime) -> None:
        self.state = CaseState.ACCEPTED
        self.level = level
        self.last_occurred_at = occurred_at

    def reject(self, actor: ActorRef, reason: str, at: datetime) -> None:
        """The centre declines the case (out of scope, insufficient information…)."""
        self._check("reject", actor, at, states=[CaseState.REPORTED], roles=DISPATCHERS)
        self._rejected(reason=self._check_reason("reject", reason), actor=actor, occurred_at=at)

    @event(CaseRejected)
    def _rejected(self, reason: str, actor: ActorRef, occurred_at: datetime) -> None:
        self.state = CaseState.REJECTED
        self.last_occurred_at = occurred_at

    def merge_into(self, actor: ActorRef, master_case_number: str, at: datetime) -> None:
        """Mark the case a duplicate of an open master; the caller keeps their number."""
        self._check("merge", actor, at, states=[CaseState.REPORTED], roles=MERGERS)
        if master_case_number == self.case_number:
            raise self._refuse("merge", "CaseCannotBeMergedIntoItself", "the master is this case")
        self._merged(master_case_number=master_case_number, actor=actor, occurred_at=at)

    @event(DuplicateMerged)
    def _merged(self, master_case_number: str, actor: ActorRef, occurred_at: datetime) -> None:
        self.state = CaseState.MERGED
        self.merged_into = master_case_number
        self.last_occurred_at = occurred_at

    # -- dispatch -------------------------------------------------------------

    def dispatch(
        self,
        actor: ActorRef,
        handler: HandlerRef,
        sign_by: datetime,
        resolve_by: datetime,
        sla_policy_version: int,
        calendar_version: int,
        at: datetime,
    ) -> None:
        """Send the case to a grid worker or refer it to a department, with its deadlines."""
        self._check("dispatch", actor, at, states=[CaseState.ACCEPTED], roles=DISPATCHERS)
        self._check_deadlines(sign_by, resolve_by, at)
        assert self.level is not None
        self._dispatched(
            handler=handler,
            level=self.level,
            sign_by=sign_by,
            resolve_by=resolve_by,
            sla_policy_version=sla_policy_version,
            calendar_version=calendar_version,
            actor=actor,
            occurred_at=at,
        )

    @event(CaseDispatched)
    def _dispatched(
        self,
        handler: HandlerRef,
        sign_by: datetime,
        resolve_by: datetime,
        sla_policy_version: int,
        calendar_version: int,
        level: Level,
        actor: ActorRef,
        occurred_at: datetime,
    ) -> None:
        self.state = CaseState.DISPATCHED
        self.handler = handler
        self.sign_by = sign_by
        self.resolve_by = resolve_by
        self.sla_policy_version = sla_policy_version
        self.last_occurred_at = occurred_at

    def sign(self, actor: ActorRef, at: datetime) -> None:
        """The handler the case was dispatched to takes it on (签收)."""
        self._check("sign", actor, at, states=[CaseState.DISPATCHED], roles=frozenset(Role))
        self._check_is_current_handler("sign", actor)
        self._signed(actor=actor, occurred_at=at)

    @event(DispatchSigned)
    def _signed(self, actor: ActorRef, occurred_at: datetime) -> None:
        self.state = CaseState.IN_PROGRESS
        self.last_occurred_at = occurred_at

    def return_dispatch(self, actor: ActorRef, reason: str, at: datetime) -> None:
        """The handler sends the case back to the centre: it is not theirs (退单)."""
        self._check("return", actor, at, states=[CaseState.DISPATCHED], roles=frozenset(Role))
        self._check_is_current_handler("return", actor)
        self._returned(reason=self._check_reason("return", reason), actor=actor, occurred_at=at)

    @event(DispatchReturned)
    def _returned(self, reason: str, actor: ActorRef, occurred_at: datetime) -> None:
        self.state = CaseState.ACCEPTED
        self.handler = None
        self.returns += 1
        self.last_occurred_at = occurred_at

    def escalate(self, actor: ActorRef, to_level: Level, reason: str, at: datetime) -> None:
        """Move the case up: community → street → district. It goes back to the centre."""
        self._check("escalate", actor, at, states=[CaseState.ACCEPTED, CaseState.DISPATCHED, CaseState.IN_PROGRESS],
                    roles=ESCALATORS)  # fmt: skip
        assert self.level is not None
        self._check_goes_up(self.level, to_level)
        self._escalated(
            from_level=self.level,
            to_level=to_level,
            reason=self._check_reason("escalate", reason),
            actor=actor,
            occurred_at=at,
        )

    @event(CaseEscalated)
    def _escalated(
        self, from_level: Level, to_level: Level, reason: str, actor: ActorRef, occurred_at: datetime
    ) -> None:
        self.state = CaseState.ACCEPTED
        self.level = to_level
        self.handler = None
        self.escalations += 1
        self.last_occurred_at = occurred_at

    # -- handling -------------------------------------------------------------

    def extend_deadline(self, actor: ActorRef, resolve_by: datetime, reason: str, at: datetime) -> None:
        """Give the handler more time: resolve-by moves later, never earlier."""
        self._check("extend", actor, at, states=[CaseState.IN_PROGRESS], roles=DISPATCHERS)
        assert self.resolve_by is not None
        self._check_extension(self.resolve_by, resolve_by, at)
        self._extended(resolve_by=resolve_by, reason=self._check_reason("extend", reason), actor=actor, occurred_at=at)

    @event(DeadlineExtended)
    def _extended(self, resolve_by: datetime, reason: str, actor: ActorRef, occurred_at: datetime) -> None:
        self.resolve_by = resolve_by
        self.last_occurred_at = occurred_at

    def suspend(self, actor: ActorRef, reason: str, at: datetime) -> None:
        """Park the case (缓办); the SLA clock stops until it resumes."""
        self._check("suspend", actor, at, states=[CaseState.IN_PROGRESS], roles=DISPATCHERS)
        self._suspended(reason=self._check_reason("suspend", reason), actor=actor, occurred_at=at)

    @event(CaseSuspended)
    def _suspended(self, reason: str, actor: ActorRef, occurred_at: datetime) -> None:
        self.state = CaseState.SUSPENDED
        self.suspended_since = occurred_at
        self.last_occurred_at = occurred_at

    def resume(self, actor: ActorRef, at: datetime) -> None:
        """Restart a parked case; the time it was parked is recorded."""
        self._check("resume", actor, at, states=[CaseState.SUSPENDED], roles=DISPATCHERS)
        assert self.suspended_since is not None
        seconds = int((as_utc(at) - as_utc(self.suspended_since)).total_seconds())
        self._resumed(suspended_seconds=seconds, actor=actor, occurred_at=at)

    @event(CaseResumed)
    def _resumed(self, suspended_seconds: int, actor: ActorRef, occurred_at: datetime) -> None:
        self.state = CaseState.IN_PROGRESS
        self.suspended_since = None
        self.suspended_seconds += suspended_seconds
        self.last_occurred_at = occurred_at

    def note(self, actor: ActorRef, note: str, at: datetime) -> None:
        """Write down progress on an open case."""
        self._check("note", actor, at, states=OPEN_STATES, roles=NOTE_TAKERS)
        self._noted(note=self._check_reason("note", note, "note"), actor=actor, occurred_at=at)

    @event(ProgressNoted)
    def _noted(self, note: str, actor: ActorRef, occurred_at: datetime) -> None:
        self.last_occurred_at = occurred_at

    def resolve(self, actor: ActorRef, result: str, evidence: tuple[str, ...], at: datetime) -> None:
        """The handler reports the matter fixed, with evidence references."""
        self._check("resolve", actor, at, states=[CaseState.IN_PROGRESS], roles=frozenset(Role))
        self._check_is_current_handler("resolve", actor)
        self._resolved(
            result=self._check_reason("resolve", result, "result"),
            evidence=tuple(evidence),
            actor=actor,
            occurred_at=at,
        )

    @event(CaseResolved)
    def _resolved(self, result: str, evidence: tuple[str, ...], actor: ActorRef, occurred_at: datetime) -> None:
        self.state = CaseState.RESOLVED
        self.resolved_by = self.handler
        self.last_occurred_at = occurred_at

    def verify(self, actor: ActorRef, at: datetime) -> None:
        """A grid worker confirms on site that it is fixed."""
        self._check("verify", actor, at, states=[CaseState.RESOLVED], roles=VERIFIERS)
        self._check_is_not_resolver("verify", actor)
        self._verified(actor=actor, occurred_at=at)

    @event(ResolutionVerified)
    def _verified(self, actor: ActorRef, occurred_at: datetime) -> None:
        self.state = CaseState.VERIFIED
        self.last_occurred_at = occurred_at

    def reject_resolution(self, actor: ActorRef, reason: str, at: datetime) -> None:
        """A grid worker finds on site that it is not fixed: back to the handler (返工)."""
        self._check("reject-resolution", actor, at, states=[CaseState.RESOLVED], roles=VERIFIERS)
        self._check_is_not_resolver("reject-resolution", actor)
        self._rework(reason=self._check_reason("reject-resolution", reason), actor=actor, occurred_at=at)

    @event(ResolutionRejected)
    def _rework(self, reason: str, actor: ActorRef, occurred_at: datetime) -> None:
        self.state = CaseState.IN_PROGRESS
        self.last_occurred_at = occurred_at

    # -- closure --------------------------------------------------------------

    def close(self, actor: ActorRef, at: datetime) -> None:
        """The centre closes a verified case (结案)."""
        self._check("close", actor, at, states=[CaseState.VERIFIED], roles=DISPATCHERS)
        self._closed(actor=actor, occurred_at=at)

    @event(CaseClosed)
    def _closed(self, actor: ActorRef, occurred_at: datetime) -> None:
        self.state = CaseState.CLOSED
        self.feedback_recorded = False
        self.last_occurred_at = occurred_at

    def record_feedback(self, actor: ActorRef, satisfaction: Satisfaction, resolved: bool, at: datetime) -> None:
        """Record the callback. "Not resolved" reopens the case: closed is not the same as fixed."""
        self._check("feedback", actor, at, states=[CaseState.CLOSED], roles=CALLBACK)
        if self.feedback_recorded:
            raise self._refuse("feedback", "OneCallbackPerClosure", "feedback for this closure is already recorded")
        self._feedback(satisfaction=satisfaction, resolved=resolved, actor=actor, occurred_at=at)
        if not resolved:
            self._reopened(
                reason="callback: the citizen says it is not resolved",
                actor=CALLBACK_POLICY,
                occurred_at=at,
            )

    @event(CitizenFeedbackRecorded)
    def _feedback(self, satisfaction: Satisfaction, resolved: bool, actor: ActorRef, occurred_at: datetime) -> None:
        self.feedback_recorded = True
        self.last_occurred_at = occurred_at

    def reopen(self, actor: ActorRef, reason: str, at: datetime) -> None:
        """Bring a closed case back to the centre (e.g. after a dissatisfied callback)."""
        self._check("reopen", actor, at, states=[CaseState.CLOSED], roles=DISPATCHERS)
        self._reopened(reason=self._check_reason("reopen", reason), actor=actor, occurred_at=at)

    @event(CaseReopened)
    def _reopened(self, reason: str, actor: ActorRef, occurred_at: datetime) -> None:
        self.state = CaseState.ACCEPTED
        self.handler = None
        self.last_occurred_at = occurred_at
