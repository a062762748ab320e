"""The one batch transaction (projections/batch.py): failing events dead-lettered, a moved checkpoint redone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import BigInteger, Column, MetaData, Table, select

from projections.base import Projection
from projections.batch import Batch, Checkpoint, apply_batch
from projections.events import ProjectedEvent
from projections.runner import StorePositions
from projections.sql import bookkeeping, create_tables, deadletters, make_engine, stored_position

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy import Connection, Engine

seen_metadata = MetaData()
seen = Table("seen", seen_metadata, Column("position", BigInteger, primary_key=True))


class Seen(Projection):
    """Remembers every position it applied; fails on events marked bad."""

    name = "seen"
    metadata = seen_metadata
    handles: ClassVar[frozenset[str]] = frozenset({"Happened"})

    def __init__(self) -> None:
        self.pending: list[int] = []
        self.attempts: list[list[int]] = []

    def prepare(self, connection: Connection, events: list[ProjectedEvent]) -> None:  # noqa: ARG002
        self.attempts.append([event.position for event in events])

    def apply(self, connection: Connection, event: ProjectedEvent) -> None:  # noqa: ARG002
        if event.data.get("bad"):
            msg = f"cannot apply {event.position}"
            raise ValueError(msg)
        self.pending.append(event.position)

    def flush(self, connection: Connection) -> None:
        if self.pending:
            connection.execute(seen.insert(), [{"position": p} for p in self.pending])
        self.pending.clear()

    def discard(self) -> None:
        self.pending.clear()


def event(position: int, kind: str = "Happened", **data: Any) -> ProjectedEvent:
    return ProjectedEvent(position, kind, "Thing", f"id-{position}", 1, data)


def batch_of(*events: ProjectedEvent) -> Batch[int, int]:
    return Batch([(e.position, e) for e in events], events[-1].position, len(events))


def engine_in(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'batch.db'}")
    create_tables(engine, bookkeeping, seen_metadata, seed=lambda c: StorePositions().seed(c, ["seen"]))
    return engine


def applied(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return [row.position for row in connection.execute(select(seen).order_by(seen.c.position))]


def test_a_failing_event_is_dead_lettered_and_the_batch_redone_without_it(tmp_path: Path) -> None:
    engine = engine_in(tmp_path)
    projection = Seen()
    batch = batch_of(event(1), event(2, bad=True), event(3, "Ignored"), event(4, bad=True), event(5))
    count, failures = apply_batch(engine, projection, batch, StorePositions())
    assert (count, [f.place for f in failures]) == (2, [2, 4])
    assert projection.attempts == [[1, 2, 4, 5], [1, 4, 5], [1, 5]], "redone without each failing event"
    assert applied(engine) == [1, 5]
    with engine.connect() as connection:
        assert stored_position(connection, "seen") == 5, "past the batch, the unhandled event included"
        letters = connection.execute(select(deadletters.c.position, deadletters.c.error)).all()
    assert [letter.position for letter in letters] == [2, 4]
    assert all("ValueError: cannot apply" in letter.error for letter in letters)
    # Delivered again: nothing changes.
    assert apply_batch(engine, Seen(), batch, StorePositions()) == (0, [])
    assert applied(engine) == [1, 5]


class Overtaken(Seen):
    """While it folds its first attempt, another runner applies event 1 and moves the position past it."""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine

    def prepare(self, connection: Connection, events: list[ProjectedEvent]) -> None:
        super().prepare(connection, events)
        if len(self.attempts) == 1:
            with self.engine.begin() as other:
                other.execute(seen.insert(), [{"position": 1}])
                StorePositions().advance(other, self.name, 0, 1)


def test_a_checkpoint_moved_meanwhile_redoes_the_batch_from_it(tmp_path: Path) -> None:
    engine = engine_in(tmp_path)
    projection = Overtaken(engine)
    checkpoint: Checkpoint[int, int, int] = StorePositions()
    assert apply_batch(engine, projection, batch_of(event(1), event(2)), checkpoint) == (1, [])
    assert projection.attempts == [[1, 2], [2]]
    assert applied(engine) == [1, 2], "event 1 applied once, by the other runner"
