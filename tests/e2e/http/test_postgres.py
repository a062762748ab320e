"""The same API over PostgreSQL (store and read models), where writers are not serialised by the gate."""

from __future__ import annotations

import pytest

from adapters.http.idempotency import write_mark
from tests.e2e.http.conftest import serving
from tests.e2e.http.test_lifecycle import file_complaint, post
from tests.support import CATEGORY, GRID


@pytest.mark.postgres
def test_intake_lifecycle_and_idempotency_on_postgres(pg_url: str) -> None:
    with serving(pg_url) as api:
        number = file_complaint(api)
        post(api, "dispatcher", f"/api/v1/cases/{number}/accept", {"level": "community"})
        post(api, "dispatcher", f"/api/v1/cases/{number}/dispatch", {"handler": {"kind": "worker", "id": "W001"}})
        assert post(api, "worker", f"/api/v1/cases/{number}/sign")["state"] == "in_progress"
        with api.client("other_worker") as stranger:
            assert stranger.post(f"/api/v1/cases/{number}/note", json={"note": "x"}).status_code == 403
        with api.client() as public:
            [request] = public.get(f"/open311/v2/requests/{number}.json").json()
        assert (request["status"], request["status_notes"]) == ("open", "in_progress")
        before = api.events()
        form = {"service_code": CATEGORY, "description": "again", "attribute[grid]": GRID}
        with api.client("operator", **{"Idempotency-Key": "pg-1"}) as client:
            first = client.post("/open311/v2/requests.json", data=form).json()
            assert client.post("/open311/v2/requests.json", data=form).json() == first
        assert api.events() == before + 1
        # The key's write mark went into the store with the case, in the same transaction.
        mark = write_mark(api.tokens["operator"].split("_")[1], "pg-1")
        assert api.runtime.idempotency.landed(mark) == before + 1
