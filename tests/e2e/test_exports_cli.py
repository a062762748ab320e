"""Exports of the queries as a reporting team opens them: CSV and Parquet files that say what they were made from."""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from tests.e2e.test_write_cli import seed

if TYPE_CHECKING:
    from tests.e2e.conftest import Cli

RULES = str(Path(__file__).resolve().parents[2] / "rules" / "2021.toml")

QUERIES: list[tuple[str, ...]] = [
    ("performance", "--worker", "W00001", "--period", "2021-06"),
    ("intake", "--by", "channel", "--period", "2021"),
    ("queue", "--unit", "SN08"),
    ("overdue",),
    ("duplicates", "SN-20210601-000005"),  # --json printed times it could not encode before it was an export
    ("review", "--period", "2021", "--rules", RULES),
]

#: One more patrol of W00001 in June 2021, and one more case in SN08: recorded after the first exports.
LATE = "\n".join(
    json.dumps(line, ensure_ascii=False)
    for line in (
        {"command": "patrol.start", "actor": {"id": "W00001", "role": "grid_worker"}, "at": "2021-06-20T09:00:00+08:00",
         "worker": "W00001", "grid": "SN08-C01-G004"},
        {"command": "case.report", "actor": {"id": "hotline-01", "role": "intake_operator"},
         "at": "2021-06-20T10:00:00+08:00", "channel": "hotline", "category": "facility.manhole",
         "grid": "SN08-C01-G004", "description": "井盖松动 (loose cover)"},
    )
)  # fmt: skip


def expected(document: Any, command: str) -> list[dict[str, Any]]:
    """The ``--json`` rows as a flat table: a rate is three numbers; the review's rankings one row each."""
    if command == "review":
        header = {k: v for k, v in document.items() if k != "awards"}
        rows = [
            {**header, "kind": award["kind"], "title": award["title"], "rank": r["rank"], "subject": r["subject"],
             "score": r["score"], "awarded": r["awarded"], "not_ranked_because": r["not_ranked_because"],
             **r["figures"]}
            for award in document["awards"]
            for r in award["ranking"]
        ]  # fmt: skip
    else:
        rows = document
    flat = []
    for row in rows:
        out: dict[str, Any] = {}
        for key, value in row.items():
            if isinstance(value, dict) and set(value) == {"numerator", "denominator", "rate"}:
                out |= {f"{key}_numerator": value["numerator"], f"{key}_denominator": value["denominator"],
                        key: value["rate"]}  # fmt: skip
            else:
                out[key] = value
        flat.append(out)
    return flat


def typed(text: str, kind: str) -> Any:
    """A CSV cell read back by the type its side file gives."""
    if text == "":
        return None
    return {"BIGINT": int, "DOUBLE": float, "BOOLEAN": lambda t: t == "true"}.get(kind, str)(text)


def read_csv(path: Path, meta: dict[str, Any]) -> list[dict[str, Any]]:
    kinds = {column["name"]: column["type"] for column in meta["columns"]}
    with path.open(encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream)
        assert reader.fieldnames == list(kinds)
        return [{name: typed(cell, kinds[name]) for name, cell in row.items()} for row in reader]


def read_parquet(path: Path) -> list[dict[str, Any]]:
    relation = duckdb.sql(f"SELECT * FROM read_parquet('{path}')")
    return [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]


def same(found: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> None:
    assert len(found) == len(wanted)
    for got, want in zip(found, wanted, strict=True):
        assert {k: v for k, v in got.items() if k in want or v is not None} == want


def test_every_export_reads_back_as_its_json(cli: Cli, tmp_path: Path) -> None:
    seed(cli)
    for query in QUERIES:
        document = cli.json(*query)
        wanted = expected(document, query[0])
        for form in ("csv", "parquet"):
            path = tmp_path / f"{query[0]}.{form}"
            done = cli(*query, "--format", form, "--output", str(path), check=True)
            assert f"exported {len(wanted)} rows to {path}" in done.stdout
            meta = json.loads(Path(f"{path}.meta.json").read_text(encoding="utf-8"))
            assert meta["rows"] == len(wanted)
            assert meta["position"] > 40
            assert meta["cutoff_recorded"].endswith("Z")
            assert meta["rule_version"]
            kinds = {column["name"]: column["type"] for column in meta["columns"]}
            found = read_csv(path, meta) if form == "csv" else read_parquet(path)
            same(found, wanted)
            if query[0] == "performance":  # a rate is numbers in their own columns, not "0/0 (—)"
                assert (kinds["rework_rate_numerator"], kinds["rework_rate_denominator"], kinds["rework_rate"]) == (
                    "BIGINT", "BIGINT", "DOUBLE")  # fmt: skip
                assert (found[0]["rework_rate_numerator"], found[0]["rework_rate_denominator"]) == (1, 2)
                assert found[0]["valid_report_rate"] is None  # nothing counted: no value, not zero
            if query[0] == "overdue":  # nothing overdue: still the columns of a case list
                assert "case_number" in kinds
                assert kinds["overdue"] == "BOOLEAN"


def test_an_export_is_made_again_from_its_side_file_after_late_events(cli: Cli, tmp_path: Path) -> None:
    seed(cli)
    first: dict[str, tuple[Path, dict[str, Any]]] = {}
    for query in (QUERIES[0], QUERIES[2]):
        path = tmp_path / f"{query[0]}.parquet"
        cli(*query, "--format", "parquet", "--output", str(path), check=True)
        first[query[0]] = (path, json.loads(Path(f"{path}.meta.json").read_text(encoding="utf-8")))
    late = cli("apply", "-", stdin=LATE + "\n")
    assert late.returncode == 0, late.stdout + late.stderr
    assert cli.json(*QUERIES[0])[0]["patrols"] == 2  # type: ignore[index]
    for name, (path, meta) in first.items():
        words = shlex.split(meta["reproduce"])
        assert words[0] == "gridcase"
        assert "--as-of-recorded" in words
        again = tmp_path / f"again-{path.name}"
        words[words.index("--output") + 1] = str(again)
        cli(*words[1:], check=True)
        assert read_parquet(again) == read_parquet(path), name
        assert json.loads(Path(f"{again}.meta.json").read_text(encoding="utf-8"))["position"] == meta["position"]
    assert read_parquet(first["performance"][0])[0]["patrols"] == 1


def test_a_bad_export_target_is_refused_and_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    seed(cli)
    missing = tmp_path / "no-such-folder" / "queue.csv"
    refused = cli("queue", "--format", "csv", "--output", str(missing))
    assert refused.returncode == 2
    assert "--output" in refused.stderr
    assert "does not exist" in refused.stderr
    no_file = cli("performance", "--district", "--period", "2021", "--format", "parquet")
    assert no_file.returncode == 2
    assert "give --output FILE" in no_file.stderr
    assert cli("intake", "--by", "channel", "--period", "2021", "--format", "xlsx").returncode == 2
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith("gridcase.db")]
