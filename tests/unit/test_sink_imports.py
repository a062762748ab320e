"""The sink is what a reporting team copies: it uses the topics and schemas/ only, never the engine's code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINE = {"domain", "projections", "adapters", "replay", "service", "district", "importing"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom):
            names.add("<relative>")
    return names


def test_no_module_of_the_sink_names_an_engine_package() -> None:
    files = sorted((ROOT / "sink").rglob("*.py"))
    assert len(files) >= 5, files
    offences = [f"{path.name} -> {name}" for path in files for name in sorted(_imports(path))
                if name.split(".")[0] in ENGINE or name == "<relative>"]  # fmt: skip
    assert offences == []


def test_running_the_sink_loads_no_engine_package() -> None:
    # What the process really loads, through every import of every import: not one engine module.
    code = (
        "import sys, sink, sink.__main__, sink.run, sink.consume, sink.tables, sink.figures, sink.schema, sink.views; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {ENGINE!r}))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert found.stdout.strip() == "[]"


def test_the_check_catches_an_engine_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from projections.performance import Performance\n", encoding="utf-8")
    assert "projections.performance" in _imports(bad)
