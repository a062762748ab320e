"""The sink's DuckDB tables: created, widened when the schemas add properties, and written one batch at a time.

Every batch is one DuckDB transaction: the events, the cases and patrols they touched, the counts they added,
the messages set aside and the next offset of every partition read. A crash (even SIGKILL) leaves all of it
or none of it, and a restart reads from the stored offsets: every message is applied exactly once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb

from sink import views
from sink.schema import META_COLUMNS

if TYPE_CHECKING:
    from pathlib import Path

    from sink.schema import Catalogue

CASES: dict[str, str] = {
    "case_id": "VARCHAR", "case_number": "VARCHAR", "state": "VARCHAR", "channel": "VARCHAR",
    "category": "VARCHAR", "grid": "VARCHAR", "community": "VARCHAR", "street": "VARCHAR", "urgency": "VARCHAR",
    "reporter": "VARCHAR", "reported_at": "TIMESTAMPTZ", "reported_day": "DATE", "level": "VARCHAR",
    "max_level": "INTEGER", "handler_kind": "VARCHAR", "handler_id": "VARCHAR", "dispatched_at": "TIMESTAMPTZ",
    "sign_by": "TIMESTAMPTZ", "resolve_by": "TIMESTAMPTZ", "signed_at": "TIMESTAMPTZ",
    "resolved_at": "TIMESTAMPTZ", "closed_at": "TIMESTAMPTZ", "suspended_seconds": "BIGINT",
    "resolver_kind": "VARCHAR", "resolver_id": "VARCHAR", "bounces": "INTEGER", "escalations": "INTEGER",
    "reopenings": "INTEGER", "satisfaction": "VARCHAR", "feedback_resolved": "BOOLEAN",
    "master_case_number": "VARCHAR", "due_day": "DATE", "due_department": "VARCHAR", "events": "INTEGER",
    "last_event": "VARCHAR", "last_event_at": "TIMESTAMPTZ",
}  # fmt: skip
PATROLS: dict[str, str] = {
    "patrol_id": "VARCHAR", "patrol_number": "VARCHAR", "worker": "VARCHAR", "grid": "VARCHAR",
    "community": "VARCHAR", "street": "VARCHAR", "started_at": "TIMESTAMPTZ", "day": "DATE",
    "ended_at": "TIMESTAMPTZ", "duration_seconds": "DOUBLE", "distance_m": "DOUBLE", "checkpoints": "INTEGER",
    "households_visited": "INTEGER", "elderly_visits": "INTEGER", "places_inspected": "INTEGER",
    "events": "INTEGER", "last_event": "VARCHAR", "last_event_at": "TIMESTAMPTZ",
}  # fmt: skip
CountKey = tuple[str, str, str, str, str, str]
COUNT_KEY = ("kind", "subject", "community", "street", "day", "metric")

_FIXED_DDL = """
CREATE TABLE IF NOT EXISTS daily_counts (
    kind VARCHAR NOT NULL, subject VARCHAR NOT NULL, community VARCHAR NOT NULL, street VARCHAR NOT NULL,
    day DATE NOT NULL, metric VARCHAR NOT NULL, value DOUBLE NOT NULL);
CREATE TABLE IF NOT EXISTS sink_memory (id VARCHAR NOT NULL, aggregate VARCHAR NOT NULL, memory JSON NOT NULL);
CREATE TABLE IF NOT EXISTS sink_offsets (
    kafka_topic VARCHAR NOT NULL, kafka_partition INTEGER NOT NULL, next_offset BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS sink_poison (
    kafka_topic VARCHAR NOT NULL, kafka_partition INTEGER NOT NULL, kafka_offset BIGINT NOT NULL, key VARCHAR,
    ce_type VARCHAR, position BIGINT, error VARCHAR NOT NULL, value VARCHAR, headers JSON,
    set_aside_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS sink_meta (key VARCHAR NOT NULL, value VARCHAR NOT NULL);
"""


class NotAdditiveError(ValueError):
    """The schemas changed a column's type: not an additive change, the sink must be rebuilt."""


class TimezoneChangedError(ValueError):
    """The sink's days were counted in another time zone."""


def connect(path: Path) -> duckdb.DuckDBPyConnection:
    """Open (or create) the sink's file; DuckDB lets one process write it at a time."""
    connection = duckdb.connect(str(path))
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def _table_columns(connection: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = connection.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return {str(name): str(kind) for name, kind in rows}


def _create(connection: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str]) -> None:
    body = ", ".join(f'"{name}" {kind}' for name, kind in columns.items())
    connection.execute(f'CREATE TABLE IF NOT EXISTS "{table}" ({body})')


#: How information_schema spells the types the sink declares.
_SPELLED = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}


def migrate(connection: duckdb.DuckDBPyConnection, catalogue: Catalogue, timezone: str) -> list[str]:
    """Create what is missing and add the columns new schema properties bring; the columns added."""
    connection.execute(_FIXED_DDL)
    _create(connection, "cases", CASES)
    _create(connection, "patrols", PATROLS)
    wanted = catalogue.column_types()
    have = _table_columns(connection, "events")
    added: list[str] = []
    if not have:
        _create(connection, "events", wanted)
    else:
        for name, kind in wanted.items():
            if name not in have:
                connection.execute(f'ALTER TABLE events ADD COLUMN "{name}" {kind}')
                added.append(name)
            elif have[name] != _SPELLED.get(kind, kind):
                msg = (f"events.{name} is {have[name]} but the schemas in {catalogue.folder} now say {kind}: not an "
                       "additive change; export what you need and build the sink again into a new file")  # fmt: skip
                raise NotAdditiveError(msg)
    views.create(connection)
    stored = connection.execute("SELECT value FROM sink_meta WHERE key = 'timezone'").fetchone()
    if stored is None:
        connection.execute("INSERT INTO sink_meta VALUES ('timezone', ?)", [timezone])
    elif stored[0] != timezone:
        msg = f"this sink counts days in {stored[0]}, not {timezone}: give --timezone {stored[0]} or a new file"
        raise TimezoneChangedError(msg)
    return added


def offsets(connection: duckdb.DuckDBPyConnection) -> dict[tuple[str, int], int]:
    """The next offset to read, per (topic, partition), as the last committed batch left it."""
    rows = connection.execute("SELECT kafka_topic, kafka_partition, next_offset FROM sink_offsets").fetchall()
    return {(str(topic), int(partition)): int(offset) for topic, partition, offset in rows}


@dataclass
class Batch:
    """What one transaction writes."""

    #: Per event: the metadata columns (in META_COLUMNS order, without ``payload``) and the value's JSON text.
    events: list[tuple[list[Any], str]] = field(default_factory=list)
    poison: list[dict[str, Any]] = field(default_factory=list)
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    patrols: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[CountKey, float] = field(default_factory=dict)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    duplicates: int = 0


def load_memory(connection: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The remembered rows of these cases and patrols."""
    if not ids:
        return {}
    rows = connection.execute(
        "SELECT id, memory FROM sink_memory WHERE id IN (SELECT unnest($1::VARCHAR[]))", [ids]
    ).fetchall()
    return {str(key): json.loads(memory) for key, memory in rows}


#: The sink's own columns that come with each message (``payload`` is the value itself).
META = [name for name in META_COLUMNS if name != "payload"]
#: Where a message's topic, partition, offset, ce_id and event type sit in its metadata list.
TOPIC, PARTITION, OFFSET, CE_ID, EVENT_TYPE = (META.index(n) for n in ("kafka_topic", "kafka_partition",
                                                                        "kafka_offset", "ce_id", "event_type"))


def message_text(meta: list[Any], value: str) -> str:
    """One message as the INSERT takes it: ``{"m": [metadata], "v": value}``, the value's text kept as it came."""
    return f'{{"m":{json.dumps(meta, ensure_ascii=False)},"v":{value}}}'


def held_events(connection: duckdb.DuckDBPyConnection, ce_ids: list[str]) -> set[str]:
    """Which of these events (by ``ce_id``) the sink holds already."""
    if not ce_ids:
        return set()
    rows = connection.execute("SELECT ce_id FROM events WHERE ce_id IN (SELECT unnest($1::VARCHAR[]))", [ce_ids])
    return {str(row[0]) for row in rows.fetchall()}


def _selects(catalogue: Catalogue) -> tuple[str, list[str]]:
    """The FROM that reads each message in two parses, and the typed column expressions over what it read.

    ``x`` holds every scalar as text (``json_extract_string`` of a list of paths), ``o`` the value itself and
    every list or free object as JSON (``json_extract`` of another list): one parse per list, not per column.
    """
    scalars = [f"$.m[{i}]" for i in range(len(META))]
    nested = ["$.v"]
    expressions = [_typed(f"x[{i + 1}]", META_COLUMNS[name]) for i, name in enumerate(META)]
    expressions.append("o[1]")
    for column in catalogue.columns:
        if column.type == "JSON":  # a list or an object: its JSON text, not its string value
            nested.append(column.json_path())
            expressions.append(f"o[{len(nested)}]")
        else:
            scalars.append(column.json_path())
            expressions.append(_typed(f"x[{len(scalars)}]", column.type))
    reads = f"json_extract_string(j, {_listed(scalars)}) AS x, json_extract(j, {_listed(nested)}) AS o"
    return reads, expressions


def _listed(paths: list[str]) -> str:
    return "[" + ", ".join("'" + path.replace("'", "''") + "'" for path in paths) + "]"


def _typed(value: str, kind: str) -> str:
    return value if kind == "VARCHAR" else f"CAST({value} AS {kind})"


def events_sql(catalogue: Catalogue) -> str:
    """The INSERT of a batch of messages (:func:`message_text`): each parsed twice at most, every column typed."""
    reads, expressions = _selects(catalogue)
    columns = ", ".join(f'"{name}"' for name in [*META, "payload", *(c.name for c in catalogue.columns)])
    return (f"INSERT INTO events ({columns}) SELECT {', '.join(expressions)} FROM "
            f"(SELECT {reads} FROM (SELECT unnest($1::VARCHAR[]) AS j))")  # fmt: skip


def check_sql(catalogue: Catalogue) -> str:
    """The same casts as :func:`events_sql` over one message, writing nothing: finds the value that will not fit."""
    reads, expressions = _selects(catalogue)
    return f"SELECT {', '.join(expressions)} FROM (SELECT {reads} FROM (SELECT $1::VARCHAR AS j))"


def _rows_sql(table: str, columns: dict[str, str]) -> str:
    values = ", ".join(
        f"CAST(json_extract_string(j, '$.\"{name}\"') AS {kind})" if kind != "VARCHAR"
        else f"json_extract_string(j, '$.\"{name}\"')"
        for name, kind in columns.items()
    )  # fmt: skip
    return f"INSERT INTO {table} SELECT {values} FROM (SELECT unnest($1::VARCHAR[]) AS j)"


def write(connection: duckdb.DuckDBPyConnection, batch: Batch, sql: str) -> None:
    """Write one batch in one transaction (rolled back whole if any part fails)."""
    connection.execute("BEGIN TRANSACTION")
    try:
        _write(connection, batch, sql)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _write(connection: duckdb.DuckDBPyConnection, batch: Batch, sql: str) -> None:
    if batch.events:
        connection.execute(sql, [[message_text(meta, value) for meta, value in batch.events]])
    if batch.poison:
        connection.executemany(
            "INSERT INTO sink_poison (kafka_topic, kafka_partition, kafka_offset, key, ce_type, position, error, "
            "value, headers) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[p["topic"], p["partition"], p["offset"], p["key"], p["ce_type"], p["position"], p["error"],
              p["value"], json.dumps(p["headers"], ensure_ascii=False)] for p in batch.poison],
        )  # fmt: skip
    for table, rows, columns in (("cases", batch.cases, CASES), ("patrols", batch.patrols, PATROLS)):
        if not rows:
            continue
        ids = list(rows)
        texts = [json.dumps(row, ensure_ascii=False) for row in rows.values()]
        key = "case_id" if table == "cases" else "patrol_id"
        connection.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT unnest($1::VARCHAR[]))", [ids])
        connection.execute("DELETE FROM sink_memory WHERE id IN (SELECT unnest($1::VARCHAR[]))", [ids])
        connection.execute(_rows_sql(table, columns), [texts])
        connection.execute(
            "INSERT INTO sink_memory SELECT unnest($1::VARCHAR[]), $2, unnest($3::VARCHAR[])::JSON",
            [ids, table, texts],
        )
    if batch.counts:
        _add_counts(connection, batch.counts)
    if batch.offsets:
        topics, partitions, nexts = zip(*((t, p, o) for (t, p), o in batch.offsets.items()), strict=True)
        connection.execute(
            "DELETE FROM sink_offsets WHERE (kafka_topic, kafka_partition) IN "
            "(SELECT (unnest($1::VARCHAR[]), unnest($2::INTEGER[])))",
            [list(topics), list(partitions)],
        )
        connection.execute(
            "INSERT INTO sink_offsets SELECT unnest($1::VARCHAR[]), unnest($2::INTEGER[]), unnest($3::BIGINT[])",
            [list(topics), list(partitions), list(nexts)],
        )


def _add_counts(connection: duckdb.DuckDBPyConnection, counts: dict[CountKey, float]) -> None:
    keys = list(counts)
    columns = [list(column) for column in zip(*keys, strict=True)]
    connection.execute(
        "CREATE TEMP TABLE IF NOT EXISTS count_delta (kind VARCHAR, subject VARCHAR, community VARCHAR, "
        "street VARCHAR, day DATE, metric VARCHAR, value DOUBLE)"
    )
    connection.execute("DELETE FROM count_delta")
    connection.execute(
        "INSERT INTO count_delta SELECT unnest($1::VARCHAR[]), unnest($2::VARCHAR[]), unnest($3::VARCHAR[]), "
        "unnest($4::VARCHAR[]), unnest($5::DATE[]), unnest($6::VARCHAR[]), unnest($7::DOUBLE[])",
        [*columns, [counts[key] for key in keys]],
    )
    on = " AND ".join(f"c.{name} = d.{name}" for name in COUNT_KEY)
    connection.execute(
        f"UPDATE daily_counts AS c SET value = c.value + d.value FROM count_delta AS d WHERE {on}"
    )
    connection.execute(f"INSERT INTO daily_counts SELECT d.* FROM count_delta AS d ANTI JOIN daily_counts AS c ON {on}")
