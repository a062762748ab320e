"""``gridcase sink`` (the reference downstream consumer into DuckDB) and ``gridcase sink verify`` (its recount).

The sink itself is the :mod:`sink` package, which knows nothing of the engine: this module hands it the
broker and the time zone from the settings. ``verify`` is the engine's side: it recounts the sink's tables
against the store and the engine's own read models, and names every difference (exit 1 when there is one).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import select

from adapters.cli.common import Exit, JsonOpt, err, fail, load_settings, opened_engine, summary
from adapters.kafka.published import split_topic
from projections.case_status import case_status
from projections.performance import performance_counts

sink_app = typer.Typer(
    help="The reference downstream consumer: the topics and schemas/ into DuckDB analytics tables (docs/sink.md).",
    no_args_is_help=False,
    invoke_without_command=True,
)
IntoOpt = Annotated[Path, typer.Option("--into", help="The sink's DuckDB file (gridcase sink --into …)")]
#: At most this many positions or keys are named in a difference.
SHOWN = 10


def register(app: typer.Typer) -> None:
    """Add ``sink`` and ``sink verify`` to the ``gridcase`` program."""
    app.add_typer(sink_app, name="sink")


@sink_app.callback()
def sink(
    ctx: typer.Context,
    into: Annotated[Path | None, typer.Option("--into", help="The DuckDB file (created if missing)")] = None,
    follow: Annotated[bool, typer.Option("--follow", help="Keep reading until SIGTERM or Ctrl-C")] = False,
    parquet: Annotated[Path | None, typer.Option("--parquet", help="Then export Parquet files by month here")] = None,
    parquet_every: Annotated[float, typer.Option("--parquet-every", min=0.1,
                                                 help="With --follow --parquet: export again this often (s)")] = 60.0,
    schemas: Annotated[Path | None, typer.Option("--schemas", help="The schemas/events folder to read")] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Messages per DuckDB transaction")] = 5_000,
    as_json: JsonOpt = False,
) -> None:
    """Read the topics (GRIDCASE_KAFKA_BOOTSTRAP_SERVERS) into DuckDB tables, exactly once: catch up, or follow."""
    if ctx.invoked_subcommand is not None:
        return
    if into is None:
        fail(Exit.BAD_INPUT, "bad input: --into: give the DuckDB file, e.g. --into analytics.duckdb")
    import signal  # noqa: PLC0415

    from sink.run import run  # noqa: PLC0415

    settings = load_settings()
    if not settings.kafka_enabled:
        fail(Exit.BAD_INPUT, "bad setting: GRIDCASE_KAFKA_BOOTSTRAP_SERVERS is empty: the sink reads the topics")
    stopping = [False]
    signal.signal(signal.SIGTERM, lambda *_: stopping.__setitem__(0, True))  # noqa: FBT003
    code = run(into, settings.kafka_bootstrap_servers, schemas=schemas, timezone=settings.timezone, follow=follow,
               parquet=parquet, parquet_every=parquet_every, batch_size=batch, as_json=as_json,
               stop=lambda: stopping[0])  # fmt: skip
    if code:
        raise typer.Exit(code)


@sink_app.command("verify")
def verify(into: IntoOpt, as_json: JsonOpt = False) -> None:
    """Recount the sink's tables against the store and the engine's read models; name every difference."""
    import duckdb  # noqa: PLC0415

    if not into.is_file():
        fail(Exit.BAD_INPUT, f"bad input: --into: {into} is not a file (run gridcase sink --into {into} first)")
    try:
        sink_db = duckdb.connect(str(into), read_only=True)
    except duckdb.Error as error:
        fail(Exit.UNAVAILABLE, f"unavailable: {into}: {error} (a running sink --follow holds the file: stop it first)")
    try:
        found = _sink_side(sink_db)
    except duckdb.Error as error:
        fail(Exit.BAD_INPUT, f"bad input: {into} is not a sink's file: {error}")
    finally:
        sink_db.close()
    settings = load_settings()
    with opened_engine(settings) as engine:
        store = _store_side(engine.reader)
        read = engine.read_side()
        try:
            read.catch_up()
            with read.engine.connect() as connection:
                states = {row.case_number: row.state for row in connection.execute(
                    select(case_status.c.case_number, case_status.c.state))}  # fmt: skip
                counted = {tuple(row[:6]): float(row[6]) for row in connection.execute(select(performance_counts))}
        finally:
            read.close()
    differences = _differences(found, store, states, counted)
    document = {
        "into": str(into), "store_events": len(store["positions"]), "sink_events": found["events"],
        "cases": len(found["cases"]), "patrols": found["patrols"], "daily_counts": len(found["counts"]),
        "differences": differences,
    }  # fmt: skip
    if differences and not as_json:
        for line in differences:
            err.print(f"difference: {line}", markup=False, highlight=False)
    line = (f"sink {into} against the store: {found['events']:,} events, {len(found['cases']):,} cases, "
            f"{found['patrols']:,} patrols, {len(found['counts']):,} daily counts: ")  # fmt: skip
    summary(as_json, document, line + (f"{len(differences)} difference(s)" if differences else "no difference"))
    if differences:
        raise typer.Exit(int(Exit.FOUND))


def _sink_side(db: Any) -> dict[str, Any]:
    found = db.execute("SELECT position, count(*) FROM events GROUP BY 1").fetchall()
    positions = Counter({int(p): int(n) for p, n in found})
    types = Counter({str(t).rsplit(".", 1)[-1]: int(n) for t, n in db.execute(
        "SELECT event_type, count(*) FROM events GROUP BY 1").fetchall()})  # fmt: skip
    cases = {str(number): str(state) for number, state in db.execute("SELECT case_number, state FROM cases").fetchall()}
    patrols = db.execute("SELECT count(*) FROM patrols").fetchone()[0]
    counts = {
        (k, s, c, st, d, m): float(v)
        for k, s, c, st, d, m, v in db.execute(
            "SELECT kind, subject, community, street, strftime(day, '%Y-%m-%d'), metric, value FROM daily_counts"
        ).fetchall()
    }
    poison = {int(p) for (p,) in db.execute("SELECT position FROM sink_poison WHERE position IS NOT NULL").fetchall()}
    return {"positions": positions, "types": types, "cases": cases, "patrols": int(patrols), "counts": counts,
            "events": sum(positions.values()), "poison": poison}  # fmt: skip


def _store_side(reader: Any) -> dict[str, Any]:
    positions: set[int] = set()
    types: Counter[str] = Counter()
    after = 0
    while batch := reader.read(after, 20_000):
        for notification in batch:
            positions.add(int(notification.id))
            types[split_topic(notification.topic)[1]] += 1
        after = batch[-1].id
    return {"positions": positions, "types": types}


def _listed(values: list[Any]) -> str:
    shown = ", ".join(str(v) for v in values[:SHOWN])
    return shown + (f" and {len(values) - SHOWN} more" if len(values) > SHOWN else "")


def _differences(
    found: dict[str, Any], store: dict[str, Any], states: dict[str, str], counted: dict[tuple[Any, ...], float]
) -> list[str]:
    lines = []
    positions: Counter[int] = found["positions"]
    missing = sorted(store["positions"] - set(positions))
    extra = sorted(set(positions) - store["positions"])
    twice = sorted(p for p, n in positions.items() if n > 1)
    if missing:
        aside = len(set(missing) & found["poison"])
        why = f" ({aside} of them set aside in the sink's poison table)" if aside else ""
        lines.append(f"{len(missing)} stored event(s) not in the sink: positions {_listed(missing)}{why}")
    if extra:
        lines.append(f"{len(extra)} event(s) in the sink the store does not have: positions {_listed(extra)}")
    if twice:
        lines.append(f"{len(twice)} event(s) in the sink more than once: positions {_listed(twice)}")
    lines.extend(
        f"{name}: {store['types'][name]} in the store, {found['types'][name]} in the sink"
        for name in sorted(set(store["types"]) | set(found["types"]))
        if store["types"][name] != found["types"][name]
    )
    sink_cases: dict[str, str] = found["cases"]
    absent = sorted(set(states) - set(sink_cases))
    if absent:
        lines.append(f"{len(absent)} case(s) not in the sink's cases: {_listed(absent)}")
    unlike = sorted(n for n in set(states) & set(sink_cases) if states[n] != sink_cases[n])
    if unlike:
        shown = [f"{n} ({sink_cases[n]} in the sink, {states[n]} in the engine)" for n in unlike]
        lines.append(f"{len(unlike)} case(s) in another state: {_listed(shown)}")
    patrols = store["types"]["PatrolStarted"]
    if patrols != found["patrols"]:
        lines.append(f"patrols: {patrols} started in the store, {found['patrols']} in the sink")
    ours: dict[tuple[Any, ...], float] = found["counts"]
    keys = {k for k, v in counted.items() if v} | {k for k, v in ours.items() if v}
    off = sorted(k for k in keys if not math.isclose(counted.get(k, 0.0), ours.get(k, 0.0), rel_tol=1e-9, abs_tol=1e-6))
    if off:
        lines.append(f"{len(off)} daily count(s) differ from the engine's performance read model: " + _listed(
            [f"{k[0]} {k[1]} {k[4]} {k[5]} = {ours.get(k, 0.0):g} in the sink, {counted.get(k, 0.0):g} in the engine"
             for k in off]))  # fmt: skip
    return lines


__all__ = ["register", "sink", "verify"]
