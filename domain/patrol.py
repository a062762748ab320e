"""The patrol: a grid worker walking their grid, visiting households and inspecting places."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from eventsourcing.domain import event

from domain.base import ActorRef, Aggregate, Code, Role, as_utc, id_for
from domain.bounded import Checkpoints, Distance, Notes, PatrolSeconds
from domain.bounds import CHECKPOINTS_MAX, PATROL_SECONDS_MAX
from domain.errors import CommandRefused

if TYPE_CHECKING:
    from datetime import datetime
    from uuid import UUID


class PatrolState(StrEnum):
    """A patrol is walking or done."""

    STARTED = "started"
    ENDED = "ended"


class CheckpointKind(StrEnum):
    """What a checkpoint was: a household visit or a place inspected."""

    HOUSEHOLD_VISIT = "household_visit"
    PLACE_INSPECTION = "place_inspection"


def patrol_id(patrol_number: str) -> UUID:
    """The aggregate id of a patrol, derived from its number."""
    return id_for("patrol", patrol_number)


class Patrol(Aggregate):
    """A grid worker's walk through their grid (巡查), with its checkpoints."""

    class PatrolStarted(Aggregate.Created):
        """A worker starts walking a grid."""

        patrol_number: Code
        worker: Code
        grid: Code
        community: Code
        street: Code

    class PatrolCheckpointLogged(Aggregate.Event):
        """A household visited or a place inspected on the way."""

        kind: CheckpointKind
        target: Code
        notes: Notes = ""
        elderly_visit: bool = False

    class PatrolEnded(Aggregate.Event):
        """The walk is over: how long it took and how far it went."""

        duration_seconds: PatrolSeconds
        distance_m: Distance
        checkpoints: Checkpoints

    @classmethod
    def start(
        cls, *, patrol_number: str, worker: str, grid: str, community: str, street: str, actor: ActorRef, at: datetime
    ) -> Patrol:
        """A worker starts a patrol of a grid; only they (or an import) may log it."""
        if actor.role not in {Role.GRID_WORKER, Role.SYSTEM, Role.ADMIN} or (
            actor.role is Role.GRID_WORKER and actor.id != worker
        ):
            raise CommandRefused(
                subject=f"patrol {patrol_number}",
                state="new",
                command="patrol-start",
                rule="PatrolIsLoggedByItsWorker",
                reason=f"{actor.role.value} {actor.id} may not start a patrol for worker {worker}",
            )
        created: Patrol = cls(
            id=patrol_id(patrol_number),
            patrol_number=patrol_number,
            worker=worker,
            grid=grid,
            community=community,
            street=street,
            actor=actor,
            occurred_at=at,
        )
        return created

    @event(PatrolStarted)
    def __init__(
        self,
        *,
        id: UUID,  # noqa: A002 - the library wants it named so
        patrol_number: str,
        worker: str,
        grid: str,
        community: str,
        street: str,
        actor: ActorRef,
        occurred_at: datetime,
    ) -> None:
        self.patrol_number = patrol_number
        self.worker = worker
        self.grid = grid
        self.community = community
        self.street = street
        self.started_at = occurred_at
        self.ended_at: datetime | None = None
        self.last_occurred_at = occurred_at
        self.state = PatrolState.STARTED
        self.checkpoints = 0

    def _refuse(self, command: str, rule: str, reason: str) -> CommandRefused:
        return CommandRefused(
            subject=f"patrol {self.patrol_number}", state=self.state.value, command=command, rule=rule, reason=reason
        )

    def _check_logged_by_its_worker(self, command: str, actor: ActorRef) -> None:
        if actor.role not in {Role.GRID_WORKER, Role.SYSTEM, Role.ADMIN} or (
            actor.role is Role.GRID_WORKER and actor.id != self.worker
        ):
            raise self._refuse(command, "PatrolIsLoggedByItsWorker", f"the patrol is {self.worker}'s, not {actor.id}'s")

    def _check_within(self, command: str, at: datetime) -> None:
        """What is found on a patrol happens while it is under way: not before it started, not after it ended."""
        before = as_utc(at) < as_utc(self.started_at)
        after = self.ended_at is not None and as_utc(at) > as_utc(self.ended_at)
        if before or after:
            ended = f" and ended {self.ended_at.isoformat()}" if self.ended_at is not None else ""
            raise self._refuse(
                command,
                "PatrolFindingsHappenWithinThePatrol",
                f"{at.isoformat()} is outside the patrol (started {self.started_at.isoformat()}{ended})",
            )

    def check_finding(self, actor: ActorRef, at: datetime, command: str = "patrol.hazard") -> None:
        """A hazard found on this patrol: reported by its worker, found while the patrol was under way."""
        self._check_logged_by_its_worker(command, actor)
        self._check_within(command, at)

    def _check(self, command: str, actor: ActorRef, at: datetime) -> None:
        def refuse(rule: str, reason: str) -> CommandRefused:
            return self._refuse(command, rule, reason)

        if self.state is not PatrolState.STARTED:
            raise refuse("CommandNotAllowedInState", "the patrol must be started")
        self._check_logged_by_its_worker(command, actor)
        if command == "patrol-checkpoint":
            self._check_within(command, at)
        if as_utc(at) < as_utc(self.last_occurred_at):
            raise refuse(
                "OccurredAtMustNotPrecedeLastEvent",
                f"occurred_at {at.isoformat()} is before the patrol's last event ({self.last_occurred_at.isoformat()})",
            )

    def log_checkpoint(
        self, actor: ActorRef, kind: CheckpointKind, target: str, notes: str, elderly_visit: bool, at: datetime
    ) -> None:
        """Log a household visit (敲门行动 when it is an elderly visit) or a place inspected."""
        self._check("patrol-checkpoint", actor, at)
        if elderly_visit and kind is not CheckpointKind.HOUSEHOLD_VISIT:
            raise CommandRefused(
                subject=f"patrol {self.patrol_number}",
                state=self.state.value,
                command="patrol-checkpoint",
                rule="ElderlyVisitIsAHouseholdVisit",
                reason="an elderly visit must be a household visit",
            )
        if self.checkpoints >= CHECKPOINTS_MAX:
            raise self._refuse(
                "patrol-checkpoint",
                "PatrolHasAtMostSoManyCheckpoints",
                f"the patrol already has {self.checkpoints:,} checkpoints, the most one patrol may log",
            )
        self._checkpoint(
            kind=kind, target=target, notes=notes, elderly_visit=elderly_visit, actor=actor, occurred_at=at
        )

    @event(PatrolCheckpointLogged)
    def _checkpoint(
        self, kind: CheckpointKind, target: str, notes: str, elderly_visit: bool, actor: ActorRef, occurred_at: datetime
    ) -> None:
        self.checkpoints += 1
        self.last_occurred_at = occurred_at

    def end(self, actor: ActorRef, distance_m: int, at: datetime) -> None:
        """End the patrol; its duration is the time since it started."""
        self._check("patrol-end", actor, at)
        duration = int((as_utc(at) - as_utc(self.started_at)).total_seconds())
        if duration > PATROL_SECONDS_MAX:
            raise self._refuse(
                "patrol-end",
                "PatrolLastsAtMostAYear",
                f"it would have lasted {duration // 86400:,} days (started {self.started_at.isoformat()}); "
                f"a patrol lasts at most {PATROL_SECONDS_MAX // 86400} days",
            )
        self._ended(
            duration_seconds=duration, distance_m=distance_m, checkpoints=self.checkpoints, actor=actor, occurred_at=at
        )

    @event(PatrolEnded)
    def _ended(
        self, duration_seconds: int, distance_m: int, checkpoints: int, actor: ActorRef, occurred_at: datetime
    ) -> None:
        self.state = PatrolState.ENDED
        self.ended_at = occurred_at
        self.last_occurred_at = occurred_at
