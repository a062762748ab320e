"""Public reads cannot starve intake (issue 13, item 7): a rate per client address (429 with Retry-After), a cap
on page size, and public reads in their own few slots, so writes always find a request thread.

Before: 30 token-less clients reading ``requests.json?page_size=1000`` pushed intake from p50 8 ms to 5.5 s.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

import httpx

from tests.e2e.http.conftest import issue_tokens, seed, serve_process
from tests.support import CATEGORY, GRID

if TYPE_CHECKING:
    from pathlib import Path

READERS = 30
CASE = {"channel": "hotline", "category": CATEGORY, "grid": GRID, "description": "井盖缺失 manhole cover missing"}


def _file(client: httpx.Client) -> float:
    """File one case; the seconds it took."""
    started = time.perf_counter()
    response = client.post("/api/v1/cases", json=CASE)
    assert response.status_code == 201, response.text
    return time.perf_counter() - started


def test_thirty_token_less_readers_do_not_starve_intake(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gridcase.db'}"
    seed(url)
    token = issue_tokens(url, ("operator",))["operator"]
    limits = {"GRIDCASE_HTTP_PUBLIC_RATE": "0.5", "GRIDCASE_HTTP_PUBLIC_BURST": "2"}
    with (
        serve_process(url, **limits) as served,
        httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as operator,
    ):
        for _ in range(250):  # enough cases that a full page is real work
            _file(operator)
        _file(operator)
        alone = [_file(operator) for _ in range(30)]

        stop = threading.Event()
        statuses: Counter[int] = Counter()
        retry_after: list[str] = []
        too_big: list[httpx.Response] = []

        def read(n: int) -> None:
            # Each reader is its own client address on the loopback network (127.0.0.0/8).
            transport = httpx.HTTPTransport(local_address=f"127.0.0.{10 + n}")
            with httpx.Client(base_url=served.url, transport=transport, timeout=60) as public:
                while not stop.is_set():
                    size = 1000 if n % 5 == 0 else 200
                    response = public.get("/open311/v2/requests.json", params={"page_size": size})
                    statuses[response.status_code] += 1
                    if response.status_code == 429:
                        retry_after.append(response.headers.get("Retry-After", ""))
                    elif size == 1000 and response.status_code == 400 and not too_big:
                        too_big.append(response)

        readers = [threading.Thread(target=read, args=(n,)) for n in range(READERS)]
        for reader in readers:
            reader.start()
        try:
            time.sleep(2.0)  # the readers are all at it
            loaded = [_file(operator) for _ in range(30)]
        finally:
            stop.set()
            for reader in readers:
                reader.join(timeout=60)

    p50_alone, p50_loaded = statistics.median(alone), statistics.median(loaded)
    # Generous: the readers (thousands of refused requests a second) share two cores with the server and the
    # other engineers' tests; before, intake went from p50 16 ms to 1.1 s here (8 ms to 5.5 s in the issue).
    assert p50_loaded < max(10 * p50_alone, p50_alone + 0.2), (p50_alone, p50_loaded, statuses)
    assert statuses[429] > 0, statuses
    assert retry_after, statuses
    assert all(value.isdigit() and int(value) >= 1 for value in retry_after)
    assert statuses[200] > 0, statuses  # the readers are slowed, not shut out
    assert too_big, statuses
    assert "page_size" in too_big[0].json()[0]["description"]
    assert "200" in too_big[0].json()[0]["description"]  # the cap is named


def test_the_bucket_lets_a_burst_through_then_the_rate_and_says_how_long_to_wait() -> None:
    from adapters.http.guard import Buckets  # noqa: PLC0415

    now = [100.0]
    buckets = Buckets(rate=2.0, burst=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == 0.5  # one token takes half a second at 2 a second
    assert buckets.take("b") == 0.0  # another address has its own bucket
    now[0] += 0.25
    assert buckets.take("a") == 0.25
    now[0] += 0.25
    assert buckets.take("a") == 0.0
    now[0] += 60
    assert [buckets.take("a") for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]  # saved up: the burst, not more
