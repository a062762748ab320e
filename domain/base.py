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
from typing import TYPE_CHECKING, Any, ClassVar, Self
from uuid import UUID, uuid5

from eventsourcing.domain import (
    Aggregate as LibraryAggregate,
)
from eventsourcing.domain import (
    CanInitAggregate,
    CanMutateAggregate,
)
from pydantic import BaseModel, ConfigDict

from domain.bounded import STORED, Code, UtcDatetime, as_utc

if TYPE_CHECKING:
    from pydantic.config import ExtraValues

__all__ = [
    "GRIDCASE_NAMESPACE", "RECORDING_CLOCK", "ActorRef", "Aggregate", "Code", "DomainEvent", "Role", "UtcDatetime",
    "as_utc", "id_for", "upcast_state",
]  # fmt: skip

#: Namespace for ids derived from human-readable codes (case numbers, grid codes…).
GRIDCASE_NAMESPACE = UUID("6c1f0d8e-3a8b-5d7e-9a51-2f0b7c4e9d10")


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

    @classmethod
    def model_validate(
        cls,
        obj: Any,
        *,
        strict: bool | None = None,
        extra: ExtraValues | None = None,
        from_attributes: bool | None = None,
        context: Any | None = None,
        by_alias: bool | None = None,
        by_name: bool | None = None,
    ) -> Self:
        """Read back an event already stored or published: the bounds of input (domain.bounded) are not checked.

        An event written before a bound existed must still load. An aggregate deciding an event constructs
        it (``Event(...)``), which checks every bound.
        """
        stored = {**context, STORED: True} if isinstance(context, dict) else {STORED: True}
        return super().model_validate(
            obj, strict=strict, extra=extra, from_attributes=from_attributes, context=stored, by_alias=by_alias,
            by_name=by_name,
        )  # fmt: skip


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
