"""Personal data in events: the marker the models put on it, and the sealed form the store gives back.

A value whose model derives from :class:`PersonalData` (the reporter's contact today; a party's or a
household's data later) is never stored in clear: the store seals it under a key of that citizen's own
(docs/privacy.md, "How personal data is stored and erased"). Reading an event gives back a :class:`Sealed`
value, pure data: the domain, the projections and the replays never need the clear form and never see a key.
Only the service's ``PersonalVault`` port opens one, and only while the citizen's key exists.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Literal

from eventsourcing.domain import event
from pydantic import BaseModel, ConfigDict, Field

from domain.base import ActorRef, Aggregate, Code, Role, id_for
from domain.bounded import Reason
from domain.errors import CommandRefused

if TYPE_CHECKING:
    from datetime import datetime
    from uuid import UUID

#: What every view shows in place of personal data whose key was erased.
ERASED = "已删除 / erased"


class PersonalData(BaseModel):
    """Marker base of a model that holds one citizen's personal data: the store seals it, always."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def lookups(self) -> dict[str, str]:
        """The values the citizen can be found by (``phone``, ``id_number``), normalised; none by default."""
        return {}


class Sealed(BaseModel):
    """Personal data as stored: which citizen's key sealed it, and the ciphertext (base64 of nonce + AES-GCM)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sealed: Literal["v1"] = "v1"
    subject: Annotated[str, Field(min_length=1, max_length=64)]
    data: Annotated[str, Field(min_length=1, max_length=100_000)]


def is_sealed(value: object) -> bool:
    """Whether a stored JSON value is a sealed object (``{"sealed": "v1", ...}``)."""
    return isinstance(value, dict) and value.get("sealed") == "v1" and "subject" in value and "data" in value


class LookupKind(StrEnum):
    """How an erasure named the citizen."""

    PHONE = "phone"
    ID_NUMBER = "id_number"


#: Who may erase a citizen's personal data.
ERASERS = frozenset({Role.ADMIN})


def erasure_id(subject: str) -> UUID:
    """The aggregate id of the erasure of one citizen's key (one per citizen: an erased key stays erased)."""
    return id_for("personal-data-erasure", subject)


def check_erasure(actor: ActorRef, reason: str) -> None:
    """Refuse an erasure by anyone but an admin, or without a reason (before anything is looked up)."""

    def refuse(rule: str, why: str) -> CommandRefused:
        return CommandRefused(subject="personal data", state="stored", command="person.erase", rule=rule, reason=why)

    if actor.role not in ERASERS:
        raise refuse("OnlyAnAdminErases", f"role {actor.role.value} may not erase personal data (admin only)")
    if not reason.strip():
        raise refuse("ErasureNeedsAReason", "give the reason for the erasure (--reason)")


class Erasure(Aggregate):
    """The record that one citizen's personal data was erased: the fact, never the data."""

    class PersonalDataErased(Aggregate.Created):
        """A citizen's data key was deleted: every sealed value of theirs is unreadable from now on."""

        subject: Annotated[str, Field(min_length=1, max_length=64)]
        lookup: LookupKind
        reason: Reason
        case_numbers: Annotated[tuple[Code, ...], Field(max_length=100_000)]

    @classmethod
    def erase(cls, *, subject: str, lookup: LookupKind, reason: str, case_numbers: tuple[str, ...],
              actor: ActorRef, at: datetime) -> Erasure:  # fmt: skip
        """Record the erasure; only an admin may, and a reason is required."""
        check_erasure(actor, reason)
        created: Erasure = cls._create(
            cls.PersonalDataErased, id=erasure_id(subject), subject=subject, lookup=lookup, reason=reason.strip(),
            case_numbers=case_numbers, actor=actor, occurred_at=at,
        )  # fmt: skip
        return created

    @event(PersonalDataErased)
    def __init__(self, *, subject: str, lookup: LookupKind, reason: str, case_numbers: tuple[str, ...],
                 actor: ActorRef, occurred_at: datetime) -> None:  # fmt: skip
        self.subject = subject
        self.lookup = lookup
        self.reason = reason
        self.case_numbers = case_numbers
        self.erased_by = actor
        self.erased_at = occurred_at
