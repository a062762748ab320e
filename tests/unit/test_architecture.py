"""The layout holds: the domain imports no I/O and no outer folder; packages resolve to this repository."""

from __future__ import annotations

import ast
from pathlib import Path

import adapters
import domain
import projections
import replay

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "projections", "adapters", "replay", "sqlalchemy", "kafka", "structlog", "psycopg", "psycopg_pool", "sqlite3",
    "fastapi", "starlette", "requests", "httpx", "urllib", "socket", "subprocess", "os", "pathlib", "typer", "rich",
    "pydantic_settings", "logging",
}  # fmt: skip


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_domain_imports_no_io_library_and_no_outer_folder() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & FORBIDDEN)
        for path in (ROOT / "domain").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_itself_catches_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("import sqlalchemy\nfrom adapters.store import x\n", encoding="utf-8")
    assert imported_modules(module) & FORBIDDEN == {"sqlalchemy", "adapters"}


def test_top_level_packages_are_this_repositorys_not_namesakes_from_pypi() -> None:
    for package in (adapters, domain, projections, replay):
        assert package.__file__ is not None
        assert Path(package.__file__).resolve().is_relative_to(ROOT), package.__file__
