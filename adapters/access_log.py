"""The personal data access log: one append-only row per clear view, in the event store's database.

``personal_data_access`` is a plain table beside the events, not events (docs/decisions.md, "Who may see
personal data, and the access log"). Each row is committed in its own transaction before the clear data is
returned (service.Service.clear_view). The database refuses to change or delete a row: SQLite and
PostgreSQL triggers raise on UPDATE and DELETE (and PostgreSQL on TRUNCATE).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from threading import Lock
from typing import TYPE_CHECKING, cast

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, select, text

from projections.sql import create_tables, make_engine
from service.ports import AccessRecord, Via

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy import Connection, Engine

ACCESS_TABLE = "personal_data_access"
APPEND_ONLY = "the personal data access log is append-only: its rows are never changed or deleted"

metadata = MetaData()
personal_data_access = Table(
    ACCESS_TABLE,
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recorded_at", DateTime, nullable=False, index=True, comment="UTC"),
    Column("actor_id", String(64), nullable=False),
    Column("role", String(32), nullable=False),
    Column("case_number", String(64), nullable=False, index=True),
    Column("reason", Text, nullable=False),
    Column("via", String(8), nullable=False, comment="cli, http or audit"),
)

_SQLITE_GUARDS = [
    f"CREATE TRIGGER IF NOT EXISTS {ACCESS_TABLE}_no_{verb.lower()} BEFORE {verb} ON {ACCESS_TABLE} "
    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
    for verb in ("UPDATE", "DELETE")
]
_POSTGRES_GUARDS = [
    (
        f"CREATE OR REPLACE FUNCTION {ACCESS_TABLE}_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$"
    ),
    f"""DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '{ACCESS_TABLE}_append_only') THEN
        CREATE TRIGGER {ACCESS_TABLE}_append_only BEFORE UPDATE OR DELETE ON {ACCESS_TABLE}
          FOR EACH ROW EXECUTE FUNCTION {ACCESS_TABLE}_append_only();
        CREATE TRIGGER {ACCESS_TABLE}_no_truncate BEFORE TRUNCATE ON {ACCESS_TABLE}
          FOR EACH STATEMENT EXECUTE FUNCTION {ACCESS_TABLE}_append_only();
      END IF;
    END $$""",  # noqa: S608 - names of our own, no input
]


class SqlAccessLog:
    """The service's access log (service.ports.AccessLog) on the event store's SQLite or PostgreSQL database.

    The table and its guards are made when first used, so an engine that never shows personal data in
    clear never opens a connection for it.
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._engine: Engine | None = None
        self._lock = Lock()

    @property
    def engine(self) -> Engine:
        """The database, with the table made (once per process)."""
        with self._lock:
            if self._engine is None:
                engine = make_engine(self.database_url)
                create_tables(engine, personal_data_access, seed=self._guard)
                self._engine = engine
            return self._engine

    def _guard(self, connection: Connection) -> None:
        guards = _SQLITE_GUARDS if connection.dialect.name == "sqlite" else _POSTGRES_GUARDS
        for statement in guards:
            connection.execute(text(statement))

    def record(self, entry: AccessRecord) -> None:
        """Write one record in its own transaction, committed before returning."""
        with self.engine.begin() as connection:
            connection.execute(
                personal_data_access.insert().values(
                    recorded_at=entry.recorded_at.astimezone(UTC).replace(tzinfo=None),
                    actor_id=entry.actor_id,
                    role=entry.role,
                    case_number=entry.case_number,
                    reason=entry.reason,
                    via=entry.via,
                )
            )

    def entries(self, *, case_number: str | None = None, since: datetime | None = None) -> Sequence[AccessRecord]:
        """The records, oldest first: of one case, and from a moment on, when asked."""
        table = personal_data_access
        query = select(table).order_by(table.c.recorded_at, table.c.id)
        if case_number is not None:
            query = query.where(table.c.case_number == case_number)
        if since is not None:
            query = query.where(table.c.recorded_at >= since.astimezone(UTC).replace(tzinfo=None))
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            AccessRecord(
                actor_id=row["actor_id"],
                role=row["role"],
                case_number=row["case_number"],
                reason=row["reason"],
                via=cast("Via", row["via"]),
                recorded_at=row["recorded_at"].replace(tzinfo=UTC),
            )
            for row in rows
        ]

    def close(self) -> None:
        """Release the connections."""
        if self._engine is not None:
            self._engine.dispose()


def as_row(entry: AccessRecord, tz: tzinfo | None = None) -> dict[str, str]:
    """A record as plain JSON values, the time as ISO 8601 with its offset (in ``tz`` when given)."""
    at = entry.recorded_at if tz is None else entry.recorded_at.astimezone(tz)
    return {"recorded_at": at.isoformat(), "actor_id": entry.actor_id, "role": entry.role,
            "case_number": entry.case_number, "reason": entry.reason, "via": entry.via}  # fmt: skip
