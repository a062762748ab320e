"""The reference district's generated boundaries: every grid drawn, inside Shinan, tiling it, nested, found again."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

import shapely
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from shapely.geometry import Point

from district.geometry import OUTLINE, district_shapes, outline
from district.reference import reference_commands
from domain import commands as c
from domain.registry import GridKind, OrgKind
from service.geometry import TOLERANCE, GridLocator, shape_of

AT = datetime.fromisoformat("2021-01-01T00:00:00+08:00")
WEST, SOUTH, EAST, NORTH = outline().bounds


@cache
def drawn() -> tuple[dict[str, Any], dict[str, c.CreateOrgUnit]]:
    """Each unit's boundary (as the reference load records it) and each unit's creation."""
    commands = list(reference_commands(AT))
    units = {command.code: command for command in commands if isinstance(command, c.CreateOrgUnit)}
    boundaries = {command.code: command.boundary.model_dump() for command in commands
                  if isinstance(command, c.SetBoundary)}  # fmt: skip
    return boundaries, units


@cache
def locator() -> GridLocator:
    boundaries, units = drawn()
    return GridLocator({code: shape for code, shape in boundaries.items() if units[code].kind is OrgKind.GRID})


def grids() -> dict[str, Any]:
    boundaries, units = drawn()
    return {code: shape_of(shape) for code, shape in boundaries.items() if units[code].kind is OrgKind.GRID}


def test_every_unit_but_departments_has_a_valid_boundary_and_every_grid_one_polygon() -> None:
    boundaries, units = drawn()
    places = {code for code, unit in units.items() if unit.kind is not OrgKind.DEPARTMENT}
    assert set(boundaries) == places
    shapes = grids()
    kinds = [units[code].grid_kind for code in shapes]
    assert (kinds.count(GridKind.BASE), kinds.count(GridKind.DEDICATED)) == (505, 68)
    assert {shape.geom_type for shape in shapes.values()} == {"Polygon"}
    assert all(shape_of(shape).is_valid for shape in boundaries.values())
    # Plausible sizes: Shinan is about 30 km², so a grid is a few hectares (1e-6 square degrees is about 1 ha).
    areas = sorted(shape.area for shape in shapes.values())
    assert areas[0] > 0.5e-6 and areas[-1] < 100e-6


def test_grids_lie_inside_the_outline_and_do_not_overlap() -> None:
    area = outline().buffer(TOLERANCE)
    shapes = list(grids().values())
    assert all(shape.within(area) for shape in shapes)
    tree = shapely.STRtree(shapes)
    for index, shape in enumerate(shapes):
        for other in tree.query(shape, predicate="intersects"):
            if other != index:
                # Only the slivers rounding to 1e-6 degrees leaves: under 0.1 % of the smaller grid.
                overlap = shape.intersection(shapes[other]).area
                assert overlap < 1e-3 * min(shape.area, shapes[other].area)
    covered = shapely.unary_union(shapes).area
    assert abs(covered - outline().area) < 1e-4 * outline().area


def test_communities_streets_and_the_district_are_the_unions_of_their_grids() -> None:
    boundaries, units = drawn()
    shapes = {code: shape_of(shape) for code, shape in boundaries.items()}
    children: dict[str, list[str]] = {}
    for code, unit in units.items():
        if unit.parent is not None and code in shapes:
            children.setdefault(unit.parent, []).append(code)
    assert len([code for code, unit in units.items() if unit.kind is OrgKind.COMMUNITY]) == 55
    for parent, codes in children.items():
        union = shapely.unary_union([shapes[code] for code in codes])
        difference = union.symmetric_difference(shapes[parent]).area
        # Up to the slivers rounding leaves between neighbours (a few cm wide), filled in the parent.
        assert difference < 1e-4 * shapes[parent].area, parent
        assert not list(getattr(shapes[parent], "interiors", ())), parent


def test_every_grid_is_found_at_its_own_centre_and_centroid() -> None:
    found = locator()
    for code, shape in grids().items():
        inside = found.point_in(code)
        assert inside is not None
        assert found.grid_at(*inside) == code
        centroid = shape.centroid
        if shape.buffer(-TOLERANCE).contains(centroid):
            assert found.grid_at(centroid.y, centroid.x) == code


def test_the_same_seed_draws_the_same_boundaries_and_another_seed_others() -> None:
    layout = {"S1": {"S1-C1": ["S1-C1-G1", "S1-C1-G2"], "S1-C2": ["S1-C2-G1"]}, "S2": {"S2-C1": ["S2-C1-G1"]}}
    first, again, other = (district_shapes("D", layout, seed) for seed in (1, 1, 2))
    assert all(first[code].equals_exact(again[code], 0) for code in first)
    assert not first["S1-C1-G1"].equals(other["S1-C1-G1"])
    assert first["D"].symmetric_difference(outline()).area < 1e-6


@settings(max_examples=300, deadline=None)
@given(lat=st.floats(SOUTH, NORTH), lon=st.floats(WEST, EAST))
def test_any_point_inside_the_outline_is_in_exactly_one_grid(lat: float, lon: float) -> None:
    point = Point(lon, lat)
    assume(outline().contains(point))
    found = locator().grid_at(lat, lon)
    assert found is not None
    shapes = grids()
    assert shapes[found].distance(point) <= TOLERANCE
    holding = [code for code, shape in shapes.items() if shape.contains(point)]
    assert holding in ([found], []) or min(shapes[code].exterior.distance(point) for code in holding) <= TOLERANCE
    assert len(OUTLINE) > 3
