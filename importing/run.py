"""Carrying an export's rows out through the service: batches of rows, one transaction each, resumable.

A batch is a run of consecutive rows of the file (whatever of them is skipped), so a re-run after a crash
forms the same batches and writes the same events in the same order: rows already imported (their external
reference is known) are passed over, the rest are written as a clean run would have.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from domain.errors import DomainError
from importing.profile import Anomaly
from importing.rows import Reading, Registry, RowReader
from service.errors import BadInput, ConcurrentChange

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from importing.profile import Profile
    from importing.rows import Row
    from service import Service

#: What a refused or invalid row raises; it is set aside, named, and the rest go on.
ROW_ERRORS = (DomainError, BadInput, ConcurrentChange, ValidationError)


@dataclass
class KindCount:
    """One kind of anomaly: how many rows had it, which lines, and how many of them were skipped for it."""

    policy: str
    count: int = 0
    skipped: int = 0
    lines: list[int] = field(default_factory=list)


@dataclass
class Summary:
    """What an import did; every row read is imported, already imported, skipped or refused."""

    profile: str
    rows: int = 0
    imported: int = 0
    already_imported: int = 0
    skipped: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0
    seconds: float = 0.0
    anomalies: dict[str, KindCount] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        """Rows read per second of the run."""
        return self.rows / self.seconds if self.seconds else 0.0

    def document(self) -> dict[str, Any]:
        """The summary as plain values (``--json``)."""
        return {
            "profile": self.profile,
            "rows": self.rows,
            "imported": self.imported,
            "already_imported": self.already_imported,
            "skipped": self.skipped,
            "refused": self.refused,
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
            "anomalies": {
                kind: {"policy": k.policy, "count": k.count, "skipped": k.skipped, "lines": k.lines}
                for kind, k in self.anomalies.items()
            },
        }

    def line(self) -> str:
        """The one-line summary for people."""
        odd = ", ".join(
            f"{kind} {k.count}" + (f" ({k.skipped} skipped)" if k.skipped else "")
            for kind, k in self.anomalies.items()
            if k.count
        )
        none = ", ".join(kind for kind, k in self.anomalies.items() if not k.count)
        return (
            f"{self.rows:,} rows: {self.imported:,} imported, {self.already_imported:,} already imported, "
            f"{self.skipped:,} skipped, {len(self.refused):,} refused; {self.events:,} events in "
            f"{self.seconds:.1f} s ({self.rows_per_second:,.0f} rows/s); anomalies: {odd or 'none'}"
            + (f"; none of {none}" if none else "")
        )


class Importer:
    """Imports rows under a profile through the service; ``imported`` holds the references already in the store."""

    def __init__(self, service: Service, profile: Profile, *, imported: set[str], batch_rows: int = 500,
                 progress: Callable[[Summary], None] | None = None) -> None:  # fmt: skip
        self.service = service
        self.profile = profile
        self.imported = imported
        self.batch_rows = batch_rows
        self.progress = progress
        self.reader = RowReader(profile)
        self.registry = Registry(profile, self._exists)
        self.summary = Summary(
            profile.name, anomalies={kind.value: KindCount(profile.policy(kind)) for kind in Anomaly}
        )

    def _exists(self, kind: str, code: str) -> bool:
        if kind == "worker":
            return self.service.worker_registered(code)
        return self.service.registered("org_unit" if kind == "org" else kind, code)

    def run(self, rows: Iterable[Row]) -> Summary:
        """Import every row; the summary says what became of each."""
        started = time.perf_counter()
        chunk: list[Row] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= self.batch_rows:
                self._chunk(chunk)
                chunk = []
                self.summary.seconds = time.perf_counter() - started
                if self.progress is not None:
                    self.progress(self.summary)
        if chunk:
            self._chunk(chunk)
        self.summary.seconds = time.perf_counter() - started
        return self.summary

    def _chunk(self, rows: list[Row]) -> None:
        summary = self.summary
        todo: list[Reading] = []
        for row in rows:
            reading = self.reader.read(row)
            summary.rows += 1
            for kind in reading.anomalies:
                counted = summary.anomalies[kind.value]
                counted.count += 1
                counted.lines.append(reading.line)
            if reading.skipped is not None:
                summary.anomalies[reading.skipped.value].skipped += 1
                summary.skipped += 1
            elif reading.ref in self.imported:
                summary.already_imported += 1
            else:
                todo.append(reading)
        if not todo:
            return
        try:
            self._write(todo)
        except ROW_ERRORS:
            for reading in todo:  # find the row the batch was refused for; the others go in one by one
                try:
                    self._write([reading])
                except ROW_ERRORS as error:
                    summary.refused.append({"line": reading.line, "ref": reading.ref, "error": one_line(error)})

    def _write(self, readings: list[Reading]) -> None:
        """Every command of these rows in one transaction: all of them are stored, or none."""
        registry, service = self.registry, self.service
        known = set(registry.known)
        events = 0
        try:
            with service.batch():
                for reading in readings:
                    request = reading.request
                    assert request is not None
                    for command in registry.needs(request, request.opened):
                        service.handle(command)  # type: ignore[arg-type]
                        events += 1
                    number = service.handle(registry.report(request))["case_number"]
                    follow_ups = registry.follow_ups(request, number)
                    for command in follow_ups:
                        service.handle(command)  # type: ignore[arg-type]
                    events += 1 + len(follow_ups)
        except BaseException:
            registry.known = known
            raise
        self.imported.update(reading.ref for reading in readings if reading.ref is not None)
        self.summary.imported += len(readings)
        self.summary.events += events


def one_line(error: BaseException) -> str:
    """An error as one line."""
    return " ".join(str(error).split())
