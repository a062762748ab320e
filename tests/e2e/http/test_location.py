"""Where a request is: an explicit grid, an address naming a grid, or lat/long.

The small district here has no boundaries, as a store written before ``registry.boundary`` existed: lat/long
falls back to the raster over the district's bounding box. Boundaries are tested in test_geometry.py, and the
reference district's (which has them) at the end of this file.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.http.catalogue import DISTRICT_BOUNDS, Catalogue
from district.reference import load_reference_district
from tests.conftest import make_settings
from tests.support import CATEGORY, GRID, OTHER_GRID, make_app

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.http.conftest import Api

SOUTH, WEST, NORTH, EAST = DISTRICT_BOUNDS


def filed_in(api: Api, **form: str) -> str:
    with api.client("operator") as client:
        response = client.post("/open311/v2/requests.json", data={"service_code": CATEGORY, "description": "x",
                                                                   **form})  # fmt: skip
        assert response.status_code == 201, response.text
        number = response.json()[0]["service_request_id"]
        return str(client.get(f"/api/v1/cases/{number}").json()["grid"])


def test_a_grid_is_found_by_code_name_or_coordinates(api: Api) -> None:
    api.runtime.catalogue.refresh()
    east = api.runtime.catalogue.centre_of(OTHER_GRID)
    assert east is not None
    assert filed_in(api, **{"attribute[grid]": OTHER_GRID}) == OTHER_GRID
    assert filed_in(api, address_id=OTHER_GRID) == OTHER_GRID
    assert filed_in(api, address_string=f"青岛市市南区 {OTHER_GRID} 路口") == OTHER_GRID
    assert filed_in(api, address_string="永嘉路社区002网格 12号楼") == OTHER_GRID
    assert filed_in(api, lat=str(east[0]), long=str(east[1])) == OTHER_GRID
    # An explicit grid wins over coordinates elsewhere.
    assert filed_in(api, lat=str(east[0]), long=str(east[1]), **{"attribute[grid]": GRID}) == GRID


@settings(max_examples=200, deadline=None)
@given(lat=st.floats(SOUTH, NORTH), lon=st.floats(WEST, EAST))
def test_without_boundaries_any_point_of_the_box_is_in_exactly_one_base_grid(api: Api, lat: float, lon: float) -> None:
    catalogue = api.runtime.catalogue
    found = catalogue.grid_at(lat, lon)
    assert found in {GRID, OTHER_GRID}
    centre = catalogue.centre_of(found)
    assert centre is not None
    assert catalogue.grid_at(*centre) == found


@settings(max_examples=100, deadline=None)
@given(lat=st.floats(-90, 90), lon=st.floats(-180, 180))
def test_without_boundaries_points_outside_the_box_are_in_no_grid(api: Api, lat: float, lon: float) -> None:
    inside = SOUTH <= lat <= NORTH and WEST <= lon <= EAST
    assert (api.runtime.catalogue.grid_at(lat, lon) is not None) == inside


@pytest.mark.slow
def test_on_the_reference_district_every_grid_is_found_inside_its_boundary_and_by_name(tmp_path: Path) -> None:
    service = make_app(make_settings(f"sqlite:///{tmp_path / 'reference.db'}"))
    try:
        reader = service.reader
        load_reference_district(service, reader, datetime.fromisoformat("2021-01-01T00:00:00+08:00"))
        catalogue = Catalogue(service.reader)
        catalogue.refresh()
    finally:
        service.close()
    grids = {code: unit for code, unit in catalogue.units.items() if unit.kind == "grid"}
    base = sorted(code for code, unit in grids.items() if unit.grid_kind == "base")
    assert (len(base), len(grids)) == (505, 573)
    assert catalogue.has_boundaries
    # Every place has its boundary: 1 district, 10 streets, 55 communities, 573 grids.
    assert len(catalogue.boundaries) == 1 + 10 + 55 + 573
    for code, unit in grids.items():
        inside = catalogue.centre_of(code)
        assert inside is not None
        assert catalogue.grid_at(*inside) == code
        assert catalogue.grid_for_address(f"{unit.name}旁边") == code
    # The bounding box's corners are sea or the next district: in no grid.
    assert catalogue.grid_at(SOUTH, WEST) is None
    assert catalogue.grid_at(NORTH, EAST) is None
    assert len(catalogue.categories) == 32
