"""Imported requests (issue 14): one row per case an import filed, with what the city's own figures need.

Only cases whose ``CaseReported`` carries an external reference are kept: the reference, the anomalies the
import flagged, the category, the district (the engine's street) and agency (the department the first
dispatch referred it to), when it was opened and closed, and the export's own deadline when it had one.
Names of categories and units are kept beside them, so the report shows the file's names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import Boolean, Column, DateTime, MetaData, String, Table

from projections.base import Projection
from projections.events import parse_time
from projections.sql import RowCache, upsert, utc_naive

if TYPE_CHECKING:
    from datetime import tzinfo

    from sqlalchemy import Connection

    from projections.events import ProjectedEvent

metadata = MetaData()

imported_requests = Table(
    "imported_requests",
    metadata,
    Column("case_id", String(36), primary_key=True),
    Column("case_number", String(32), nullable=False),
    #: Not unique: the import files one case per reference, but an administrator's ``apply`` may file another
    #: with the same one, and a read model takes every stored event (the lookup answers the first filed).
    Column("ref", String(80), nullable=False, index=True),
    Column("source", String(64), nullable=False),
    #: The anomaly kinds the import flagged, comma-separated (docs/import.md).
    Column("flags", String(400), nullable=False),
    Column("category", String(64), nullable=False, index=True),
    Column("street", String(64), nullable=False, index=True),
    Column("agency", String(64), nullable=True, index=True),
    Column("opened_at", DateTime, nullable=False),
    Column("opened_month", String(7), nullable=False, index=True),
    Column("closed_at", DateTime, nullable=True),
    Column("closed_month", String(7), nullable=True),
    #: The export's own deadline (the first dispatch's resolve-by) when the row had one.
    Column("deadline", DateTime, nullable=True),
    Column("has_deadline", Boolean, nullable=False),
)

#: The file's names of what the imports created (and of every category and unit): code → name.
imported_names = Table(
    "imported_names",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
)

NO_DEADLINE_FLAGS = frozenset({"missing_deadline", "deadline_not_after_opened"})


class Imported(Projection):
    """The imported cases and the names of what they refer to."""

    name: ClassVar[str] = "imported"
    version: ClassVar[int] = 1
    metadata: ClassVar[MetaData] = metadata
    handles: ClassVar[frozenset[str]] = frozenset(
        {"CaseReported", "CaseDispatched", "CaseClosed", "CaseReopened", "OrgUnitCreated", "CategoryDefined"}
    )

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self.cases = RowCache(imported_requests)
        self.names: list[dict[str, Any]] = []

    def prepare(self, connection: Connection, events: list[ProjectedEvent]) -> None:
        """Load the rows of the imported cases the batch touches."""
        later = {e.originator_id for e in events if e.type in {"CaseDispatched", "CaseClosed", "CaseReopened"}}
        born = {e.originator_id for e in events if e.type == "CaseReported"}
        self.cases.prefetch(connection, [(case,) for case in later - born])

    def _month(self, moment: Any) -> str:
        return str(parse_time(moment).astimezone(self.tz).strftime("%Y-%m"))

    def apply(self, connection: Connection, event: ProjectedEvent) -> None:
        """Keep an imported case's facts; names of categories and units."""
        data = event.data
        if event.type in {"OrgUnitCreated", "CategoryDefined"}:
            self.names.append({"code": data["code"], "name": data["name"]})
            return
        key = (event.originator_id,)
        if event.type == "CaseReported":
            external = data.get("external")
            if not external:
                return
            flags = external.get("flags") or []
            self.cases.put(key, {
                "case_id": key[0], "case_number": data["case_number"], "ref": external["ref"],
                "source": external["source"], "flags": ",".join(flags), "category": data["category"],
                "street": data["street"], "agency": None, "opened_at": utc_naive(parse_time(data["occurred_at"])),
                "opened_month": self._month(data["occurred_at"]), "closed_at": None, "closed_month": None,
                "deadline": None, "has_deadline": not NO_DEADLINE_FLAGS.intersection(flags),
            })  # fmt: skip
            return
        row = self.cases.get(connection, key)
        if row is None:  # not an imported case
            return
        row = dict(row)
        if event.type == "CaseDispatched":
            if row["agency"] is None:  # the export's own referral and deadline are the first dispatch's
                row["agency"] = data["handler"]["id"]
                if row["has_deadline"]:
                    row["deadline"] = utc_naive(parse_time(data["resolve_by"]))
        elif event.type == "CaseClosed":
            row["closed_at"] = utc_naive(parse_time(data["occurred_at"]))
            row["closed_month"] = self._month(data["occurred_at"])
        else:  # reopened: no longer closed
            row["closed_at"] = row["closed_month"] = None
        self.cases.put(key, row)

    def flush(self, connection: Connection) -> None:
        """Write the batch's rows and names."""
        self.cases.flush(connection)
        upsert(connection, imported_names, list({row["code"]: row for row in self.names}.values()))
        self.discard()

    def discard(self) -> None:
        """Forget the batch."""
        self.cases.clear()
        self.names = []
