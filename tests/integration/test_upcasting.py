"""Old events load as the current version: the mapper upcasts them on the way in.

``Gizmo`` is the aggregate as the code has it today: ``Made`` is at version 2
(it gained ``colour``), ``Tagged`` at version 3 (it gained ``note``, then
``label`` was renamed ``tag``). ``MadeV1`` and ``TaggedV1`` are the same events
as the first version of the code defined them. Rows written by that old code
carry the topic the classes still have, so that is the topic they are stored
under. The library refuses to bind one class name twice in a module, so every
class here is defined once, at module level.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import event
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from adapters.store import upcast_state
from domain.base import ActorRef, Aggregate, Role
from domain.case import case_id
from tests.support import report, seed_small_district

if TYPE_CHECKING:
    from tests.support import App

ACTOR = ActorRef(id="migrator", role=Role.SYSTEM)
AT = datetime(2021, 6, 1, 9, 0, tzinfo=UTC)


class Gizmo(Aggregate):
    """A test aggregate whose events have been through schema changes."""

    class Made(Aggregate.Created):
        """Version 2 added ``colour``; old gizmos were grey."""

        class_version: ClassVar[int] = 2

        name: str
        colour: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["colour"] = "grey"

    class Tagged(Aggregate.Event):
        """Version 2 added ``note``; version 3 renamed ``label`` to ``tag``."""

        class_version: ClassVar[int] = 3

        tag: str
        note: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["note"] = ""

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["tag"] = state.pop("label")

    class Noted(Aggregate.Event):
        """Never changed: still version 1."""

        text: str

    @classmethod
    def make(cls, name: str, colour: str) -> Gizmo:
        """A new gizmo."""
        return cls(id=uuid4(), name=name, colour=colour, actor=ACTOR, occurred_at=AT)

    @event(Made)
    def __init__(self, *, id: UUID, name: str, colour: str, actor: ActorRef, occurred_at: datetime) -> None:  # noqa: A002, ARG002
        self.name = name
        self.colour = colour
        self.tags: list[tuple[str, str]] = []
        self.notes: list[str] = []

    def tag(self, tag: str, note: str) -> None:
        """Tag the gizmo."""
        self._tagged(tag=tag, note=note, actor=ACTOR, occurred_at=AT)

    @event(Tagged)
    def _tagged(self, tag: str, note: str, actor: ActorRef, occurred_at: datetime) -> None:  # noqa: ARG002
        self.tags.append((tag, note))

    def note(self, text: str) -> None:
        """Write something down."""
        self._noted(text=text, actor=ACTOR, occurred_at=AT)

    @event(Noted)
    def _noted(self, text: str, actor: ActorRef, occurred_at: datetime) -> None:  # noqa: ARG002
        self.notes.append(text)


class MadeV1(Aggregate.Created):
    """``Gizmo.Made`` as version 1 of the code defined it."""

    name: str


class TaggedV1(Aggregate.Event):
    """``Gizmo.Tagged`` as version 1 of the code defined it."""

    label: str


#: Where the old code's rows are stored: under the topics those classes still have.
TOPIC_TODAY = {MadeV1: Gizmo.Made, TaggedV1: Gizmo.Tagged}


def store_as_old_code(app: App, *events: Any) -> None:
    """Write events the way version 1 of the code did: the real mapper, the real recorder."""
    rows = [replace(app.store.mapper.to_stored_event(e), topic=get_topic(TOPIC_TODAY[type(e)])) for e in events]
    app.store.recorder.insert_events(rows)


def old_gizmo(gizmo_id: UUID, name: str, *labels: str) -> list[Any]:
    """The events of a gizmo made and tagged by version 1 of the code."""
    made = MadeV1(
        originator_id=gizmo_id,
        originator_version=1,
        timestamp=datetime.now(UTC),
        actor=ACTOR,
        occurred_at=AT,
        originator_topic=get_topic(Gizmo),
        name=name,
    )
    tagged = [
        TaggedV1(
            originator_id=gizmo_id,
            originator_version=n,
            timestamp=datetime.now(UTC),
            actor=ACTOR,
            occurred_at=AT,
            label=label,
        )
        for n, label in enumerate(labels, start=2)
    ]
    return [made, *tagged]


def raw_states(app: App, aggregate_id: UUID) -> list[dict[str, Any]]:
    """The JSON the store holds for an aggregate, as written."""
    return [json.loads(row.state) for row in app.store.recorder.select_events(aggregate_id)]


def test_events_stored_under_version_1_load_as_the_current_version(app: App) -> None:
    gizmo_id = uuid4()
    store_as_old_code(app, *old_gizmo(gizmo_id, "水表井", "blue", "校准"))

    states = raw_states(app, gizmo_id)
    assert all("class_version" not in state for state in states), "version 1 rows carry no version"
    assert "colour" not in states[0]
    assert [state.get("label") for state in states[1:]] == ["blue", "校准"]

    made, *tagged = app.store.events.get(gizmo_id)
    assert type(made) is Gizmo.Made
    assert (made.name, made.colour) == ("水表井", "grey")
    assert [type(e) for e in tagged] == [Gizmo.Tagged, Gizmo.Tagged]
    assert [(e.tag, e.note) for e in tagged] == [("blue", ""), ("校准", "")]
    assert [e.originator_version for e in tagged] == [2, 3]

    gizmo = app.store.repository.get(gizmo_id)
    assert isinstance(gizmo, Gizmo)
    assert (gizmo.name, gizmo.colour, gizmo.tags, gizmo.version) == ("水表井", "grey", [("blue", ""), ("校准", "")], 3)


def test_an_upcast_aggregate_carries_on_and_its_new_events_are_stored_at_their_version(app: App) -> None:
    gizmo_id = uuid4()
    store_as_old_code(app, *old_gizmo(gizmo_id, "old", "a"))

    gizmo = app.store.repository.get(gizmo_id)
    gizmo.tag("b", "after the migration")
    gizmo.note("unchanged event")
    app.store.save(gizmo)

    states = raw_states(app, gizmo_id)
    assert [state.get("class_version") for state in states] == [None, None, 3, None]
    assert states[2]["tag"] == "b"
    assert "label" not in states[2]
    reloaded = app.store.repository.get(gizmo_id)
    assert reloaded.tags == [("a", ""), ("b", "after the migration")]
    assert reloaded.notes == ["unchanged event"]
    assert reloaded.version == 4


def test_a_row_at_a_middle_version_is_upcast_only_from_there(app: App) -> None:
    gizmo_id = uuid4()
    store_as_old_code(app, *old_gizmo(gizmo_id, "old"))
    # A row written while Tagged was at version 2: it already has a note, still says "label".
    state = {
        "actor": ACTOR.model_dump(mode="json"),
        "occurred_at": "2021-06-01T17:00:00+08:00",
        "timestamp": "2021-06-01T09:00:00+00:00",
        "label": "v2",
        "note": "written by v2",
        "class_version": 2,
    }
    app.store.recorder.insert_events(
        [
            StoredEvent(
                originator_id=gizmo_id,
                originator_version=2,
                topic=get_topic(Gizmo.Tagged),
                state=json.dumps(state).encode(),
            )
        ]
    )
    _, tagged = app.store.events.get(gizmo_id)
    assert (tagged.tag, tagged.note) == ("v2", "written by v2")
    assert tagged.occurred_at == datetime(2021, 6, 1, 9, 0, tzinfo=UTC)


def test_the_mapper_writes_class_version_only_above_1(app: App) -> None:
    gizmo = Gizmo.make("new", "red")
    gizmo.note("v1 event")
    gizmo.tag("t", "v3 event")
    app.store.save(gizmo)
    assert [s.get("class_version") for s in raw_states(app, gizmo.id)] == [2, None, 3]
    assert "class_version" not in raw_states(app, gizmo.id)[1]
    assert app.store.repository.get(gizmo.id).colour == "red", "a current row is not upcast again"

    # The real domain's events are all at version 1 today: none carries the key.
    seed_small_district(app)
    number = report(app)
    assert all("class_version" not in s for s in raw_states(app, case_id(number)))
    notifications = app.store.recorder.select_notifications(start=1, limit=1000)
    gizmo_topics = {get_topic(cls) for cls in (Gizmo.Made, Gizmo.Tagged)}
    for notification in notifications:
        has_version = "class_version" in json.loads(notification.state)
        assert has_version == (notification.topic in gizmo_topics), notification.topic


def test_upcast_state_applies_each_step_in_turn() -> None:
    state: dict[str, Any] = {"label": "x"}
    upcast_state(Gizmo.Tagged, state)
    assert state == {"note": "", "tag": "x"}
    current = {"tag": "y", "note": "n", "class_version": 3}
    upcast_state(Gizmo.Tagged, current)
    assert current == {"tag": "y", "note": "n"}, "the version key is consumed, nothing else changes"
    unchanged: dict[str, Any] = {"text": "t"}
    upcast_state(Gizmo.Noted, unchanged)
    assert unchanged == {"text": "t"}


@pytest.mark.parametrize("cls", [Gizmo.Made, Gizmo.Tagged])
def test_every_version_step_has_its_upcaster(cls: type) -> None:
    current: int = cls.class_version  # type: ignore[attr-defined]
    assert all(callable(getattr(cls, f"upcast_v{v}_v{v + 1}", None)) for v in range(1, current))
