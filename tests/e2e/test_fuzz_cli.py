"""Fuzz the ``gridcase`` commands themselves: hostile options and arguments, one real process each.

A process costs a second or more, so the default run sends a sample, one per kind of hostile value
and each input issue 13 names; ``-m fuzz_deep`` sends the rest and generated texts. The bulk of the
values go through ``gridcase apply`` (tests/e2e/test_fuzz_apply.py), many lines per process.
Every probe: no traceback, a documented exit code, a refused input is exit 2 with one line naming
the option and writes nothing. The failure message is the command line to paste.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from hypothesis import given

from tests.e2e.test_fuzz_apply import seeded
from tests.hostile import (
    Context,
    Hostile,
    crashed,
    fuzz_settings,
    gridcase,
    poisoned_text,
    report_problems,
    settled,
    store_head,
)
from tests.support import CATEGORY, GRID

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Nearly as long as one argument may be (Linux: 128 KiB per argument).
LONGEST_ARGUMENT = 120_000
QUERIES = frozenset({"queue", "overdue", "performance", "intake", "review", "duplicates", "audit", "token"})
ADMIN = ("--actor", "admin", "--role", "admin")
REPORT = ("case", "report", "--channel", "hotline", "--category", CATEGORY, "--grid", GRID, *ADMIN)


@dataclass(frozen=True)
class Probe:
    """One ``gridcase`` command line with one hostile option; ``{case}`` and ``{patrol}`` name what exists."""

    label: str
    args: tuple[str | bytes, ...]
    must_refuse: bool
    #: What a refusal must name (an option or field, case-insensitively).
    names: str
    deep: bool = False

    @property
    def reads(self) -> bool:
        """A query: run on a store of its own, so a poison a write probe left behind does not hide its outcome."""
        return self.args[0] in QUERIES or self.args[:2] in {("case", "show"), ("case", "track"), ("case", "history")}

    def argv(self, context: Context) -> list[str | bytes]:
        def fill(arg: str | bytes) -> str | bytes:
            if isinstance(arg, bytes):
                return arg
            return arg.format(case=context.case_number, other=context.other_case_number, patrol=context.patrol_number)

        return [fill(arg) for arg in self.args]


def _probes() -> list[Probe]:
    must, either = True, False
    return [
        # The default run sends the inputs issue 13 found crashing or accepted; the deep run all.
        Probe("--resolve-by in year 9999", ("case", "extend", "{case}", "--resolve-by", "9999-12-31T23:59:59+00:00",
              "--reason", "fuzz", *ADMIN), must, "resolve"),
        Probe("--at in year 1", ("case", "note", "{case}", "--note", "fuzz", "--at", "0001-01-01T00:00:00", *ADMIN),
              must, "at"),
        Probe("--at as a Unix time", ("case", "note", "{case}", "--note", "fuzz", "--at", "1622509200", *ADMIN),
              must, "at"),
        Probe("--distance 10**20", ("patrol", "end", "{patrol}", "--distance", str(10**20), *ADMIN), must, "distance"),
        Probe("--description with invalid UTF-8 (a lone surrogate)",
              (*REPORT, "--description", b"fuzz\xed\xa0\x80\xff"),
              must, "description"),
        Probe("--address with an escape sequence", (*REPORT, "--description", "fuzz", "--address", "\x1b[2J\x07"),
              must, "address"),
        Probe("--lat nan", (*REPORT, "--description", "fuzz", "--lat", "nan"), must, "lat"),
        Probe("--households 10**20", ("registry", "grid-figures", "--grid", GRID, "--households", str(10**20),
              "--population", "1", *ADMIN), must, "households", deep=True),
        Probe("queue --state nope", ("queue", "--unit", "SN", "--state", "nope"), must, "state"),
        Probe("performance --period 2021-13", ("performance", "--worker", "W001", "--period", "2021-13"), must,
              "period"),
        Probe("intake --period 0001", ("intake", "--by", "channel", "--period", "0001"), must, "period", deep=True),
        Probe("review --as-of-recorded in year 9999", ("review", "--period", "2021", "--rules", "rules/2021.toml",
              "--as-of-recorded", "9999-12-31T00:00:00Z"), must, "as-of-recorded"),
        # Refused before any command parses it: the line names the argument by its place on the command line.
        Probe("case show with invalid UTF-8", ("case", "show", b"SN-\xff\xfe"), must, "argument 3"),
        Probe("--description of 40,000 characters (120 KB)", (*REPORT, "--description", "井" * 40_000), either,
              "description", deep=True),
        Probe("--resolve-by in year 1", ("case", "extend", "{case}", "--resolve-by", "0001-01-01T00:00:00+00:00",
              "--reason", "fuzz", *ADMIN), must, "resolve", deep=True),
        Probe("--at in 2100", ("case", "note", "{case}", "--note", "fuzz", "--at", "2100-01-01T00:00:00+00:00",
              *ADMIN), must, "at", deep=True),
        Probe("--at not a time", ("case", "note", "{case}", "--note", "fuzz", "--at", "soon", *ADMIN), must, "at",
              deep=True),
        Probe("--note with NUL-free control characters", ("case", "note", "{case}", "--note", "a\x01\x08\x7f\x9b",
              *ADMIN), must, "note", deep=True),
        Probe("--note with RTL marks and emoji", ("case", "note", "{case}", "--note", "\u202eevil\u202c 🚧👩🏽‍🔧",
              *ADMIN), either, "note", deep=True),
        Probe("--reason of 120,000 characters", ("case", "suspend", "{case}", "--reason", "x" * LONGEST_ARGUMENT,
              *ADMIN), either, "reason", deep=True),
        Probe("--lon inf", (*REPORT, "--description", "fuzz", "--lon", "inf"), must, "lon", deep=True),
        Probe("--lat 1e308", (*REPORT, "--description", "fuzz", "--lat", "1e308"), must, "lat", deep=True),
        Probe("--urgency with a lone surrogate", (*REPORT, "--description", "fuzz", "--urgency", b"normal\xed\xb0\x80"),
              must, "urgency", deep=True),
        Probe("--case-number of a made-up number", (*REPORT, "--description", "fuzz", "--case-number",
              "ZZZZZZ-00000000-000000"), must, "case", deep=True),
        Probe("--distance -1", ("patrol", "end", "{patrol}", "--distance", "-1", *ADMIN), must, "distance", deep=True),
        Probe("--holiday in year 9999", ("registry", "calendar", "--version", "2", "--holiday", "9999-12-31", *ADMIN),
              must, "holiday", deep=True),
        Probe("--version 10**20", ("registry", "calendar", "--version", str(10**20), *ADMIN), must, "version",
              deep=True),
        Probe("--actor with a control character", ("case", "note", "{case}", "--note", "fuzz", "--actor", "ad\x1bmin",
              "--role", "admin"), must, "actor", deep=True),
        Probe("--role nope", ("case", "note", "{case}", "--note", "fuzz", "--actor", "admin", "--role", "nope"), must,
              "role", deep=True),
        Probe("overdue --unit with an escape sequence", ("overdue", "--unit", "SN\x1b[2J"), either, "unit", deep=True),
        Probe("queue --unit of 65 characters", ("queue", "--unit", "S" * 65), either, "unit", deep=True),
        Probe("performance --period 9999-12-31", ("performance", "--district", "--period", "9999-12-31"), must,
              "period", deep=True),
        Probe("intake --by with invalid UTF-8", ("intake", "--by", b"chan\xffnel", "--period", "2021"), must, "by",
              deep=True),
        Probe("review --period 0001", ("review", "--period", "0001", "--rules", "rules/2021.toml"), must, "period",
              deep=True),
        Probe("review --as-of-occurred as a Unix time", ("review", "--period", "2021", "--rules", "rules/2021.toml",
              "--as-of-occurred", "1622509200"), must, "as-of-occurred", deep=True),
        Probe("duplicates of a number with a lone surrogate", ("duplicates", b"SN-2021\xed\xa0\x80"), must, "number",
              deep=True),
        Probe("audit of a number with control characters", ("audit", "SN-\x1b[2J"), must, "number", deep=True),
        Probe("token create --actor with a lone surrogate", ("token", "create", "--actor", b"W\xed\xa0\x80",
              "--role", "grid_worker"), must, "actor", deep=True),
        Probe("registry calendar with 10,000 --holiday options",
              ("registry", "calendar", "--version", "2", *(["--holiday", "2021-10-01"] * 10_000), *ADMIN), must,
              "holiday", deep=True),
    ]


PROBES = _probes()


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Context]:
    """The store the write probes run on."""
    return seeded(tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="module")
def readers(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Context]:
    """The store the query probes run on."""
    return seeded(tmp_path_factory.mktemp("cli-queries"))


def _store(request: pytest.FixtureRequest, probe: Probe) -> tuple[str, Context]:
    store: tuple[str, Context] = request.getfixturevalue("readers" if probe.reads else "district")
    return store


def check_probe(url: str, context: Context, probe: Probe) -> list[str]:
    """Run one probe; each problem with its command line."""
    before = store_head(url)
    ran = gridcase(url, *probe.argv(context), timeout=60)
    after = store_head(url)
    problems = []
    if reason := crashed(ran):
        problems.append(f"{probe.label}: {reason}")
    if probe.must_refuse and ran.code != 2:
        problems.append(f"{probe.label}: exit {ran.code} (must be 2, bad input)")
    if ran.code == 2 and probe.names.lower() not in ran.stderr.lower():
        problems.append(f"{probe.label}: refused without naming {probe.names!r}")
    if ran.code != 0 and after != before:
        problems.append(f"{probe.label}: refused, yet the store moved from {before} to {after}")
    return [f"{problem}\n{ran.show()}" for problem in problems]


def _run(district: tuple[str, Context], probes: Sequence[Probe]) -> None:
    url, context = district
    problems = [problem for probe in probes for problem in check_probe(url, context, probe)]
    assert not problems, report_problems(problems)


@pytest.mark.parametrize("probe", [p for p in PROBES if not p.deep], ids=lambda p: p.label)
def test_hostile_option(request: pytest.FixtureRequest, probe: Probe) -> None:
    _run(_store(request, probe), [probe])


@pytest.mark.fuzz_deep
@pytest.mark.parametrize("probe", [p for p in PROBES if p.deep], ids=lambda p: p.label)
def test_hostile_option_deep(request: pytest.FixtureRequest, probe: Probe) -> None:
    _run(_store(request, probe), [probe])


@pytest.mark.fuzz_deep
def test_generated_texts_in_a_note(district: tuple[str, Context]) -> None:
    """Texts with a character no text may carry, drawn by hypothesis, as ``case note --note`` (NUL cannot be an
    argument: it goes through ``apply``)."""
    url, context = district

    @fuzz_settings(examples=25)
    @given(hostile=poisoned_text().filter(lambda h: "\x00" not in h.value))
    def check(hostile: Hostile) -> None:
        note = hostile.value.encode("utf-8", "surrogatepass")
        probe = Probe(hostile.label, ("case", "note", "{case}", "--note", note, *ADMIN), must_refuse=True, names="note")
        problems = check_probe(url, context, probe)
        assert not problems, report_problems(problems)

    check()


def test_read_models_settle_after_the_probes(district: tuple[str, Context]) -> None:
    """After the probes (run first, in this module's order): the read models catch up and verify."""
    problems = settled(district[0])
    assert not problems, report_problems(problems)
