"""``gridcase apply``: commands written one JSON object per line, applied in order (docs/commands.md).

Each line is reported (accepted with its result, or why not); the exit code is the
worst outcome of any line (adapters/cli/common.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from adapters.cli.common import Exit, JsonOpt, emit, fail, load_settings, opened_service, out
from adapters.cli.write import execute
from service import Result


def register(app: typer.Typer) -> None:
    """Add ``apply`` to the ``gridcase`` program."""
    app.command("apply")(apply)


def apply(
    file: Annotated[str, typer.Argument(help="JSON Lines file of commands, or - for stdin")],
    stop_on_error: Annotated[bool, typer.Option("--stop-on-error", help="Stop at the first bad line")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Apply commands written one JSON object per line, in order (docs/commands.md)."""
    settings = load_settings()
    try:
        stream = sys.stdin if file == "-" else Path(file).open(encoding="utf-8")  # noqa: SIM115
    except OSError as error:
        fail(Exit.BAD_INPUT, f"bad input: {file}: {error.strerror}")
    totals = {"accepted": 0, "refused": 0, "bad_input": 0, "conflict": 0}
    worst = Exit.OK
    with stream, opened_service(settings) as service:
        for line_number, line in enumerate(stream, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            result: Result | str
            try:
                fields = json.loads(line)
                if not isinstance(fields, dict):
                    raise TypeError("a line must be a JSON object")  # noqa: TRY301
            except (ValueError, TypeError) as error:
                code, result = Exit.BAD_INPUT, f"bad input: malformed JSON: {error}"
            else:
                code, result = execute(service, fields)
            key = {Exit.OK: "accepted", Exit.REFUSED: "refused", Exit.BAD_INPUT: "bad_input", Exit.CONFLICT: "conflict"}
            totals[key[code]] += 1
            worst = max(worst, code)
            _report_line(line_number, code, result, as_json)
            if code is not Exit.OK and stop_on_error:
                break
    summary = f"{sum(totals.values())} lines: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in totals.items())
    if as_json:
        emit({"summary": totals})
    else:
        out.print(summary, markup=False, highlight=False)
    raise typer.Exit(int(worst))


def _report_line(line_number: int, code: Exit, result: Result | str, as_json: bool) -> None:
    if as_json:
        row: dict[str, Any] = {"line": line_number, "outcome": code.name.lower()}
        row.update({"result": result} if code is Exit.OK else {"reason": result})
        emit(row, ensure_ascii=False)
    elif code is Exit.OK:
        assert isinstance(result, dict)
        out.print(f"line {line_number}: accepted " + " ".join(str(v) for v in result.values()), markup=False,
                  highlight=False)  # fmt: skip
    else:
        out.print(f"line {line_number}: {result}", markup=False, highlight=False)
