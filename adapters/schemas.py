"""JSON Schemas kept in the repository, generated from the models: ``python -m adapters.schemas``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from domain.commands import COMMANDS

ROOT = Path(__file__).resolve().parent.parent / "schemas"


def command_schema() -> dict[str, Any]:
    """The schema of one line of ``gridcase apply``: any command, told apart by ``command``."""
    schema = COMMANDS.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://gridcase.example/schemas/commands/command.schema.json"
    schema["title"] = "gridcase command (one line of gridcase apply)"
    return schema


def rendered() -> dict[Path, str]:
    """Every schema file and its text."""
    return {
        ROOT / "commands" / "command.schema.json": json.dumps(command_schema(), ensure_ascii=False, indent=2) + "\n"
    }


def main() -> None:
    """Write the schema files."""
    for path, text in rendered().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT.parent)}")  # noqa: T201


if __name__ == "__main__":
    main()
