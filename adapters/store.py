"""The event store: the library's SQLite or PostgreSQL recorder, chosen by the database URL."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from eventsourcing.application import Application
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic, resolve_topic

from domain.base import upcast_state

if TYPE_CHECKING:
    from collections.abc import Sequence
    from uuid import UUID

    from eventsourcing.domain import DomainEventProtocol
    from eventsourcing.persistence import ApplicationRecorder, Notification
    from pydantic import BaseModel

    from adapters.settings import Settings

_META = ("originator_id", "originator_version")


class JsonTranscoder(Transcoder):
    """Compact UTF-8 JSON; pydantic has already turned everything into JSON types."""

    def encode(self, obj: Any) -> bytes:
        """Serialise a JSON-ready value."""
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()

    def decode(self, data: bytes) -> Any:
        """Parse stored JSON."""
        return json.loads(data)

    def register(self, transcoding: object) -> None:  # pragma: no cover - pydantic does this job
        """Transcodings are not used: pydantic models define the JSON form."""
        msg = "register transcodings on the pydantic models instead"
        raise NotImplementedError(msg)


class PydanticMapper(Mapper[Any]):
    """Maps pydantic events to stored rows and back, upcasting old versions on the way in."""

    def to_stored_event(self, domain_event: DomainEventProtocol[Any]) -> StoredEvent:
        """Store the event's JSON form, tagged with its class version when above 1."""
        state = cast("BaseModel", domain_event).model_dump(mode="json", exclude=set(_META))
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=get_topic(type(domain_event)),
            state=self.transcoder.encode(state),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[Any]:
        """Rebuild the event, calling ``upcast_vN_vN+1`` for each version it is behind."""
        cls = resolve_topic(stored_event.topic)
        state: dict[str, Any] = self.transcoder.decode(stored_event.state)
        upcast_state(cls, state)
        state["originator_id"] = stored_event.originator_id
        state["originator_version"] = stored_event.originator_version
        return cast("DomainEventProtocol[Any]", cls.model_validate(state))


def store_env(settings: Settings) -> dict[str, str]:
    """The library's environment variables for the configured database."""
    path = settings.sqlite_path
    if path is not None:
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "APPLICATION_RECORDER_TOPIC": "adapters.chained:ChainedSQLiteApplicationRecorder",
            "SQLITE_DBNAME": str(path),
            "SQLITE_LOCK_TIMEOUT": "30",
        }
    url = urlsplit(settings.database_url)
    query = parse_qs(url.query)
    host = query.get("host", [url.hostname or "localhost"])[0]
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "APPLICATION_RECORDER_TOPIC": "adapters.chained:ChainedPostgresApplicationRecorder",
        "POSTGRES_DBNAME": url.path.lstrip("/") or "postgres",
        "POSTGRES_HOST": host,
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": unquote(url.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(url.password or ""),
        "POSTGRES_POOL_SIZE": "10",
        "POSTGRES_MAX_OVERFLOW": "10",
    }


class EventStoreApplication(Application[Any]):
    """The library's application, with the pydantic mapper and JSON transcoder."""

    name = "gridcase"

    def construct_mapper(self) -> Mapper[Any]:
        """Pydantic events, compact JSON."""
        return PydanticMapper(transcoder=JsonTranscoder())

    def exists(self, aggregate_id: UUID) -> bool:
        """Whether any event was ever stored for this id (one indexed lookup)."""
        return bool(self.recorder.select_events(aggregate_id, limit=1))


class StoreReader:
    """Reads the store's notification log and an aggregate's events: what a client of the engine may read."""

    def __init__(self, recorder: ApplicationRecorder) -> None:
        self._recorder = recorder

    def read(self, after: int, limit: int) -> Sequence[Notification]:
        """Up to ``limit`` notifications after position ``after``, in order."""
        return self._recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False)

    def last_position(self) -> int:
        """The position of the last notification (0 for an empty store)."""
        return int(self._recorder.max_notification_id() or 0)

    def fetch(self, position: int) -> Notification | None:
        """The notification at exactly this position, or None."""
        found = self._recorder.select_notifications(start=position, limit=1)
        return found[0] if found and found[0].id == position else None

    def events_of(self, aggregate_id: UUID) -> Sequence[StoredEvent]:
        """Every stored event of one aggregate, oldest first."""
        return self._recorder.select_events(aggregate_id)
