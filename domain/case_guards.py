"""The guards every command on a case passes: state, role, time order, scope, who resolved it, a reason."""

from __future__ import annotations

from typing import TYPE_CHECKING

from domain.base import ActorRef, Role, as_utc
from domain.case_values import INTAKE, OPEN_STATES, CaseState, Channel, HandlerKind, HandlerRef, Level
from domain.errors import CommandRefused

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime


class CaseGuards:
    """The checks of ``Case``'s command methods, mixed into it (no events here: those stay in ``domain.case``)."""

    if TYPE_CHECKING:
        case_number: str
        state: CaseState
        last_occurred_at: datetime
        handler: HandlerRef | None
        resolved_by: HandlerRef | None

    @staticmethod
    def _check_report(case_number: str, channel: Channel, description: str, patrol_id: str | None,
                      actor: ActorRef) -> None:  # fmt: skip
        def refuse(rule: str, reason: str) -> CommandRefused:
            return CommandRefused(subject=f"case {case_number}", state="new", command="report", rule=rule,
                                  reason=reason)  # fmt: skip

        if actor.role not in INTAKE:
            raise refuse("ReportMustComeFromIntake", f"role {actor.role} may not register cases")
        if not description.strip():
            raise refuse("DescriptionMustNotBeEmpty", "the description is empty")
        if (channel is Channel.PATROL) != (patrol_id is not None):
            raise refuse("PatrolFindingMustNamePatrol", "channel patrol goes with a patrol id, and only it")

    def _refuse(self, command: str, rule: str, reason: str) -> CommandRefused:
        return CommandRefused(
            subject=f"case {self.case_number}",
            state=self.state.value,
            command=command,
            rule=rule,
            reason=reason,
        )

    def _check(
        self,
        command: str,
        actor: ActorRef,
        at: datetime,
        *,
        states: Iterable[CaseState],
        roles: frozenset[Role],
    ) -> None:
        allowed = tuple(states)
        if self.state not in allowed:
            wanted = " or ".join(s.value for s in allowed)
            raise self._refuse(command, "CommandNotAllowedInState", f"the case must be {wanted}")
        if actor.role not in roles:
            raise self._refuse(command, "ActorRoleNotAllowed", f"role {actor.role.value} may not {command}")
        if as_utc(at) < as_utc(self.last_occurred_at):
            raise self._refuse(
                command,
                "OccurredAtMustNotPrecedeLastEvent",
                f"occurred_at {at.isoformat()} is before the case's last event ({self.last_occurred_at.isoformat()})",
            )

    def check_department_scope(self, command: str, actor: ActorRef) -> None:
        """A department handler acts only on cases dispatched to their department.

        The service asks this before any command on the case; other roles pass.
        """
        if actor.role is not Role.DEPARTMENT_HANDLER:
            return
        handler = self.handler
        if handler is None or handler.kind is not HandlerKind.DEPARTMENT or handler.id != actor.unit:
            raise self._refuse(
                command,
                "DepartmentHandlerActsOnlyOnItsDepartmentsCases",
                f"case {self.case_number} is not dispatched to department {actor.unit or '(none)'}",
            )

    def _check_is_not_resolver(self, command: str, actor: ActorRef) -> None:
        """The worker who resolved the case does not verify it, nor reject the resolution."""
        resolver = self.resolved_by
        if resolver is not None and resolver.kind is HandlerKind.WORKER and resolver.id == actor.id:
            raise self._refuse(
                command,
                "ResolverDoesNotVerifyTheirOwnResolution",
                f"worker {actor.id} resolved the case; another grid worker checks it on site",
            )

    def _check_is_current_handler(self, command: str, actor: ActorRef) -> None:
        handler = self.handler
        assert handler is not None  # every state that has a handler sets it
        if handler.kind is HandlerKind.WORKER:
            ok = actor.role is Role.GRID_WORKER and actor.id == handler.id
        else:
            ok = actor.role is Role.DEPARTMENT_HANDLER and actor.unit == handler.id
        if not ok:
            raise self._refuse(
                command,
                "OnlyTheCurrentHandlerMayDoThis",
                f"the case is with {handler}, not {actor.role.value} {actor.id}",
            )

    def _check_reason(self, command: str, reason: str, field: str = "reason") -> str:
        text = reason.strip()
        if not text:
            raise self._refuse(command, "ReasonMustBeGiven", f"the {field} is empty")
        return text

    def _check_deadlines(self, sign_by: datetime, resolve_by: datetime, at: datetime) -> None:
        if as_utc(sign_by) <= as_utc(at) or as_utc(resolve_by) <= as_utc(at):
            raise self._refuse("dispatch", "DeadlineMustBeInTheFuture", "a deadline is not after the dispatch")
        if as_utc(resolve_by) < as_utc(sign_by):
            raise self._refuse("dispatch", "ResolveByMustNotPrecedeSignBy", "resolve-by is before sign-by")

    def _check_goes_up(self, level: Level, to_level: Level) -> None:
        if to_level.rank <= level.rank:
            raise self._refuse(
                "escalate",
                "EscalationMustGoUp",
                f"the case is already at {level.value}; {to_level.value} is not above it",
            )

    def _check_extension(self, current: datetime, resolve_by: datetime, at: datetime) -> None:
        if as_utc(resolve_by) <= as_utc(at):
            raise self._refuse("extend", "DeadlineMustBeInTheFuture", f"{resolve_by.isoformat()} is in the past")
        if as_utc(resolve_by) <= as_utc(current):
            raise self._refuse(
                "extend",
                "ExtensionMustMoveDeadlineLater",
                f"{resolve_by.isoformat()} is not after the current {current.isoformat()}",
            )

    # -- reading --------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether work on the case can still happen."""
        return self.state in OPEN_STATES
