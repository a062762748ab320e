"""Drive the installed ``gridcase`` program as a user would: a real process, a real SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import KEY_VAR, make_settings
from tests.support import make_app, seed_small_district

GRIDCASE = Path(sys.executable).parent / "gridcase"


@dataclass
class Cli:
    """Runs ``gridcase`` against one database."""

    database_url: str

    def __call__(self, *args: str, stdin: str | None = None, check: bool = False) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_") or k == KEY_VAR}
        env["GRIDCASE_DATABASE_URL"] = self.database_url
        result = subprocess.run(
            [str(GRIDCASE), *args], input=stdin, capture_output=True, text=True, env=env, timeout=300, check=False
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def json(self, *args: str) -> object:
        return json.loads(self(*args, "--json", check=True).stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The CLI on a fresh SQLite file."""
    return Cli(f"sqlite:///{tmp_path / 'gridcase.db'}")


@pytest.fixture
def seeded(cli: Cli) -> Cli:
    """The CLI over the small district of the other tests (tests.support.seed_small_district)."""
    app = make_app(make_settings(cli.database_url))
    try:
        seed_small_district(app)
    finally:
        app.close()
    return cli
