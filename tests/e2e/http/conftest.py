"""A real API server: uvicorn on a loopback port, in a thread, over a real SQLite file with a small district."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn

from adapters.bootstrap import bootstrap
from adapters.http.app import create_app
from adapters.http.runtime import Runtime
from domain.base import Role
from tests.conftest import KEY_VAR, make_settings
from tests.support import ADMIN, make_app, seed_small_district

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: The cast of the tests: (actor, role, unit) per token name.
CAST: dict[str, tuple[str, Role, str | None]] = {
    "operator": ("op-1", Role.INTAKE_OPERATOR, None),
    "dispatcher": ("disp-1", Role.DISPATCHER, None),
    "worker": ("W001", Role.GRID_WORKER, None),
    "other_worker": ("W002", Role.GRID_WORKER, None),
    "department": ("clerk-1", Role.DEPARTMENT_HANDLER, "D-CG"),
    "other_department": ("clerk-2", Role.DEPARTMENT_HANDLER, "D-JT"),
    "callback": ("cb-1", Role.CALLBACK_OPERATOR, None),
    "auditor": ("aud-1", Role.AUDITOR, None),
    "admin": ("admin", Role.ADMIN, None),
}


@dataclass
class Api:
    """A running server, its runtime, and a client per role."""

    url: str
    runtime: Runtime
    tokens: dict[str, str]

    def client(self, who: str | None = None, **headers: str) -> httpx.Client:
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def events(self) -> int:
        """How many events the store holds: a refused request must not change it."""
        return self.runtime.reader.last_position()


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def seed(url: str) -> None:
    """The small district of the other tests, plus a second department."""
    service = make_app(make_settings(url))
    try:
        seed_small_district(service)
        from tests.support import T0, run  # noqa: PLC0415

        run(service, command="registry.org-unit", actor=ADMIN, at=T0, code="D-JT", kind="department",
            name="区交通运输局", name_en="Transport bureau", parent="SN")  # fmt: skip
    finally:
        service.close()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """uvicorn serving the API on 127.0.0.1 on a free port, projections following in the same process."""
    path: Path = tmp_path_factory.mktemp("http") / "gridcase.db"
    with serving(f"sqlite:///{path}") as running:
        yield running


#: The shared servers' public reads are not rate-limited in practice: the tests of the limits bring their own.
UNLIMITED = {"http_public_rate": 10_000.0, "http_public_burst": 100_000}


@contextmanager
def serving(url: str, **settings_overrides: Any) -> Iterator[Api]:
    """Seed the small district into a database and serve the API over it on a free loopback port."""
    seed(url)
    settings = make_settings(url).model_copy(update={**UNLIMITED, **settings_overrides})
    runtime = Runtime(bootstrap(settings))
    tokens = {name: runtime.tokens.create(actor, role, unit).token for name, (actor, role, unit) in CAST.items()}
    app = create_app(runtime=runtime)
    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    port = sock.getsockname()[1]
    yield Api(f"http://127.0.0.1:{port}", runtime, tokens)
    server.should_exit = True
    thread.join(timeout=15)
    sock.close()


def issue_tokens(url: str, names: tuple[str, ...] = tuple(CAST)) -> dict[str, str]:
    """Bearer tokens of the cast, straight into the database's token table (as ``gridcase token create`` does)."""
    from adapters.http.auth import TokenStore  # noqa: PLC0415
    from adapters.http.tables import create_tables  # noqa: PLC0415
    from projections.sql import make_engine  # noqa: PLC0415

    engine = make_engine(url)
    try:
        create_tables(engine)
        store = TokenStore(engine)
        return {name: store.create(*CAST[name]).token for name in names}
    finally:
        engine.dispose()


@dataclass
class Served:
    """``gridcase serve`` in its own process."""

    url: str
    process: subprocess.Popen[str]
    log_file: IO[str]

    def log(self) -> str:
        """What the server wrote to stderr so far."""
        self.log_file.seek(0)
        return self.log_file.read()


@contextmanager
def serve_process(database_url: str, port: int | None = None, **environment: str) -> Iterator[Served]:
    """Run ``gridcase serve`` over a database on a loopback port; stopped (SIGINT, then SIGKILL) at the end."""
    from tests.e2e.conftest import GRIDCASE  # noqa: PLC0415

    if port is None:
        sock = _free_socket()
        port = sock.getsockname()[1]
        sock.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_") or k == KEY_VAR}
    env |= {"GRIDCASE_DATABASE_URL": database_url, **environment}
    log_file = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed below
    process = subprocess.Popen([str(GRIDCASE), "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=log_file, text=True)  # fmt: skip
    served = Served(f"http://127.0.0.1:{port}", process, log_file)
    base = served.url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/openapi.json", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, f"gridcase serve exited: {served.log()}"
                assert time.monotonic() < deadline, "gridcase serve did not start"
                time.sleep(0.1)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(2)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        log_file.close()


def body(response: httpx.Response) -> Any:
    """The JSON body, with the response shown when it is not what the test expected."""
    return response.json()
