"""Base classes shared by every aggregate: pydantic events on the eventsourcing library.

Events are frozen pydantic models. Each event type may declare ``class_version``
(a ``ClassVar[int]``); when a stored event has an older version the mapper calls
``upcast_vN_vN+1(state)`` static methods in turn until it reaches the current one.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, ClassVar
from uuid import UUID, uuid5

from eventsourcing.domain import (
    Aggregate as LibraryAggregate,
)
from eventsourcing.domain import (
    CanInitAggregate,
    CanMutateAggregate,
)
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, StringConstraints

#: Namespace for ids derived from human-readable codes (case numbers, grid codes…).
GRIDCASE_NAMESPACE = UUID("6c1f0d8e-3a8b-5d7e-9a51-2f0b7c4e9d10")


def as_utc(moment: datetime) -> datetime:
    """Normalise an aware datetime to UTC for comparisons and storage."""
    return moment.astimezone(UTC)


#: An aware moment, stored in UTC so every copy of an event reads the same.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(as_utc)]

Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


@lru_cache(maxsize=65_536)  # pure, and asked many times per command (a batch of imports asks the same ones)
def id_for(kind: str, code: str) -> UUID:
    """The aggregate id of a thing known by a human-readable code, found in one step."""
    return uuid5(GRIDCASE_NAMESPACE, f"{kind}:{code}")


class Role(StrEnum):
    """Who an actor is acting as; permissions are decided on this."""

    GRID_WORKER = "grid_worker"
    INTAKE_OPERATOR = "intake_operator"
    DISPATCHER = "dispatcher"
    DEPARTMENT_HANDLER = "department_handler"
    CALLBACK_OPERATOR = "callback_operator"
    AUDITOR = "auditor"
    ADMIN = "admin"
    SYSTEM = "system"


class ActorRef(BaseModel):
    """The person or process that issued a command: an id, the role acted in, and a unit.

    ``unit`` is the department code for department handlers (so anyone on the
    department's desk can sign for a referral to it), otherwise optional.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Code
    role: Role
    unit: Code | None = None


class DomainEvent(BaseModel):
    """A fact that happened: immutable, validated, versioned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    class_version: ClassVar[int] = 1

    originator_id: UUID
    originator_version: int
    #: ``recorded_at``: set by the library when the command decided the event, just before it is written.
    #: Store order is the notification position; this clock can trail it by the length of one write.
    timestamp: datetime


#: Where ``recorded_at`` comes from. The engine's own clock in production; a simulation or a
#: migration replaying a past day sets its own, so "as we knew it at T" means its T.
RECORDING_CLOCK: ContextVar[Callable[[], datetime]] = ContextVar("RECORDING_CLOCK", default=lambda: datetime.now(UTC))


class Aggregate(LibraryAggregate):
    """Aggregate base whose events are pydantic models carrying actor and ``occurred_at``."""

    class Event(DomainEvent, CanMutateAggregate[UUID]):
        """Base event of every aggregate: who caused it and when it happened."""

        @staticmethod
        def create_timestamp() -> datetime:
            """The recording clock's now (the library calls this for ``timestamp``)."""
            return RECORDING_CLOCK.get()()

        actor: ActorRef
        #: When it happened, as told by the command (may be hours before recording).
        occurred_at: UtcDatetime

    class Created(Event, CanInitAggregate[UUID]):
        """Base "created" event of every aggregate."""

        originator_topic: str


def upcast_state(cls: type, state: dict[str, Any]) -> None:
    """Bring a stored event's state up to its class's current version, in place.

    An event type at ``class_version`` N > 1 has static methods
    ``upcast_v1_v2(state)`` … ``upcast_vN-1_vN(state)``; a stored state without
    ``class_version`` is version 1.
    """
    current = getattr(cls, "class_version", 1)
    version = state.pop("class_version", 1)
    while version < current:
        getattr(cls, f"upcast_v{version}_v{version + 1}")(state)
        version += 1
