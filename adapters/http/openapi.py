"""The committed OpenAPI document: ``python -m adapters.http.openapi`` writes ``schemas/openapi.json``.

A test fails when the committed document differs from the one the app generates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapters.http.app import create_app

PATH = Path(__file__).resolve().parents[2] / "schemas" / "openapi.json"


def document() -> dict[str, Any]:
    """The OpenAPI document the app serves at /openapi.json."""
    return create_app().openapi()


def render(doc: dict[str, Any]) -> str:
    """The document as it is committed: indented, keys in the app's order, Chinese as it is."""
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def main() -> None:
    """Write the document."""
    PATH.write_text(render(document()), encoding="utf-8")
    print(f"wrote {PATH}")  # noqa: T201


if __name__ == "__main__":
    main()
