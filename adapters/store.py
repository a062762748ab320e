"""The event store: the library's SQLite or PostgreSQL recorder, chosen by the database URL."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, Mapper, Notification, StoredEvent, Transcoder
from eventsourcing.utils import get_topic, resolve_topic

from adapters.personal import STAGED, Vault
from domain.base import upcast_state
from domain.personal import PersonalData

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from uuid import UUID

    from eventsourcing.domain import DomainEventProtocol
    from eventsourcing.persistence import Notification
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
    """Maps pydantic events to stored rows and back, upcasting old versions on the way in.

    A field holding personal data (a ``domain.personal.PersonalData`` value) is stored sealed under its citizen's
    key (adapters/personal.py) and read back as a ``Sealed`` value, never opened here. The mapper only stages it
    (a placeholder in the JSON): the recorder seals it in the write's transaction, where the key is looked up.
    """

    def __init__(self, transcoder: Transcoder, vault: Vault | None = None) -> None:
        super().__init__(transcoder=transcoder)
        self.vault = vault

    def to_stored_event(self, domain_event: DomainEventProtocol[Any]) -> StoredEvent:
        """Store the event's JSON form, tagged with its class version when above 1, personal data sealed."""
        state = cast("BaseModel", domain_event).model_dump(mode="json", exclude=set(_META))
        if self.vault is not None:
            for name, value in vars(domain_event).items():
                if isinstance(value, PersonalData):
                    state[name] = self.vault.seal(value, str(domain_event.originator_id))
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
    """The library's application, with the pydantic mapper and JSON transcoder: the service's event store."""

    name = "gridcase"

    def __init__(self, env: dict[str, str], vault: Vault | None = None) -> None:
        self.vault = vault
        super().__init__(env=env)
        if vault is not None:
            vault.recorder = self.recorder

    def construct_mapper(self) -> Mapper[Any]:
        """Pydantic events, compact JSON, personal data sealed."""
        return PydanticMapper(transcoder=JsonTranscoder(), vault=self.vault)

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """Store the aggregates' pending events in one transaction.

        A lost race (another writer stored the next version of one of them first) raises the library's
        ``IntegrityError`` as before, but saying which aggregate and what to do, not the database's words
        ("UNIQUE constraint failed: …", "duplicate key value …").
        """
        expected = {
            obj.id: (obj, obj.pending_events[0].originator_version)
            for obj in objs
            if obj is not None and getattr(obj, "pending_events", None)
        }
        try:
            return super().save(*objs, **kwargs)
        except IntegrityError as error:
            raise IntegrityError(self._clash(expected)) from error
        finally:
            STAGED.set(None)  # the key rows staged for this write went with it, or are gone with it

    def _clash(self, expected: dict[Any, tuple[Any, int]]) -> str:
        """Which of the aggregates someone else changed meanwhile, in words."""
        clashed = []
        for aggregate_id, (aggregate, first_new) in expected.items():
            stored = self.recorder.select_events(aggregate_id, desc=True, limit=1)
            if stored and stored[0].originator_version >= first_new:
                clashed.append(f"{subject(aggregate)} (now at version {stored[0].originator_version})")
        if not clashed:  # gone by the time we looked: name them all
            clashed = [subject(aggregate) for aggregate, _ in expected.values()]
        return f"{' and '.join(clashed) or 'the aggregate'} was changed by someone else meanwhile; try again"

    def get(self, aggregate_id: UUID) -> Any:
        """The aggregate as its stored events left it."""
        return self.repository.get(aggregate_id, projector_func=replay_events)

    def exists(self, aggregate_id: UUID) -> bool:
        """Whether any event was ever stored for this id (one indexed lookup)."""
        return bool(self.recorder.select_events(aggregate_id, limit=1))

    def events_of(self, aggregate_id: UUID) -> Iterable[Any]:
        """Every stored event of one aggregate, oldest first, upcast to today's versions."""
        return self.events.get(aggregate_id)


#: How a message names each kind of aggregate.
_KINDS = {"Case": "case", "Patrol": "patrol", "OrgUnit": "org unit", "Worker": "worker", "Category": "category",
          "SlaPolicy": "the SLA policy", "HolidayCalendar": "the holiday calendar"}  # fmt: skip


def subject(aggregate: Any) -> str:
    """An aggregate as people know it: ``case SN-20210601-000001``, ``worker W00001``, ``the SLA policy``."""
    kind = _KINDS.get(type(aggregate).__name__, type(aggregate).__name__)
    for name in ("case_number", "patrol_number", "code"):
        value = getattr(aggregate, name, None)
        if isinstance(value, str):
            return f"{kind} {value}"
    return kind


def replay_events(aggregate: Any, events: Iterable[Any]) -> Any:
    """Rebuild an aggregate from its events.

    The library's default projector asserts each event against a run-time
    Protocol, which costs a quarter of a command's time; our events are all
    the aggregate's own, so we apply them directly.
    """
    for domain_event in events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate


class StoreReader:
    """Reads the store's notification log: one global, gap-free order of every stored event."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder

    def read(self, after: int, limit: int, *, stop: int | None = None,
             topics: Sequence[str] = ()) -> Sequence[Notification]:  # fmt: skip
        """Up to ``limit`` notifications after position ``after`` (up to ``stop``, of ``topics``), in store order."""
        found: Sequence[Notification] = self.recorder.select_notifications(
            start=after, limit=limit, stop=stop, topics=topics, inclusive_of_start=False
        )
        return found

    def fetch(self, position: int) -> Notification | None:
        """The stored event at exactly this position, if there is one."""
        found = self.recorder.select_notifications(start=position, limit=1)
        return found[0] if found and found[0].id == position else None

    def last_position(self) -> int:
        """The position of the newest stored event (0 for an empty store)."""
        return int(self.recorder.max_notification_id() or 0)

    def first_event(self, aggregate_id: UUID) -> StoredEvent | None:
        """The first stored row of one aggregate (its creation), if any."""
        found = self.recorder.select_events(aggregate_id, limit=1)
        return found[0] if found else None

    def events_of(self, aggregate_id: UUID) -> Sequence[StoredEvent]:
        """The stored rows of one aggregate, oldest first."""
        found: Sequence[StoredEvent] = self.recorder.select_events(aggregate_id)
        return found
