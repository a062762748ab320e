"""The registry as the API needs it: the category catalogue (Open311 services), org units, and grid lookup.

Kept in memory and brought up to date from the store on use: only registry
events are read (by topic), and only those recorded since the last look.

A location is mapped to a grid in this order (docs/http.md):

1. an explicit grid code (Open311 ``attribute[grid]`` or ``address_id``);
2. a grid code (``SN08-C01-G004``) or a grid's name (``永嘉路社区004网格``) in the address;
3. coordinates: the grid whose boundary (``registry.boundary``) holds the point, found in an STRtree
   (service/geometry.py). A point in no grid is outside the district.

Stores written before grids had boundaries have none: while *no* grid has one, coordinates fall back to the
old raster (:meth:`Catalogue.raster_at`): the district's bounding box cut into ``cols × rows`` equal cells
(``cols = ceil(sqrt(n))`` for ``n`` base grids), numbered row by row from the south-west corner, cell ``i``
the ``i``-th base grid in code order. As soon as one grid has a boundary, only boundaries count.
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.utils import get_topic

from domain.registry import Category, OrgUnit
from service.geometry import GridLocator

if TYPE_CHECKING:
    from adapters.store import StoreReader

#: The district's bounding box (Qingdao Shinan, WGS84): south, west, north, east.
DISTRICT_BOUNDS = (36.040, 120.300, 36.100, 120.450)
_TOPICS = (get_topic(Category.CategoryDefined), get_topic(OrgUnit.OrgUnitCreated),
           get_topic(Category.LocationVisibilitySet), get_topic(OrgUnit.BoundarySet))  # fmt: skip
#: The events that change where grids are (a category's change leaves the index as it is).
_PLACES = frozenset({_TOPICS[1], _TOPICS[3]})
_GRID_CODE = re.compile(r"[A-Z]{2,6}\d{2}-C\d{2}-[GZ]\d{2,4}")
_PAGE = 5_000


@dataclass(frozen=True)
class Unit:
    """An org unit: district, street, community, grid or department."""

    code: str
    kind: str
    name: str
    name_en: str | None
    parent: str | None
    grid_kind: str | None


class Catalogue:
    """Categories and org units from the registry's events."""

    def __init__(self, reader: StoreReader) -> None:
        self.reader = reader
        self.categories: dict[str, dict[str, Any]] = {}
        self.units: dict[str, Unit] = {}
        self._category_codes: dict[UUID | str, str] = {}
        self._base_grids: list[str] = []
        self._unit_codes: dict[UUID | str, str] = {}
        #: unit code → its boundary in force (GeoJSON), for every unit that has one.
        self.boundaries: dict[str, dict[str, Any]] = {}
        self._locator: GridLocator | None = None
        self._seen = 0
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Read the registry events recorded since the last look."""
        top = self.reader.last_position()
        if top <= self._seen:
            return
        with self._lock:
            start = self._seen
            changed = False
            while start < top:
                found = self.reader.read(start, _PAGE, stop=top, topics=_TOPICS)
                for notification in found:
                    self._fold(notification.topic, notification.originator_id, json.loads(notification.state))
                    changed = changed or notification.topic in _PLACES
                if len(found) < _PAGE:
                    break
                start = found[-1].id
            self._seen = max(self._seen, top)
            if changed:
                self._base_grids = sorted(
                    code for code, unit in self.units.items() if unit.kind == "grid" and unit.grid_kind == "base"
                )
                grids = {code: shape for code, shape in self.boundaries.items() if self.is_grid(code)}
                self._locator = GridLocator(grids) if grids else None

    def _fold(self, topic: str, originator: UUID | str, data: dict[str, Any]) -> None:
        if topic == _TOPICS[0]:
            self.categories[data["code"]] = data
            self._category_codes[originator] = data["code"]
        elif topic == _TOPICS[2]:
            code = self._category_codes.get(originator)
            if code is not None:
                self.categories[code] = {**self.categories[code], "location_public": data["location_public"]}
        elif topic == _TOPICS[3]:
            code = self._unit_codes.get(originator)
            if code is not None:
                self.boundaries[code] = data["boundary"]
        else:
            self._unit_codes[originator] = data["code"]
            self.units[data["code"]] = Unit(data["code"], data["kind"], data["name"], data.get("name_en"),
                                            data.get("parent"), data.get("grid_kind"))  # fmt: skip

    def is_grid(self, code: str) -> bool:
        """Whether a code names a grid."""
        unit = self.units.get(code)
        return unit is not None and unit.kind == "grid"

    def unit_name(self, code: str | None) -> str | None:
        """A unit's Chinese name with its English label."""
        unit = self.units.get(code or "")
        if unit is None:
            return code
        return f"{unit.name} ({unit.name_en})" if unit.name_en else unit.name

    # -- where is it ------------------------------------------------------------

    def grid_for_address(self, address: str) -> str | None:
        """The grid an address names by code or by name."""
        for match in _GRID_CODE.finditer(address):
            code = match.group(0)
            if self.is_grid(code):
                return code
        named = [unit for unit in self.units.values() if unit.kind == "grid" and unit.name in address]
        if named:
            most_specific: Unit = max(named, key=lambda unit: len(unit.name))
            return most_specific.code
        return None

    @property
    def has_boundaries(self) -> bool:
        """Whether any grid has a boundary (otherwise coordinates are placed on the raster)."""
        return self._locator is not None

    def grid_at(self, lat: float, lon: float) -> str | None:
        """The grid whose boundary holds a point (the raster while no grid has one), or None: outside the district."""
        locator = self._locator
        if locator is None:
            return self.raster_at(lat, lon)
        return locator.grid_at(lat, lon)

    def centre_of(self, grid: str) -> tuple[float, float] | None:
        """A point (lat, lon) inside a grid, where ``grid_at`` finds it; None for a grid without a place."""
        locator = self._locator
        if locator is None:
            return self.raster_centre(grid)
        return locator.point_in(grid)

    def raster_at(self, lat: float, lon: float) -> str | None:
        """The base grid a point falls in on the district's raster, or None outside the bounding box."""
        grids = self._base_grids
        south, west, north, east = DISTRICT_BOUNDS
        if not grids or not (south <= lat <= north and west <= lon <= east):
            return None
        cols = math.ceil(math.sqrt(len(grids)))
        rows = math.ceil(len(grids) / cols)
        row = min(rows - 1, int((lat - south) / (north - south) * rows))
        col = min(cols - 1, int((lon - west) / (east - west) * cols))
        return grids[min(len(grids) - 1, row * cols + col)]

    def raster_centre(self, grid: str) -> tuple[float, float] | None:
        """The centre of a base grid's raster cell (lat, lon): where ``raster_at`` finds it."""
        grids = self._base_grids
        if grid not in grids:
            return None
        index = grids.index(grid)
        cols = math.ceil(math.sqrt(len(grids)))
        rows = math.ceil(len(grids) / cols)
        south, west, north, east = DISTRICT_BOUNDS
        row, col = divmod(index, cols)
        return south + (row + 0.5) * (north - south) / rows, west + (col + 0.5) * (east - west) / cols
