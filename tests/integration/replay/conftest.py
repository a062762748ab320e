"""Fixtures for replay tests: a factory of fresh databases on each backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.conftest import _fresh_database

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Make a new, empty database on the backend of this run (a hypothesis example needs one each)."""
    made = [0]

    def make() -> str:
        made[0] += 1
        if request.param == "sqlite":
            return f"sqlite:///{tmp_path / f'gridcase-{made[0]}.db'}"
        return _fresh_database(request.getfixturevalue("pg_server_url"))

    if request.param == "postgres":
        request.getfixturevalue("pg_server_url")
    return make
