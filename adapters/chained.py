"""Event recorders that write each event's hash-chain link and commit time in the same transaction.

The SQLite recorder is the library's, the PostgreSQL one our gap-free
recorder; both add, after the events are inserted and while the store's write
lock is still held (SQLite's database lock, PostgreSQL's EXCLUSIVE table
lock), one ``event_chain`` row per event (replay/chain.py): the chain hash and
the commit clock. Because the lock is held, the commit clock can be made
strictly increasing along the notification log, which is what makes an
as-of-recorded cut-off exact.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier

from adapters.personal import STAGED, create_statements, has_pending, seal_staged, write_staged
from adapters.pg_recorder import GaplessPostgresApplicationRecorder
from domain.base import RECORDING_CLOCK
from replay.chain import CHAIN_TABLE, GENESIS, link_hash, to_micros

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from eventsourcing.persistence import StoredEvent
    from eventsourcing.postgres import PostgresDatastore
    from eventsourcing.sqlite import SQLiteCursor
    from psycopg import Cursor
    from psycopg.rows import DictRow

#: A write's mark, stored in the same transaction as its events when set (the HTTP API's idempotency keys:
#: after a crash, the mark says whether the command was stored). Unique: a second write with the same mark
#: fails as a whole, so a command carrying one is stored at most once. Consumed by the first write.
WRITE_MARK: ContextVar[str | None] = ContextVar("gridcase_write_mark", default=None)
MARKS_TABLE = "write_marks"
_MARK_COLUMNS = "mark TEXT PRIMARY KEY, position BIGINT NOT NULL"

_COLUMNS = (
    "position BIGINT PRIMARY KEY, originator_id TEXT NOT NULL, originator_version INTEGER NOT NULL, "
    "chain_hash TEXT NOT NULL, committed_at BIGINT NOT NULL, UNIQUE (originator_id, originator_version)"
)


class RecentLinks:
    """Hashes of events this process wrote lately, by (aggregate, version).

    The next write of a case finds its previous link here instead of in the database. A stored event never
    changes, so a remembered hash is right whoever writes next; the version check of the write guarantees
    that version - 1 is the previous event.
    """

    def __init__(self, size: int = 200_000) -> None:
        self.size = size
        self.hashes: dict[tuple[str, int], str] = {}
        self.lock = threading.Lock()
        #: The links of the write in progress on this thread, remembered only once it has committed.
        self.pending = threading.local()

    def get(self, key: str, version: int) -> str | None:
        """The remembered hash, if any."""
        with self.lock:
            return self.hashes.get((key, version))

    def remember(self, rows: Sequence[tuple[int, str, int, str, int]]) -> None:
        """Remember a committed write's links (forgetting everything when full: a cache, not a record)."""
        with self.lock:
            if len(self.hashes) + len(rows) > self.size:
                self.hashes.clear()
            for _, key, version, digest, _ in rows:
                self.hashes[(key, version)] = digest


def chain_links(
    stored_events: Sequence[StoredEvent],
    positions: Sequence[int],
    previous_hash: Callable[[str, int], str | None],
    last_committed: int | None,
) -> list[tuple[int, str, int, str, int]]:
    """The chain rows of one write: each event linked to the previous event of its aggregate, and to its commit time.

    Links are written in chain version 2 (replay/chain.py): the hash covers ``committed``.
    """
    committed = to_micros(RECORDING_CLOCK.get()())
    if last_committed is not None:
        committed = max(committed, last_committed + 1)
    heads: dict[str, str] = {}
    rows = []
    for stored, position in zip(stored_events, positions, strict=True):
        key = str(stored.originator_id)
        previous = heads.get(key)
        if previous is None:
            version = stored.originator_version
            previous = GENESIS if version <= 1 else (previous_hash(key, version - 1) or GENESIS)
        digest = link_hash(previous, position, key, stored.originator_version, stored.topic, stored.state, committed)
        heads[key] = digest
        rows.append((position, key, stored.originator_version, digest, committed))
    return rows


class ChainedSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    """The library's SQLite recorder, plus the chain link and commit time of every event."""

    def construct_create_table_statements(self) -> list[str]:
        """The events table and the chain table."""
        return [*super().construct_create_table_statements(), f"CREATE TABLE IF NOT EXISTS {CHAIN_TABLE} ({_COLUMNS})",
                f"CREATE TABLE IF NOT EXISTS {MARKS_TABLE} ({_MARK_COLUMNS})",
                *create_statements(str, " WITHOUT ROWID")]  # fmt: skip - a key row is one b-tree entry, not two

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int]:
        if has_pending():
            # Personal data to seal: take the write lock first (the library's BEGIN is deferred and nothing has run
            # in it yet), then find the citizens' keys in this transaction. A read before the lock would pin an
            # older snapshot, and the insert could then not take the lock if another process wrote meanwhile.
            c.execute("ROLLBACK")
            c.execute("BEGIN IMMEDIATE")

            def select(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
                c.execute(sql, tuple(params))
                return [tuple(row) for row in c.fetchall()]

            stored_events = seal_staged(stored_events, select)
        else:
            stored_events = seal_staged(stored_events)  # refuses a placeholder whose staging was lost
        positions = super()._insert_events(c, stored_events, **kwargs)
        assert positions is not None
        # The inserts above took SQLite's write lock: nobody else writes until this transaction ends.

        recent = self._recent()

        def previous_hash(key: str, version: int) -> str | None:
            remembered = recent.get(key, version)
            if remembered is not None:
                return remembered
            c.execute(f"SELECT chain_hash FROM {CHAIN_TABLE} WHERE originator_id=? AND originator_version=?",  # noqa: S608
                      (key, version))  # fmt: skip
            row = c.fetchone()
            return None if row is None else str(row[0])

        c.execute(f"SELECT committed_at FROM {CHAIN_TABLE} ORDER BY position DESC LIMIT 1")  # noqa: S608
        last = c.fetchone()
        rows = chain_links(stored_events, positions, previous_hash, None if last is None else int(last[0]))
        c.executemany(f"INSERT INTO {CHAIN_TABLE} VALUES (?,?,?,?,?)", rows)  # noqa: S608
        if (mark := WRITE_MARK.get()) is not None and positions:
            c.execute(f"INSERT INTO {MARKS_TABLE} VALUES (?,?)", (mark, positions[0]))  # noqa: S608
        write_staged(c, str, "?")  # the citizens' keys the events are sealed under (adapters/personal.py)
        recent.pending.rows = rows
        return positions

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Insert, and once committed remember the new links."""
        recent = self._recent()
        recent.pending.rows = ()
        try:
            positions = super().insert_events(stored_events, **kwargs)
        finally:
            STAGED.set(None)  # written with the events, or gone with them
        recent.remember(recent.pending.rows)
        WRITE_MARK.set(None)
        return positions

    def _recent(self) -> RecentLinks:
        if not hasattr(self, "_links"):
            self._links = RecentLinks()
        return self._links


class ChainedPostgresApplicationRecorder(GaplessPostgresApplicationRecorder):
    """Our gap-free PostgreSQL recorder, plus the chain link and commit time of every event."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self._chain = Identifier(self.datastore.schema), Identifier(CHAIN_TABLE)
        self._links = RecentLinks()
        self.sql_create_statements.append(
            SQL("CREATE TABLE IF NOT EXISTS {}.{} (" + _COLUMNS + ")").format(*self._chain)
        )
        self._marks = Identifier(self.datastore.schema), Identifier(MARKS_TABLE)
        self.sql_create_statements.append(
            SQL("CREATE TABLE IF NOT EXISTS {}.{} (" + _MARK_COLUMNS + ")").format(*self._marks)
        )
        self.sql_create_statements.extend(SQL(statement) for statement in create_statements(self._qualify))  # type: ignore[misc]

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        positions = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        assert positions is not None
        # Still inside the transaction that holds the events table's EXCLUSIVE lock.
        wanted: dict[str, int] = {}
        for stored in stored_events:
            key = str(stored.originator_id)
            wanted.setdefault(key, stored.originator_version - 1)
        known: dict[tuple[str, int], str] = {}
        for key, version in wanted.items():
            remembered = self._links.get(key, version)
            if remembered is not None:
                known[key, version] = remembered
        pairs = [(key, version) for key, version in wanted.items() if version >= 1 and (key, version) not in known]
        if pairs:
            curs.execute(
                SQL("SELECT originator_id, originator_version, chain_hash FROM {}.{} "
                    "WHERE (originator_id, originator_version) IN (SELECT * FROM unnest(%s::text[], %s::int[]))"
                    ).format(*self._chain),
                ([key for key, _ in pairs], [version for _, version in pairs]),
            )  # fmt: skip
            known = {(row["originator_id"], row["originator_version"]): row["chain_hash"] for row in curs.fetchall()}
        curs.execute(SQL("SELECT committed_at FROM {}.{} ORDER BY position DESC LIMIT 1").format(*self._chain))
        last = curs.fetchone()
        rows = chain_links(
            stored_events,
            positions,
            lambda key, version: known.get((key, version)),
            None if last is None else int(last["committed_at"]),
        )
        curs.executemany(SQL("INSERT INTO {}.{} VALUES (%s, %s, %s, %s, %s)").format(*self._chain), rows)
        if (mark := WRITE_MARK.get()) is not None and positions:
            curs.execute(SQL("INSERT INTO {}.{} VALUES (%s, %s)").format(*self._marks), (mark, positions[0]))
        write_staged(curs, self._qualify, "%s")
        self._links.pending.rows = rows
        return positions

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Insert, and once committed remember the new links."""
        self._links.pending.rows = ()
        try:
            # The citizens' keys are looked up before the write's transaction here (the library pipelines it).
            stored_events = seal_staged(stored_events)
            positions: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
        finally:
            STAGED.set(None)
        self._links.remember(self._links.pending.rows)
        WRITE_MARK.set(None)
        return positions

    def _qualify(self, name: str) -> str:
        """A key-store table's name, schema-qualified."""
        return f'"{self.datastore.schema}".{name}'
