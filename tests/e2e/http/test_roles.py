"""Every role boundary is refused with 403 and writes nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.http.test_lifecycle import file_complaint, post
from tests.support import CATEGORY, OTHER_GRID

if TYPE_CHECKING:
    from tests.e2e.http.conftest import Api


def refused(api: Api, who: str | None, path: str, *, json: Any = None, data: Any = None,
            method: str = "POST") -> dict[str, Any]:  # fmt: skip
    """Send a request that must be refused with 403, and check nothing was written."""
    before = api.events()
    with api.client(who) as client:
        response = client.request(method, path, json=json, data=data)
    assert response.status_code == 403, response.text
    assert api.events() == before
    return dict(response.json()["error"]) if path.startswith("/api/") else {"open311": response.json()}


def dispatched_case(api: Api, handler: dict[str, str]) -> str:
    number = file_complaint(api)
    post(api, "dispatcher", f"/api/v1/cases/{number}/accept", {"level": "community"})
    post(api, "dispatcher", f"/api/v1/cases/{number}/dispatch", {"handler": handler})
    return number


def test_a_grid_worker_acts_only_on_cases_in_their_own_grids(api: Api) -> None:
    number = dispatched_case(api, {"kind": "worker", "id": "W001"})
    # W002 works OTHER_GRID; the case is in GRID.
    error = refused(api, "other_worker", f"/api/v1/cases/{number}/note", json={"note": "not my grid"})
    assert error["code"] == "forbidden"
    assert "does not work grid" in error["message"]
    refused(api, "other_worker", f"/api/v1/cases/{number}/sign")
    # The worker of the grid may.
    assert post(api, "worker", f"/api/v1/cases/{number}/sign")["state"] == "in_progress"


def test_a_grid_worker_files_only_in_their_own_grids(api: Api) -> None:
    error = refused(api, "worker", "/open311/v2/requests.json",
                    data={"service_code": CATEGORY, "description": "x", "attribute[grid]": OTHER_GRID})  # fmt: skip
    assert "does not work grid" in error["open311"][0]["description"]
    refused(api, "worker", "/api/v1/cases", json={"channel": "patrol", "category": CATEGORY, "grid": OTHER_GRID,
                                                   "description": "x"})  # fmt: skip
    refused(api, "worker", "/api/v1/patrols", json={"worker": "W001", "grid": OTHER_GRID})


def test_a_department_handler_acts_only_on_cases_dispatched_to_their_department(api: Api) -> None:
    number = dispatched_case(api, {"kind": "department", "id": "D-CG"})
    error = refused(api, "other_department", f"/api/v1/cases/{number}/sign")
    assert "not dispatched to department D-JT" in error["message"]
    refused(api, "other_department", f"/api/v1/cases/{number}/note", json={"note": "ours?"})
    to_worker = dispatched_case(api, {"kind": "worker", "id": "W001"})
    refused(api, "department", f"/api/v1/cases/{to_worker}/note", json={"note": "ours?"})
    assert post(api, "department", f"/api/v1/cases/{number}/sign")["state"] == "in_progress"


def test_only_auditors_and_admins_read_personal_data(api: Api) -> None:
    number = file_complaint(api)
    for who in ("operator", "dispatcher", "worker", "department", "callback"):
        error = refused(api, who, f"/api/v1/cases/{number}/history?personal_data=true&reason=check", method="GET")
        assert "personal data" in error["message"]
    with api.client("admin") as admin:
        assert admin.get(f"/api/v1/cases/{number}/history?personal_data=true&reason=check").status_code == 200


@pytest.mark.parametrize(
    ("who", "action", "payload"),
    [
        ("auditor", "note", {"note": "auditors only read"}),
        ("operator", "accept", {"level": "community"}),
        ("worker", "accept", {"level": "community"}),
        ("department", "reject", {"reason": "no"}),
        ("callback", "accept", {"level": "community"}),
    ],
)
def test_roles_may_only_send_their_commands(api: Api, who: str, action: str, payload: dict[str, str]) -> None:
    number = file_complaint(api)
    error = refused(api, who, f"/api/v1/cases/{number}/{action}", json=payload)
    assert error["message"].startswith("role ")


def test_only_admins_change_the_registry(api: Api) -> None:
    refused(api, "dispatcher", "/api/v1/registry/worker", json={"code": "W999", "name": "新人", "kind": "part_time"})


def test_without_a_valid_token_nothing_is_written(api: Api) -> None:
    before = api.events()
    with api.client() as anonymous:
        assert anonymous.post("/api/v1/cases", json={}).status_code == 401
        assert anonymous.get("/api/v1/queue").status_code == 401
        filed = anonymous.post("/open311/v2/requests.json", data={"service_code": CATEGORY, "description": "x"})
    with api.client(Authorization="Bearer gc_nope_nope") as forged:
        assert forged.get("/api/v1/whoami").status_code == 401
    assert filed.status_code == 403
    assert filed.json()[0]["code"] == 403
    assert api.events() == before


def test_a_revoked_token_is_refused(api: Api) -> None:
    issued = api.runtime.tokens.create("op-9", api.runtime.tokens.verify(api.tokens["operator"]).role)  # type: ignore[union-attr]
    with api.client(Authorization=f"Bearer {issued.token}") as client:
        assert client.get("/api/v1/whoami").json()["actor"]["id"] == "op-9"
        assert api.runtime.tokens.revoke(issued.token_id)
        assert client.get("/api/v1/whoami").status_code == 401


def test_only_admins_read_dead_letters(api: Api) -> None:
    refused(api, "dispatcher", "/api/v1/deadletters", method="GET")
    with api.client("admin") as admin:
        assert admin.get("/api/v1/deadletters").json() == []
