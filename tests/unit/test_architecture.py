"""The layout holds: every "never" arrow of docs/architecture.md is checked here, and packages are this repository's.

An arrow is any import, at module level, inside a function or under ``TYPE_CHECKING``: each is a dependency
a reader of the code has to follow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import adapters
import district
import domain
import importing
import projections
import replay
import service
import sink

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("domain", "service", "projections", "replay", "district", "importing", "adapters", "sink")
IO = {
    "sqlalchemy", "kafka", "structlog", "psycopg", "psycopg_pool", "sqlite3", "fastapi", "starlette", "uvicorn",
    "requests", "httpx", "urllib", "socket", "subprocess", "os", "pathlib", "typer", "rich", "pydantic_settings",
    "logging",
}  # fmt: skip
WEB_AND_TERMINAL = {"fastapi", "starlette", "uvicorn", "typer", "rich", "kafka", "sqlalchemy", "psycopg"}

#: Folder → what no module in it may import (the "never" arrows).
NEVER: dict[str, set[str]] = {
    "domain": {"service", "projections", "replay", "district", "adapters", "tests", *IO},
    "service": {"projections", "replay", "district", "adapters", "tests", *WEB_AND_TERMINAL},
    "projections": {"service", "replay", "district", "adapters", "tests"},
    "replay": {"service", "district", "adapters", "tests"},
    "district": {"projections", "replay", "adapters", "tests"},
    # The import's rules are pure (a row → its commands and anomalies): reading files and the CLI are adapters'.
    "importing": {"projections", "replay", "district", "adapters", "tests", *IO},
    "adapters": {"district", "tests"},
    # The reference downstream consumer uses the topics and schemas/ only (docs/sink.md).
    "sink": {"domain", "service", "projections", "replay", "district", "importing", "adapters", "tests"},
}
#: Entry-point packages: only they themselves, and the modules named here, may import them.
ENTRY_POINTS = {
    "adapters.cli": set(),
    "adapters.http": {"adapters.bootstrap", "adapters.cli"},
}
#: The one module that wires the parts; the CLI's demo commands hand the district what the bootstrap built.
DISTRICT_USERS = {"adapters.cli", "adapters.bootstrap"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, by its full dotted name (relative imports are not used here)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def offences(root: Path) -> list[str]:
    """Each forbidden arrow under ``root`` as 'module -> import'."""
    found = []
    for folder, never in NEVER.items():
        for path in sorted((root / folder).rglob("*.py")):
            source = module_name(path) if root == ROOT else ".".join(path.relative_to(root).with_suffix("").parts)
            for name in sorted(imported_modules(path)):
                top = name.split(".")[0]
                allowed_district = top == "district" and any(within(source, user) for user in DISTRICT_USERS)
                if top in never and not allowed_district:
                    found.append(f"{source} -> {name}")
                for entry, users in ENTRY_POINTS.items():
                    if within(name, entry) and not within(source, entry) and not any(within(source, u) for u in users):
                        found.append(f"{source} -> {name}")
    return found


def test_no_never_arrow_in_the_tree() -> None:
    assert offences(ROOT) == []


@pytest.mark.parametrize(
    ("folder", "source"),
    [
        ("domain", "import sqlalchemy\n"),
        ("domain", "from adapters.store import x\n"),
        ("service", "from adapters.settings import Settings\n"),
        ("projections", "def f():\n    from adapters.kafka import relay\n"),
        ("projections", "from replay.source import Reader\n"),
        ("replay", "from adapters.bootstrap import bootstrap\n"),
        ("district", "from projections.runner import Runner\n"),
        ("importing", "from pathlib import Path\n"),
        ("importing", "from adapters.store import StoreReader\n"),
        ("adapters", "from adapters.cli import app\n"),
        ("adapters", "from adapters.http.app import create_app\n"),
    ],
)
def test_the_check_itself_catches_each_kind_of_forbidden_arrow(tmp_path: Path, folder: str, source: str) -> None:
    (tmp_path / folder).mkdir()
    (tmp_path / folder / "bad.py").write_text(source, encoding="utf-8")
    assert len(offences(tmp_path)) == 1


def test_top_level_packages_are_this_repositorys_not_namesakes_from_pypi() -> None:
    for package in (adapters, district, domain, importing, projections, replay, service, sink):
        assert package.__file__ is not None
        assert Path(package.__file__).resolve().is_relative_to(ROOT), package.__file__


def test_every_package_of_the_tree_is_checked() -> None:
    tops = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests"}
    assert tops == set(PACKAGES) == set(NEVER)
