"""An org unit's boundary as GeoJSON (RFC 7946): a Polygon or a MultiPolygon in WGS84 longitude, latitude.

Only the shape of the JSON is checked here (closed rings of at least four positions, longitudes and latitudes in
range, sizes bounded by domain.bounds): pure, no geometry library. Whether a ring crosses itself, and whether a
point is inside, is computed with shapely in service/geometry.py (docs/decisions.md, "Grid geometry").
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from domain import bounds as b
from domain.bounded import Bound

__all__ = ["Boundary", "MultiPolygonBoundary", "PolygonBoundary", "boundary_points"]

Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
#: One position: longitude first, as GeoJSON has it.
Position = tuple[Longitude, Latitude]


def _closed(ring: tuple[Position, ...]) -> tuple[Position, ...]:
    if ring[0] != ring[-1]:
        raise PydanticCustomError("open_ring", "a linear ring must end on the position it starts with")
    return ring


Ring = Annotated[tuple[Position, ...], Field(min_length=4), Bound(max_items=b.BOUNDARY_POINTS_MAX)]
#: The outer ring, then any holes.
Rings = Annotated[tuple[Ring, ...], Field(min_length=1), Bound(max_items=b.BOUNDARY_RINGS_MAX)]


class _Geometry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def polygons(self) -> tuple[tuple[tuple[Position, ...], ...], ...]:
        """Each polygon's rings."""
        raise NotImplementedError

    @model_validator(mode="after")
    def _bounded(self) -> _Geometry:
        for rings in self.polygons():
            for ring in rings:
                _closed(ring)
        points = boundary_points(self)
        if points > b.BOUNDARY_POINTS_MAX:
            raise PydanticCustomError(
                "out_of_bounds", f"has {points:,} positions in all; at most {b.BOUNDARY_POINTS_MAX:,}"
            )
        return self


class PolygonBoundary(_Geometry):
    """A GeoJSON Polygon: an outer ring and any holes."""

    type: Literal["Polygon"]
    coordinates: Rings

    def polygons(self) -> tuple[tuple[tuple[Position, ...], ...], ...]:
        """Its one polygon."""
        return (self.coordinates,)


class MultiPolygonBoundary(_Geometry):
    """A GeoJSON MultiPolygon: a unit in several pieces (an island, a union that does not join up)."""

    type: Literal["MultiPolygon"]
    coordinates: Annotated[tuple[Rings, ...], Field(min_length=1), Bound(max_items=b.BOUNDARY_POLYGONS_MAX)]

    def polygons(self) -> tuple[tuple[tuple[Position, ...], ...], ...]:
        """Its polygons."""
        return self.coordinates


#: A unit's boundary.
Boundary = Annotated[PolygonBoundary | MultiPolygonBoundary, Field(discriminator="type")]


def boundary_points(geometry: _Geometry) -> int:
    """How many positions a boundary has over all its rings."""
    return sum(len(ring) for rings in geometry.polygons() for ring in rings)
