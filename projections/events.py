"""Stored events as projections see them: plain dicts, upcast, with their store position."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from eventsourcing.utils import resolve_topic

from domain.base import upcast_state

if TYPE_CHECKING:
    from eventsourcing.persistence import Notification


@dataclass(frozen=True, slots=True)
class ProjectedEvent:
    """One stored event: where it sits in the global order, what it is, and what it carried."""

    position: int
    type: str
    aggregate: str
    #: The aggregate id as text (the form read models store it in).
    originator_id: str
    version: int
    data: dict[str, Any]

    @property
    def occurred_at(self) -> datetime:
        """When it happened."""
        return parse_time(self.data["occurred_at"])

    @property
    def recorded_at(self) -> datetime:
        """When it was recorded."""
        return parse_time(self.data["timestamp"])

    @property
    def actor(self) -> dict[str, Any]:
        """Who did it: id, role, unit."""
        actor: dict[str, Any] = self.data["actor"]
        return actor


@lru_cache(maxsize=256)
def _topic(topic: str) -> tuple[type, str, str]:
    cls = resolve_topic(topic)
    aggregate, _, name = topic.partition(":")[2].rpartition(".")
    return cls, aggregate, name


def decode(notification: Notification) -> ProjectedEvent:
    """Decode and upcast a stored event (no model validation: the store only holds valid events)."""
    return projected(
        notification.id,
        notification.topic,
        str(notification.originator_id),
        notification.originator_version,
        json.loads(notification.state),
    )


def projected(position: int, topic: str, originator_id: str, version: int, data: dict[str, Any]) -> ProjectedEvent:
    """An event's stored JSON object (``data``, upcast in place) as projections see it."""
    cls, aggregate, name = _topic(topic)
    if "class_version" in data or getattr(cls, "class_version", 1) > 1:
        upcast_state(cls, data)
    return ProjectedEvent(
        position=position, type=name, aggregate=aggregate, originator_id=originator_id, version=version, data=data
    )


def parse_time(text: str) -> datetime:
    """An ISO time as stored (UTC, with Z)."""
    return datetime.fromisoformat(text)
