"""Failures as HTTP: domain refusals 409 with the domain's words, bad input 422 naming the field,
concurrent changes 409 with their own code, unknown cases 404; Open311 errors as the spec's list."""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any

from domain.case import case_id
from tests.e2e.http.test_lifecycle import file_complaint, post
from tests.support import CATEGORY

if TYPE_CHECKING:
    from tests.e2e.http.conftest import Api


def test_a_domain_refusal_is_409_with_the_domains_message(api: Api) -> None:
    number = file_complaint(api)
    before = api.events()
    with api.client("dispatcher") as client:
        response = client.post(f"/api/v1/cases/{number}/close")
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "refused",
        "message": f"CommandNotAllowedInState: case {number} is reported; command close refused: "
        "the case must be verified",
    }
    assert api.events() == before


def test_bad_input_is_422_naming_the_field(api: Api) -> None:
    number = file_complaint(api)
    before = api.events()
    with api.client("dispatcher") as client:
        level = client.post(f"/api/v1/cases/{number}/accept", json={"level": "galaxy"})
        extra = client.post(f"/api/v1/cases/{number}/accept", json={"actor": {"id": "x", "role": "admin"}})
        late = client.post(f"/api/v1/cases/{number}/accept", json={"at": "2999-01-01T00:00:00+08:00"})
    with api.client("operator") as client:
        where = client.post("/api/v1/cases", json={"channel": "hotline", "category": CATEGORY, "grid": "SN01-C01-G001",
                                                   "description": "x", "location": {"lat": 123}})  # fmt: skip
    assert level.status_code == 422
    assert level.json()["error"]["fields"][0]["field"] == "level"
    assert extra.status_code == 422
    assert extra.json()["error"]["fields"][0]["field"] == "actor"  # the actor is the token's, never the body's
    assert late.status_code == 422
    assert late.json()["error"]["fields"][0]["field"] == "at"
    assert where.status_code == 422
    assert where.json()["error"]["fields"][0]["field"] == "location.lat"
    assert api.events() == before


def test_an_unknown_case_is_404(api: Api) -> None:
    with api.client("dispatcher") as client:
        for response in (
            client.post("/api/v1/cases/SN-20990101-000001/accept", json={}),
            client.get("/api/v1/cases/SN-20990101-000001"),
            client.get("/api/v1/cases/SN-20990101-000001/history"),
        ):
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"] == "not_found"
    with api.client() as public:
        assert public.get("/api/v1/track/SN-20990101-000001").status_code == 404
        missing = public.get("/open311/v2/requests/SN-20990101-000001.json")
        assert missing.status_code == 404
        assert missing.json()[0]["code"] == 404


def test_open311_bad_input_is_the_specs_error_list(api: Api) -> None:
    with api.client("operator") as client:
        no_code = client.post("/open311/v2/requests.json", data={"description": "x", "attribute[grid]": "G"})
        nowhere = client.post("/open311/v2/requests.json", data={"service_code": CATEGORY, "description": "x"})
        beijing = {"service_code": CATEGORY, "description": "x", "lat": "39.9", "long": "116.4"}
        outside = client.post("/open311/v2/requests.json", data=beijing)
        xml = client.post("/open311/v2/requests.xml", data={"service_code": CATEGORY, "description": "x"})
        when = client.get("/open311/v2/requests.json", params={"start_date": "yesterday"})
    assert no_code.status_code == 400
    assert no_code.json()[0]["code"] == 400
    assert "service_code" in no_code.json()[0]["description"]
    assert "location" in nowhere.json()[0]["description"]
    assert "outside the district" in outside.json()[0]["description"]
    assert xml.status_code == 400
    assert xml.text.startswith('<?xml version="1.0" encoding="utf-8"?><errors><error><code>400</code>')
    assert when.status_code == 400
    assert "start_date" in when.json()[0]["description"]


def test_a_concurrent_change_is_409_with_its_own_code(api: Api) -> None:
    """Another writer stores the case's next event between the API loading the case and saving its change."""
    number = file_complaint(api)
    post(api, "dispatcher", f"/api/v1/cases/{number}/accept", {"level": "community"})
    database = str(api.runtime.settings.sqlite_path)
    assert api.runtime.wait_fresh()  # the projections are idle, so the request goes straight to the case
    other = sqlite3.connect(database, isolation_level=None, timeout=30)
    other.execute("BEGIN IMMEDIATE")  # the other writer holds the write lock
    answer: dict[str, Any] = {}

    def note() -> None:
        with api.client("dispatcher") as client:
            response = client.post(f"/api/v1/cases/{number}/note", json={"note": "calling the reporter"})
        answer["status"], answer["body"] = response.status_code, response.json()

    sender = threading.Thread(target=note)
    sender.start()
    time.sleep(1.5)  # by now the API has loaded the case and waits for the write lock
    aggregate = str(case_id(number)).replace("-", "")
    other.execute(
        "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
        "SELECT originator_id, originator_version + 1, topic, state FROM stored_events "
        "WHERE replace(originator_id, '-', '') = ? ORDER BY originator_version DESC LIMIT 1",
        (aggregate,),
    )
    other.execute("COMMIT")
    other.close()
    sender.join(timeout=60)
    assert answer["status"] == 409, answer
    assert answer["body"]["error"]["code"] == "conflict"
    assert "try again" in answer["body"]["error"]["message"]
