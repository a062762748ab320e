"""Query rows made flat for CSV and Parquet: a rate is three numbers side by side, every column one type."""

from __future__ import annotations

import csv
import io

from projections.tabular import column_names, column_types, csv_text, flat_rows


def test_a_rate_becomes_its_numerator_denominator_and_rate_side_by_side() -> None:
    rows = flat_rows([
        {"subject": "W1", "rework_rate": None, "patrols": 2},
        {"subject": "W2", "rework_rate": {"numerator": 1, "denominator": 2, "rate": 0.5}, "patrols": 0,
         "note": {"a": 1}},
    ])  # fmt: skip
    names = column_names(rows, ["subject"])
    assert names == ["subject", "rework_rate_numerator", "rework_rate_denominator", "rework_rate", "patrols", "note"]
    assert rows[1]["note"] == '{"a": 1}'  # any other nested value is its JSON text
    types = column_types(rows, names)
    assert types == {"subject": "VARCHAR", "rework_rate_numerator": "BIGINT", "rework_rate_denominator": "BIGINT",
                     "rework_rate": "DOUBLE", "patrols": "BIGINT", "note": "VARCHAR"}  # fmt: skip


def test_csv_cells_are_plain_values_that_read_back_exactly() -> None:
    rows = [{"n": 3, "x": 0.1 + 0.2, "flag": True, "none": None, "text": 'say "hi", 好'}]
    [read] = list(csv.DictReader(io.StringIO(csv_text(rows, ["n", "x", "flag", "none", "text"]))))
    assert read == {"n": "3", "x": repr(0.1 + 0.2), "flag": "true", "none": "", "text": 'say "hi", 好'}
    assert float(read["x"]) == 0.1 + 0.2
