"""The ``gridcase`` command line: every command of the case, the patrol and the registry, and the tools around them.

One module per group of commands, all on the set-up of :mod:`adapters.cli.common`
(exit codes, settings, options, time, output, long-running work). A command line imports
only the modules of its first word; ``gridcase --help`` imports none and lists :data:`COMMANDS`
(docs/commands.md, "Start-up"):

- :mod:`~adapters.cli.write`: ``case``, ``patrol`` and ``registry`` write commands;
- :mod:`~adapters.cli.apply`: ``apply``, commands in batch from JSON Lines;
- :mod:`~adapters.cli.queries`: ``case history|show|track``, ``queue``, ``overdue``, figures (and their exports);
- :mod:`~adapters.cli.delivery`: ``delivery`` and ``deadletters``: the topics, their readers, every dead letter;
- :mod:`~adapters.cli.workers`: ``project`` and ``relay``;
- :mod:`~adapters.cli.sink`: ``sink`` and ``sink verify``, the reference downstream consumer into DuckDB;
- :mod:`~adapters.cli.demo`: ``load-reference``, ``simulate``, ``walkthrough``;
- :mod:`~adapters.cli.replay`: ``replay rebuild|build|verify``, ``review``, ``audit``;
- :mod:`~adapters.cli.serve`: ``serve`` and ``token create|revoke|list``;
- :mod:`~adapters.cli.imports`: ``import requests|report``, another system's export as events;
- :mod:`~adapters.cli.person_access`: ``person access-log``, who saw personal data in clear.

Exit codes: 0 ok, 1 a check found something, 2 bad input, 3 refused by the domain,
4 conflict (a concurrent change), 5 a server (Kafka, the database) did not take the
work: run it again, 70 an internal error. Each failure prints one line on stderr
naming what was wrong, never a traceback: :func:`main` turns a usage error into a
bad-input line, bytes on the command line that are not UTF-8 text into a bad-input
line naming the option, and anything unexpected into one ``internal error:`` line
whose traceback goes to a file the line names (docs/commands.md, "Exit codes").
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any, NamedTuple

import typer

# Typer carries its own copy of click; these are the errors its parser raises.
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from adapters.cli.common import Exit, command_words, err, internal_error
from domain.bounds import text_problem

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

HELP = "gridcase: event-sourced case management for grid-based community governance."

#: The command modules in the order they register, which is the order of the help. ``person_access`` comes
#: after any other module that makes the ``person`` group: it adds to it (or makes it).
MODULES = ("write", "serve", "replay", "apply", "workers", "sink", "queries", "delivery", "imports", "person", "demo",
           "person_access")  # fmt: skip


class Entry(NamedTuple):
    """A top-level command as ``gridcase --help`` lists it, and the modules that register it."""

    name: str
    modules: tuple[str, ...]
    help: str
    group: bool = False


#: Every top-level command, in the order of the help. A command line imports only the modules of its first
#: word; ``gridcase --help`` (or no command, or an unknown one) imports none and lists these.
#: tests/unit/test_cli_commands.py checks this table against what the modules register.
COMMANDS = (
    Entry("serve", ("serve",), "Serve the HTTP API (Open311 and native) with the projections following the store "
          "in-process."),
    Entry("review", ("replay",), "The yearly review: rank grid workers, grids and street centres by a versioned "
          "rule file, reproducibly."),
    Entry("audit", ("replay",), "A case's full history (every event, actor, role, both clocks, state before and "
          "after), or 'verify'."),
    Entry("apply", ("apply",), "Apply commands written one JSON object per line, in order (docs/commands.md)."),
    Entry("project", ("workers",), "Run the projections (case status, performance, intake): catch up once, or "
          "follow."),
    Entry("relay", ("workers",), "Publish every stored event to Kafka (GRIDCASE_KAFKA_BOOTSTRAP_SERVERS), in store "
          "order, exactly once."),
    Entry("queue", ("queries",), "Cases of an org unit in a state (as of a cut-off if given; exported with --format "
          "csv|parquet --output)."),
    Entry("overdue", ("queries",), "Open cases past their resolve-by deadline on the SLA clock (parked time "
          "removed); judged now or at the cut."),
    Entry("performance", ("queries",), "Figures of a worker, department, grid, community, street or the district "
          "for a period."),
    Entry("intake", ("queries",), "One window, one number: received, accepted, rejected, merged, time to "
          "acceptance, by group."),
    Entry("duplicates", ("queries",), "Open cases that may be the same matter: same category and grid, close in "
          "place and time."),
    Entry("delivery", ("delivery",), "Proof of delivery: the topics against the store (lag), what each reader has "
          "read, every dead letter."),
    Entry("deadletters", ("delivery",), "Every dead letter with its reason, the database's and "
          "gridcase.deadletter's; --retry applies the first again."),
    Entry("load-reference", ("demo",), "Load the reference district (Shinan: 10 streets, 573 grids, 3,606 "
          "workers…) unless already there."),
    Entry("simulate", ("demo",), "Drive the reference district through N days of plausible life, through the "
          "engine's own commands."),
    Entry("walkthrough", ("demo",), "Load the reference district if absent, walk one complaint through its whole "
          "life, print its history."),
    Entry("case", ("write", "queries"), "Case lifecycle: report, accept, dispatch, sign … close, feedback, "
          "reopen.", group=True),
    Entry("patrol", ("write",), "Patrols: start, checkpoints, end, hazards found.", group=True),
    Entry("registry", ("write",), "Reference data: org units, workers, categories, SLA policy, calendar.",
          group=True),
    Entry("token", ("serve",), "Bearer tokens of the HTTP API: create, revoke, list.", group=True),
    Entry("replay", ("replay",), "Rebuild read models from the history, build them as of a cut-off, check they are "
          "deterministic.", group=True),
    Entry("sink", ("sink",), "The reference downstream consumer: the topics and schemas/ into DuckDB analytics "
          "tables (docs/sink.md).", group=True),
    Entry("import", ("imports",), "Import another system's export, and report the city's own figures from it.",
          group=True),
    Entry("person", ("person", "person_access"), "A citizen's personal data: erase it (admins).", group=True),
)

__all__ = ["COMMANDS", "app", "build", "main", "run"]


def _program() -> typer.Typer:
    return typer.Typer(help=HELP, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def build(modules: Collection[str] | None = None) -> typer.Typer:
    """The ``gridcase`` program with the commands of ``modules`` (all of them when None), in the order of the help."""
    program = _program()
    # A group even when one command is registered (typer would run a lone command without its name).
    program.callback()(_group)
    case_app: typer.Typer | None = None
    for name in MODULES:
        if modules is not None and name not in modules:
            continue
        module: Any = importlib.import_module(f"adapters.cli.{name}")
        if name == "write":
            case_app = module.case_app
        if name == "queries":
            # ``case history|show|track`` join the write module's ``case`` group (a throw-away one without it).
            module.register(program, case_app if case_app is not None else typer.Typer())
        else:
            module.register(program)
    return program


def listing() -> typer.Typer:
    """The program as ``gridcase --help`` shows it, from :data:`COMMANDS`: no command module imported."""
    program = _program()
    for entry in COMMANDS:
        if entry.group:
            program.add_typer(typer.Typer(), name=entry.name, help=entry.help)
        else:
            program.command(entry.name, help=entry.help)(_listed)
    return program


def _group() -> None:
    pass


def _listed() -> None:
    """Never run: :func:`run` builds the real command before running it."""


def _for(given: Sequence[str]) -> typer.Typer:
    """The program a command line needs: the modules of its first word, or the listing (help, an unknown word)."""
    first = given[0] if given and not given[0].startswith("-") else None
    for entry in COMMANDS:
        if entry.name == first:
            return build(entry.modules)
    return listing()


def __getattr__(name: str) -> Any:
    """``adapters.cli.app``: the whole program, every module imported (tests invoke it with typer's runner)."""
    if name == "app":
        return build()
    raise AttributeError(name)


def main() -> None:
    """Entry point of the ``gridcase`` program: exits with the code :func:`run` gives."""
    sys.exit(run())


def run(args: Sequence[str] | None = None) -> int:  # noqa: PLR0911 - one return per kind of failure
    """Run one ``gridcase`` command line; every failure is one line on stderr and an exit code (never a traceback)."""
    given = list(sys.argv[1:] if args is None else args)
    problem = _undecodable(given)
    if problem is not None:
        return _one_line(Exit.BAD_INPUT, f"bad input: {problem}")
    try:
        code = _for(given)(args=given, prog_name="gridcase", standalone_mode=False)
    except NoArgsIsHelpError:  # a group given no command: typer has printed its help while raising this
        return int(Exit.BAD_INPUT)
    except UsageError as error:
        where = f" (see {error.ctx.command_path} --help)" if error.ctx is not None else ""
        return _one_line(Exit.BAD_INPUT, f"bad input: {error.format_message()}{where}")
    except ClickException as error:
        return _one_line(Exit.BAD_INPUT, f"bad input: {error.format_message()}")
    except typer.Abort:
        return _one_line(130, "interrupted")
    except BrokenPipeError:
        return _quiet_pipe()
    except Exception as error:  # noqa: BLE001 - the one place that turns a bug into one line, not a traceback
        if _database_down(error):
            return _one_line(Exit.UNAVAILABLE, f"unavailable: the database: {_first_line(error)}; run it again")
        return _one_line(Exit.INTERNAL, internal_error(error, command_words(given)))
    return code if isinstance(code, int) else 0


def _database_down(error: Exception) -> bool:
    """Whether the store or a database refused the connection (their errors imported only now: a failure costs it)."""
    from eventsourcing.persistence import OperationalError as StoreUnavailable  # noqa: PLC0415
    from sqlalchemy.exc import OperationalError as DatabaseUnavailable  # noqa: PLC0415

    return isinstance(error, (StoreUnavailable, DatabaseUnavailable))


def _undecodable(args: Sequence[str]) -> str | None:
    """The first argument that is not UTF-8 text (Python hands its bytes over as lone surrogates), named."""
    for index, arg in enumerate(args):
        option, equals, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        if not equals:
            option = args[index - 1] if index and args[index - 1].startswith("-") and arg is value else ""
        found = text_problem(value, multiline=True)
        if found is not None and "surrogate" in found:
            name = option or f"argument {index + 1}"
            return f"{name}: {value.encode('utf-8', 'replace').decode()!r} is not UTF-8 text (a byte no character has)"
    return None


def _one_line(code: int, message: str) -> int:
    err.print(" ".join(message.split()), markup=False, highlight=False, soft_wrap=True)
    return int(code)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else "(no message)"


def _quiet_pipe() -> int:
    """The reader of our output went away (``gridcase queue | head``): nothing to tell anyone."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1
