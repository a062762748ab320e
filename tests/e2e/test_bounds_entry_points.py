"""Bounds at every entry point (issue 13): the CLI, ``gridcase apply`` and the HTTP API refuse alike, write nothing.

Bad input names the field: the CLI exits 2, the native API answers 422, Open311 400. Intake cannot choose a
case number anywhere.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import make_settings
from tests.e2e.http.conftest import Api, serving
from tests.support import CATEGORY, GRID, make_app

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.e2e.conftest import Cli

OPERATOR = ["--actor", "op-1", "--role", "intake_operator"]
REPORT = ["case", "report", "--channel", "hotline", "--category", CATEGORY, "--grid", GRID]
AT = ["--at", "2021-06-01T09:00:00+08:00"]


def last_position(database_url: str) -> int:
    """How many events the store holds (a refused input must not change it)."""
    app = make_app(make_settings(database_url))
    try:
        return app.reader.last_position()
    finally:
        app.close()


# -- the CLI ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ([*REPORT, "--description", "字" * 5001, *OPERATOR, *AT], "description"),
        ([*REPORT, "--description", "井盖", "--address", "永嘉路\x0112号", *OPERATOR, *AT], "location.address"),
        ([*REPORT, "--description", "half \udc80", *OPERATOR, *AT], "description"),
        ([*REPORT, "--description", "井盖", "--reporter-name", "王\x1b[2J", *OPERATOR, *AT], "reporter.name"),
        ([*REPORT, "--description", "井盖", *OPERATOR, "--at", "0001-01-01T00:00:00"], "at"),
        ([*REPORT, "--description", "井盖", *OPERATOR, "--at", "9999-12-31T23:59:59+00:00"], "at"),
        (["patrol", "end", "PT-20210601-000001", "--distance", str(10**20), "--actor", "W001", "--role",
          "grid_worker", *AT], "distance_m"),
        (["case", "extend", "SN-20210601-000001", "--resolve-by", "9999-12-31T00:00:00+00:00", "--reason", "later",
          "--actor", "disp-1", "--role", "dispatcher", *AT], "--resolve-by"),  # the CLI names its own option
        (["registry", "assign", "--worker", "W001", "--grid", GRID, "--start", "0001-01-01", "--actor", "admin",
          "--role", "admin", *AT], "start"),
    ],
    ids=["long-description", "control-in-address", "lone-surrogate", "escape-in-name", "at-year-1", "at-year-9999",
         "distance-10e20", "resolve-by-9999", "start-year-1"],
)  # fmt: skip
def test_the_cli_refuses_a_value_out_of_bounds_with_exit_2_naming_the_field(
    seeded: Cli, args: list[str], field: str
) -> None:
    before = last_position(seeded.database_url)
    result = seeded(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("bad input: ")
    assert f"{field}:" in result.stderr.replace("\n", " ")
    assert last_position(seeded.database_url) == before


def test_the_cli_has_no_way_to_choose_a_case_number_on_intake(seeded: Cli) -> None:
    before = last_position(seeded.database_url)
    result = seeded(*REPORT, "--description", "井盖", "--case-number", "ZZZZZZ-00000000-000000", *OPERATOR, *AT)
    assert result.returncode == 2
    assert "--case-number" in result.stderr
    assert last_position(seeded.database_url) == before
    accepted = seeded(*REPORT, "--description", "井盖缺失\n夜间危险 (two lines)", *OPERATOR, *AT)
    assert (accepted.returncode, accepted.stdout.split()[0]) == (0, "SN-20210601-000001")


# -- gridcase apply -----------------------------------------------------------------------------------------

LINE = {"command": "case.report", "actor": {"id": "op-1", "role": "intake_operator"}, "channel": "hotline",
        "category": CATEGORY, "grid": GRID, "description": "井盖缺失", "at": "2021-06-01T09:00:00+08:00"}  # fmt: skip


def test_apply_reports_each_line_out_of_bounds_as_bad_input_naming_the_field_and_goes_on(seeded: Cli) -> None:
    lines = [
        {**LINE, "at": 1622509200},
        {**LINE, "at": "1622509200"},
        {**LINE, "case_number": "ZZZZZZ-00000000-000000"},
        {**LINE, "description": "x" * 5001},
        {**LINE, "location": {"address": "a\u0085b"}},
        {"command": "patrol.end", "actor": {"id": "W001", "role": "grid_worker"},
         "patrol_number": "PT-20210601-000001", "distance_m": 10**20},
        {"command": "registry.calendar", "actor": {"id": "admin", "role": "admin"}, "version": 1,
         "holidays": ["2021-10-01"] * 2001},
        LINE,
    ]  # fmt: skip
    text = "\n".join(json.dumps(line, ensure_ascii=True) for line in lines)
    text += '\n{"command": "case.note", "actor": {"id": "op-1", "role": "intake_operator"}, '
    text += '"case_number": "SN-20210601-000001", "note": "lone \\ud800 surrogate"}\n'
    before = last_position(seeded.database_url)
    result = seeded("apply", "-", "--json", stdin=text)
    rows = [json.loads(row) for row in result.stdout.splitlines()]
    assert result.returncode == 2, result.stderr
    assert [row.get("outcome") for row in rows[:-1]] == ["bad_input"] * 7 + ["ok", "bad_input"]
    fields = ["at", "at", "case_number", "description", "location.address", "distance_m", "holidays", None, "note"]
    for row, field in zip(rows, fields, strict=False):
        if field is not None:
            assert f"{field}:" in row["reason"], row
    assert rows[-1]["summary"] == {"accepted": 1, "refused": 0, "bad_input": 8, "conflict": 0, "unavailable": 0,
                                   "internal_error": 0}  # fmt: skip
    assert last_position(seeded.database_url) == before + 1  # the one good line's CaseReported


# -- HTTP ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The API server of the HTTP tests, over its own SQLite file."""
    with serving(f"sqlite:///{tmp_path_factory.mktemp('bounds') / 'gridcase.db'}") as running:
        yield running


BODY = {"channel": "hotline", "category": CATEGORY, "grid": GRID, "description": "井盖缺失"}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/cases", {**BODY, "description": "字" * 5001}, "description"),
        ("/api/v1/cases", {**BODY, "at": 1622509200}, "at"),
        ("/api/v1/cases", {**BODY, "at": "0001-01-01T00:00:00+08:00"}, "at"),
        ("/api/v1/cases", {**BODY, "case_number": "ZZZZZZ-00000000-000000"}, "case_number"),
        ("/api/v1/cases", {**BODY, "location": {"address": "永嘉路\u000712号"}}, "location.address"),
        ("/api/v1/cases", {**BODY, "reporter": {"phone": "139\n0000"}}, "reporter.phone"),
        ("/api/v1/patrols/PT-20210601-000001/end", {"distance_m": 10**20}, "distance_m"),
        ("/api/v1/cases/SN-20210601-000001/resolve", {"result": "修好", "evidence": ["p"] * 100_000}, "evidence"),
        ("/api/v1/cases/SN-20210601-000001/note", {"note": "n" * 4001}, "note"),
        ("/api/v1/cases/SN-20210601-000001/extend", {"reason": "r", "resolve_by": "9999-12-31T00:00:00Z"},
         "resolve_by"),
    ],
    ids=["long-description", "unix-at", "at-year-1", "case-number", "bell-in-address", "newline-in-phone",
         "distance-10e20", "100000-evidence", "long-note", "resolve-by-9999"],
)  # fmt: skip
def test_the_native_api_answers_422_naming_the_field_and_stores_nothing(
    api: Api, path: str, body: dict[str, Any], field: str
) -> None:
    who = "worker" if "/patrols/" in path else "operator" if path.endswith("/cases") else "dispatcher"
    before = api.events()
    with api.client(who) as client:
        response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_input"
    assert field in {problem["field"].removeprefix("body.") for problem in error["fields"]}, error
    assert api.events() == before


def test_open311_answers_400_for_a_control_character_in_an_address_and_its_listing_stays_readable(api: Api) -> None:
    before = api.events()
    form = {"service_code": CATEGORY, "description": "井盖缺失", "address_string": "永嘉路\x0112号",
            "attribute[grid]": GRID}  # fmt: skip
    with api.client("operator") as client:
        refused = client.post("/open311/v2/requests.json", data=form)
        assert refused.status_code == 400, refused.text
        [error] = refused.json()
        assert "address_string" in error["description"]  # Open311 names its own form field
        assert api.events() == before
        accepted = client.post("/open311/v2/requests.json", data={**form, "address_string": "永嘉路12号"})
        assert accepted.status_code == 201, accepted.text
        listing = client.get("/open311/v2/requests.xml")
    assert listing.status_code == 200
    ET.fromstring(listing.content)  # parses: no control character reached the public listing


@pytest.mark.parametrize("path", ["/api/v1/cases", "/api/v1/cases/SN-20210601-000001/note"])
def test_a_lone_surrogate_sent_as_a_json_escape_is_422_naming_the_field_not_a_500(api: Api, path: str) -> None:
    escaped = {**BODY, "description": "half \\ud800 an emoji"} if path.endswith("/cases") else {"note": "\\udfff"}
    field = "description" if path.endswith("/cases") else "note"
    raw = json.dumps(escaped, ensure_ascii=False).replace("\\\\u", "\\u").encode()  # the escape, not the character
    before = api.events()
    with api.client("operator" if field == "description" else "dispatcher") as client:
        response = client.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    fields = response.json()["error"]["fields"]
    problems = {problem["field"].removeprefix("body."): problem["message"] for problem in fields}
    assert "lone surrogate" in problems[field]
    assert api.events() == before
