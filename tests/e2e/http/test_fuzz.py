"""schemathesis against the running server: no generated request, valid or not, gets a 5xx."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from adapters.http.openapi import PATH

if TYPE_CHECKING:
    from schemathesis import BaseSchema, Case

    from tests.e2e.http.conftest import Api

#: Every operation of the committed document (a test checks it is the app's own).
OPERATIONS = [
    f"{method.upper()} {path}" for path, methods in json.loads(PATH.read_text("utf-8"))["paths"].items()
    for method in methods
]  # fmt: skip


@pytest.fixture(scope="module")
def api_schema(api: Api) -> BaseSchema:
    """The OpenAPI document as the running server serves it."""
    return schemathesis.openapi.from_url(f"{api.url}/openapi.json")


@pytest.mark.slow
@pytest.mark.parametrize("operation", OPERATIONS)
def test_no_request_gets_a_server_error(api_schema: BaseSchema, api: Api, operation: str) -> None:
    found: Any = api_schema.find_operation_by_label(operation)
    strategy = found.as_strategy(GenerationMode.POSITIVE) | found.as_strategy(GenerationMode.NEGATIVE)
    # As an administrator, so requests get past the token check and into the commands and queries.
    headers = {"Authorization": f"Bearer {api.tokens['admin']}"}

    @settings(max_examples=8, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def check(case: Case) -> None:
        response = case.call(base_url=api.url, headers=headers, timeout=30)
        assert response.status_code < 500, f"{case.as_curl_command()}\n{response.status_code} {response.text[:800]}"

    check()
