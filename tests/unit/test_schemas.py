"""The committed command schema is the one the models generate."""

from __future__ import annotations

from adapters.schemas import rendered


def test_committed_schemas_are_up_to_date() -> None:
    stale = [str(path) for path, text in rendered().items() if not path.exists() or path.read_text("utf-8") != text]
    assert stale == [], "run `make schemas` (python -m adapters.schemas) and commit the result"
