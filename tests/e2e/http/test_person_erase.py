"""``POST /api/v1/persons/erase`` over real HTTP: admins only; afterwards the history shows the contact erased."""

from __future__ import annotations

from typing import TYPE_CHECKING

from domain.personal import ERASED

if TYPE_CHECKING:
    from tests.e2e.http.conftest import Api

PHONE = "13611112222"
CONTACT = {"name": "孙七", "phone": PHONE}


def report(api: Api) -> str:
    """A complaint with a reporter contact, filed by the operator."""
    with api.client("operator") as client:
        response = client.post("/api/v1/cases", json={"channel": "hotline", "category": "facility.manhole",
                                                      "grid": "SN01-C01-G001", "description": "井盖缺失",
                                                      "reporter": CONTACT})  # fmt: skip
    assert response.status_code in {200, 201}, response.text
    return str(response.json()["case_number"])


def test_only_an_admin_erases_and_then_every_history_says_erased(api: Api) -> None:
    number = report(api)
    with api.client("admin") as admin:
        assert admin.get(f"/api/v1/cases/{number}/history?personal_data=true&reason=check").json()["events"][0]["data"][
            "reporter"
        ] == {"name": "孙七", "phone": PHONE, "id_number": None}
    body = {"phone": PHONE, "reason": "公民要求删除 citizen asked"}
    for who in ("operator", "dispatcher", "auditor"):
        with api.client(who) as client:
            before = api.events()
            assert client.post("/api/v1/persons/erase", json=body).status_code == 403
            assert api.events() == before
    with api.client("admin") as admin:
        assert admin.post("/api/v1/persons/erase", json={"reason": "no handle"}).status_code == 422
        erased = admin.post("/api/v1/persons/erase", json=body)
        assert erased.status_code == 200, erased.text
        assert erased.json()["erased"] == 1 and number in erased.json()["case_numbers"]
        assert admin.post("/api/v1/persons/erase", json=body).json()["erased"] == 0  # nothing left
        for clear in ("true", "false"):
            history = admin.get(f"/api/v1/cases/{number}/history?personal_data={clear}&reason=check").json()
            assert history["events"][0]["data"]["reporter"] == ERASED
