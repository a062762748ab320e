"""The library's PostgreSQL recorder, made to keep the notification log free of gaps.

``notification_id`` is a ``bigserial``: an INSERT refused for a version clash
has already drawn its ids from the sequence, and sequences never roll back, so
every lost race would leave a hole in the global order. Under the table lock
the library already takes, we first check that each aggregate's stored version
is the one the new events follow, and refuse the write before the sequence is
touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import IntegrityError
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier

if TYPE_CHECKING:
    from collections.abc import Sequence

    from eventsourcing.persistence import StoredEvent
    from psycopg import Cursor
    from psycopg.rows import DictRow


class GaplessPostgresApplicationRecorder(PostgresApplicationRecorder):
    """Refuses a version clash before drawing notification ids."""

    def _insert_stored_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> None:
        self._lock_table(curs)
        self._refuse_version_clash(curs, stored_events)
        self._notify_channel(curs)
        # Skip our parent's lock and notify (done above) and insert as the base recorder does.
        super(PostgresApplicationRecorder, self)._insert_stored_events(curs, stored_events, **kwargs)

    def _refuse_version_clash(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent]) -> None:
        first_new: dict[Any, int] = {}
        for stored in stored_events:
            first_new[stored.originator_id] = min(
                stored.originator_version, first_new.get(stored.originator_id, stored.originator_version)
            )
        statement = SQL(
            "SELECT originator_id, MAX(originator_version) AS version FROM {schema}.{table} "
            "WHERE originator_id = ANY(%s) GROUP BY originator_id"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        curs.execute(statement, (list(first_new),))
        for row in curs.fetchall():
            if row["version"] >= first_new[row["originator_id"]]:
                msg = f"aggregate {row['originator_id']} is already at version {row['version']}"
                raise IntegrityError(msg)
