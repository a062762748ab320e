"""The sink's tables as Parquet files, by month, from one snapshot: what a BI tool opens while the sink runs.

DuckDB lets no other process open the file a running sink writes, so the export is how others read it
up to the minute (``--follow --parquet DIR`` exports again every ``--parquet-every`` seconds when there was
something new). Each table's folder is written beside the old one and swapped in, so a reader sees the old
files or the new ones.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb

#: Tables and views exported by month, and the date column whose month names each file's folder.
BY_MONTH = {"events": "local_day", "cases": "reported_day", "patrols": "day", "daily_counts": "day",
            "daily_figures": "day"}  # fmt: skip
#: Views exported whole, one file each (``DIR/units.parquet``), where the schemas give them.
WHOLE = ("units", "workers")


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def export(connection: duckdb.DuckDBPyConnection, folder: Path) -> dict[str, int]:
    """Write every table into ``folder``; rows per table."""
    folder.mkdir(parents=True, exist_ok=True)
    present = {str(row[0]) for row in connection.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    written: dict[str, int] = {}
    connection.execute("BEGIN TRANSACTION")  # one snapshot for every table
    try:
        for view in WHOLE:
            if view in present:
                fresh = folder / f".{view}.parquet.new"
                connection.execute(f"COPY (SELECT * FROM {view}) TO {_quoted(fresh)} (FORMAT PARQUET)")
                fresh.replace(folder / f"{view}.parquet")
                written[view] = _count(connection, view)
        for table, day in BY_MONTH.items():
            fresh = folder / f".{table}.new"
            shutil.rmtree(fresh, ignore_errors=True)
            month = f"coalesce(strftime({day}, '%Y-%m'), 'unknown')"
            connection.execute(f"COPY (SELECT *, {month} AS month FROM {table}) TO {_quoted(fresh)} "
                               "(FORMAT PARQUET, PARTITION_BY (month))")  # fmt: skip
            _swap(fresh, folder / table)
            written[table] = _count(connection, table)
    finally:
        connection.execute("COMMIT")
    return written


def _count(connection: duckdb.DuckDBPyConnection, table: str) -> int:
    row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def _swap(fresh: Path, target: Path) -> None:
    """Put ``fresh`` where ``target`` is: two renames, the old folder removed after."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    fresh.rename(target)
    shutil.rmtree(old, ignore_errors=True)
