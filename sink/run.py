"""One run of the sink from a command line: progress on stderr, one summary line (or JSON) on stdout, an exit code."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import duckdb
from kafka.errors import KafkaError

from sink.consume import Sink, SinkStats
from sink.schema import SchemaError
from sink.tables import NotAdditiveError, TimezoneChangedError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

OK, BAD_INPUT, UNAVAILABLE, INTERNAL = 0, 2, 5, 70


def _progress(stats: SinkStats) -> None:
    sys.stderr.write(f"sink: {stats.events:,} events, {stats.poison:,} set aside, {stats.lag:,} behind\n")


def counts(sink: Sink) -> dict[str, int]:
    """Rows per table, and the messages set aside in all."""
    found = {}
    for table in ("events", "cases", "patrols", "daily_counts", "sink_poison"):
        row = sink.connection.execute(f"SELECT count(*) FROM {table}").fetchone()
        found[table] = int(row[0]) if row else 0
    return found


def run(  # noqa: PLR0911 - one return per kind of failure
    into: Path,
    bootstrap: str,
    *,
    schemas: Path | None = None,
    timezone: str = "Asia/Shanghai",
    follow: bool = False,
    parquet: Path | None = None,
    batch_size: int = 5_000,
    parquet_every: float = 60.0,
    as_json: bool = False,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Catch up (or follow), export Parquet if asked, print the summary; the exit code."""
    problem = _problem(bootstrap, batch_size, parquet_every)
    if problem:
        sys.stderr.write(f"bad input: {problem}\n")
        return BAD_INPUT
    try:
        sink = Sink(into, bootstrap, schemas=schemas, timezone=timezone, batch_size=batch_size)
    except SchemaError as error:
        sys.stderr.write(f"bad input: {error}\n")
        return BAD_INPUT
    except (KeyError, ValueError) as error:
        sys.stderr.write(f"bad input: --timezone: {timezone!r} is not a time zone ({error})\n")
        return BAD_INPUT
    progress = None if as_json else _progress
    try:
        sink.start()
        if follow:
            stats = sink.follow(stop, progress, parquet_to=parquet, parquet_every=parquet_every)
        else:
            stats = sink.run_once(progress)
        exported = sink.export_parquet(parquet) if parquet is not None else None
        rows = counts(sink)
    except (NotAdditiveError, TimezoneChangedError) as error:
        sys.stderr.write(f"bad input: {error}\n")
        return BAD_INPUT
    except KafkaError as error:
        sys.stderr.write(f"unavailable: Kafka at {bootstrap}: {error}\n")
        return UNAVAILABLE
    except duckdb.IOException as error:  # the file is locked by another process, the disk is full, …
        sys.stderr.write(f"unavailable: {into}: {str(error).splitlines()[0]}\n")
        return UNAVAILABLE
    except duckdb.Error as error:  # not a message's fault (those are set aside): a bug, or a damaged file
        sys.stderr.write(f"internal error: DuckDB: {type(error).__name__}: {str(error).splitlines()[0]}\n")
        return INTERNAL
    except KeyboardInterrupt:
        return OK
    finally:
        sink.close()
    _summary(into, stats, rows, exported, parquet, as_json)
    return OK


def _problem(bootstrap: str, batch_size: int, parquet_every: float) -> str | None:
    if not bootstrap:
        return "no broker: give --bootstrap HOST:PORT or set GRIDCASE_KAFKA_BOOTSTRAP_SERVERS"
    if batch_size < 1:
        return f"--batch: {batch_size} is not a positive number of messages"
    if not parquet_every > 0:
        return f"--parquet-every: {parquet_every} is not a positive number of seconds"
    return None


def _summary(
    into: Path, stats: SinkStats, rows: dict[str, int], exported: dict[str, int] | None, parquet: Path | None,
    as_json: bool,
) -> None:  # fmt: skip
    rate = f"{stats.messages / stats.seconds:,.0f} messages/s" if stats.seconds and stats.messages else "nothing new"
    if as_json:
        document: dict[str, Any] = {
            "into": str(into), "messages": stats.messages, "events": stats.events, "poison": stats.poison,
            "duplicates": stats.duplicates, "batches": stats.batches, "behind": stats.lag,
            "seconds": round(stats.seconds, 2),
            "columns_added": stats.columns_added, "per_type": stats.per_type, "tables": rows,
            "parquet": {"folder": str(parquet), "rows": exported} if exported is not None else None,
        }  # fmt: skip
        sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
        return
    again = f", {stats.duplicates:,} published again (skipped)" if stats.duplicates else ""
    added = f", columns added: {', '.join(stats.columns_added)}" if stats.columns_added else ""
    exports = f"; Parquet in {parquet}" if exported is not None else ""
    sys.stdout.write(
        f"sink {into}: {stats.events:,} events taken, {stats.poison:,} set aside (sink_poison: "
        f"{rows['sink_poison']:,} in all){again}, {stats.lag:,} behind ({rate}); {rows['events']:,} events, "
        f"{rows['cases']:,} cases, {rows['patrols']:,} patrols, {rows['daily_counts']:,} daily counts{added}{exports}\n"
    )
