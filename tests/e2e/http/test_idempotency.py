"""A retried POST with the same Idempotency-Key files once."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from tests.e2e.http.test_lifecycle import file_complaint
from tests.support import CATEGORY, GRID

if TYPE_CHECKING:
    from tests.e2e.http.conftest import Api

FORM = {"service_code": CATEGORY, "description": "路灯不亮 street light out", "attribute[grid]": GRID}


def test_a_retried_open311_post_files_once(api: Api) -> None:
    before = api.events()
    with api.client("operator", **{"Idempotency-Key": "hotline-call-0001"}) as client:
        first = client.post("/open311/v2/requests.json", data=FORM)
        again = client.post("/open311/v2/requests.json", data=FORM)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert api.events() == before + 1


def test_concurrent_retries_file_once(api: Api) -> None:
    before = api.events()
    answers: list[int] = []
    numbers: set[str] = set()

    def send() -> None:
        with api.client("operator", **{"Idempotency-Key": "app-retry-storm"}) as client:
            response = client.post("/open311/v2/requests.json", data=FORM)
        answers.append(response.status_code)
        if response.status_code == 201:
            numbers.add(response.json()[0]["service_request_id"])

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Each either got the first answer or was told the first is still in flight; one case was filed.
    assert set(answers) <= {201, 409}
    assert len(numbers) == 1
    assert api.events() == before + 1


def test_a_retried_native_post_files_once(api: Api) -> None:
    number = file_complaint(api)
    before = api.events()
    with api.client("dispatcher", **{"Idempotency-Key": "accept-1"}) as client:
        first = client.post(f"/api/v1/cases/{number}/accept", json={"level": "street"})
        again = client.post(f"/api/v1/cases/{number}/accept", json={"level": "street"})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() == {"case_number": number, "state": "accepted"}
    assert api.events() == before + 1


def test_the_same_key_with_a_different_request_is_refused(api: Api) -> None:
    with api.client("operator", **{"Idempotency-Key": "reused-key"}) as client:
        assert client.post("/open311/v2/requests.json", data=FORM).status_code == 201
        before = api.events()
        other = client.post("/open311/v2/requests.json", data={**FORM, "description": "another matter"})
        native = client.post("/api/v1/cases", json={"channel": "hotline", "category": CATEGORY, "grid": GRID,
                                                    "description": "another matter"})  # fmt: skip
    assert other.status_code == 400  # Open311 speaks 400 for bad requests
    assert "used for a different request" in other.json()[0]["description"]
    assert native.status_code == 422
    assert native.json()["error"]["code"] == "idempotency_key_reused"
    assert api.events() == before


def test_keys_are_per_token_and_a_refused_request_keeps_no_answer(api: Api) -> None:
    number = file_complaint(api)
    with api.client("dispatcher", **{"Idempotency-Key": "k-1"}) as client:
        # Refused (the case is not accepted yet): nothing written, the key is free again.
        assert client.post(f"/api/v1/cases/{number}/close").status_code == 409
    with api.client("dispatcher", **{"Idempotency-Key": "k-1"}) as client:
        assert client.post(f"/api/v1/cases/{number}/close").status_code == 409
    with api.client("operator", **{"Idempotency-Key": "k-1"}) as client:
        # Another caller's k-1 is another key.
        assert client.post("/open311/v2/requests.json", data=FORM).status_code == 201


def test_a_claim_of_a_server_elsewhere_holds_until_its_lease_ends(api: Api) -> None:
    """A claim whose owner cannot be seen (another machine) is not taken while its lease runs; then it is."""
    from adapters.http.idempotency import IdempotencyStore, request_hash  # noqa: PLC0415

    case = {"channel": "hotline", "category": CATEGORY, "grid": GRID, "description": "elsewhere"}
    elsewhere = IdempotencyStore(api.runtime.engine, api.runtime.gate, lease_seconds=1.5)
    elsewhere.host, elsewhere.owner = "another-machine", "another-machine/4242/0123456789ab"
    token_id = api.tokens["operator"].split("_")[1]
    fingerprint = request_hash("POST", "/api/v1/cases", {**case, "command": "case.report"})
    assert elsewhere.claim(token_id, "from-elsewhere", fingerprint) is None
    before = api.events()
    with api.client("operator", **{"Idempotency-Key": "from-elsewhere"}) as client:
        held = client.post("/api/v1/cases", json=case)
        time.sleep(1.6)
        taken = client.post("/api/v1/cases", json=case)
        again = client.post("/api/v1/cases", json=case)
    assert held.status_code == 409
    assert held.json()["error"]["code"] == "idempotency_key_in_flight"
    assert taken.status_code == again.status_code == 201
    assert again.json() == taken.json()
    assert api.events() == before + 1
