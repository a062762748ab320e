"""SQL plumbing shared by the read models: the engine, bookkeeping tables, upserts, batch caches."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    select,
    tuple_,
)
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from sqlalchemy import Connection, Engine

bookkeeping = MetaData()

positions = Table(
    "projection_positions",
    bookkeeping,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

leases = Table(
    "projection_leases",
    bookkeeping,
    Column("name", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("expires_at", Float, nullable=False),
)

#: The code version of each projection the live tables were built by (no row: version 1, the first). Written by a
#: rebuild, and by a runner that creates a projection's tables (a fresh store is built by today's code).
projection_versions = Table(
    "projection_versions",
    bookkeeping,
    Column("name", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("rebuilt_at", DateTime, nullable=False),
)

deadletters = Table(
    "projection_deadletters",
    bookkeeping,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("projection", String(64), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("event_type", String(128), nullable=False),
    Column("originator_id", String(64), nullable=False),
    Column("error", Text, nullable=False),
    Column("failed_at", DateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    UniqueConstraint("projection", "position"),
)


def make_engine(database_url: str) -> Engine:
    """An engine on the same database as the event store (SQLite file or PostgreSQL)."""
    if database_url.startswith("sqlite:"):
        engine = create_engine(database_url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    url = database_url.replace("postgres://", "postgresql://", 1)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


def create_tables(
    engine: Engine,
    *schemas: MetaData | Table,
    seed: Callable[[Connection], None] | None = None,
    attempts: int = 10,
) -> None:
    """Create the tables of ``schemas`` that are missing (and run ``seed`` in the same transaction).

    Several processes starting at once create the same tables at the same moment; the losers get an error from
    the database, wait a little and look again (the winner's tables will do).
    """
    for attempt in range(attempts):
        try:
            with engine.begin() as connection:
                for schema in schemas:
                    if isinstance(schema, Table):
                        schema.create(connection, checkfirst=True)
                    else:
                        schema.create_all(connection)
                if seed is not None:
                    seed(connection)
        except DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
        else:
            return


def stored_position(connection: Connection, name: str, *, lock: bool = False) -> int:
    """How far a projection fed from the store has got (0 if it has no position yet); ``lock``: FOR UPDATE."""
    query = select(positions.c.position).where(positions.c.name == name)
    found = connection.execute(query.with_for_update() if lock else query).scalar()
    return int(found or 0)


def utc_now() -> datetime:
    """Now, as stored: naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def utc_naive(moment: datetime | None) -> datetime | None:
    """Times are stored as naive UTC, the same on SQLite and PostgreSQL."""
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)


def upsert(connection: Connection, table: Table, rows: Sequence[dict[str, Any]], *, add: Iterable[str] = ()) -> None:
    """Insert rows, or update them where their key exists; columns in ``add`` are added to, not replaced."""
    if not rows:
        return
    names = [column.name for column in table.columns]
    processors = [
        (name, column.type.bind_processor(connection.dialect))
        for name, column in zip(names, table.columns, strict=True)
    ]
    if any(processor for _, processor in processors):
        values = [tuple(p(row.get(n)) if p else row.get(n) for n, p in processors) for row in rows]
    else:
        values = [tuple(row.get(n) for n in names) for row in rows]
    upsert_values(connection, table, values, add=add)


def upsert_values(
    connection: Connection,
    table: Table,
    values: Sequence[tuple[Any, ...]],
    *,
    add: Iterable[str] = (),
    keep: bool = False,
) -> None:
    """Upsert rows given as tuples in the table's column order, ready for the driver.

    The statement goes straight to the driver's executemany: for batches of
    thousands of rows, building parameters through SQLAlchemy costs more than
    the database does. Both SQLite and PostgreSQL speak ``ON CONFLICT``.
    ``keep`` leaves existing rows as they are.
    """
    if not values:
        return
    names = [column.name for column in table.columns]
    keys = [column.name for column in table.primary_key]
    additive = set(add)
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    updates = ", ".join(
        f"{name} = {table.name}.{name} + excluded.{name}" if name in additive else f"{name} = excluded.{name}"
        for name in names
        if name not in keys
    )
    statement = (
        f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join([marker] * len(names))}) "  # noqa: S608 - names come from our own table definitions
        f"ON CONFLICT ({', '.join(keys)}) DO " + (f"UPDATE SET {updates}" if updates and not keep else "NOTHING")
    )
    connection.exec_driver_sql(statement, list(values))


class RowCache:
    """The rows of one table a batch touches: loaded on first use, written back once at the end."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.key_columns = [column.name for column in table.primary_key]
        self.rows: dict[tuple[Any, ...], dict[str, Any] | None] = {}
        self.dirty: set[tuple[Any, ...]] = set()

    def prefetch(self, connection: Connection, keys: Iterable[tuple[Any, ...]]) -> None:
        """Load many rows in a few queries instead of one each."""
        wanted = [key for key in set(keys) if key not in self.rows]
        columns = [self.table.c[name] for name in self.key_columns]
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for key in chunk:
                self.rows[key] = None
            condition = columns[0].in_([key[0] for key in chunk]) if len(columns) == 1 else tuple_(*columns).in_(chunk)
            for row in connection.execute(select(self.table).where(condition)).mappings():
                self.rows[tuple(row[name] for name in self.key_columns)] = dict(row)

    def prefetch_by(self, connection: Connection, column: str, values: Iterable[Any]) -> list[dict[str, Any]]:
        """Load the rows whose ``column`` is one of ``values`` (a secondary key); returns them."""
        loaded = []
        wanted = list(set(values))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for row in connection.execute(select(self.table).where(self.table.c[column].in_(chunk))).mappings():
                key = tuple(row[name] for name in self.key_columns)
                if key not in self.rows:
                    self.rows[key] = dict(row)
                loaded.append(self.rows[key] or dict(row))
        return loaded

    def get(self, connection: Connection, key: tuple[Any, ...]) -> dict[str, Any] | None:
        """The row with this key, or None."""
        if key not in self.rows:
            self.prefetch(connection, [key])
        return self.rows[key]

    def put(self, key: tuple[Any, ...], row: dict[str, Any]) -> None:
        """Set the row (written at flush)."""
        self.rows[key] = row
        self.dirty.add(key)

    def flush(self, connection: Connection) -> None:
        """Write every changed row and forget the batch (in key order: concurrent writers lock rows alike)."""
        upsert(connection, self.table, [row for key in sorted(self.dirty) if (row := self.rows[key]) is not None])
        self.clear()

    def clear(self) -> None:
        """Forget everything (after a flush or a rolled-back batch)."""
        self.rows.clear()
        self.dirty.clear()


class Counters:
    """Additive figures (a key and a value to add), summed in memory, added to the table at flush."""

    def __init__(self, table: Table, value: str = "value") -> None:
        self.table = table
        self.value = value
        self.key_columns = [column.name for column in table.primary_key]
        self.pending: dict[tuple[Any, ...], float] = {}
        # Deletes a key's row once its figure is zero (see flush).
        self._key_params = [f"key_{name}" for name in self.key_columns]
        keys = [table.c[name] == bindparam(f"key_{name}") for name in self.key_columns]
        self._delete_zero = delete(table).where(and_(*keys, table.c[value] == 0))

    def add(self, key: tuple[Any, ...], amount: float = 1) -> None:
        """Add to a figure."""
        pending = self.pending
        pending[key] = pending.get(key, 0) + amount

    def flush(self, connection: Connection) -> None:
        """Add every pending amount to the table and forget them."""
        # Counter tables are the key columns then the value, all plain types: straight to the driver.
        # In key order, so that processes adding to the same rows lock them in the same order (no deadlock).
        values = [(*key, amount) for key, amount in sorted(self.pending.items()) if amount]
        upsert_values(connection, self.table, values, add=[self.value])
        # A figure taken back to zero (a case's due day moved, a count undone) leaves no row: the table is then
        # the same however the events were cut into batches (the store's and Kafka's are cut differently). Only a
        # taking-away can bring a count to zero, so only those keys are looked at.
        emptied = [dict(zip(self._key_params, key, strict=True)) for key, amount in self.pending.items() if amount < 0]
        if emptied:
            connection.execute(self._delete_zero, emptied)
        self.clear()

    def clear(self) -> None:
        """Forget pending amounts."""
        self.pending.clear()
