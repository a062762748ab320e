"""Grids with boundaries drawn over HTTP (``registry.boundary``): Open311 lat/long finds them by point in polygon."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.e2e.http.conftest import serving
from tests.support import CATEGORY, GRID, OTHER_GRID

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.e2e.http.conftest import Api

#: Two neighbouring squares, GRID to the west of OTHER_GRID, sharing the edge at longitude 120.388.
WEST, MIDDLE, EAST, SOUTH, NORTH = 120.385, 120.388, 120.391, 36.060, 36.063


def square(west: float, east: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[west, SOUTH], [east, SOUTH], [east, NORTH], [west, NORTH],
                                                [west, SOUTH]]]}  # fmt: skip


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    path = tmp_path_factory.mktemp("geometry") / "gridcase.db"
    with serving(f"sqlite:///{path}") as api:
        with api.client("admin") as admin:
            for code, shape in ((GRID, square(WEST, MIDDLE)), (OTHER_GRID, square(MIDDLE, EAST))):
                response = admin.post("/api/v1/registry/boundary", json={"code": code, "boundary": shape})
                assert response.status_code in (200, 201), response.text
        api.runtime.catalogue.refresh()
        yield api


def file(api: Api, **form: str) -> Any:
    with api.client("operator") as client:
        return client.post("/open311/v2/requests.json", data={"service_code": CATEGORY, **form})


def grid_of(api: Api, response: Any) -> str:
    assert response.status_code == 201, response.text
    number = response.json()[0]["service_request_id"]
    with api.client("dispatcher") as client:
        return str(client.get(f"/api/v1/cases/{number}").json()["grid"])


def test_lat_long_finds_the_grid_whose_boundary_holds_it(drawn: Api) -> None:
    assert grid_of(drawn, file(drawn, description="井盖缺失", lat="36.0615", long="120.3860")) == GRID
    assert grid_of(drawn, file(drawn, description="井盖缺失", lat="36.0615", long="120.3900")) == OTHER_GRID
    for code in (GRID, OTHER_GRID):
        inside = drawn.runtime.catalogue.centre_of(code)
        assert inside is not None
        assert grid_of(drawn, file(drawn, description="x", lat=str(inside[0]), long=str(inside[1]))) == code


def test_a_point_in_no_grid_is_a_400_naming_lat_long_and_files_nothing(drawn: Api) -> None:
    before = drawn.events()
    # Inside the district's bounding box (the old raster would have placed it), but in no grid's boundary.
    response = file(drawn, description="x", lat="36.0700", long="120.4000")
    assert response.status_code == 400, response.text
    assert "lat, long" in response.text
    assert "outside the district" in response.text
    assert drawn.events() == before


def test_a_boundary_that_crosses_itself_or_is_no_ring_is_bad_input(drawn: Api) -> None:
    before = drawn.events()
    bowtie = {"type": "Polygon", "coordinates": [[[WEST, SOUTH], [EAST, NORTH], [EAST, SOUTH], [WEST, NORTH],
                                                  [WEST, SOUTH]]]}  # fmt: skip
    open_ring = {"type": "Polygon", "coordinates": [[[WEST, SOUTH], [EAST, SOUTH], [EAST, NORTH], [WEST, NORTH]]]}
    far = {"type": "Polygon", "coordinates": [[[200, SOUTH], [EAST, SOUTH], [EAST, NORTH], [200, SOUTH]]]}
    with drawn.client("admin") as admin:
        crossing = admin.post("/api/v1/registry/boundary", json={"code": GRID, "boundary": bowtie})
        assert crossing.status_code in (400, 422), crossing.text
        assert "boundary" in crossing.text
        assert "Self-intersection" in crossing.text
        for shape in (open_ring, far):
            refused = admin.post("/api/v1/registry/boundary", json={"code": GRID, "boundary": shape})
            assert refused.status_code in (400, 422), refused.text
            assert "boundary" in refused.text
    with drawn.client("dispatcher") as dispatcher:
        forbidden = dispatcher.post("/api/v1/registry/boundary", json={"code": GRID, "boundary": square(WEST, EAST)})
        assert forbidden.status_code in (403, 409), forbidden.text
    assert drawn.events() == before


def test_drawing_again_records_a_new_version_and_the_same_drawing_nothing(drawn: Api) -> None:
    with drawn.client("admin") as admin:
        before = drawn.events()
        same = admin.post("/api/v1/registry/boundary", json={"code": GRID, "boundary": square(WEST, MIDDLE)})
        assert same.status_code in (200, 201), same.text
        assert drawn.events() == before
        department = admin.post("/api/v1/registry/boundary", json={"code": "D-CG", "boundary": square(WEST, EAST)})
        assert department.status_code == 409, department.text
        assert "department" in department.text


def test_description_is_optional_and_an_unknown_service_code_is_named_first(drawn: Api) -> None:
    found = file(drawn, lat="36.0615", long="120.3860")
    assert grid_of(drawn, found) == GRID
    number = found.json()[0]["service_request_id"]
    with drawn.client("dispatcher") as client:
        history = client.get(f"/api/v1/cases/{number}/history").text
    assert "no description given" in history
    with drawn.client("operator") as client:
        unknown = client.post("/open311/v2/requests.json", data={"service_code": "no.such", "lat": "36.0615",
                                                                  "long": "120.3860"})  # fmt: skip
    assert unknown.status_code == 404, unknown.text
    assert "service_code" in unknown.text


@settings(max_examples=300, deadline=None)
@given(lat=st.floats(SOUTH, NORTH), lon=st.floats(WEST, EAST))
def test_any_point_inside_the_drawn_grids_is_in_exactly_one(drawn: Api, lat: float, lon: float) -> None:
    found = drawn.runtime.catalogue.grid_at(lat, lon)
    assert found == (GRID if lon <= MIDDLE else OTHER_GRID)


@settings(max_examples=200, deadline=None)
@given(lat=st.floats(-90, 90), lon=st.floats(-180, 180))
def test_points_outside_the_drawn_grids_are_in_none(drawn: Api, lat: float, lon: float) -> None:
    inside = SOUTH - 3e-6 <= lat <= NORTH + 3e-6 and WEST - 3e-6 <= lon <= EAST + 3e-6
    found = drawn.runtime.catalogue.grid_at(lat, lon)
    if not inside:
        assert found is None


def test_an_address_naming_no_grid_and_no_lat_long_is_still_refused_naming_location(drawn: Api) -> None:
    before = drawn.events()
    response = file(drawn, description="x", address_string="青岛市市南区某处")
    assert response.status_code == 400, response.text
    assert "location" in response.text
    assert drawn.events() == before
