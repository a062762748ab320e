"""The reference district's boundaries: generated, deterministic, plausible, not surveyed.

Shinan's outline (:data:`OUTLINE`) is drawn by hand after the shape of the real district (the sea to the south
with its bays, Shibei to the north, Laoshan to the east), inside the bounding box the raster used
(adapters/http/catalogue.py ``DISTRICT_BOUNDS``); it is not an official boundary. Inside it, every level is a
Voronoi tiling of seeded points, relaxed twice (Lloyd) so cells are even, and clipped to the level above: the
ten streets tile the outline (west to east in file order), each street's communities tile the street, each
community's grids (base, then dedicated) tile the community. A community's, a street's and the district's
boundaries are then the unions (``unary_union``) of their grids, so they agree exactly. Computed at load time
from ``random.Random(seed)`` (the seed in ``data/district.toml``): nothing large is committed, and the same
seed gives the same boundaries. Computed in a local metric projection (metres), given out in WGS84.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any

import shapely
from shapely.affinity import affine_transform
from shapely.geometry import MultiPoint, Point, Polygon

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["OUTLINE", "district_shapes", "outline"]

#: Shinan district's outline, (longitude, latitude), hand-drawn after the real one: Tuandao in the west, the
#: bays (Qingdao, Huiquan, Taiping, Fushan) on the south coast, the line with Shibei and Laoshan to the north.
OUTLINE: tuple[tuple[float, float], ...] = (
    (120.300, 36.058), (120.306, 36.054), (120.316, 36.058), (120.326, 36.056), (120.336, 36.054),
    (120.344, 36.050), (120.352, 36.053), (120.360, 36.047), (120.370, 36.049), (120.380, 36.045),
    (120.390, 36.048), (120.398, 36.055), (120.408, 36.056), (120.418, 36.052), (120.428, 36.058),
    (120.438, 36.066), (120.446, 36.074), (120.448, 36.086), (120.440, 36.094), (120.428, 36.098),
    (120.415, 36.094), (120.402, 36.090), (120.390, 36.086), (120.378, 36.084), (120.365, 36.080),
    (120.352, 36.078), (120.340, 36.076), (120.328, 36.072), (120.318, 36.070), (120.308, 36.066),
    (120.301, 36.062), (120.300, 36.058),
)  # fmt: skip
#: The local projection's origin and scale: metres per degree at Shinan's latitude.
_LON0, _LAT0 = 120.300, 36.040
_M_PER_LAT = 110_950.0
_M_PER_LON = 111_320.0 * math.cos(math.radians(36.07))
_LLOYD = 2
#: Coordinates are kept to 1e-6 degrees (about 0.1 m), as service/geometry.py stores them.
PRECISION = 1e-6
#: A hole in a union narrower than twice this (degrees, about 0.2 m) is a gap rounding left, not a hole.
SLIVER = 2 * PRECISION


def outline() -> Any:
    """The district's outline as a shapely Polygon in WGS84."""
    return Polygon(OUTLINE)


def _to_metres(geometry: Any) -> Any:
    return affine_transform(geometry, [_M_PER_LON, 0, 0, _M_PER_LAT, -_LON0 * _M_PER_LON, -_LAT0 * _M_PER_LAT])


def _to_degrees(geometry: Any) -> Any:
    return affine_transform(geometry, [1 / _M_PER_LON, 0, 0, 1 / _M_PER_LAT, _LON0, _LAT0])


def _sample(region: Any, count: int, rng: random.Random) -> list[Point]:
    west, south, east, north = region.bounds
    shapely.prepare(region)
    found: list[Point] = []
    while len(found) < count:
        point = Point(rng.uniform(west, east), rng.uniform(south, north))
        if region.contains(point):
            found.append(point)
    return found


def _cells(region: Any, seeds: Sequence[Point]) -> list[Any]:
    if len(seeds) == 1:
        return [region]
    diagram = shapely.voronoi_polygons(MultiPoint(seeds), extend_to=region, ordered=True)
    return [cell.intersection(region) for cell in diagram.geoms]


def _joined(cells: list[Any]) -> list[Any]:
    """Each cell in one piece: a stray piece (a cell cut by a bay) goes to the neighbour it shares most edge with."""
    cells = list(cells)
    for index, cell in enumerate(list(cells)):
        if cell.geom_type != "MultiPolygon":
            continue
        parts = sorted(cell.geoms, key=lambda part: part.area, reverse=True)
        cells[index] = parts[0]
        for part in parts[1:]:
            shared = [(part.boundary.intersection(other.boundary).length, n) for n, other in enumerate(cells)
                      if n != index]  # fmt: skip
            length, neighbour = max(shared)
            if length > 0:
                cells[neighbour] = shapely.union(cells[neighbour], part)
            else:  # an island of its own: keep it, in several pieces
                cells[index] = shapely.union(cells[index], part)
    return cells


def _tile(region: Any, count: int, rng: random.Random) -> list[Any]:
    """``count`` cells, each in one piece where it can be, that tile ``region`` (metres)."""
    seeds = _sample(region, count, rng)
    for _ in range(_LLOYD):
        cells = _cells(region, seeds)
        seeds = [cell.centroid if region.contains(cell.centroid) else cell.representative_point() for cell in cells]
    return _joined(_cells(region, seeds))


def _west_to_east(cells: list[Any]) -> list[Any]:
    return sorted(cells, key=lambda cell: (round(cell.centroid.x), round(cell.centroid.y)))


def _reading_order(cells: list[Any]) -> list[Any]:
    """North-west first, in rows about 300 m high."""
    return sorted(cells, key=lambda cell: (-round(cell.centroid.y / 300), cell.centroid.x))


def district_shapes(
    district: str, streets: Mapping[str, Mapping[str, Sequence[str]]], seed: int
) -> dict[str, Any]:
    """Every unit's shape (WGS84): ``streets`` maps street → community → its grid codes, in order.

    Grids are Voronoi cells; communities, streets and the district are the unions of their grids.
    """
    rng = random.Random(f"{seed}:geometry")  # noqa: S311 - reproducible reference data, not security
    shapes: dict[str, Any] = {}
    area = _to_metres(outline())
    for street, street_area in zip(streets, _west_to_east(_tile(area, len(streets), rng)), strict=True):
        communities = streets[street]
        for community, community_area in zip(
            communities, _west_to_east(_tile(street_area, len(communities), rng)), strict=True
        ):
            grids = communities[community]
            for grid, cell in zip(grids, _reading_order(_tile(community_area, len(grids), rng)), strict=True):
                shapes[grid] = _to_degrees(cell)
    # Snap every grid to the stored precision first, so the unions are unions of exactly what is stored.
    for code in list(shapes):
        shapes[code] = shapely.set_precision(shapes[code], PRECISION)
    for street, communities in streets.items():
        for community, grids in communities.items():
            shapes[community] = _union([shapes[g] for g in grids])
        shapes[street] = _union([shapes[c] for c in communities])
    shapes[district] = _union([shapes[s] for s in streets])
    return shapes


def _sliver(ring: Any) -> bool:
    """Whether a hole is a gap rounding left between neighbours: nothing is left of it 0.2 m in from its edges."""
    return bool(Polygon(ring).buffer(-SLIVER).is_empty)


def _union(parts: list[Any]) -> Any:
    """The union of neighbouring shapes, without the slivers rounding leaves between them."""
    union = shapely.set_precision(shapely.unary_union(parts), PRECISION)
    polygons = list(union.geoms) if union.geom_type == "MultiPolygon" else [union]
    kept = [Polygon(p.exterior, [hole for hole in p.interiors if not _sliver(hole)]) for p in polygons]
    return kept[0] if len(kept) == 1 else shapely.MultiPolygon(kept)
