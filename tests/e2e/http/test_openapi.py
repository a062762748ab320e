"""The committed OpenAPI document is the one the app generates and serves."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from adapters.http.openapi import PATH, document, render

if TYPE_CHECKING:
    from tests.e2e.http.conftest import Api


def test_the_committed_document_matches_the_apps() -> None:
    assert PATH.read_text("utf-8") == render(document()), "stale: run python -m adapters.http.openapi"


def test_the_server_serves_the_committed_document(api: Api) -> None:
    with api.client() as client:
        served = client.get("/openapi.json").json()
    assert served == json.loads(PATH.read_text("utf-8"))


def test_every_command_has_a_route() -> None:
    from domain.commands import COMMANDS  # noqa: PLC0415

    names = {choice["schema"]["properties"]["command"]["const"] for choice in _choices(COMMANDS.json_schema())}
    operations = {op["operationId"] for methods in document()["paths"].values() for op in methods.values()}
    assert {name.replace(".", "_").replace("-", "_") for name in names} <= operations


def _choices(schema: dict[str, object]) -> list[dict[str, dict[str, dict[str, dict[str, str]]]]]:
    definitions: dict[str, object] = schema["$defs"]  # type: ignore[assignment]
    return [{"schema": definitions[ref["$ref"].rsplit("/", 1)[1]]} for ref in schema["oneOf"]]  # type: ignore[attr-defined, index]
