"""Fuzz ``gridcase apply``: hostile values in every field of every command, many lines through few processes.

Every line is reported (the run goes on past a bad one), no traceback, a refused value is bad input
naming the field and writes nothing, and the read models settle (tests/hostile.py ``settled``).
A failure message gives each failing line as a ready reproduction: ``python3 -c '…' | gridcase apply -``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import make_settings
from tests.e2e.http.conftest import seed
from tests.hostile import (
    ABYSS,
    Context,
    Mutation,
    Ran,
    crashed,
    every_mutation,
    fuzz_settings,
    gridcase,
    json_command,
    mutations,
    report_problems,
    settled,
    shell_quote,
    store_head,
)
from tests.support import DISPATCHER, GRID, T0, WORKER, make_app, report, run

if TYPE_CHECKING:
    from pathlib import Path

#: Restarts after a crash, so one crashing line does not hide the others (a run that stops at a line is
#: started again after it); past this many, the rest is reported as never run.
RESTARTS = 8


def seeded(tmp_path: Path) -> tuple[str, Context]:
    """A SQLite file with the small district, a case in progress (W001's), a reported one and a patrol under way."""
    url = f"sqlite:///{tmp_path / 'gridcase.db'}"
    seed(url)
    app = make_app(make_settings(url))
    try:
        number, other = report(app), report(app)
        later = T0 + timedelta(minutes=5)
        run(app, command="case.accept", actor=DISPATCHER, at=later, case_number=number)
        run(app, command="case.dispatch", actor=DISPATCHER, at=later, case_number=number,
            handler={"kind": "worker", "id": "W001"})  # fmt: skip
        run(app, command="case.sign", actor=WORKER, at=later, case_number=number)
        patrol = run(app, command="patrol.start", actor=WORKER, at=T0, worker="W001", grid=GRID)["patrol_number"]
    finally:
        app.close()
    return url, Context(number, other, str(patrol))


@pytest.fixture
def district(tmp_path: Path) -> tuple[str, Context]:
    return seeded(tmp_path)


def apply_all(url: str, lines: list[bytes]) -> tuple[list[dict[str, Any] | None], list[Ran]]:
    """Run every line through ``gridcase apply --json -``: each line's reported row (None: never reported).

    When a run stops short (a crash), the next run starts after the line it stopped at.
    """
    rows: list[dict[str, Any] | None] = [None] * len(lines)
    runs: list[Ran] = []
    start = 0
    while start < len(lines) and len(runs) <= RESTARTS:
        ran = gridcase(url, "apply", "--json", "-", stdin=b"\n".join(lines[start:]) + b"\n", timeout=300)
        runs.append(ran)
        reported = 0
        for text in ran.stdout.splitlines():
            try:
                row = json.loads(text)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("line"), int):
                rows[start + row["line"] - 1] = row
                reported = max(reported, row["line"])
        if "summary" in ran.stdout and not crashed(ran):
            break
        start += reported + 1  # the line it stopped at is reported as never reported
    return rows, runs


def line_of(mutation: Mutation) -> bytes:
    return mutation.line().encode("utf-8")


def check_lines(url: str, batch: list[Mutation]) -> list[str]:
    """Apply the mutations; each problem with its mutation and reproduction."""
    rows, runs = apply_all(url, [line_of(m) for m in batch])
    problems = [f"apply crashed ({reason}):\n{ran.show()}" for ran in runs if (reason := crashed(ran))]
    for mutation, row in zip(batch, rows, strict=True):
        how = f"{json_command(mutation.fields())} | GRIDCASE_DATABASE_URL={url} gridcase apply -"
        if row is None:
            problems.append(f"{mutation.describe()}: never reported (apply stopped before or at it)\n  $ {how}")
            continue
        outcome, reason = row.get("outcome"), str(row.get("reason", ""))
        if mutation.must_refuse and outcome != "bad_input":
            problems.append(f"{mutation.describe()}: {outcome} (must be bad_input) {reason[:200]}\n  $ {how}")
        elif outcome == "bad_input" and mutation.names not in reason:
            problems.append(f"{mutation.describe()}: refused without naming {mutation.names!r}: {reason[:200]}"
                            f"\n  $ {how}")  # fmt: skip
        elif outcome not in {"ok", "refused", "bad_input", "conflict"}:
            problems.append(f"{mutation.describe()}: outcome {outcome!r}\n  $ {how}")
    return problems


def test_every_value_that_must_be_refused_is_bad_input_naming_the_field(district: tuple[str, Context]) -> None:
    """Every field of every command with every must-refuse value of the catalogue: bad input, nothing written."""
    url, context = district
    batch = [m for m in every_mutation(context) if m.must_refuse]
    before = store_head(url)
    problems = check_lines(url, batch)
    after = store_head(url)
    if after != before:
        problems.append(f"the store moved from {before} to {after}: a refused line wrote something")
    assert not problems, report_problems(problems)


def test_every_value_that_may_be_taken_leaves_the_read_models_settled(district: tuple[str, Context]) -> None:
    """The values a sane engine may take (emoji, RTL marks, values at their bounds…): no crash, read models catch up."""
    url, context = district
    batch = [m for m in every_mutation(context) if not m.must_refuse]
    problems = check_lines(url, batch)
    problems += settled(url)
    assert not problems, report_problems(problems)


def test_generated_hostile_lines(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Lines drawn by hypothesis (generated texts with bad characters among them), a batch per process."""
    url, context = seeded(tmp_path_factory.mktemp("generated"))

    @fuzz_settings(examples=3)
    @given(batch=st.lists(mutations(context), min_size=40, max_size=40))
    def check(batch: list[Mutation]) -> None:
        problems = check_lines(url, batch)
        assert not problems, report_problems(problems)

    check()
    problems = settled(url)
    assert not problems, report_problems(problems)


#: Lines that are no command at all, as Python expressions of their bytes (the reproduction prints them),
#: each followed by the same good line: apply must report each as bad input and go on.
MALFORMED: list[tuple[str, str]] = [
    ("not JSON", "b'case.report please'"),
    ("a JSON list", "b'[{\"command\": \"case.accept\"}]'"),
    ("a bare number", "b'12'"),
    ("NaN", "b'NaN'"),
    ("an empty object", "b'{}'"),
    ("an unknown command", "b'{\"command\": \"case.explode\", \"actor\": {\"id\": \"a\", \"role\": \"admin\"}}'"),
    ("a number as the command", "b'{\"command\": 12}'"),
    ("a lone surrogate as a key", "b'{\"command\": \"case.note\", \"\\\\ud800\": 1}'"),
    ("invalid UTF-8", "b'{\"command\": \"case.note\", \"note\": \"\\xff\\xfe\"}'"),
    ("a NUL byte outside strings", "b'{\"command\": \\x00 \"case.note\"}'"),
    ("a byte-order mark", "b'\\xef\\xbb\\xbf{\"command\": \"case.note\"}'"),
    (f"nested {ABYSS:,} deep (past json's recursion limit)", f"b'[' * {ABYSS} + b']' * {ABYSS}"),
    (f"an object nested {ABYSS:,} deep", f"b'{{\"a\":' * {ABYSS} + b'1' + b'}}' * {ABYSS}"),
    ("an integer of 10,000 digits", "b'{\"command\": \"patrol.end\", \"distance_m\": ' + b'9' * 10000 + b'}'"),
    ("2 MB of control characters", "b'\\x01' * 2000000"),
]


def test_malformed_lines_are_reported_and_apply_goes_on(district: tuple[str, Context]) -> None:
    url, context = district
    good = json.dumps({"command": "case.note", "actor": {"id": "admin", "role": "admin"},
                       "case_number": context.case_number, "note": "still going"}).encode()  # fmt: skip
    lines = [line for _, bad in MALFORMED for line in (eval(bad), good)]
    before = store_head(url)
    rows, runs = apply_all(url, lines)
    problems = [f"apply crashed ({reason}):\n{ran.show()}" for ran in runs if (reason := crashed(ran))]
    for index, (label, bad) in enumerate(MALFORMED):
        how = f"python3 -c {shell_quote(f'import sys; sys.stdout.buffer.write({bad})')} | gridcase apply -"
        row, after = rows[2 * index], rows[2 * index + 1]
        if row is None or row.get("outcome") != "bad_input":
            problems.append(f"{label}: {row and row.get('outcome')} (must be reported as bad_input)\n  $ {how}")
        if after is None or after.get("outcome") != "ok":
            problems.append(f"{label}: the good line after it was {after and after.get('outcome')} (apply must go on)")
    accepted = sum(1 for row in rows[1::2] if row and row.get("outcome") == "ok")
    if store_head(url) - before != accepted:
        problems.append(f"the store moved by {store_head(url) - before}, {accepted} good lines were accepted")
    assert not problems, report_problems(problems)


@pytest.mark.fuzz_deep
def test_every_value_deep(district: tuple[str, Context]) -> None:
    """The deep run: every huge value at every field, 10 MB free texts; the must-refuse lines write nothing."""
    url, context = district
    sweep = every_mutation(context, deep=True)
    before = store_head(url)
    problems = check_lines(url, [m for m in sweep if m.must_refuse])
    if store_head(url) != before:
        problems.append(f"the store moved from {before} to {store_head(url)}: a refused line wrote something")
    problems += check_lines(url, [m for m in sweep if not m.must_refuse])
    problems += settled(url)
    assert not problems, report_problems(problems)
