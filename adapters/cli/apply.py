"""``gridcase apply``: commands written one JSON object per line, applied in order (docs/commands.md).

Each line is reported (accepted with its result, or why not, with its line number) and
the lines after a bad one still run: a line that is not UTF-8, not JSON, not a command,
refused, or that meets a bug is one report line, never the end of the batch. The exit
code is the worst outcome of any line (adapters/cli/common.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from eventsourcing.persistence import OperationalError as StoreUnavailable
from sqlalchemy.exc import OperationalError as DatabaseUnavailable

from adapters.cli.common import Exit, JsonOpt, emit, fail, internal_error, load_settings, opened_service, out
from adapters.cli.write import execute
from domain.bounds import text_problem

if TYPE_CHECKING:
    from service import Result, Service

#: What each outcome is counted as in the summary.
OUTCOMES = {Exit.OK: "accepted", Exit.REFUSED: "refused", Exit.BAD_INPUT: "bad_input", Exit.CONFLICT: "conflict",
            Exit.UNAVAILABLE: "unavailable", Exit.INTERNAL: "internal_error"}  # fmt: skip
#: Outcomes the one-line summary for people shows even when none happened.
ALWAYS_SHOWN = ("accepted", "refused", "bad_input", "conflict")


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
        # Bytes, decoded line by line: one line that is not UTF-8 is that line's bad input, not the batch's end.
        stream = sys.stdin.buffer if file == "-" else Path(file).open("rb")  # noqa: SIM115
    except OSError as error:
        fail(Exit.BAD_INPUT, f"bad input: {file}: {error.strerror}")
    totals = dict.fromkeys(OUTCOMES.values(), 0)
    worst = Exit.OK
    with stream, opened_service(settings) as service:
        for line_number, raw in enumerate(stream, start=1):
            outcome = apply_line(service, raw, f"gridcase apply {file}: line {line_number}")
            if outcome is None:
                continue
            code, result = outcome
            totals[OUTCOMES[code]] += 1
            worst = max(worst, code)
            _report_line(line_number, code, result, as_json)
            if code is not Exit.OK and stop_on_error:
                break
    if as_json:
        emit({"summary": totals})
    else:
        shown = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in totals.items()
                          if count or name in ALWAYS_SHOWN)  # fmt: skip
        out.print(f"{sum(totals.values())} lines: {shown}", markup=False, highlight=False)
    raise typer.Exit(int(worst))


def apply_line(service: Service, raw: bytes, context: str) -> tuple[Exit, Result | str] | None:  # noqa: PLR0911
    """The outcome of one line and its result or reason; None for a blank line or a comment."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return Exit.BAD_INPUT, f"bad input: not UTF-8 text (byte {raw[error.start]:#04x} at byte {error.start + 1})"
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    try:
        fields = json.loads(line)
    except (ValueError, RecursionError) as error:
        return Exit.BAD_INPUT, f"bad input: malformed JSON: {error}"
    if not isinstance(fields, dict):
        return Exit.BAD_INPUT, "bad input: malformed JSON: a line must be a JSON object"
    problem = _undecodable(fields)
    if problem is not None:
        return Exit.BAD_INPUT, f"bad input: {problem}"
    try:
        return execute(service, fields)
    except (StoreUnavailable, DatabaseUnavailable) as error:
        return Exit.UNAVAILABLE, f"unavailable: the database: {str(error).strip().splitlines()[0]}; run it again"
    except Exception as error:  # noqa: BLE001 - a bug met by one line is that line's failure; the next lines run
        return Exit.INTERNAL, internal_error(error, context)


def _undecodable(value: Any, path: str = "") -> str | None:
    """The first string (or key) holding a lone surrogate (a JSON escape of no character), named by its path."""
    if isinstance(value, str):
        problem = text_problem(value)
        return f"{path or 'line'}: {problem}" if problem is not None and "surrogate" in problem else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        name = str(key).encode("utf-8", "backslashreplace").decode()  # printable even when it is the culprit
        where = f"{path}.{name}" if path else name
        found = _undecodable(key, where) if isinstance(key, str) else None
        found = found or _undecodable(item, where)
        if found is not None:
            return found
    return None


def _report_line(line_number: int, code: Exit, result: Result | str, as_json: bool) -> None:
    if as_json:
        row: dict[str, Any] = {"line": line_number, "outcome": OUTCOMES[code] if code is not Exit.OK else "ok"}
        row.update({"result": result} if code is Exit.OK else {"reason": result})
        emit(row, ensure_ascii=False)
    elif code is Exit.OK:
        assert isinstance(result, dict)
        words = [f"(check code / 查询码 {v})" if k == "check_code" else str(v) for k, v in result.items()]
        out.print(f"line {line_number}: accepted " + " ".join(words), markup=False, highlight=False)
    else:
        out.print(f"line {line_number}: {result}", markup=False, highlight=False)
