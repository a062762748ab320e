"""Reading another system's export: CSV or a JSON array, gzipped or not, as rows with their line numbers.

And what the store already holds of an import: the external references its cases carry. Used by
``gridcase import`` (adapters/cli/imports.py), the import's tests and ``bench/import_requests.py``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from typing import TYPE_CHECKING

from importing.rows import Row

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from adapters.store import StoreReader

#: The stored topic of a case's report: the only events a re-run reads to know what it imported.
REPORTED_TOPIC = "domain.case:Case.CaseReported"


def open_text(path: Path) -> io.TextIOBase:
    """The file as text (UTF-8, a BOM skipped), unzipped if it ends in .gz."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def read_rows(path: Path, form: str) -> Iterator[Row]:
    """The file's records with the line each starts on (CSV), or the item number (a JSON array)."""
    with open_text(path) as stream:
        if form == "json":
            items = json.load(stream)
            if not isinstance(items, list):
                msg = "a JSON export must be an array of objects"
                raise ValueError(msg)
            for number, item in enumerate(items, start=1):
                values = {k: "" if v is None else str(v) for k, v in item.items()} if isinstance(item, dict) else {}
                yield Row(number, values)
            return
        reader = csv.reader(stream)
        header = next(reader, None)
        if header is None:
            return
        start = reader.line_num + 1
        for record in reader:
            yield Row(start, dict(zip(header, record, strict=False)))
            start = reader.line_num + 1


def imported_refs(reader: StoreReader, source: str) -> set[str]:
    """The external references the store's cases carry from imports under this profile (the truth, not a read model)."""
    refs: set[str] = set()
    after, last = 0, reader.last_position()
    while after < last:
        batch = reader.read(after, 10_000, stop=last, topics=[REPORTED_TOPIC])
        if not batch:
            break
        for notification in batch:
            if b'"external"' in notification.state:
                external = json.loads(notification.state).get("external")
                if external and external.get("source") == source:
                    refs.add(external["ref"])
        after = batch[-1].id
    return refs
