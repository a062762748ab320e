"""The reference district and the tour: ``gridcase load-reference``, ``simulate``, ``walkthrough``.

The district's modules are imported inside the commands, so that the rest of the
CLI does not depend on them.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from adapters.cli.common import (
    Exit,
    JsonOpt,
    emit,
    err,
    fail,
    load_settings,
    opened_engine,
    out,
    read_side,
    show_record,
)
from adapters.cli.queries import print_history
from domain.bounds import EARLIEST, LATEST
from domain.errors import DomainError
from domain.numbers import format_number

if TYPE_CHECKING:
    from adapters.bootstrap import Engine


def register(app: typer.Typer) -> None:
    """Add ``load-reference``, ``simulate`` and ``walkthrough`` to the ``gridcase`` program."""
    app.command("load-reference")(load_reference)
    app.command("simulate")(simulate)
    app.command("walkthrough")(walkthrough)


REFERENCE_AT = "2021-01-01T00:00:00+08:00"


def _load_reference(engine: Engine, as_json: bool) -> dict[str, int]:
    from rich.progress import Progress  # noqa: PLC0415

    from district.reference import load_reference_district  # noqa: PLC0415

    at = datetime.fromisoformat(REFERENCE_AT)
    with Progress(console=err, transient=True, disable=as_json or not err.is_terminal) as progress:
        task = progress.add_task("loading the reference district", total=None)

        shown = [0]

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)
            # Without a terminal, a line per quarter is progress enough for a log.
            if not err.is_terminal and not as_json and (done - shown[0] >= total // 4 or done == total):
                shown[0] = done
                err.print(f"loading the reference district: {done}/{total} commands", highlight=False)

        try:
            counts = load_reference_district(engine.service, engine.reader, at, progress=advance)
        except DomainError as error:  # a store holding another district (the same codes, set up otherwise)
            fail(Exit.REFUSED, f"refused: {error}")
    if not as_json and not counts.get("skipped"):
        err.print(
            f"reference district loaded: {counts.get('events', 0)} events, {counts.get('base_grids', 0)} base + "
            f"{counts.get('dedicated_grids', 0)} dedicated grids",
            highlight=False,
        )
    return counts


def load_reference(as_json: JsonOpt = False) -> None:
    """Load the reference district (Shinan: 10 streets, 573 grids, 3,606 workers…) unless already there."""
    settings = load_settings()
    with opened_engine(settings) as engine:
        counts = _load_reference(engine, as_json)
    if as_json:
        emit(counts)
    else:
        out.print("reference district: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()),
                  highlight=False)  # fmt: skip


def simulate(
    days: Annotated[int, typer.Option(min=1, help="Days to simulate")] = 7,
    seed: Annotated[int, typer.Option(help="Same seed, same event stream")] = 1,
    start: Annotated[str, typer.Option(help="First simulated day (YYYY-MM-DD, district local)")] = "2021-06-01",
    grids: Annotated[int | None, typer.Option(min=1, help="Simulate only this many base grids (spread out)")] = None,
    intensity: Annotated[float, typer.Option(min=0.0, help="Multiplier on the complaint rate")] = 1.0,
    rate: Annotated[
        float | None, typer.Option(min=0.001, help="Pace for demos: simulated seconds per real second")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Do nothing if the first day was simulated already")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Drive the reference district through N days of plausible life, through the engine's own commands."""
    from district.reference import reference_commands  # noqa: PLC0415
    from district.simulator import SimulationConfig, Simulator, World  # noqa: PLC0415

    settings = load_settings()
    try:
        first = datetime.strptime(start, "%Y-%m-%d").date()  # noqa: DTZ007 - a calendar day, not a moment
    except ValueError:
        fail(Exit.BAD_INPUT, f"bad input: --start: {start!r} is not YYYY-MM-DD")
    # Every simulated day inside the window every moment keeps (domain/bounds.py); days past it overflow.
    if not EARLIEST.date() <= first or (LATEST.date() - first).days < days:
        fail(Exit.BAD_INPUT, f"bad input: --start, --days: {days} days from {first} do not fit in "
                             f"{EARLIEST.year}-01-01 … {LATEST.year - 1}-12-31")  # fmt: skip
    config = SimulationConfig(days=days, seed=seed, start=first, grids=grids, intensity=intensity, rate=rate)
    with opened_engine(settings) as engine:
        service = engine.service
        _load_reference(engine, as_json)
        if once and service.case_exists(format_number(settings.case_prefix, first, 1)):
            out.print(f"{first} has cases already: not simulating again (--once)", highlight=False)
            return
        world = World(reference_commands(datetime.fromisoformat(REFERENCE_AT)), grids)

        def on_day(day: date, stored: dict[str, int]) -> None:
            if as_json:
                return
            err.print(
                f"{day:%Y-%m-%d %a}: {sum(stored.values()):>6} events, {stored.get('PatrolStarted', 0):>4} patrols, "
                f"{stored.get('CaseReported', 0):>4} reported, {stored.get('CaseClosed', 0):>4} closed",
                highlight=False,
            )

        totals = Simulator(service, engine.reader, world, config).run(on_day).as_dict()
    if as_json:
        emit(totals, ensure_ascii=False)
        return
    out.print(
        f"simulated {days} days of {len(world.grids)} grids: {totals['events']} events "
        f"({totals['events_per_second']}/s), {totals['cases_reported']} cases, median resolution "
        f"{totals['median_resolution_hours']} h, overdue {totals['overdue_share']}, "
        f"refused {totals['intended_refusals']} on purpose and {totals['unexpected_refusals']} otherwise; "
        f"digest {totals['digest'][:16]}",
        highlight=False,
    )


def walkthrough(as_json: JsonOpt = False) -> None:
    """Load the reference district if absent, walk one complaint through its whole life, print its history."""
    from district.reference import reference_commands  # noqa: PLC0415
    from district.walkthrough import tour_cast, walk_one_complaint  # noqa: PLC0415

    settings = load_settings()
    with opened_engine(settings) as engine:
        service = engine.service
        _load_reference(engine, as_json)
        cast = tour_cast(list(reference_commands(datetime.fromisoformat(REFERENCE_AT))))
        start = datetime.now(settings.tz).replace(microsecond=0) - timedelta(hours=6)
        number = walk_one_complaint(service, cast, start)
        rows = service.history(number)
    from projections.performance_queries import performance as figures  # noqa: PLC0415

    with read_side(settings) as read, read.engine.connect() as connection:
        status = read.case(number)
        day = datetime.fromisoformat(rows[-1]["occurred_at"]).astimezone(settings.tz).date().isoformat()
        handler = figures(connection, "worker", day, cast["handler"])[0]
    if as_json:
        emit({"case_number": number, "history": rows, "status": status, "handler": handler},
             ensure_ascii=False, indent=2)  # fmt: skip
        return
    print_history(number, rows, settings)
    assert status is not None
    show_record(status, as_json, f"Case status of {number} (read model)")
    show_record(handler, as_json, f"Handling worker {cast['handler']} on {day}")
    out.print(f"case {number}: {len(rows)} events, reported by hotline, closed after a satisfied callback; "
              f"see it again with: gridcase case history {number}", highlight=False)  # fmt: skip
