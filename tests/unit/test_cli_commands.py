"""The table ``gridcase --help`` is shown from is what the command modules register (issue 20, item 4).

A command line imports only the modules of its first word (adapters/cli/__init__.py); the help, which imports
none, lists :data:`adapters.cli.COMMANDS`. These tests keep that table true to the modules.
"""

from __future__ import annotations

import typer.main
from typer.testing import CliRunner

from adapters.cli import COMMANDS, build, listing


def _registered(program: typer.Typer) -> list[tuple[str, str, bool]]:
    group = typer.main.get_command(program)
    assert isinstance(group, typer.main.TyperGroup)
    context = group.make_context("gridcase", ["--help"], resilient_parsing=True)
    found = []
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None and command.help is not None, name
        found.append((name, command.help.split("\n\n")[0], isinstance(command, typer.main.TyperGroup)))
    return found


def test_the_table_of_commands_is_what_the_modules_register_in_the_order_of_the_help() -> None:
    assert [(entry.name, entry.help, entry.group) for entry in COMMANDS] == _registered(build())


def test_the_help_from_the_table_is_the_help_of_the_whole_program() -> None:
    runner = CliRunner()
    assert runner.invoke(listing(), ["--help"]).output == runner.invoke(build(), ["--help"]).output


def test_the_modules_of_each_command_register_it_whole() -> None:
    whole = typer.main.get_command(build())
    assert isinstance(whole, typer.main.TyperGroup)
    for entry in COMMANDS:
        alone = typer.main.get_command(build(entry.modules))
        assert isinstance(alone, typer.main.TyperGroup)
        context = alone.make_context("gridcase", ["--help"], resilient_parsing=True)
        assert entry.name in alone.list_commands(context), entry.name
        mine, theirs = alone.get_command(context, entry.name), whole.get_command(context, entry.name)
        if entry.group:
            assert isinstance(mine, typer.main.TyperGroup) and isinstance(theirs, typer.main.TyperGroup)
            assert mine.list_commands(context) == theirs.list_commands(context), entry.name
