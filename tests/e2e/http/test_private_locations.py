"""Location by category (issue 18 item 5): a family dispute shows only its grid in public, a manhole its place.

Over real HTTP: an admin defines a private category (family disputes) through the API, an operator files one
case of it and one of a public category through Open311 with an address and a position; the public Open311
reads (JSON, XML, the listing) give the private one's grid and nothing finer, the public one's address and
position; staff still see both. Marking the public category private later hides its cases' places too, and
nothing is rewritten.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.support import CATEGORY, GRID

if TYPE_CHECKING:
    from tests.e2e.http.conftest import Api

PRIVATE = "dispute.family"
ADDRESS = "东海西路 12号 3单元 502"


def _define_private(api: Api) -> None:
    body = {"code": PRIVATE, "group": "dispute", "group_name": "矛盾纠纷", "group_name_en": "Disputes",
            "name": "家庭纠纷", "name_en": "Family dispute", "default_unit": "grid", "sla_class": "C",
            "location_public": False}  # fmt: skip
    with api.client("admin") as admin:
        response = admin.post("/api/v1/registry/category", json=body)
    assert response.status_code in (200, 201), response.text


def _file(api: Api, category: str) -> str:
    api.runtime.catalogue.refresh()
    centre = api.runtime.catalogue.centre_of(GRID)
    assert centre is not None
    form = {"service_code": category, "description": "楼上漏水", "address_string": ADDRESS,
            "lat": str(centre[0]), "long": str(centre[1])}  # fmt: skip
    with api.client("operator") as client:
        response = client.post("/open311/v2/requests.json", data=form)
    assert response.status_code == 201, response.text
    return str(response.json()[0]["service_request_id"])


def _public(api: Api, number: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    api.runtime.wait_fresh()
    api.runtime.catalogue.refresh()
    with api.client() as public:
        [one] = public.get(f"/open311/v2/requests/{number}.json").json()
        listed = public.get("/open311/v2/requests.json", params={"service_request_id": number}).json()
        xml = public.get(f"/open311/v2/requests/{number}.xml").text
    [row] = listed
    return one, row, xml


def test_a_private_category_shows_only_its_grid_in_public_and_a_public_one_its_place(api: Api) -> None:
    _define_private(api)
    dispute, manhole = _file(api, PRIVATE), _file(api, CATEGORY)

    for view in _public(api, dispute)[:2]:
        assert (view["address"], view["lat"], view["long"]) == (None, None, None)
        assert view["address_id"] == GRID and view["extended_attributes"]["grid"] == GRID
    assert "东海西路" not in _public(api, dispute)[2]
    one, row, xml = _public(api, manhole)
    assert one["address"] == row["address"] == ADDRESS and "东海西路" in xml
    assert one["lat"] is not None and one["long"] is not None

    with api.client("dispatcher") as staff:
        status = staff.get(f"/api/v1/cases/{dispute}").json()
    assert status["address"] == ADDRESS and status["lat"] is not None  # staff know where to go


def test_marking_a_category_private_hides_the_place_of_its_cases_already_filed(api: Api) -> None:
    manhole = _file(api, CATEGORY)
    assert _public(api, manhole)[0]["address"] == ADDRESS
    before = api.events()
    with api.client("admin") as admin:
        hidden = admin.post("/api/v1/registry/category-location", json={"code": CATEGORY, "location_public": False})
        again = admin.post("/api/v1/registry/category-location", json={"code": CATEGORY, "location_public": False})
        with api.client("dispatcher") as dispatcher:
            refused = dispatcher.post("/api/v1/registry/category-location",
                                      json={"code": CATEGORY, "location_public": True})  # fmt: skip
        unknown = admin.post("/api/v1/registry/category-location", json={"code": "no.such", "location_public": True})
    assert hidden.status_code == again.status_code == 200, hidden.text
    assert api.events() == before + 1, "one change recorded; the same flag again records nothing"
    assert refused.status_code == 403 and unknown.status_code == 409 and "no.such" in unknown.text  # as any unknown ref
    try:
        one, row, _ = _public(api, manhole)
        assert (one["address"], one["lat"], one["long"]) == (None, None, None) == (row["address"], row["lat"],
                                                                                   row["long"])  # fmt: skip
    finally:
        with api.client("admin") as admin:  # the module's other tests file manholes in public
            admin.post("/api/v1/registry/category-location", json={"code": CATEGORY, "location_public": True})
    assert _public(api, manhole)[0]["address"] == ADDRESS
