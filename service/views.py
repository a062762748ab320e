"""What the service answers about the write side: plain values, never aggregates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from domain.case import OPEN_STATES, Case, CaseState
from domain.personal import ERASED, Sealed, is_sealed

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from domain.base import ActorRef
    from domain.case import Channel, HandlerRef, Level, Location, Urgency
    from service.ports import PersonalVault


@dataclass(frozen=True)
class CaseView:
    """A case as it stands now, as plain values."""

    case_number: str
    version: int
    state: CaseState
    channel: Channel
    category: str
    grid: str
    community: str
    street: str
    urgency: Urgency
    location: Location | None
    description: str
    patrol_id: str | None
    reported_by: ActorRef
    reported_at: datetime
    last_occurred_at: datetime
    level: Level | None
    handler: HandlerRef | None
    sign_by: datetime | None
    resolve_by: datetime | None
    sla_policy_version: int | None
    merged_into: str | None
    suspended_since: datetime | None
    suspended_seconds: int
    returns: int
    escalations: int
    resolved_by: HandlerRef | None

    @property
    def is_open(self) -> bool:
        """Whether work on the case can still happen."""
        return self.state in OPEN_STATES

    @classmethod
    def of(cls, case: Case) -> CaseView:
        """The view of a loaded case."""
        return cls(**{name: getattr(case, name) for name in cls.__dataclass_fields__})


def history_rows(
    events: Iterable[Any], *, personal_data: bool, vault: PersonalVault | None = None
) -> list[dict[str, Any]]:
    """Every event of a case, oldest first: type, actor, both clocks and what it carried.

    Personal data is opened through the vault: masked unless ``personal_data``, "erased" once its key is gone.
    """
    rows = []
    for domain_event in events:
        data = cast("Any", domain_event).model_dump(mode="json")
        row = {
            "version": data.pop("originator_version"),
            "event": type(domain_event).__name__,
            "actor": data.pop("actor"),
            "occurred_at": data.pop("occurred_at"),
            "recorded_at": data.pop("timestamp"),
            "data": {k: v for k, v in data.items() if k not in {"originator_id", "originator_topic"}},
        }
        show_personal(row["data"], vault, personal_data=personal_data)
        rows.append(row)
    return rows


#: The fields of stored events that hold personal data (sealed since issue 18, in clear before).
PERSONAL_FIELDS = ("reporter",)


def show_personal(data: dict[str, Any], vault: PersonalVault | None, *, personal_data: bool) -> None:
    """Put the personal values of one event's data (its JSON form) as the viewer may see them, in place.

    A sealed value is opened through the vault: masked, or in clear when ``personal_data``; ``已删除 / erased``
    when its citizen's key was erased (or no vault can open it). A value stored in clear before sealing existed
    is shown the same way (masked or clear): its key cannot be erased, it has none (docs/privacy.md).
    """
    for name in PERSONAL_FIELDS:
        value = data.get(name)
        if not value:
            continue
        if is_sealed(value):
            value = None if vault is None else vault.reveal(Sealed.model_validate(value))
            if value is None:
                data[name] = ERASED
                continue
        data[name] = value if personal_data else mask_contact(value)


def mask_contact(contact: dict[str, str | None]) -> dict[str, str | None]:
    """Personal data as people without the right to it see it: 王*, 139****5678, 3702**********1234."""

    def mask(value: str | None, keep_start: int, keep_end: int) -> str | None:
        if not value:
            return value
        if len(value) <= keep_start + keep_end:
            return value[:1] + "*" * (len(value) - 1)
        return value[:keep_start] + "*" * (len(value) - keep_start - keep_end) + value[len(value) - keep_end :]

    return {
        "name": mask(contact.get("name"), 1, 0),
        "phone": mask(contact.get("phone"), 3, 4),
        "id_number": mask(contact.get("id_number"), 4, 4),
    }
