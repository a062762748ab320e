"""The yearly performance review: rank grid workers, grids and street centres by a versioned rule file.

Reproducible by construction: the review builds the worker-performance read
model afresh from the store, up to a cut-off, into a throw-away database, and
its output carries no wall-clock time. It names instead the rule version (the
version the file declares plus a digest of the file, so changing one weight
changes it), the cut-off, the last store position read, and a digest of every
event that went in. Without ``as_of_recorded`` the cut-off is the commit time of
the store's last event, so running the review again later with that cut-off
(``--as-of-recorded``) reads the same events and prints the same bytes, however
many late events came in since.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING, Any

from projections.performance import Performance
from projections.performance_queries import FIGURES, RATES, performance
from projections.tabular import column_names, csv_text, flat_rows
from replay.build import build, scratch_of, temporary
from replay.chain import from_micros, to_micros
from replay.source import Digest, cut_off, head, position_known_at

if TYPE_CHECKING:
    from datetime import datetime, tzinfo
    from pathlib import Path

    from sqlalchemy import Engine

    from replay.source import Reader

#: The sections a rule file may have: the kind of subject each ranks.
KINDS = {"worker": "worker", "grid": "grid", "street": "street"}
_SECTION_KEYS = {"title", "top", "weights", "minimum", "maximum"}


class BadRules(ValueError):
    """A rule file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Award:
    """One ranking: which subjects, by which weighted figures, with which thresholds, how many win."""

    kind: str
    title: str
    top: int
    weights: dict[str, float]
    minimum: dict[str, float]
    maximum: dict[str, float]


@dataclass(frozen=True)
class Rules:
    """A rule file: its name, its declared version, the digest of its bytes, and its awards."""

    name: str
    declared: str
    digest: str
    awards: tuple[Award, ...]

    @property
    def version(self) -> str:
        """The rule version a review names: declared version + content digest."""
        return f"{self.declared}+{self.digest[:12]}"


def load_rules(path: Path) -> Rules:
    """Read and check a rule file (TOML)."""
    try:
        content = path.read_bytes()
    except OSError as error:
        msg = f"rules: cannot read {path}: {error.strerror}"
        raise BadRules(msg) from None
    try:
        raw = tomllib.loads(content.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        msg = f"rules: {path} is not valid TOML: {error}"
        raise BadRules(msg) from None
    where = str(path)
    name, declared = raw.get("name"), raw.get("version")
    if not isinstance(name, str) or not name:
        msg = f"rules: {where}: name: a name is required"
        raise BadRules(msg)
    if not isinstance(declared, str) or not declared:
        msg = f'rules: {where}: version: a version string is required (e.g. "2021.1")'
        raise BadRules(msg)
    unknown = set(raw) - {"name", "version", *KINDS}
    if unknown:
        msg = f"rules: {where}: unknown section {', '.join(sorted(unknown))} (known: {', '.join(KINDS)})"
        raise BadRules(msg)
    awards = tuple(_award(where, kind, raw[kind]) for kind in KINDS if kind in raw)
    if not awards:
        msg = f"rules: {where}: no award: give at least one of [{'], ['.join(KINDS)}]"
        raise BadRules(msg)
    return Rules(name, declared, hashlib.sha256(content).hexdigest(), awards)


def _award(where: str, kind: str, section: Any) -> Award:  # noqa: C901 - one check per field, each its own message
    if not isinstance(section, dict):
        msg = f"rules: {where}: {kind}: must be a table"
        raise BadRules(msg)
    unknown = set(section) - _SECTION_KEYS
    if unknown:
        msg = f"rules: {where}: {kind}: unknown key {', '.join(sorted(unknown))}"
        raise BadRules(msg)
    title, top = section.get("title"), section.get("top", 10)
    if not isinstance(title, str) or not title:
        msg = f"rules: {where}: {kind}.title: a title is required"
        raise BadRules(msg)
    if not isinstance(top, int) or top < 1:
        msg = f"rules: {where}: {kind}.top: must be a whole number of at least 1"
        raise BadRules(msg)
    shown = FIGURES["worker" if kind == "worker" else "area"]
    tables: dict[str, dict[str, float]] = {}
    for part in ("weights", "minimum", "maximum"):
        values = section.get(part, {})
        if not isinstance(values, dict):
            msg = f"rules: {where}: {kind}.{part}: must be a table of figure = number"
            raise BadRules(msg)
        for figure, value in values.items():
            if figure not in shown:
                msg = f"rules: {where}: {kind}.{part}.{figure}: not a {kind} figure (figures: {', '.join(shown)})"
                raise BadRules(msg)
            if isinstance(value, bool) or not isinstance(value, int | float):
                msg = f"rules: {where}: {kind}.{part}.{figure}: must be a number"
                raise BadRules(msg)
        tables[part] = {figure: float(value) for figure, value in values.items()}
    if not tables["weights"]:
        msg = f"rules: {where}: {kind}.weights: at least one weighted figure is required"
        raise BadRules(msg)
    return Award(KINDS[kind], title, top, tables["weights"], tables["minimum"], tables["maximum"])


# -- running a review -------------------------------------------------------------------------


@dataclass
class Ranked:
    """One subject in one ranking."""

    subject: str
    score: float | None
    rank: int | None
    awarded: bool
    note: str
    figures: dict[str, Any]


@dataclass
class Review:
    """A review's inputs and results; ``render`` turns it into bytes."""

    period: str
    rules: Rules
    cutoff: dict[str, str | None]
    last_position: int
    events: int
    inputs_digest: str
    rankings: list[tuple[Award, list[Ranked]]] = field(default_factory=list)

    def header(self) -> dict[str, Any]:
        """What the review was made from."""
        return {
            "review": self.rules.name,
            "period": self.period,
            "rule_version": self.rules.version,
            "cutoff_recorded": self.cutoff.get("recorded"),
            "cutoff_occurred": self.cutoff.get("occurred"),
            "last_event_position": self.last_position,
            "events": self.events,
            "inputs_digest": f"sha256:{self.inputs_digest}",
        }


def run_review(
    read: Reader,
    store: Engine,
    period: str,
    rules: Rules,
    tz: tzinfo,
    *,
    as_of_recorded: datetime | None = None,
    as_of_occurred: datetime | None = None,
) -> Review:
    """Build the performance figures up to the cut-off and rank every award's subjects."""
    with store.connect() as connection:
        if as_of_recorded is not None:
            last = position_known_at(connection, as_of_recorded)
            recorded: str | None = _iso(from_micros(to_micros(as_of_recorded)))
        else:
            last, committed = head(connection)
            recorded = None if committed is None else _iso(committed)
    source = cut_off(read, last=last, occurred=as_of_occurred)
    digest = Digest()
    with scratch_of(temporary()) as scratch:
        build(scratch.engine, digest.wrap(source), [Performance(tz)])
        with scratch.engine.connect() as connection:
            figures = {award.kind: performance(connection, award.kind, period) for award in rules.awards}
    review = Review(
        period=period,
        rules=rules,
        cutoff={"recorded": recorded, "occurred": None if as_of_occurred is None else _iso(as_of_occurred)},
        last_position=last,
        events=digest.events,
        inputs_digest=digest.hexdigest(),
    )
    for award in rules.awards:
        review.rankings.append((award, rank(award, figures[award.kind])))
    return review


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _value(figure: Any) -> float | None:
    """A figure as a number: a rate's rate (None when nothing was counted), a count or mean as it is."""
    if isinstance(figure, dict):
        rate = figure.get("rate")
        return None if rate is None else float(rate)
    return None if figure is None else float(figure)


def rank(award: Award, rows: list[dict[str, Any]]) -> list[Ranked]:
    """Score, filter and rank subjects: rates count as they are, other figures relative to the best subject."""
    scale = {
        figure: max((_value(row.get(figure)) or 0.0 for row in rows), default=0.0)
        for figure in award.weights
        if figure not in RATES
    }
    shown = list(dict.fromkeys([*award.weights, *award.minimum, *award.maximum]))
    ranked = []
    for row in rows:
        score = 0.0
        for figure, weight in award.weights.items():
            value = _value(row.get(figure)) or 0.0
            if figure in scale:
                value = value / scale[figure] if scale[figure] else 0.0
            score += weight * value
        ranked.append(
            Ranked(
                subject=str(row["subject"]),
                score=round(score, 6),
                rank=None,
                awarded=False,
                note=_ineligible(award, row),
                figures={figure: row.get(figure) for figure in shown},
            )
        )
    eligible = sorted((r for r in ranked if not r.note), key=lambda r: (-(r.score or 0.0), r.subject))
    for place, entry in enumerate(eligible, start=1):
        entry.rank = place
        entry.awarded = place <= award.top
    others = sorted((r for r in ranked if r.note), key=lambda r: r.subject)
    return [*eligible, *others]


def _ineligible(award: Award, row: dict[str, Any]) -> str:
    """Why a subject is not ranked ("" when it is)."""
    reasons = []
    for figure, least in award.minimum.items():
        value = _value(row.get(figure))
        if value is None or value < least:
            reasons.append(f"{figure} {_plain(value)} < {_plain(least)}")
    for figure, most in award.maximum.items():
        value = _value(row.get(figure))
        if value is not None and value > most:
            reasons.append(f"{figure} {_plain(value)} > {_plain(most)}")
    return "; ".join(reasons)


def _plain(value: float | None) -> str:
    if value is None:
        return "none"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# -- output ---------------------------------------------------------------------------------------


def render(review: Review, output: str) -> str:
    """The review as ``table``, ``csv`` or ``json`` text; the same review gives the same bytes."""
    if output == "json":
        return render_json(review)
    if output == "csv":
        return render_csv(review)
    return render_table(review)


def render_json(review: Review) -> str:
    """One JSON document: the header, then each award's ranking."""
    document = {
        **review.header(),
        "awards": [
            {
                "kind": award.kind,
                "title": award.title,
                "top": award.top,
                "weights": award.weights,
                "minimum": award.minimum,
                "maximum": award.maximum,
                "ranking": [
                    {
                        "rank": r.rank,
                        "subject": r.subject,
                        "score": r.score,
                        "awarded": r.awarded,
                        "not_ranked_because": r.note or None,
                        "figures": r.figures,
                    }
                    for r in ranking
                ],
            }
            for award, ranking in review.rankings
        ],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def review_rows(review: Review) -> list[dict[str, Any]]:
    """One row per subject per award, each repeating what the review was made from; figures as they are."""
    header = review.header()
    figures = sorted({figure for award, _ in review.rankings for figure in _figures_of(award)})
    return [
        {**header, "kind": award.kind, "title": award.title, "rank": r.rank, "subject": r.subject,
         "score": None if r.score is None else round(r.score, 6), "awarded": r.awarded,
         "not_ranked_because": r.note or None,
         **{figure: r.figures.get(figure) for figure in figures}}
        for award, ranking in review.rankings
        for r in ranking
    ]  # fmt: skip


def render_csv(review: Review) -> str:
    """:func:`review_rows` as CSV: a rate as its numerator, denominator and rate, each in its own column."""
    rows = flat_rows(review_rows(review))
    first = [*review.header(), "kind", "title", "rank", "subject", "score", "awarded", "not_ranked_because"]
    return csv_text(rows, column_names(rows, first))


def render_table(review: Review) -> str:
    """Plain text for people: the header, then a table per award."""
    lines = [f"{key.replace('_', ' ')}: {'—' if value is None else value}" for key, value in review.header().items()]
    for award, ranking in review.rankings:
        figures = _figures_of(award)
        columns = ["rank", "subject", "score", "award", *figures, "not ranked because"]
        rows = [
            [str(r.rank or "—"), r.subject, f"{r.score:.4f}", award.title if r.awarded else "",
             *(_cell(r.figures.get(figure)) for figure in figures), r.note]
            for r in ranking
        ]  # fmt: skip
        widths = [max([len(column), *(len(row[i]) for row in rows)]) for i, column in enumerate(columns)]
        lines += ["", f"{award.title} ({award.kind}, top {award.top})"]
        lines.append("  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)).rstrip())
        lines.append("  ".join("-" * width for width in widths))
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
        if not rows:
            lines.append("(no subjects)")
    return "\n".join(lines) + "\n"


def _figures_of(award: Award) -> list[str]:
    return list(dict.fromkeys([*award.weights, *award.minimum, *award.maximum]))


def _cell(figure: Any) -> str:
    if isinstance(figure, dict):
        rate = figure.get("rate")
        shown = "—" if rate is None else f"{rate * 100:.1f}%"
        return f"{figure.get('numerator')}/{figure.get('denominator')} ({shown})"
    return "—" if figure is None else str(figure)
