"""Boundaries as shapes: checking a drawn boundary, and finding the grid a point is in (shapely).

domain/geometry.py checks only the JSON's shape (pure). Whether a ring crosses itself needs computational
geometry; shapely (GEOS) is pure computation, but a compiled library with numpy behind it, so it is kept out of
the domain and used here and by the adapters and the reference district (docs/decisions.md, "Grid geometry").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import shapely
import shapely.errors
from shapely.geometry import Point, mapping, shape
from shapely.strtree import STRtree

from domain.geometry import MultiPolygonBoundary, PolygonBoundary

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["GridLocator", "as_boundary", "boundary_problem", "shape_of"]

#: Coordinates are kept to 1e-6 degrees (about 0.1 m): finer than any grid map, and GeoJSON stays compact.
PRECISION = 1e-6
#: A point this close to a grid (rounding gaps between neighbours' edges) is in it.
TOLERANCE = 2 * PRECISION


def shape_of(boundary: PolygonBoundary | MultiPolygonBoundary | Mapping[str, Any]) -> Any:
    """The shapely geometry of a boundary (a model or its GeoJSON dict)."""
    data = boundary.model_dump() if isinstance(boundary, PolygonBoundary | MultiPolygonBoundary) else boundary
    return shape(data)


def boundary_problem(boundary: PolygonBoundary | MultiPolygonBoundary) -> str | None:
    """What makes a boundary no shape (a ring crossing itself, a hole outside its polygon), or None."""
    try:
        geometry = shape_of(boundary)
    except (ValueError, TypeError, shapely.errors.ShapelyError) as error:
        return f"is no {boundary.type}: {error}"
    if not geometry.is_valid:
        return f"is not a valid {boundary.type}: {shapely.is_valid_reason(geometry)}"
    if geometry.is_empty or geometry.area == 0:
        return "encloses no area"
    return None


def as_boundary(geometry: Any) -> PolygonBoundary | MultiPolygonBoundary:
    """A shapely Polygon or MultiPolygon as a boundary, its coordinates rounded to :data:`PRECISION`."""
    snapped = shapely.set_precision(geometry, PRECISION)
    data = mapping(snapped)
    if data["type"] == "Polygon":
        return PolygonBoundary.model_validate(data)
    if data["type"] == "MultiPolygon":
        return MultiPolygonBoundary.model_validate(data)
    msg = f"a boundary is a Polygon or a MultiPolygon, not a {data['type']}"
    raise ValueError(msg)


class GridLocator:
    """The grids' boundaries in an STRtree: which grid a point is in."""

    def __init__(self, boundaries: Mapping[str, Mapping[str, Any]]) -> None:
        self.codes = sorted(boundaries)
        self.shapes = [shape_of(boundaries[code]) for code in self.codes]
        for geometry in self.shapes:
            shapely.prepare(geometry)
        self.tree = STRtree(self.shapes)

    def __len__(self) -> int:
        return len(self.codes)

    def grid_at(self, lat: float, lon: float) -> str | None:
        """The grid a point is in, or None when it is in none.

        A point on the edge two grids share is in the one whose code sorts first; a point in a rounding gap
        (under :data:`TOLERANCE` from a grid) is in the nearest grid.
        """
        point = Point(lon, lat)
        hits = self.tree.query(point, predicate="intersects")
        if len(hits) == 0:
            hits = self.tree.query_nearest(point, max_distance=TOLERANCE)
        if len(hits) == 0:
            return None
        return self.codes[min(int(i) for i in hits)]

    def point_in(self, code: str) -> tuple[float, float] | None:
        """A point (lat, lon) inside the grid, well away from its edges where possible; None for an unknown grid."""
        if code not in self.codes:
            return None
        geometry = self.shapes[self.codes.index(code)]
        inner = geometry.buffer(-TOLERANCE * 10)
        point = (inner if not inner.is_empty else geometry).representative_point()
        return float(point.y), float(point.x)
