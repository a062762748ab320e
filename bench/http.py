"""Intake over HTTP against the application layer's raw command rate, measured in the same run.

    .venv/bin/python bench/http.py [--clients 50] [--seconds 6] [--raw 1000] [--quick]

On SQLite files holding the reference district (built once, cached under var/bench/):
  (a) raw: ``Service.handle`` of new complaints (``case.report``), one after another, in-process;
  (b) HTTP: ``gridcase serve`` (uvicorn, projections following in the same process) in its own process;
      one client alone, then 50 clients on loopback, each POSTing Open311 requests (form-encoded, lat/long mapped to
      a grid, a fresh Idempotency-Key each) back to back: throughput, p50, p99;
  (c) HTTP paced: the same 50 clients offering fixed rates (fractions of (b)'s throughput), requests sent on
      a schedule whether or not earlier ones have answered: p50 and p99 at each rate (latency counted from
      the scheduled send), and the highest offered rate whose p99 stays under 50 ms;
  and the ratio of (b) to (a).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where bench/replay.py would hide the replay package
# (and bench/kafka.py the kafka library): drop the folder and put the repository root first instead.
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [str(_BENCH.parent), *(e for e in sys.path if Path(e or ".").resolve() not in {_BENCH, _BENCH.parent})]

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from datetime import datetime

import httpx

from adapters.bootstrap import Engine, bootstrap, settings_from_environment
from adapters.http.auth import TokenStore
from adapters.http.catalogue import Catalogue
from adapters.http.tables import create_tables
from adapters.logging import configure_logging
from district.reference import load_reference_district
from domain.base import Role
from domain.case import Channel
from domain.commands import COMMANDS
from projections.sql import make_engine

REFERENCE_AT = datetime.fromisoformat("2021-01-01T00:00:00+08:00")
ROOT = Path(__file__).resolve().parent.parent / "var" / "bench"
GRIDCASE = Path(sys.executable).parent / "gridcase"
CATEGORY = "facility.manhole"
TARGET_P99_MS = 50.0


def reference() -> Path:
    """A store holding only the reference district (built once)."""
    path = ROOT / "reference.db"
    if not path.exists():
        ROOT.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        service = bootstrap(settings_from_environment(configure_logs=False, database_url=f"sqlite:///{partial}"))
        reader = service.reader
        load_reference_district(service.service, reader, REFERENCE_AT)
        service.close()
        partial.rename(path)
    return path


def copy_of(source: Path, folder: Path, name: str) -> str:
    target = folder / name
    shutil.copy(source, target)
    return f"sqlite:///{target}"


def raw_rate(url: str, count: int) -> tuple[float, list[float]]:
    """New complaints per second through the application layer alone, and each one's time."""
    service = bootstrap(settings_from_environment(configure_logs=False, database_url=url))
    grids = grid_points(service)
    operator = {"id": "hotline-01", "role": "intake_operator"}
    commands = [
        COMMANDS.validate_python({"command": "case.report", "actor": operator, "channel": "app", "category": CATEGORY,
                                  "grid": grids[i % len(grids)][0], "description": f"bench complaint {i}",
                                  "location": {"lat": grids[i % len(grids)][1], "lon": grids[i % len(grids)][2]}})
        for i in range(count)
    ]  # fmt: skip
    times = []
    started = time.perf_counter()
    for command in commands:
        begin = time.perf_counter()
        service.service.handle(command)
        times.append(time.perf_counter() - begin)
    seconds = time.perf_counter() - started
    service.close()
    return count / seconds, times


def grid_points(service: Engine) -> list[tuple[str, float, float]]:
    """Each base grid with the centre of its raster cell."""
    catalogue = Catalogue(service.reader)
    catalogue.refresh()
    points = []
    for code in sorted(c for c, u in catalogue.units.items() if u.kind == "grid" and u.grid_kind == "base"):
        centre = catalogue.centre_of(code)
        assert centre is not None
        points.append((code, *centre))
    return points


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Load:
    """50 clients filing Open311 requests."""

    def __init__(self, base: str, token: str, points: list[tuple[str, float, float]]) -> None:
        self.base = base
        self.token = token
        self.points = points
        self.sent = 0
        self.failures: dict[int, int] = {}

    def form(self) -> dict[str, str]:
        self.sent += 1
        _, lat, lon = self.points[self.sent % len(self.points)]
        return {"service_code": CATEGORY, "description": f"bench complaint {self.sent}", "lat": str(lat),
                "long": str(lon), "phone": "13900000000"}  # fmt: skip

    async def one(self, client: httpx.AsyncClient) -> None:
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        response = await client.post("/open311/v2/requests.json", data=self.form(), headers=headers)
        if response.status_code != 201:  # noqa: PLR2004
            self.failures[response.status_code] = self.failures.get(response.status_code, 0) + 1

    def client(self, clients: int) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        return httpx.AsyncClient(base_url=self.base, headers={"Authorization": f"Bearer {self.token}"},
                                 limits=limits, timeout=60)  # fmt: skip

    async def closed_loop(self, clients: int, seconds: float) -> tuple[float, list[float]]:
        """Every client sends its next request when the last one answers."""
        latencies: list[float] = []
        async with self.client(clients) as client:
            await asyncio.gather(*(self.one(client) for _ in range(clients)))  # warm the connections
            end = time.perf_counter() + seconds

            async def worker() -> None:
                while time.perf_counter() < end:
                    started = time.perf_counter()
                    await self.one(client)
                    latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(clients)))
            elapsed = time.perf_counter() - started
        return len(latencies) / elapsed, latencies

    async def paced(self, clients: int, rate: float, seconds: float) -> tuple[float, list[float]]:
        """Requests sent on a fixed schedule over ``clients`` connections; latency from the scheduled send."""
        latencies: list[float] = []
        total = int(rate * seconds)
        async with self.client(clients) as client:
            await asyncio.gather(*(self.one(client) for _ in range(clients)))
            gate = asyncio.Semaphore(clients)
            begin = time.perf_counter()

            async def send(i: int) -> None:
                due = begin + i / rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                async with gate:
                    await self.one(client)
                latencies.append(time.perf_counter() - due)

            await asyncio.gather(*(send(i) for i in range(total)))
            elapsed = time.perf_counter() - begin
        return total / elapsed, latencies


#: What ``--quick`` runs (the test suite runs every bench so, so none rots unseen).
QUICK = "--clients 3 --seconds 0.4 --raw 100"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--raw", type=int, default=1000, help="commands for the raw rate")
    parser.add_argument("--no-projections", action="store_true", help="serve without the projections following")
    parser.add_argument("--quick", action="store_true", help=f"tiny sizes ({QUICK}): it runs and prints its ratio")
    args = parser.parse_args()
    if args.quick:  # the sizes of QUICK, after any given
        args = parser.parse_args([*sys.argv[1:], *QUICK.split()])
    configure_logging("console", "warning")
    source = reference()
    folder = Path(tempfile.mkdtemp(prefix="gridcase-bench-http-"))
    try:
        raw, times = raw_rate(copy_of(source, folder, "raw.db"), args.raw)
        print(f"(a) raw application layer: {raw:,.0f} case.report commands/s (in-process, one at a time), "
              f"p50 {percentile(times, 0.5) * 1000:.1f} ms, p99 {percentile(times, 0.99) * 1000:.1f} ms")  # fmt: skip

        url = copy_of(source, folder, "http.db")
        engine = make_engine(url)
        create_tables(engine)
        token = TokenStore(engine).create("hotline-01", Role.INTAKE_OPERATOR, channel=Channel.HOTLINE).token
        engine.dispose()
        service = bootstrap(settings_from_environment(configure_logs=False, database_url=url))
        points = grid_points(service)
        service.close()
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_")} | {"GRIDCASE_DATABASE_URL": url}
        extra = ["--no-projections"] if args.no_projections else []
        server = subprocess.Popen([str(GRIDCASE), "serve", "--port", str(port), *extra], env=env,
                                  stdout=subprocess.DEVNULL)  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"{base}/openapi.json", timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            measure(Load(base, token, points), args, raw)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(load: Load, args: argparse.Namespace, raw: float) -> None:
    """One client alone, (b) at saturation, then (c) paced at fractions of it."""
    alone, single = asyncio.run(load.closed_loop(1, args.seconds / 2))
    print(f"    one client alone: {alone:,.0f} requests/s, p50 {percentile(single, 0.5) * 1000:.1f} ms, "
          f"p99 {percentile(single, 0.99) * 1000:.1f} ms")  # fmt: skip
    throughput, latencies = asyncio.run(load.closed_loop(args.clients, args.seconds))
    print(f"(b) HTTP, {args.clients} clients back to back: {throughput:,.0f} requests/s, "
          f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms "
          f"({len(latencies)} requests)")  # fmt: skip
    print(f"    ratio HTTP / raw: {throughput / raw:.2f}")
    sustained = None
    for share in (0.8, 0.6, 0.4, 0.2):
        rate = throughput * share
        achieved, paced = asyncio.run(load.paced(args.clients, rate, args.seconds))
        p50, p99 = percentile(paced, 0.5) * 1000, percentile(paced, 0.99) * 1000
        print(f"(c) HTTP paced at {share:.0%} of (b) = {rate:,.0f}/s offered ({achieved:,.0f}/s done) over "
              f"{args.clients} connections: p50 {p50:.1f} ms, p99 {p99:.1f} ms")  # fmt: skip
        if p99 < TARGET_P99_MS and sustained is None:
            sustained = (rate, p50, p99)
    if load.failures:
        print(f"    non-201 answers: {load.failures}")
    if sustained is None:
        print(f"no tried rate kept p99 under {TARGET_P99_MS:.0f} ms")
    else:
        print(f"sustained: {sustained[0]:,.0f} requests/s with p99 {sustained[2]:.1f} ms "
              f"(target p99 < {TARGET_P99_MS:.0f} ms: met); "
              f"{sustained[0] / raw:.2f} of the raw rate")  # fmt: skip


if __name__ == "__main__":
    main()
