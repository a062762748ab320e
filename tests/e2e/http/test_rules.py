"""The rules in the core over HTTP (rules 1 and 3 are in test_roles.py): 409, or 403 for who may act; nothing
written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tests.e2e.http.test_lifecycle import post
from tests.e2e.http.test_roles import dispatched_case, refused
from tests.support import GRID

if TYPE_CHECKING:
    from tests.e2e.http.conftest import Api


def refused_409(api: Api, who: str, path: str, json: dict[str, Any]) -> dict[str, Any]:
    """Send a command the core must refuse with 409, and check nothing was written."""
    before = api.events()
    with api.client(who) as client:
        response = client.post(path, json=json)
    assert response.status_code == 409, response.text
    assert api.events() == before
    error = dict(response.json()["error"])
    assert error["code"] == "refused"
    return error


def test_a_case_is_dispatched_only_to_a_worker_of_its_grid(api: Api) -> None:
    number = dispatched_case(api, {"kind": "department", "id": "D-CG"})
    case = f"/api/v1/cases/{number}"
    post(api, "department", f"{case}/return", {"reason": "不是我们的 not ours"})
    # W002 covered GRID through 2021 only (tests/support.py); now they work OTHER_GRID.
    error = refused_409(api, "dispatcher", f"{case}/dispatch", {"handler": {"kind": "worker", "id": "W002"}})
    assert f"does not work grid {GRID}" in error["message"]
    assert post(api, "dispatcher", f"{case}/dispatch", {"handler": {"kind": "worker", "id": "W001"}})["state"] == (
        "dispatched"
    )


def test_a_patrols_findings_happen_within_the_patrol(api: Api) -> None:
    start = datetime.now(UTC) - timedelta(hours=2)
    with api.client("worker") as client:
        response = client.post("/api/v1/patrols", json={"worker": "W001", "grid": GRID, "at": start.isoformat()})
    assert response.status_code == 201, response.text
    patrols = f"/api/v1/patrols/{response.json()['patrol_number']}"
    before_it = (start - timedelta(hours=1)).isoformat()
    hazard = {"category": "facility.manhole", "description": "井盖松动 loose cover", "at": before_it}
    error = refused_409(api, "worker", f"{patrols}/hazard", hazard)
    assert "PT-" in error["message"] and "hazard" in error["message"]
    refused_409(api, "worker", f"{patrols}/checkpoint", {"kind": "place_inspection", "target": "P-1", "at": before_it})
    post(api, "worker", f"{patrols}/end", {"distance_m": 800, "at": (start + timedelta(hours=1)).isoformat()})
    after_it = (start + timedelta(hours=1, minutes=5)).isoformat()
    refused_409(api, "worker", f"{patrols}/hazard", hazard | {"at": after_it})


def test_the_worker_who_resolved_a_case_does_not_verify_it(api: Api) -> None:
    number = dispatched_case(api, {"kind": "worker", "id": "W001"})
    case = f"/api/v1/cases/{number}"
    post(api, "worker", f"{case}/sign")
    post(api, "worker", f"{case}/resolve", {"result": "已修复 fixed"})
    error = refused(api, "worker", f"{case}/verify")
    assert error["code"] == "forbidden" and "resolved the case" in error["message"]
    refused(api, "worker", f"{case}/reject-resolution", json={"reason": "仍松动 still loose"})
