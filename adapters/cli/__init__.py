"""The ``gridcase`` command line: every command of the case, the patrol and the registry, and the tools around them.

One module per group of commands, all on the set-up of :mod:`adapters.cli.common`
(exit codes, settings, options, time, output, long-running work):

- :mod:`~adapters.cli.write`: ``case``, ``patrol`` and ``registry`` write commands;
- :mod:`~adapters.cli.apply`: ``apply``, commands in batch from JSON Lines;
- :mod:`~adapters.cli.queries`: ``case history|show|track``, ``queue``, ``overdue``, figures, dead letters;
- :mod:`~adapters.cli.workers`: ``project`` and ``relay``;
- :mod:`~adapters.cli.demo`: ``load-reference``, ``simulate``, ``walkthrough``;
- :mod:`~adapters.cli.replay`: ``replay rebuild|build|verify``, ``review``, ``audit``;
- :mod:`~adapters.cli.serve`: ``serve`` and ``token create|revoke|list``;
- :mod:`~adapters.cli.imports`: ``import requests|report``, another system's export as events.

Exit codes: 0 ok, 1 a check found something, 2 bad input, 3 refused by the domain,
4 conflict (a concurrent change), 5 a server (Kafka) did not take the work: run it
again. Each failure prints one line on stderr naming what was wrong.
"""

from __future__ import annotations

import typer

from adapters.cli import apply, demo, imports, queries, replay, serve, workers, write

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
queries.register(app, write.case_app)
imports.register(app)
demo.register(app)

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``gridcase`` program."""
    app()
