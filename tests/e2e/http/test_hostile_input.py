"""HTTP under hostile input (issue 13): never a plain-text 500, XML listings that always parse, moments and
periods outside the window refused naming the parameter, Unix integer times refused."""

from __future__ import annotations

import sqlite3
import time
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.e2e.http.conftest import issue_tokens, seed, serve_process
from tests.e2e.http.test_lifecycle import file_complaint, post
from tests.support import CATEGORY, GRID

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.http.conftest import Api


def test_an_unexpected_failure_is_a_json_problem_with_a_request_id(api: Api) -> None:
    """A lone surrogate in a free text broke the store's JSON encoder: a plain-text 500 with a traceback."""
    before = api.events()
    payload = f'{{"channel": "hotline", "category": "{CATEGORY}", "grid": "{GRID}", "description": "bad \\ud800"}}'
    with api.client("operator") as client:
        response = client.post("/api/v1/cases", content=payload, headers={"Content-Type": "application/json"})
    assert response.status_code in {422, 500}, response.text  # 422 once the domain's text bounds refuse it
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    request_id = response.headers["x-request-id"]
    if response.status_code == 500:
        assert error["code"] == "internal"
        assert request_id in error["message"]
    else:
        assert error["fields"][0]["field"] == "description"
    assert api.events() == before


def test_every_response_has_a_request_id(api: Api) -> None:
    with api.client() as public:
        ids = {public.get("/open311/v2/services.json").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


def test_a_control_character_in_a_stored_address_leaves_the_xml_listing_parseable(api: Api) -> None:
    """Old stored data may hold characters XML cannot carry: one of them made requests.xml unparseable."""
    number = file_complaint(api, address_string="人民路 1 号")
    assert api.runtime.wait_fresh()
    database = sqlite3.connect(str(api.runtime.settings.sqlite_path), timeout=30)
    with database:  # as a case stored before input refused control characters would read
        database.execute("UPDATE case_status SET address = ? WHERE case_number = ?", ("人民路\x01 1 号\x1b", number))
    database.close()
    with api.client() as public:
        listing = public.get("/open311/v2/requests.xml", params={"service_request_id": number})
        single = public.get(f"/open311/v2/requests/{number}.xml")
    for response in (listing, single):
        assert response.status_code == 200
        root = ET.fromstring(response.text)  # parses
        assert root.find("request/address").text == "人民路\ufffd 1 号\ufffd"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/intake", {"period": "0001", "by": "channel"}, "period"),
        ("/api/v1/intake", {"period": "9999-12", "by": "channel"}, "period"),
        ("/api/v1/intake", {"period": "2021-13", "by": "channel"}, "period"),
        ("/api/v1/performance", {"period": "9999", "kind": "district"}, "period"),
        ("/api/v1/performance", {"period": "2021-02-30", "kind": "district"}, "period"),
        ("/api/v1/reviews/0001", {}, "period"),
        ("/api/v1/reviews/2021-13", {}, "period"),
        ("/api/v1/reviews/2021", {"as_of_recorded": "9999-12-31T23:59:59-12:00"}, "as_of_recorded"),
        ("/api/v1/reviews/2021", {"as_of_recorded": "0001-01-01T00:00:00+14:00"}, "as_of_recorded"),
        ("/api/v1/reviews/2021", {"as_of_recorded": "1700000000"}, "as_of_recorded"),
        ("/api/v1/reviews/2021", {"as_of_recorded": "2021-06-01T00:00:00"}, "as_of_recorded"),
    ],
)
def test_periods_and_moments_outside_the_window_are_422_naming_the_parameter(
    api: Api, path: str, params: dict[str, str], field: str
) -> None:
    with api.client("admin") as client:
        response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_input"
    assert error["fields"][0]["field"] == field


@pytest.mark.parametrize("resolve_by", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"])
def test_a_deadline_near_year_1_or_9999_is_422_naming_the_field(api: Api, resolve_by: str) -> None:
    number = file_complaint(api)
    post(api, "dispatcher", f"/api/v1/cases/{number}/accept", {"level": "community"})
    before = api.events()
    with api.client("dispatcher") as client:
        response = client.post(f"/api/v1/cases/{number}/extend", json={"resolve_by": resolve_by, "reason": "x"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["fields"][0]["field"] == "resolve_by"
    assert api.events() == before


@pytest.mark.parametrize("start_date", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "1700000000"])
def test_open311_times_outside_the_window_or_in_unix_seconds_are_400_naming_the_parameter(
    api: Api, start_date: str
) -> None:
    with api.client() as public:
        response = public.get("/open311/v2/requests.json", params={"start_date": start_date})
    assert response.status_code == 400, response.text
    assert "start_date" in response.json()[0]["description"]


def test_gridcase_serve_logs_an_unexpected_failure_in_one_line_without_local_variables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gridcase.db'}"
    seed(url)
    token = issue_tokens(url, ("operator",))["operator"]
    secret = "secret-in-a-local-variable"
    payload = f'{{"channel": "hotline", "category": "{CATEGORY}", "grid": "{GRID}", "description": "{secret} \\ud800"}}'
    with serve_process(url) as served:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        response = httpx.post(f"{served.url}/api/v1/cases", content=payload, headers=headers, timeout=30)
        time.sleep(0.2)
        log = served.log()
    assert response.headers["content-type"].startswith("application/json")
    if response.status_code == 500:  # the domain's text bounds may refuse it first (422)
        request_id = response.headers["x-request-id"]
        lines = [line for line in log.splitlines() if request_id in line]
        assert len(lines) == 1, log
        assert "request failed" in lines[0]
        assert "Traceback" not in log
        assert "locals" not in log
        assert secret not in log  # the request's text, which the handler's local variables held
    else:
        assert response.status_code == 422, response.text
