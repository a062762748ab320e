"""The public track view wants the check code beside the case number (issue 18 item 6), over real HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.e2e.http.test_lifecycle import file_complaint
from tests.support import CATEGORY, GRID

if TYPE_CHECKING:
    from tests.e2e.http.conftest import Api


def test_open311_post_gives_the_code_and_only_it_opens_the_track_view(api: Api) -> None:
    api.runtime.catalogue.refresh()
    centre = api.runtime.catalogue.centre_of(GRID)
    assert centre is not None
    form = {"service_code": CATEGORY, "description": "井盖缺失", "lat": str(centre[0]), "long": str(centre[1])}
    with api.client("operator") as client:
        response = client.post("/open311/v2/requests.json", data=form)
    assert response.status_code == 201, response.text
    [answer] = response.json()
    number, code = str(answer["service_request_id"]), str(answer["token"])
    assert code == api.runtime.service.check_code(number)
    api.runtime.wait_fresh()
    with api.client() as public:
        right = public.get(f"/api/v1/track/{number}", params={"code": code})
        typed = public.get(f"/api/v1/track/{number}", params={"code": f" {code.lower()} "})
        wrong = public.get(f"/api/v1/track/{number}", params={"code": "ZZZZZZ" if code != "ZZZZZZ" else "YYYYYY"})
        missing = public.get(f"/api/v1/track/{number}")
        unknown = public.get("/api/v1/track/SN-20990101-000001", params={"code": code})
    assert right.status_code == 200, right.text
    assert right.json()["case_number"] == number
    assert typed.status_code == 200
    for refused in (wrong, missing):
        assert refused.status_code == unknown.status_code == 404
        as_unknown = refused.text.replace(number, "SN-20990101-000001")
        assert as_unknown == unknown.text  # the same answer, byte for byte, but the number asked


def test_a_sweep_of_sequential_numbers_without_codes_finds_nothing(api: Api) -> None:
    number = file_complaint(api)
    api.runtime.wait_fresh()
    prefix, sequence = number.rsplit("-", 1)
    with api.client() as public:
        statuses = {public.get(f"/api/v1/track/{prefix}-{n:06d}").status_code for n in range(1, 201)} | {
            public.get(f"/api/v1/track/{prefix}-{n:06d}", params={"code": "AAAAAA"}).status_code for n in range(1, 201)
        }
    assert int(sequence) <= 200
    assert statuses == {404}
