"""The case's values: its states and lifecycle table, channels, levels, handlers, places, and who may act.

Plain values and constants, beside ``domain.case`` (which re-exports every name): the events stay nested in
``Case``, so their stored topics (``domain.case:Case.CaseReported`` ...) do not change.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field

from domain.base import ActorRef, Code, Role, id_for
from domain.bounded import Address, IdNumber, Phone, ReporterName
from domain.personal import PersonalData

if TYPE_CHECKING:
    from uuid import UUID


class CaseState(StrEnum):
    """Where a case is in its life (DESIGN.md, "Case lifecycle")."""

    REPORTED = "reported"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    MERGED = "merged"
    DISPATCHED = "dispatched"
    IN_PROGRESS = "in_progress"
    SUSPENDED = "suspended"
    RESOLVED = "resolved"
    VERIFIED = "verified"
    CLOSED = "closed"


OPEN_STATES = frozenset(
    {
        CaseState.REPORTED,
        CaseState.ACCEPTED,
        CaseState.DISPATCHED,
        CaseState.IN_PROGRESS,
        CaseState.SUSPENDED,
        CaseState.RESOLVED,
        CaseState.VERIFIED,
    }
)
#: Where work on a case has ended: what Open311 calls ``closed``.
CLOSED_STATES = frozenset(CaseState) - OPEN_STATES
#: Where the deadline clock runs: dispatched to someone and not yet resolved.
CLOCK_STATES = frozenset({CaseState.DISPATCHED, CaseState.IN_PROGRESS, CaseState.SUSPENDED})
#: The state each state-changing event leaves a case in; read models take the lifecycle from here.
STATE_AFTER: dict[str, CaseState] = {
    "CaseAccepted": CaseState.ACCEPTED,
    "CaseRejected": CaseState.REJECTED,
    "DuplicateMerged": CaseState.MERGED,
    "CaseDispatched": CaseState.DISPATCHED,
    "DispatchSigned": CaseState.IN_PROGRESS,
    "DispatchReturned": CaseState.ACCEPTED,
    "CaseEscalated": CaseState.ACCEPTED,
    "CaseSuspended": CaseState.SUSPENDED,
    "CaseResumed": CaseState.IN_PROGRESS,
    "CaseResolved": CaseState.RESOLVED,
    "ResolutionVerified": CaseState.VERIFIED,
    "ResolutionRejected": CaseState.IN_PROGRESS,
    "CaseClosed": CaseState.CLOSED,
    "CaseReopened": CaseState.ACCEPTED,
}


class Channel(StrEnum):
    """How a case came in: one number, one window, many doors."""

    HOTLINE = "hotline"
    WINDOW = "window"
    APP = "app"
    WECHAT = "wechat"
    LETTER_VISIT = "letter_visit"
    PATROL = "patrol"
    SUPERVISION = "supervision"


class Urgency(StrEnum):
    """How fast the case must move; selects the SLA row together with the category's class."""

    NORMAL = "normal"
    URGENT = "urgent"


class Level(StrEnum):
    """Who owns the case: small matters stay in the community, big ones in the street."""

    COMMUNITY = "community"
    STREET = "street"
    DISTRICT = "district"

    @property
    def rank(self) -> int:
        """Order of levels, community lowest."""
        return _LEVEL_RANK[self]


_LEVEL_RANK = {Level.COMMUNITY: 0, Level.STREET: 1, Level.DISTRICT: 2}


class Satisfaction(StrEnum):
    """The citizen's answer on the callback."""

    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    DISSATISFIED = "dissatisfied"


class HandlerKind(StrEnum):
    """A case is dispatched to a grid worker or referred to a department."""

    WORKER = "worker"
    DEPARTMENT = "department"


class HandlerRef(BaseModel):
    """The grid worker or department a case is dispatched to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: HandlerKind
    id: Code

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.id}"


class Location(BaseModel):
    """Where it is: an address, coordinates, or both."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: Address | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None


class ExternalReference(BaseModel):
    """Where an imported case came from: the old system's own id, the import profile, what was odd about the row.

    ``ref`` is the export's id with the profile's prefix (``SF311-3600298``); ``flags`` name the anomalies the
    import found in the row and kept (docs/import.md), so a figure can leave those cases out.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    ref: Code
    source: Code
    flags: Annotated[tuple[Code, ...], Field(max_length=32)] = ()


class ReporterContact(PersonalData):
    """Personal data of the reporter. Never shown publicly, never published in clear, stored sealed."""

    name: ReporterName | None = None
    phone: Phone | None = None
    id_number: IdNumber | None = None

    def lookups(self) -> dict[str, str]:
        """The phone (digits only) and the ID number (upper case), the citizen's handles for erasure."""
        found = {}
        if self.phone:
            found["phone"] = normalise_phone(self.phone)
        if self.id_number:
            found["id_number"] = self.id_number.strip().upper()
        return {kind: value for kind, value in found.items() if value}


def normalise_phone(phone: str) -> str:
    """A phone number as its digits, without a leading +86 / 0086: ``+86 139-1234-5678`` is ``13912345678``."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) == 11:  # noqa: PLR2004 - a mainland mobile
            return digits[len(prefix) :]
    return digits


DISPATCHERS = frozenset({Role.DISPATCHER, Role.ADMIN})
INTAKE = frozenset({Role.INTAKE_OPERATOR, Role.GRID_WORKER, Role.DISPATCHER, Role.ADMIN, Role.SYSTEM})
MERGERS = frozenset({Role.INTAKE_OPERATOR, Role.DISPATCHER, Role.ADMIN})
ESCALATORS = frozenset({Role.DISPATCHER, Role.ADMIN, Role.SYSTEM})
VERIFIERS = frozenset({Role.GRID_WORKER})
CALLBACK = frozenset({Role.CALLBACK_OPERATOR, Role.INTAKE_OPERATOR, Role.DISPATCHER, Role.ADMIN})
#: Reading roles may not write anything on a case.
NOTE_TAKERS = frozenset(set(Role) - {Role.AUDITOR})

#: The actor the domain itself acts as when a policy (not a person) decides.
CALLBACK_POLICY = ActorRef(id="policy:callback-not-resolved", role=Role.SYSTEM)


def case_id(case_number: str) -> UUID:
    """The aggregate id of a case, derived from its number so lookup is one step."""
    return id_for("case", case_number)
