"""Idempotency keys survive a crash (issue 13, item 4): ``gridcase serve`` is SIGKILLed while many requests with
keys are in flight; after a restart every key is usable, and a retry gets the stored answer or files once.

Before: a key claimed by the killed process stayed claimed for ever (409 "still being handled"), also when
nothing was stored.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

import httpx

from adapters.http.idempotency import write_mark
from tests.e2e.http.conftest import issue_tokens, seed, serve_process
from tests.support import CATEGORY, GRID

if TYPE_CHECKING:
    from pathlib import Path

#: Requests in flight when a server is killed, and how many times it is killed at most.
PER_ROUND, ROUNDS = 40, 6


def _case(n: int) -> dict[str, str]:
    return {"channel": "hotline", "category": CATEGORY, "grid": GRID, "description": f"crash test complaint {n}"}


def _reported(database: Path) -> Counter[str]:
    """How many cases the store holds of each description."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT state FROM stored_events WHERE topic LIKE '%CaseReported'").fetchall()
    return Counter(json.loads(state)["description"] for (state,) in rows)


def _kill_mid_requests(url: str, headers: dict[str, str], keys: range, first: dict[int, httpx.Response | None]) -> None:
    """Send a request with its own key for each of ``keys`` at once; SIGKILL the server while they run."""
    with serve_process(url) as served:
        base = served.url

        def send(n: int) -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                try:
                    first[n] = client.post("/api/v1/cases", json=_case(n), headers={"Idempotency-Key": f"crash-{n}"})
                except httpx.TransportError:
                    first[n] = None  # the server died under it

        senders = [threading.Thread(target=send, args=(n,)) for n in keys]
        for sender in senders:
            sender.start()
        deadline = time.monotonic() + 30
        while sum(n in first for n in keys) < len(keys) // 4:  # a quarter answered: the rest are in flight
            assert time.monotonic() < deadline, "no answers"
            time.sleep(0.002)
        served.process.kill()
        served.process.wait(timeout=10)
        for sender in senders:
            sender.join(timeout=60)


def _left_claimed(database: Path, token_id: str) -> tuple[int, int]:
    """Keys the killed server left claimed without an answer: how many, and how many of their cases were stored."""
    with sqlite3.connect(database) as connection:
        keys = [key for (key,) in connection.execute("SELECT key FROM http_idempotency WHERE status_code = 0")]
        try:
            marks = {mark for (mark,) in connection.execute("SELECT mark FROM write_marks")}
        except sqlite3.OperationalError:  # no such table (before write marks)
            marks = set()
    return len(keys), sum(write_mark(token_id, key) in marks for key in keys)


def test_every_idempotency_key_is_usable_after_serve_is_killed_mid_request(tmp_path: Path) -> None:
    database = tmp_path / "gridcase.db"
    url = f"sqlite:///{database}"
    seed(url)
    token = issue_tokens(url, ("operator",))["operator"]
    token_id = token.split("_")[1]
    headers = {"Authorization": f"Bearer {token}"}
    first: dict[int, httpx.Response | None] = {}
    # Kill until the dead servers have left both kinds of claims: nothing stored, and stored without an answer.
    stuck = stored = 0
    sent = 0
    for _round in range(ROUNDS):
        _kill_mid_requests(url, headers, range(sent, sent + PER_ROUND), first)
        sent += PER_ROUND
        left, landed = _left_claimed(database, token_id)
        stuck, stored = max(stuck, left), max(stored, landed)
        if left > landed > 0:
            break
    assert stuck > 0, "the kills left no key claimed without an answer"

    answered = {n for n, response in first.items() if response is not None and response.status_code == 201}
    assert len(answered) < sent, "the kills came too late to test anything"
    with serve_process(url) as again, httpx.Client(base_url=again.url, headers=headers, timeout=30) as client:
        retried = {n: client.post("/api/v1/cases", json=_case(n), headers={"Idempotency-Key": f"crash-{n}"})
                   for n in range(sent)}  # fmt: skip
        twice = {n: client.post("/api/v1/cases", json=_case(n), headers={"Idempotency-Key": f"crash-{n}"})
                 for n in range(sent)}  # fmt: skip

    # Every key is usable: no 409 "still being handled" for a key of a dead server.
    assert {n: r.text for n, r in retried.items() if r.status_code != 201} == {}
    for n in answered:  # an answer given before the crash is the answer given after it
        before = first[n]
        assert before is not None
        assert retried[n].json() == before.json()
    for n in range(sent):  # and every retry after the first gets the same answer again
        assert twice[n].json() == retried[n].json()
    numbers = [retried[n].json()["case_number"] for n in range(sent)]
    assert len(set(numbers)) == sent
    # Each key filed exactly one case, whatever moment the kill came at.
    reported = _reported(database)
    assert {n: reported[_case(n)["description"]] for n in range(sent) if reported[_case(n)["description"]] != 1} == {}
    assert sum(reported.values()) == sent
    recovered = sum(r.headers.get("Idempotent-Replayed") == "recovered" for r in retried.values())
    assert recovered == stored  # each case stored without its answer was answered from what the store holds
