"""``gridcase token create|revoke|list`` and ``gridcase serve`` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING

import httpx

from tests.conftest import KEY_VAR
from tests.e2e.conftest import GRIDCASE, Cli
from tests.e2e.http.conftest import _free_socket, seed

if TYPE_CHECKING:
    from pathlib import Path


def test_tokens_are_issued_checked_stored_hashed_and_revoked_and_serve_uses_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gridcase.db'}"
    seed(url)
    cli = Cli(url)
    issued = cli.json("token", "create", "--actor", "W001", "--role", "grid_worker")
    assert isinstance(issued, dict)
    assert issued["token"].startswith(f"gc_{issued['token_id']}_")
    unknown = cli("token", "create", "--actor", "W999", "--role", "grid_worker")
    assert unknown.returncode == 2
    assert "no worker 'W999'" in unknown.stderr
    no_unit = cli("token", "create", "--actor", "clerk", "--role", "department_handler", "--unit", "D-NOPE")
    assert no_unit.returncode == 2
    assert "no department 'D-NOPE'" in no_unit.stderr
    assert cli("token", "create", "--actor", "x", "--role", "system").returncode == 2
    # Only the hash is kept.
    assert issued["token"] not in (tmp_path / "gridcase.db").read_bytes().decode("utf-8", "replace")
    listed = cli.json("token", "list")
    assert isinstance(listed, list)
    assert [(t["token_id"], t["role"]) for t in listed] == [(issued["token_id"], "grid_worker")]

    sock = _free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_") or k == KEY_VAR}
    env["GRIDCASE_DATABASE_URL"] = url
    server = subprocess.Popen([str(GRIDCASE), "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/openapi.json", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "gridcase serve did not start"
                time.sleep(0.1)
        headers = {"Authorization": f"Bearer {issued['token']}"}
        assert httpx.get(f"{base}/api/v1/whoami", headers=headers).json()["actor"] == {
            "id": "W001", "role": "grid_worker", "unit": None,
        }  # fmt: skip
        assert json.loads(cli("token", "revoke", issued["token_id"], "--json", check=True).stdout)["revoked"]
        assert httpx.get(f"{base}/api/v1/whoami", headers=headers).status_code == 401
        assert cli("token", "revoke", issued["token_id"]).returncode == 2
    finally:
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=30)
    assert f"serving the gridcase API on http://127.0.0.1:{port}" in out
