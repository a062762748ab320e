"""Review reports over HTTP: the CLI's bytes, for auditors and administrators only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tests.conftest import KEY_VAR
from tests.e2e.http.test_roles import refused
from tests.support import T0

if TYPE_CHECKING:
    from tests.e2e.http.conftest import Api

GRIDCASE = Path(sys.executable).parent / "gridcase"
YEAR = str(T0.year)


def test_a_review_over_http_is_byte_for_byte_the_cli_review(api: Api) -> None:
    with api.client("auditor") as client:
        response = client.get(f"/api/v1/reviews/{YEAR}", params={"rules": "2021"})
        assert response.status_code == 200, response.text
        again = client.get(f"/api/v1/reviews/{YEAR}", params={"rules": "2021"})
        as_csv = client.get(f"/api/v1/reviews/{YEAR}", params={"rules": "2021", "format": "csv"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_") or k == KEY_VAR}
    env["GRIDCASE_DATABASE_URL"] = api.runtime.settings.database_url
    root = Path(__file__).resolve().parents[3]
    cli = subprocess.run([str(GRIDCASE), "review", "--period", YEAR, "--rules", str(root / "rules" / "2021.toml"),
                          "--format", "json"], capture_output=True, env=env, check=True)  # fmt: skip
    assert response.content == again.content, "the same review twice is the same bytes"
    assert response.content == cli.stdout
    assert response.json()["rule_version"]
    assert as_csv.headers["content-type"].startswith("text/csv")


def test_only_auditors_and_administrators_read_reviews(api: Api) -> None:
    for who in ("dispatcher", "worker", "operator", "department"):
        refused(api, who, f"/api/v1/reviews/{YEAR}", method="GET")
    with api.client("admin") as client:
        assert client.get(f"/api/v1/reviews/{YEAR}", params={"rules": "2021"}).status_code == 200
        missing = client.get(f"/api/v1/reviews/{YEAR}", params={"rules": "1999"})
        assert missing.status_code == 404
        assert "rules/1999.toml" in missing.json()["error"]["message"]
        assert client.get("/api/v1/reviews/20x1").status_code == 422
    with api.client() as client:
        assert client.get(f"/api/v1/reviews/{YEAR}").status_code == 401
