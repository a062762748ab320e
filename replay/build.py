"""Projections built from position zero beside the live ones: rebuilds with an atomic swap, and the determinism check.

A build runs the ordinary runner (projections/runner.py) over a source
(replay/source.py) into *scratch* tables that have the live tables' names but
live elsewhere, so the projections' own code and queries work on them
unchanged:

- on PostgreSQL, a schema of the same database (``replay_scratch``), reached
  through the connection's ``search_path``; the swap moves the rebuilt tables
  into the live schema (``ALTER TABLE … SET SCHEMA``) and drops the old ones,
  in one transaction;
- on SQLite, a file beside the database (``gridcase.db.replay``); a SQLite
  file cannot hand a table to another, so the swap drops the live tables and
  copies the rebuilt rows in (``INSERT … SELECT`` from the attached file), in
  one transaction.

Either way readers see the old tables until the swap commits and the new ones
after it, never a mix; the projection's position and dead letters move with
its tables.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import String, Table, create_engine, delete, event, func, select

from projections import lease
from projections.catalogue import FACTORIES, make_projections
from projections.runner import LeaseHeld, Runner, RunStats
from projections.sql import (
    bookkeeping,
    create_tables,
    deadletters,
    make_engine,
    positions,
    projection_versions,
    stored_position,
    upsert,
)
from replay.source import up_to_position

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from datetime import tzinfo

    from sqlalchemy import Connection, Engine

    from projections.base import Projection
    from replay.source import Reader

#: Every projection by name, as a factory (a projection holds batch state: each build gets fresh ones).





# -- scratch tables ---------------------------------------------------------------------


@dataclass
class Scratch:
    """Where a build writes: an engine on which the projections' table names mean the scratch tables."""

    engine: Engine
    path: Path | None = None
    schema: str | None = None
    owned_folder: Path | None = None
    live: Engine | None = None

    def drop(self) -> None:
        """Remove the scratch tables."""
        self.engine.dispose()
        if self.schema is not None and self.live is not None:
            with suppress(Exception), self.live.begin() as connection:
                connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        if self.path is not None:
            for leftover in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                leftover.unlink(missing_ok=True)
        if self.owned_folder is not None:
            shutil.rmtree(self.owned_folder, ignore_errors=True)


def beside(live: Engine, label: str = "scratch") -> Scratch:
    """Fresh, empty scratch tables beside the live ones (a schema on PostgreSQL, a file beside it on SQLite)."""
    if live.dialect.name == "sqlite":
        database = live.url.database
        if not database or database == ":memory:":
            msg = "rebuilding needs a database file, not an in-memory database"
            raise ValueError(msg)
        path = Path(f"{database}.replay-{label}")
        scratch = Scratch(_scratch_sqlite(path), path=path)
        scratch.engine.dispose()
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)
        return scratch
    schema = f"replay_{label}"
    with live.begin() as connection:
        connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine = create_engine(live.url, connect_args={"options": f"-csearch_path={schema}"}, pool_pre_ping=True)
    return Scratch(engine, schema=schema, live=live)


def temporary() -> Scratch:
    """A throw-away SQLite file for an as-of build or a review, whatever the store's backend."""
    folder = Path(tempfile.mkdtemp(prefix="gridcase-replay-"))
    return Scratch(_scratch_sqlite(folder / "asof.db"), owned_folder=folder)


def _scratch_sqlite(path: Path) -> Engine:
    """A SQLite engine for scratch tables: nothing in them needs to survive a crash (a build starts over)."""
    engine = make_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _fast(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=MEMORY")  # rollback still works (the runner relies on it)
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    return engine


@contextmanager
def scratch_of(scratch: Scratch) -> Iterator[Scratch]:
    """Use scratch tables and drop them afterwards."""
    try:
        yield scratch
    finally:
        scratch.drop()


# -- building ----------------------------------------------------------------------------


def build(
    engine: Engine,
    read: Reader,
    projections: Sequence[Projection],
    *,
    batch_size: int = 25_000,
    progress: Callable[[RunStats], None] | None = None,
) -> RunStats:
    """Run projections over a source into the tables ``engine`` reaches, from wherever they are, to its end."""
    runner = Runner(engine, read, projections, batch_size=batch_size, owner=f"replay:{os.getpid()}")
    runner.create_tables()
    try:
        return runner.run_once(progress=progress, lease_timeout=0)
    finally:
        runner.release()


def position_of(engine: Engine, name: str) -> int:
    """A projection's position in the tables ``engine`` reaches (0 if it has none)."""
    with engine.connect() as connection:
        return stored_position(connection, name)


@dataclass
class Rebuilt:
    """What a rebuild did."""

    projections: list[str]
    position: int
    events: int
    seconds: float


def rebuild(
    live: Engine,
    read: Reader,
    names: Sequence[str],
    tz: tzinfo,
    *,
    batch_size: int = 25_000,
    lease_timeout: float | None = 30.0,
    progress: Callable[[RunStats], None] | None = None,
) -> Rebuilt:
    """Build projections from zero beside the live ones, then swap them in, in one transaction.

    The live tables keep serving (and their runner keeps them current) during the build. For the swap this
    takes the projections' leases, so no runner writes them, applies what was stored meanwhile to the new
    tables, and swaps.
    """
    started = datetime.now(UTC)
    with scratch_of(beside(live, "_".join(sorted(names)))) as scratch:
        stats = build(scratch.engine, read, make_projections(names, tz), batch_size=batch_size, progress=progress)
        holder = Runner(live, read, make_projections(names, tz), owner=f"replay-rebuild:{os.getpid()}")
        holder.create_tables()
        holder.wait_for_leases(lease_timeout)
        try:
            rest = build(scratch.engine, read, make_projections(names, tz), batch_size=batch_size)
            position = min(position_of(scratch.engine, name) for name in names)
            swap(live, scratch, make_projections(names, tz))
        finally:
            holder.release()
    seconds = (datetime.now(UTC) - started).total_seconds()
    return Rebuilt(list(names), position, stats.events + rest.events, seconds)


def swap(live: Engine, scratch: Scratch, projections: Sequence[Projection]) -> None:
    """Replace the live tables, positions and dead letters of projections by the scratch ones, atomically."""
    names = [projection.name for projection in projections]
    with scratch.engine.connect() as connection:
        moved_positions = connection.execute(select(positions).where(positions.c.name.in_(names))).mappings().all()
        letters = connection.execute(select(deadletters).where(deadletters.c.projection.in_(names))).mappings().all()
    tables = [table for projection in projections for table in projection.metadata.sorted_tables]
    create_tables(live, bookkeeping)  # before attaching the scratch file: its check would look there too
    with live.connect() as connection:
        if live.dialect.name == "sqlite":
            assert scratch.path is not None
            connection.exec_driver_sql("ATTACH DATABASE ? AS replay_scratch", (str(scratch.path),))
        try:
            if live.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                for table in reversed(tables):
                    connection.exec_driver_sql(f'DROP TABLE IF EXISTS main."{table.name}"')
                for projection in projections:
                    # Not checkfirst: the check would find the attached scratch table of the same name.
                    projection.metadata.create_all(connection, checkfirst=False)
                for table in tables:
                    connection.exec_driver_sql(
                        f'INSERT INTO main."{table.name}" SELECT * FROM replay_scratch."{table.name}"'  # noqa: S608
                    )
            else:
                live_schema = connection.exec_driver_sql("SELECT current_schema()").scalar()
                for table in reversed(tables):
                    connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{live_schema}"."{table.name}" CASCADE')
                for table in tables:
                    connection.exec_driver_sql(
                        f'ALTER TABLE "{scratch.schema}"."{table.name}" SET SCHEMA "{live_schema}"'
                    )
            _move_bookkeeping(connection, projections, [dict(row) for row in moved_positions], letters)
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            if live.dialect.name == "sqlite":
                connection.exec_driver_sql("DETACH DATABASE replay_scratch")


def _move_bookkeeping(
    connection: Connection, projections: Sequence[Projection], moved: list[dict[str, Any]], letters: Sequence[Any]
) -> None:
    names = [projection.name for projection in projections]
    connection.execute(delete(deadletters).where(deadletters.c.projection.in_(names)))
    if letters:
        connection.execute(deadletters.insert(), [{k: v for k, v in row.items() if k != "id"} for row in letters])
    upsert(connection, positions, moved)
    now = datetime.now(UTC).replace(tzinfo=None)
    upsert(connection, projection_versions,
           [{"name": p.name, "version": p.version, "rebuilt_at": now} for p in projections])  # fmt: skip


def outdated(live: Engine, tz: tzinfo) -> list[str]:
    """Projections whose code version differs from the version their live tables were built by."""
    create_tables(live, bookkeeping)
    with live.connect() as connection:
        built: dict[str, int] = {row.name: row.version for row in connection.execute(select(projection_versions))}
    return [name for name, make in FACTORIES.items() if make(tz).version != built.get(name, 1)]


# -- the determinism check ------------------------------------------------------------------


@dataclass
class Difference:
    """A row that differs between the live table and a rebuild."""

    table: str
    key: dict[str, Any]
    live: dict[str, Any] | None
    rebuilt: dict[str, Any] | None

    @property
    def kind(self) -> str:
        """Only in live, only in the rebuild, or changed."""
        if self.rebuilt is None:
            return "only in live"
        if self.live is None:
            return "only in rebuild"
        return "differs"

    def changed(self) -> dict[str, tuple[Any, Any]]:
        """Columns whose values differ: (live, rebuilt)."""
        if self.live is None or self.rebuilt is None:
            return {}
        return {k: (v, self.rebuilt.get(k)) for k, v in self.live.items() if not _same(v, self.rebuilt.get(k))}


@dataclass
class Verified:
    """What the determinism check found, and how far each projection is from the store's head."""

    positions: dict[str, int]
    rows: dict[str, int] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)
    #: Differences beyond the ones kept (the check keeps the first few hundred).
    more: int = 0
    #: The store's last position when the live tables were read.
    head: int = 0
    #: Dead letters per projection (events set aside: ``gridcase deadletters``).
    letters: dict[str, int] = field(default_factory=dict)
    #: Projections that did not reach ``head`` by the end of the check: how many events short.
    stuck: dict[str, int] = field(default_factory=dict)
    #: Why a stuck projection did not move: who holds its lease, or the error its catch-up met.
    why: dict[str, str] = field(default_factory=dict)

    limit: ClassVar[int] = 500

    def behind(self, name: str) -> int:
        """How many events the live tables were behind the store's head when they were read."""
        return max(0, self.head - self.positions.get(name, 0))


def verify(
    live: Engine,
    read: Reader,
    names: Sequence[str],
    tz: tzinfo,
    *,
    batch_size: int = 25_000,
    wait: float = 5.0,
    progress: Callable[[RunStats], None] | None = None,
) -> Verified:
    """Rebuild projections into scratch tables up to the live positions, compare every row, and find stuck ones.

    No lease is taken, so a runner following the store (``project --follow``) keeps running: the live tables
    are read in one snapshot (a read transaction on SQLite's WAL, REPEATABLE READ on PostgreSQL), their
    positions with them, and the rebuild goes up to those positions. Like every query it first catches up the
    projections nobody else runs. At the end each projection must have reached the store's head as it was when
    the tables were read: it is given ``wait`` seconds (a follower polls), and one more catch-up if no runner
    holds it; one that still has not is *stuck*.
    """
    _catch_up(live, read, names, tz)
    result = Verified(positions={})
    with scratch_of(beside(live, "verify")) as scratch, _snapshot(live) as snapshot:
        for name in names:
            result.positions[name] = stored_position(snapshot, name)
        found = snapshot.execute(select(deadletters.c.projection, func.count()).group_by(deadletters.c.projection))
        result.letters = {name: count for name, count in found if name in names}
        result.head = _head(read, max(result.positions.values(), default=0))
        for projection in make_projections(names, tz):
            target = result.positions[projection.name]
            build(scratch.engine, up_to_position(read, target), [projection], batch_size=batch_size,
                  progress=progress)  # fmt: skip
            for table in projection.metadata.sorted_tables:
                result.rows[table.name] = _compare(snapshot, scratch.engine, table, result)
    _find_stuck(live, read, names, tz, result, wait)
    return result


@contextmanager
def _snapshot(live: Engine) -> Iterator[Connection]:
    """One connection that sees the live tables as they were at its first read, until it ends."""
    with live.connect() as connection:
        if live.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN")  # deferred: the first read takes the WAL snapshot
            snap = connection
        else:
            snap = connection.execution_options(isolation_level="REPEATABLE READ")
        try:
            yield snap
        finally:
            snap.rollback()


def _head(read: Reader, start: int) -> int:
    """The last position of the source (read on from ``start``)."""
    head = start
    while found := read(head, 10_000):
        head = max(n.id for n in found)
    return head


def _catch_up(live: Engine, read: Reader, names: Sequence[str], tz: tzinfo) -> dict[str, str]:
    """Catch up each projection no other runner holds, as a query does; the error of one that could not."""
    errors: dict[str, str] = {}
    for projection in make_projections(names, tz):
        runner = Runner(live, read, [projection], owner=f"replay-verify:{os.getpid()}")
        runner.create_tables()
        try:
            runner.run_once(lease_timeout=0)
        except LeaseHeld:
            pass
        except Exception as error:  # noqa: BLE001 - reported as the reason the projection is stuck
            errors[projection.name] = f"its catch-up failed: {type(error).__name__}: {error}".splitlines()[0]
        finally:
            runner.release()
    return errors


def _find_stuck(live: Engine, read: Reader, names: Sequence[str], tz: tzinfo, result: Verified,
                wait: float) -> None:  # fmt: skip
    """Give projections short of the head ``wait`` seconds and a catch-up; record the ones still short."""

    def short() -> dict[str, int]:
        return {name: result.head - position for name in names
                if (position := position_of(live, name)) < result.head}  # fmt: skip

    deadline = time.monotonic() + wait
    while short() and time.monotonic() < deadline:
        time.sleep(0.2)
    errors = _catch_up(live, read, list(short()), tz) if short() else {}
    result.stuck = short()
    for name in result.stuck:
        held = lease.holder(live, name)
        result.why[name] = errors.get(name) or (
            f"its runner {held} holds the lease and has not moved" if held else "nothing moved it")


def _compare(live: Connection, rebuilt: Engine, table: Table, result: Verified) -> int:
    """Walk both tables in key order side by side; record each row that differs. Returns the rows seen."""
    keys = [column.name for column in table.primary_key]
    seen = 0
    with rebuilt.connect() as right_connection:
        left = _rows(live, table)
        right = _rows(right_connection, table)
        a, b = next(left, None), next(right, None)
        while a is not None or b is not None:
            seen += 1
            key_a = None if a is None else tuple(a[k] for k in keys)
            key_b = None if b is None else tuple(b[k] for k in keys)
            if key_b is None or (key_a is not None and key_a < key_b):
                assert a is not None
                if not _zero_counter(a, keys):
                    _record(result, Difference(table.name, {k: a[k] for k in keys}, a, None))
                a = next(left, None)
            elif key_a is None or key_b < key_a:
                assert b is not None
                if not _zero_counter(b, keys):
                    _record(result, Difference(table.name, {k: b[k] for k in keys}, None, b))
                b = next(right, None)
            else:
                assert a is not None
                assert b is not None
                if any(not _same(a[k], b[k]) for k in a):
                    _record(result, Difference(table.name, {k: a[k] for k in keys}, a, b))
                a, b = next(left, None), next(right, None)
    return seen


def _rows(connection: Connection, table: Table) -> Iterator[dict[str, Any]]:
    """A table's rows in key order, streamed (byte order for text on both backends)."""
    postgres = connection.dialect.name == "postgresql"
    order = [
        column.collate("C") if postgres and isinstance(column.type, String) else column for column in table.primary_key
    ]
    result = connection.execution_options(stream_results=True, yield_per=5000).execute(select(table).order_by(*order))
    for row in result.mappings():
        yield dict(row)


def _zero_counter(row: dict[str, Any], keys: list[str]) -> bool:
    """A counter row whose figures are all zero: the same as no row.

    An incremental run that adds 1 in one batch and takes it back in the next leaves a row of 0 where a
    rebuild, netting both in one batch, writes none; both mean "nothing counted".
    """
    values = [value for name, value in row.items() if name not in keys]
    return bool(values) and all(isinstance(value, int | float) and value == 0 for value in values)


def _record(result: Verified, difference: Difference) -> None:
    if len(result.differences) < Verified.limit:
        result.differences.append(difference)
    else:
        result.more += 1


def _same(left: Any, right: Any) -> bool:
    """Equal, with float sums allowed to differ in their last bits (they are added in a different grouping)."""
    if isinstance(left, float) or isinstance(right, float):
        if left is None or right is None:
            return left is right
        return math.isclose(float(left), float(right), rel_tol=1e-9, abs_tol=1e-6)
    return bool(left == right)
