"""End to end over real HTTP: a complaint filed through Open311 lives its whole life by native calls of each role."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from typing import TYPE_CHECKING

from tests.support import CATEGORY, GRID

if TYPE_CHECKING:
    from tests.e2e.http.conftest import Api

REPORTER_NAME, REPORTER_PHONE = "王女士", "13912345678"


def file_complaint(api: Api, who: str = "operator", **extra: str) -> str:
    """File a manhole complaint through Open311 at the centre of GRID's cell; the case number."""
    api.runtime.catalogue.refresh()
    centre = api.runtime.catalogue.centre_of(GRID)
    assert centre is not None
    form = {"service_code": CATEGORY, "description": "井盖缺失 manhole cover missing", "lat": str(centre[0]),
            "long": str(centre[1]), "first_name": "王", "last_name": "女士", "phone": REPORTER_PHONE,
            **extra}  # fmt: skip
    with api.client(who) as client:
        response = client.post("/open311/v2/requests.json", data=form)
    assert response.status_code == 201, response.text
    [answer] = response.json()
    return str(answer["service_request_id"])


def post(api: Api, who: str, path: str, json: dict[str, object] | None = None) -> dict[str, object]:
    with api.client(who) as client:
        response = client.post(path, json=json)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_complaint_filed_through_open311_is_worked_to_closure_by_every_role(api: Api) -> None:
    number = file_complaint(api)
    case = f"/api/v1/cases/{number}"
    assert post(api, "dispatcher", f"{case}/accept", {"level": "community"})["state"] == "accepted"
    dispatched = post(api, "dispatcher", f"{case}/dispatch", {"handler": {"kind": "department", "id": "D-CG"}})
    assert dispatched["state"] == "dispatched"
    assert post(api, "department", f"{case}/sign")["state"] == "in_progress"
    post(api, "department", f"{case}/note", {"note": "crew on the way"})
    assert (
        post(api, "department", f"{case}/resolve", {"result": "new cover fitted", "evidence": ["photo:1.jpg"]})["state"]
        == "resolved"
    )
    assert post(api, "worker", f"{case}/verify")["state"] == "verified"
    assert post(api, "dispatcher", f"{case}/close")["state"] == "closed"
    post(api, "callback", f"{case}/feedback", {"satisfaction": "satisfied", "resolved": True})

    with api.client("admin") as client:
        native = client.get(case).json()
        history = client.get(f"{case}/history").json()
    with api.client() as public:
        [open311] = public.get(f"/open311/v2/requests/{number}.json").json()
        xml = ET.fromstring(public.get(f"/open311/v2/requests/{number}.xml").text)
        updates = public.get("/open311/v2/servicerequestupdates.json", params={"service_request_id": number}).json()
        listed = public.get("/open311/v2/requests.json", params={"status": "closed", "service_code": CATEGORY}).json()

    # The two views agree.
    assert native["state"] == "closed"
    assert open311["status"] == "closed"
    assert open311["status_notes"] == native["state"]
    assert open311["service_code"] == native["category"] == CATEGORY
    assert open311["address_id"] == native["grid"] == GRID
    assert open311["extended_attributes"]["state"] == native["state"]
    assert open311["agency_responsible"].startswith("区城市管理局")
    assert open311["requested_datetime"].endswith("+08:00")
    assert xml.find("request/status").text == "closed"  # type: ignore[union-attr]
    assert xml.find("request/service_request_id").text == number  # type: ignore[union-attr]
    assert number in [r["service_request_id"] for r in listed]
    # One update per public state change; the note and the callback are not state changes.
    assert [u["status_notes"] for u in updates] == [
        "reported", "accepted", "dispatched", "in_progress", "resolved", "verified", "closed",
    ]  # fmt: skip
    assert [u["status"] for u in updates][-1] == "closed"
    assert len({u["update_id"] for u in updates}) == len(updates)
    # Every role's hand is in the audit history, with the role it acted in.
    roles = [event["actor"]["role"] for event in history["events"]]
    assert roles == ["intake_operator", "dispatcher", "dispatcher", "department_handler", "department_handler",
                     "department_handler", "grid_worker", "dispatcher", "callback_operator"]  # fmt: skip


def test_public_views_show_no_personal_data(api: Api) -> None:
    number = file_complaint(api)
    with api.client() as public:
        texts = [
            public.get(f"/api/v1/track/{number}", params={"code": api.runtime.service.check_code(number)}).text,
            public.get(f"/open311/v2/requests/{number}.json").text,
            public.get(f"/open311/v2/requests/{number}.xml").text,
            public.get("/open311/v2/servicerequestupdates.json", params={"service_request_id": number}).text,
        ]
    assert all(number in text for text in texts)
    assert not any(REPORTER_PHONE in text or "女士" in text for text in texts)


def test_auditors_read_personal_data_others_see_it_masked(api: Api) -> None:
    number = file_complaint(api)
    with api.client("auditor") as auditor, api.client("dispatcher") as dispatcher:
        asked = {"personal_data": True, "reason": "审核 review"}
        clear = auditor.get(f"/api/v1/cases/{number}/history", params=asked).json()
        masked = dispatcher.get(f"/api/v1/cases/{number}/history").json()
    assert clear["events"][0]["data"]["reporter"] == {"name": "王 女士", "phone": REPORTER_PHONE, "id_number": None}
    assert masked["events"][0]["data"]["reporter"]["phone"] == "139****5678"


def test_open311_catalogue_json_and_xml(api: Api) -> None:
    with api.client() as public:
        services = public.get("/open311/v2/services.json").json()
        xml = ET.fromstring(public.get("/open311/v2/services.xml").text)
        definition = public.get(f"/open311/v2/services/{CATEGORY}.json").json()
        missing = public.get("/open311/v2/services/no.such.json")
    assert [s["service_code"] for s in services] == ["dispute.neighbour", "facility.manhole"]
    assert [e.text for e in xml.iter("service_code")] == ["dispute.neighbour", "facility.manhole"]
    assert [a["code"] for a in definition["attributes"]] == ["grid", "urgency"]
    assert missing.status_code == 404
    assert missing.json() == [{"code": 404, "description": "service_code 'no.such' is not in the catalogue"}]


def test_the_read_model_queries_answer_over_http(api: Api) -> None:
    number = file_complaint(api)
    twin = file_complaint(api)  # the same matter, same place, minutes later
    post(api, "dispatcher", f"/api/v1/cases/{number}/accept", {"level": "community"})
    post(api, "dispatcher", f"/api/v1/cases/{number}/dispatch", {"handler": {"kind": "department", "id": "D-CG"}})
    post(api, "department", f"/api/v1/cases/{number}/sign")
    today = datetime.now(api.runtime.settings.tz).date().isoformat()
    with api.client("dispatcher") as client:
        queue = client.get("/api/v1/queue", params={"unit": "D-CG", "state": "in_progress"}).json()
        department = client.get("/api/v1/performance",
                                params={"kind": "department", "subject": "D-CG", "period": today}).json()  # fmt: skip
        intake = client.get("/api/v1/intake", params={"by": "channel", "period": today}).json()
        duplicates = client.get(f"/api/v1/cases/{number}/duplicates").json()
        overdue = client.get("/api/v1/overdue").json()
        bad_period = client.get("/api/v1/intake", params={"by": "channel", "period": "2021-13"})
    assert number in [row["case_number"] for row in queue]
    assert department[0]["handled"] >= 1
    assert next(row for row in intake if row["channel"] == "app")["received"] >= 1
    assert twin in [row["case_number"] for row in duplicates]
    assert number not in [row["case_number"] for row in duplicates]
    assert number not in [row["case_number"] for row in overdue]
    assert bad_period.status_code == 422
    assert bad_period.json()["error"]["fields"][0]["field"] == "period"


def test_open311_pages_and_filters(api: Api) -> None:
    numbers = [file_complaint(api) for _ in range(3)]
    with api.client() as public:
        first = public.get("/open311/v2/requests.json", params={"page_size": 2}).json()
        second = public.get("/open311/v2/requests.json", params={"page_size": 2, "page": 2}).json()
        chosen = public.get("/open311/v2/requests.json",
                            params={"service_request_id": ",".join(numbers[:2]), "status": "open"}).json()  # fmt: skip
        later = public.get("/open311/v2/requests.json", params={"start_date": "2099-01-01T00:00:00+08:00"}).json()
        updates = public.get("/open311/v2/servicerequestupdates.json",
                             params={"service_request_id": numbers[0], "page_size": 1, "page": 2}).json()  # fmt: skip
    assert [r["service_request_id"] for r in first] == [numbers[2], numbers[1]]  # newest first
    assert len(second) == 2
    assert not {r["service_request_id"] for r in first} & {r["service_request_id"] for r in second}
    assert sorted(r["service_request_id"] for r in chosen) == sorted(numbers[:2])
    assert later == []
    assert updates == []  # one update (the report) so far: page 2 of size 1 is empty
