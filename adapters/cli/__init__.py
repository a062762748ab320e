"""The ``gridcase`` command line: every command of the case, the patrol and the registry, and the tools around them.

One module per group of commands, all on the set-up of :mod:`adapters.cli.common`
(exit codes, settings, options, time, output, long-running work):

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

import os
import sys
from typing import TYPE_CHECKING

import typer
from eventsourcing.persistence import OperationalError as StoreUnavailable
from sqlalchemy.exc import OperationalError as DatabaseUnavailable

# Typer carries its own copy of click; these are the errors its parser raises.
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from adapters.cli import (
    apply,
    delivery,
    demo,
    imports,
    person,
    person_access,
    queries,
    replay,
    serve,
    sink,
    workers,
    write,
)
from adapters.cli.common import Exit, command_words, err, internal_error
from domain.bounds import text_problem

if TYPE_CHECKING:
    from collections.abc import Sequence

app = typer.Typer(
    help="gridcase: event-sourced case management for grid-based community governance.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# The order of registration is the order of the help.
write.register(app)
serve.register(app)
replay.register(app)
apply.register(app)
workers.register(app)
sink.register(app)
queries.register(app, write.case_app)
delivery.register(app)
imports.register(app)
person.register(app)
demo.register(app)
# After any other module that makes the ``person`` group: this one adds to it (or makes it).
person_access.register(app)

__all__ = ["app", "main", "run"]


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
        code = app(args=given, prog_name="gridcase", standalone_mode=False)
    except NoArgsIsHelpError:  # a group given no command: typer has printed its help while raising this
        return int(Exit.BAD_INPUT)
    except UsageError as error:
        where = f" (see {error.ctx.command_path} --help)" if error.ctx is not None else ""
        return _one_line(Exit.BAD_INPUT, f"bad input: {error.format_message()}{where}")
    except ClickException as error:
        return _one_line(Exit.BAD_INPUT, f"bad input: {error.format_message()}")
    except typer.Abort:
        return _one_line(130, "interrupted")
    except (StoreUnavailable, DatabaseUnavailable) as error:
        return _one_line(Exit.UNAVAILABLE, f"unavailable: the database: {_first_line(error)}; run it again")
    except BrokenPipeError:
        return _quiet_pipe()
    except Exception as error:  # noqa: BLE001 - the one place that turns a bug into one line, not a traceback
        return _one_line(Exit.INTERNAL, internal_error(error, command_words(given)))
    return code if isinstance(code, int) else 0


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
