"""Boundaries from the CLI: ``registry boundary --geojson FILE``, and ``case report --lat --lon`` without ``--grid``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tests.e2e.test_write_cli import ADMIN, seed

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.conftest import Cli

OPERATOR = ["--actor", "op", "--role", "intake_operator"]
#: docs/commands.md draws SN08-C01-G004 as 120.3650–120.3690 E, 36.0520–36.0550 N (its case at 永嘉路12号 inside).
REPORT = ["case", "report", "--channel", "hotline", "--category", "facility.manhole", "--description", "井盖缺失"]


def test_a_report_with_only_lat_lon_lands_in_the_grid_holding_it(cli: Cli) -> None:
    seed(cli)
    filed = cli.json(*REPORT, "--lat", "36.0536", "--lon", "120.3668", *OPERATOR, "--json")
    assert isinstance(filed, dict)
    shown = cli.json("case", "show", filed["case_number"], "--json")
    assert isinstance(shown, dict)
    assert shown["grid"] == "SN08-C01-G004"
    outside = cli(*REPORT, "--lat", "36.0700", "--lon", "120.4000", *OPERATOR)
    assert outside.returncode == 2
    assert "--lat, --lon" in outside.stderr + outside.stdout
    neither = cli(*REPORT, *OPERATOR)
    assert neither.returncode == 2
    assert "--grid" in neither.stderr + neither.stdout


def test_registry_boundary_reads_a_geojson_file_or_feature_and_refuses_a_bad_one(cli: Cli, tmp_path: Path) -> None:
    seed(cli)
    ring = [[120.385, 36.060], [120.386, 36.060], [120.386, 36.061], [120.385, 36.061], [120.385, 36.060]]
    feature = tmp_path / "grid.geojson"
    feature.write_text(json.dumps({"type": "Feature", "properties": {},
                                   "geometry": {"type": "Polygon", "coordinates": [ring]}}))  # fmt: skip
    drawn = cli("registry", "boundary", "--code", "SN08-C01-G004", "--geojson", str(feature), *ADMIN)
    assert drawn.returncode == 0, drawn.stderr
    assert "SN08-C01-G004" in drawn.stdout
    crossing = tmp_path / "bowtie.geojson"
    crossing.write_text(json.dumps({"type": "Polygon", "coordinates": [[ring[0], ring[2], ring[1], ring[3], ring[0]]]}))
    bad = cli("registry", "boundary", "--code", "SN08-C01-G004", "--geojson", str(crossing), *ADMIN)
    assert bad.returncode == 2
    assert "boundary" in bad.stderr and "Self-intersection" in bad.stderr
    missing = cli("registry", "boundary", "--code", "SN08-C01-G004", "--geojson", str(tmp_path / "no.json"), *ADMIN)
    assert missing.returncode == 2
    assert "geojson" in missing.stderr
    refused = cli("registry", "boundary", "--code", "SN08-C01-G004", "--geojson", str(feature), *OPERATOR)
    assert refused.returncode == 3
