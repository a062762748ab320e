"""Clear views over HTTP: ``history?personal_data=true`` records first; ``GET /api/v1/persons/access-log``."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.http.conftest import serving
from tests.e2e.http.test_lifecycle import REPORTER_PHONE, file_complaint

if TYPE_CHECKING:
    from tests.e2e.http.conftest import Api

LOG = "/api/v1/persons/access-log"


def history(api: Api, who: str, number: str, **params: Any) -> Any:
    """The history route as ``who`` asks for it."""
    with api.client(who) as client:
        return client.get(f"/api/v1/cases/{number}/history", params=params)


def views_of(api: Api, number: str) -> list[dict[str, str]]:
    """The access log's entries of one case, as an admin reads them."""
    with api.client("admin") as admin:
        response = admin.get(LOG, params={"case_number": number})
    assert response.status_code == 200, response.text
    return list(response.json()["entries"])


def test_a_clear_view_is_recorded_with_who_which_case_and_why(api: Api) -> None:
    number = file_complaint(api)
    response = history(api, "auditor", number, personal_data="true", reason="投诉回访 complaint follow-up")
    assert response.status_code == 200, response.text
    assert REPORTER_PHONE in response.text
    [entry] = views_of(api, number)
    assert {k: entry[k] for k in ("actor_id", "role", "case_number", "reason", "via")} == {
        "actor_id": "aud-1", "role": "auditor", "case_number": number, "reason": "投诉回访 complaint follow-up",
        "via": "http"}  # fmt: skip
    assert re.search(r"\+08:00$", entry["recorded_at"])
    with api.client("auditor") as auditor:
        since = datetime.fromisoformat(entry["recorded_at"])
        later = auditor.get(LOG, params={"since": since.replace(year=2099).isoformat()}).json()["entries"]
    assert later == []


def test_masked_views_record_nothing(api: Api) -> None:
    number = file_complaint(api)
    for who in ("auditor", "dispatcher"):
        response = history(api, who, number, reason="just looking")
        assert response.status_code == 200
        assert REPORTER_PHONE not in response.text
    assert views_of(api, number) == []


@pytest.mark.parametrize("reason", [None, "", "   ", "x" * 2001, "bell\x07"])
def test_a_clear_view_without_a_reason_is_422_naming_reason_and_shows_nothing(api: Api, reason: str | None) -> None:
    number = file_complaint(api)
    params: dict[str, Any] = {"personal_data": "true"} | ({} if reason is None else {"reason": reason})
    response = history(api, "admin", number, **params)
    assert response.status_code == 422, response.text
    assert "reason" in response.json()["error"]["message"]
    assert REPORTER_PHONE not in response.text
    assert views_of(api, number) == []


@pytest.mark.parametrize("who", ["operator", "dispatcher", "worker", "department", "callback"])
def test_a_role_without_the_right_is_403_and_nothing_is_recorded(api: Api, who: str) -> None:
    number = file_complaint(api)
    response = history(api, who, number, personal_data="true", reason="curious")
    assert response.status_code == 403, response.text
    assert "personal data" in response.json()["error"]["message"]
    assert REPORTER_PHONE not in response.text
    with api.client(who) as client:
        assert client.get(LOG).status_code == 403
    assert views_of(api, number) == []


def test_the_access_log_needs_a_token(api: Api) -> None:
    with api.client() as public:
        assert public.get(LOG).status_code == 401


@pytest.mark.postgres
def test_clear_views_are_recorded_on_postgres(pg_url: str) -> None:
    with serving(pg_url) as api:
        number = file_complaint(api)
        assert history(api, "admin", number, personal_data="true", reason="pg check").status_code == 200
        assert history(api, "auditor", number, personal_data="true").status_code == 422
        assert [(e["actor_id"], e["reason"]) for e in views_of(api, number)] == [("admin", "pg check")]
