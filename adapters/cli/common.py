"""What every group of ``gridcase`` commands shares: exit codes, failing, settings, options, time, output.

Exit codes: 0 ok, 1 a check found something (``replay verify`` a row that differs,
``audit verify`` a broken link), 2 bad input, 3 refused by the domain, 4 conflict
(a concurrent change), 5 a server (Kafka, the database) did not take the work: run
it again, 70 an internal error (a bug: the details are in a file the line names).
Each failure prints one line on stderr naming what was wrong, never a traceback
(adapters/cli/__init__.py's ``main`` makes sure of it).

The CLI is the operator's tool, run with the database in reach: it takes the actor
and the ``--role`` it is given on trust (the HTTP API is where roles come from tokens).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import tempfile
from contextlib import contextmanager
from datetime import UTC, date, datetime
from enum import IntEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from domain.bounds import PERIOD_SHAPES, moment_problem, period_days
from domain.redaction import describe_error, mask_contacts, safe_traceback

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from adapters.bootstrap import Engine
    from adapters.settings import Settings
    from domain.base import ActorRef
    from service import Service

# Piped output is read by people in logs and CI too: do not squeeze tables into 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)


class Exit(IntEnum):
    """Process exit codes."""

    OK = 0
    FOUND = 1
    BAD_INPUT = 2
    REFUSED = 3
    CONFLICT = 4
    UNAVAILABLE = 5
    #: Something the code did not expect (a bug): sysexits' EX_SOFTWARE, apart from every code above.
    INTERNAL = 70


def fail(code: Exit, message: str) -> NoReturn:
    """Print one line on stderr and end the command with this exit code."""
    err.print(message, markup=False, highlight=False)
    raise typer.Exit(int(code))


def internal_error(error: BaseException, context: str) -> str:
    """The one line an unexpected exception becomes; its traceback goes to a new file the line names.

    Call it while the exception is being handled. The file is in the temporary directory
    (``TMPDIR``), one per failure, so a bug report can carry it whole: it holds the frames and the
    error's class and fields, never a value (docs/privacy.md, "Logs"); ``context`` must name none either.
    """
    descriptor, path = tempfile.mkstemp(prefix="gridcase-internal-error-", suffix=".txt")
    with os.fdopen(descriptor, "w", encoding="utf-8", errors="backslashreplace") as file:
        file.write(f"{datetime.now(UTC).isoformat()} {mask_contacts(context)}\n")
        file.write(safe_traceback(error))
    return f"internal error: {describe_error(error)} (details in {path})"


#: A word of a command line that is a command or a code (``report``, ``SN-20211231-000123``), not free text.
_COMMAND_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,40}")


def command_words(args: Sequence[str]) -> str:
    """A command line told without its values: the command's words, then the names of the options given.

    ``gridcase case report --reporter-phone 138… --description …`` becomes
    ``gridcase case report --reporter-phone --description``: what was run, never what it carried.
    """
    words: list[str] = []
    for arg in args:
        if arg.startswith("-"):
            break
        words.append(arg if _COMMAND_WORD.fullmatch(arg) else "[value]")
    options = [arg.partition("=")[0] for arg in args if arg.startswith("-") and arg != "-"]
    return " ".join(["gridcase", *words, *options])


def load_settings() -> Settings:
    """The settings from the environment; a bad one is bad input."""
    from adapters.bootstrap import BadSettings, settings_from_environment  # noqa: PLC0415 - a command that runs pays

    try:
        return settings_from_environment()
    except BadSettings as error:
        fail(Exit.BAD_INPUT, f"bad setting: {error}")


# -- options ------------------------------------------------------------------------

ActorOpt = Annotated[str | None, typer.Option("--actor", envvar="GRIDCASE_ACTOR", help="Who acts (id).")]
RoleOpt = Annotated[
    str | None,
    typer.Option("--role", envvar="GRIDCASE_ROLE", help="Role acted in: grid_worker, dispatcher, admin, …"),
]
UnitOpt = Annotated[str | None, typer.Option("--unit", envvar="GRIDCASE_UNIT", help="Department of a handler.")]
AtOpt = Annotated[
    str | None, typer.Option("--at", help="When it happened (ISO 8601; no offset = district local time). Default now.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
Number = Annotated[str, typer.Argument(help="Case number, e.g. SN-20211231-000123.")]
ReasonOpt = Annotated[
    str | None, typer.Option("--reason", help="Why you need personal data in clear (recorded in the access log).")
]


def viewer(actor: str | None, role: str | None, unit: str | None = None) -> ActorRef:
    """Who asks to see personal data (from ``--actor`` and ``--role``); bad input when either is missing or wrong.

    Whether that role may see it is the service's rule (domain/personal_data.py), not the CLI's.
    """
    from pydantic import ValidationError  # noqa: PLC0415 - only a command that shows personal data pays

    from domain.base import ActorRef  # noqa: PLC0415
    if not actor or not role:
        fail(Exit.BAD_INPUT, "bad input: actor: give --actor and --role (or GRIDCASE_ACTOR and GRIDCASE_ROLE)")
    try:
        return ActorRef(id=actor, role=role, unit=unit)  # pydantic parses the role
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in error.errors()[:3])
        fail(Exit.BAD_INPUT, f"bad input: actor: {problems}")


# -- time ---------------------------------------------------------------------------


def moment(text: str | None, settings: Settings, option: str = "--at") -> datetime | None:
    """An ISO 8601 time as given, inside the window of domain/bounds.py; no offset means district local time.

    A bare number is refused rather than read as a Unix timestamp: nobody writes one by hand, and a
    script that does means seconds, milliseconds or a date, there is no telling which.
    """
    if text is None:
        return None
    bare = text.strip().lstrip("+-")
    if bare.isdigit() and len(bare) != len("YYYYMMDD"):
        fail(Exit.BAD_INPUT, f"bad input: {option}: {text!r} is a number, not an ISO 8601 time "
                             "(Unix timestamps are not taken)")  # fmt: skip
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        fail(Exit.BAD_INPUT, f"bad input: {option}: {text!r} is not an ISO 8601 time")
    found = found if found.tzinfo is not None else found.replace(tzinfo=settings.tz)
    problem = moment_problem(found)
    if problem is not None:
        fail(Exit.BAD_INPUT, f"bad input: {option}: {text!r} {problem}")
    return found


def local_time(text: str, settings: Settings) -> str:
    """A stored time shown in district local time, to the second."""
    return datetime.fromisoformat(text).astimezone(settings.tz).strftime("%Y-%m-%d %H:%M:%S")


def parse_period(text: str, option: str = "--period", *, days: bool = True) -> tuple[date, date]:
    """A period (a year, a month or, unless ``days`` is false, a day) as the local days it covers.

    domain/bounds.py parses it, as the read models do: a real month and day, inside the window.
    """
    shapes = PERIOD_SHAPES if days else "YYYY or YYYY-MM"
    if not days and text.count("-") > 1:
        fail(Exit.BAD_INPUT, f"bad input: {option}: {text!r} is not {shapes}")
    try:
        return period_days(text)
    except ValueError as error:
        fail(Exit.BAD_INPUT, f"bad input: {option}: {str(error).removeprefix('period ')}")


def one_of(value: str | None, allowed: Iterable[str], option: str) -> str | None:
    """The value if it is one of ``allowed`` (or None); otherwise bad input naming every valid value."""
    names = list(allowed)
    if value is not None and value not in names:
        fail(Exit.BAD_INPUT, f"bad input: {option}: {value!r} is not one of {', '.join(names)}")
    return value


# -- the engine ---------------------------------------------------------------------


@contextmanager
def opened_engine(settings: Settings) -> Iterator[Engine]:
    """The engine the bootstrap builds from the settings, closed afterwards."""
    from adapters.bootstrap import bootstrap  # noqa: PLC0415 - the service, the store and the projections: costly

    engine = bootstrap(settings)
    try:
        yield engine
    finally:
        engine.close()


@contextmanager
def opened_service(settings: Settings) -> Iterator[Service]:
    """The service over the store, closed afterwards."""
    with opened_engine(settings) as engine:
        yield engine.service


@contextmanager
def read_side(settings: Settings, *, catch_up: bool = True, names: Sequence[str] | None = None) -> Any:
    """The read models, caught up first unless told not to or current enough, closed afterwards.

    Read models kept from the store are read as they stand when they are at most
    ``GRIDCASE_QUERY_LAG_BOUND`` events behind it (0 by default: when they are current), saying on stderr
    how far behind they were; further behind, or never built, they are caught up first. Checking costs two
    small queries and imports neither the service nor the projections' runner: a query on current read
    models answers at once. ``names``: the read models the query reads (all of them when None).
    """
    if catch_up and settings.projections_source == "store":
        behind = lag(settings, names)
        if behind is not None and behind <= settings.query_lag_bound:
            if behind:
                err.print(f"read models {behind:,} events behind the store (within GRIDCASE_QUERY_LAG_BOUND="
                          f"{settings.query_lag_bound:,}): not caught up", highlight=False)  # fmt: skip
            from projections.read_side import ReadModels  # noqa: PLC0415
            from projections.sql import make_engine  # noqa: PLC0415

            read = ReadModels(make_engine(settings.read_url))
            try:
                yield read
            finally:
                read.close()
            return
    with opened_engine(settings) as engine:
        read = engine.read_side()
        try:
            if catch_up:
                read.catch_up()
            yield read
        finally:
            read.close()


def lag(settings: Settings, names: Sequence[str] | None = None) -> int | None:
    """How many events the read models (those ``names``, or all) are behind the store; None if never built.

    None too when either database cannot be read this way (no store yet, a server down): the caller then
    takes the full path, which makes what is missing or fails as it always did.
    """
    from sqlalchemy import func, inspect, select  # noqa: PLC0415
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

    from projections.sql import make_engine, positions  # noqa: PLC0415
    from replay.source import head  # noqa: PLC0415

    store = make_engine(settings.database_url)
    read = store if settings.read_url == settings.database_url else make_engine(settings.read_url)
    try:
        if not inspect(read).has_table(positions.name):
            return None
        with store.connect() as connection:
            position, _ = head(connection)
        with read.connect() as connection:
            if names is None:
                found = connection.execute(select(func.min(positions.c.position))).scalar()
            else:
                rows: dict[str, int] = {row.name: row.position for row in connection.execute(select(positions))}
                each = [rows.get(name) for name in names]
                found = None if None in each else min(p for p in each if p is not None)
        return None if found is None else max(0, position - int(found))
    except SQLAlchemyError:
        return None
    finally:
        store.dispose()
        read.dispose()


# -- output -------------------------------------------------------------------------


def emit(value: Any, **dump: Any) -> None:
    """One JSON document for machines on stdout."""
    sys.stdout.write(json.dumps(value, **dump) + "\n")


def summary(as_json: bool, document: dict[str, Any], line: str) -> None:
    """The one-line summary of a command: JSON for machines, a sentence for people."""
    if as_json:
        emit(document, ensure_ascii=False)
    else:
        out.print(line, highlight=False)


def rate(count: int, seconds: float, unit: str = "events", idle: str = "nothing new") -> str:
    """How fast: ``12,345 events/s``; ``idle`` when no time went by."""
    return f"{count / seconds:,.0f} {unit}/s" if seconds else idle


def cell(value: Any) -> str:
    """A figure for a table: rates as fraction and percentage, no value as a dash."""
    if isinstance(value, dict) and "rate" in value:
        if value["rate"] is None:
            return f"{value['numerator']}/{value['denominator']} (—)"
        return f"{value['numerator']}/{value['denominator']} ({value['rate'] * 100:.1f}%)"
    return "—" if value is None else str(value)


def show_rows(rows: list[dict[str, Any]], as_json: bool, title: str, columns: list[str] | None = None) -> None:
    """Rows as a table for people, or as a JSON list of objects for machines."""
    if as_json:
        emit(rows, ensure_ascii=False)
        return
    if not rows:
        out.print(f"{title}: nothing", highlight=False)
        return
    names = columns or list(rows[0])
    table = Table(title=title, title_justify="left")
    for name in names:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(cell(row.get(name)) for name in names))
    out.print(table)


def show_record(row: dict[str, Any], as_json: bool, title: str, show: Callable[[Any], str] = cell) -> None:
    """One record as a two-column table (or a JSON object)."""
    if as_json:
        emit(row, ensure_ascii=False)
        return
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("figure")
    table.add_column("value", overflow="fold")
    for key, value in row.items():
        table.add_row(key, show(value))
    out.print(table)


# -- long-running work --------------------------------------------------------------


def progress_printer(as_json: bool, line: Callable[[Any], str]) -> Callable[[Any], None]:
    """A progress callback: a line on stderr for people, nothing with ``--json``."""

    def show(stats: Any) -> None:
        if not as_json:
            err.print(line(stats), highlight=False)

    return show


class LongRun:
    """A worker run from the command line: SIGTERM asks it to stop, Ctrl-C ends it quietly.

    It catches up once or follows; progress goes to stderr (not with ``--json``), the
    summary is one line (or one JSON object) on stdout.
    """

    def __init__(self, as_json: bool, progress: Callable[[Any], str]) -> None:
        self.as_json = as_json
        self.progress = progress_printer(as_json, progress)
        self._stopping = False
        signal.signal(signal.SIGTERM, self._stop)

    def _stop(self, *_: object) -> None:
        self._stopping = True

    def stopping(self) -> bool:
        """Whether SIGTERM came."""
        return self._stopping

    def run(self, worker: Any, *, follow: bool, start: bool = False) -> Any | None:
        """Start the worker if asked, run it once or follow until stopped; None when interrupted."""
        try:
            if start:
                worker.start()
            if follow:
                return worker.follow(stop=self.stopping, progress=self.progress)
            return worker.run_once(progress=self.progress)
        except KeyboardInterrupt:
            return None

    def summary(self, document: dict[str, Any], line: str) -> None:
        """The closing summary."""
        summary(self.as_json, document, line)
