"""Importing a city's export (issue 14): every anomaly kind under each policy, re-runs, and the report's figures.

The San Francisco sample is imported once for the module, into an engine whose zone is San Francisco's; every
figure of ``import report`` is then computed again straight from the CSV with plain Python, and the ordinary
intake and performance queries are asked for the same figures.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import statistics
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from adapters.exports import imported_refs, read_rows
from adapters.settings import Settings
from importing.profile import Anomaly, parse_profile, shipped_profile
from importing.run import Importer
from projections.imported_queries import case_number_of_ref, import_report
from projections.intake_queries import intake_figures
from projections.performance_queries import performance
from tests.support import make_app

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support import App

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sf311_cases_sample_10000.csv.gz"
SF = ZoneInfo("America/Los_Angeles")
NY = ZoneInfo("America/New_York")

HAND_PROFILE = """
name = "hand"
title = "hand-made export"
ref_prefix = "H-"
[city]
code = "HC"
name = "Hand City"
[columns]
id = "id"
opened = "opened"
closed = "closed"
status = "status"
deadline = "due"
agency = "agency"
category = "category"
channel = "source"
district = "district"
lat = "lat"
lon = "lon"
description = ["what"]
[times]
format = "iso"
zone = "America/New_York"
[channels.map]
phone = "hotline"
[places]
placeholders = [[40.0, -75.0]]
bounds = [39.0, 42.0, -76.0, -72.0]
"""
HEADER = ["id", "opened", "closed", "status", "due", "agency", "category", "source", "district", "lat", "lon", "what"]
GOOD = {
    "id": "1", "opened": "2021-03-01T10:00:00", "closed": "2021-03-02T10:00:00", "status": "closed",
    "due": "2021-03-05T10:00:00", "agency": "Streets", "category": "Potholes", "source": "phone", "district": "1",
    "lat": "40.7", "lon": "-74.0", "what": "a hole in the road",
}  # fmt: skip
#: Each kind, and how a good row is changed to show it.
ODD_ROWS: dict[Anomaly, dict[str, str]] = {
    Anomaly.CLOSED_BEFORE_OPENED: {"closed": "2021-03-01T09:00:00"},
    Anomaly.CLOSED_SAME_SECOND: {"closed": "2021-03-01T10:00:00"},
    Anomaly.CLOSED_AFTER_A_YEAR: {"closed": "2022-04-01T10:00:00", "due": "2022-05-01T10:00:00"},
    Anomaly.MISSING_TIME: {"opened": ""},
    Anomaly.UNPARSEABLE_TIME: {"opened": "yesterday afternoon"},
    Anomaly.STATUS_CLOSE_DISAGREE: {"closed": ""},
    Anomaly.UNKNOWN_STATUS: {"status": "pending"},
    Anomaly.MISSING_DEADLINE: {"due": ""},
    Anomaly.DEADLINE_NOT_AFTER_OPENED: {"due": "2021-02-28T10:00:00"},
    Anomaly.MISSING_COORDINATES: {"lat": "", "lon": ""},
    Anomaly.PLACEHOLDER_COORDINATES: {"lat": "40.0", "lon": "-75.0"},
    Anomaly.UNKNOWN_CATEGORY: {"category": ""},
    Anomaly.UNKNOWN_CHANNEL: {"source": "carrier pigeon"},
    Anomaly.MISSING_AGENCY: {"agency": ""},
    Anomaly.MISSING_ID: {"id": ""},
}


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


def import_file(app: App, profile_text: str, path: Path, batch_rows: int = 500) -> Any:
    profile = parse_profile(profile_text)
    importer = Importer(app.service, profile, imported=imported_refs(app.reader, profile.name), batch_rows=batch_rows)
    return importer.run(read_rows(path, profile.format))


def reported(app: App) -> dict[str, dict[str, Any]]:
    """The external reference of every stored report, by ref: its flags and the case's stored facts."""
    found = {}
    for notification in app.reader.read(0, 1_000_000):
        if notification.topic.endswith("CaseReported"):
            data = json.loads(notification.state)
            if data.get("external"):
                found[data["external"]["ref"]] = data
    return found


@pytest.fixture
def hand_app(tmp_path: Path) -> Iterator[App]:
    app = make_app(Settings(database_url=f"sqlite:///{tmp_path / 'g.db'}", timezone="America/New_York"))
    yield app
    app.close()


@pytest.fixture
def any_app(database_url: str) -> Iterator[App]:
    """A fresh database on SQLite and on PostgreSQL in turn."""
    app = make_app(Settings(database_url=database_url, timezone="America/New_York"))
    yield app
    app.close()


def test_a_good_row_becomes_a_closed_case_with_the_files_times_names_and_deadline(any_app: App,
                                                                                   tmp_path: Path) -> None:  # fmt: skip
    hand_app = any_app
    done = import_file(hand_app, HAND_PROFILE, write_csv(tmp_path / "x.csv", [GOOD]))
    assert (done.rows, done.imported, done.skipped, done.refused) == (1, 1, 0, [])
    assert {kind: k.count for kind, k in done.anomalies.items() if k.count} == {}
    assert set(done.anomalies) == {kind.value for kind in Anomaly}  # every kind is listed, found or not
    report = reported(hand_app)["H-1"]
    number = report["case_number"]
    assert number.startswith("SN-20210301-")  # the engine's own number, on the local day it occurred
    history = hand_app.service.history(number)
    assert [row["event"] for row in history] == ["CaseReported", "CaseAccepted", "CaseDispatched", "DispatchSigned",
                                                 "CaseResolved", "ResolutionVerified", "CaseClosed"]  # fmt: skip
    opened = datetime(2021, 3, 1, 10, tzinfo=NY)
    closed = datetime(2021, 3, 2, 10, tzinfo=NY)
    assert [datetime.fromisoformat(row["occurred_at"]) for row in history] == [opened] * 4 + [closed] * 3
    # report and dispatch as admin: only a migration keeps a reference and gives its own deadline
    assert [row["actor"]["role"] for row in history] == ["admin", "dispatcher", "admin", "department_handler",
                                                         "department_handler", "grid_worker", "dispatcher"]  # fmt: skip
    dispatched = history[2]["data"]
    assert datetime.fromisoformat(dispatched["resolve_by"]) == datetime(2021, 3, 5, 10, tzinfo=NY)
    assert dispatched["sla_policy_version"] == 0
    assert report["location"] == {"address": None, "lat": 40.7, "lon": -74.0}
    assert report["channel"] == "hotline"
    # Recorded now, by the import: not at the file's times.
    assert datetime.fromisoformat(history[0]["recorded_at"]) > datetime(2025, 1, 1, tzinfo=UTC)
    read = hand_app.engine.read_side()
    read.catch_up()
    with read.engine.connect() as connection:
        assert case_number_of_ref(connection, "H-1") == number
        assert case_number_of_ref(connection, "1") == number
        figures = import_report(connection, "H-")
    read.close()
    assert figures["by_agency"][0]["agency"] == "Streets"
    assert figures["by_category"][0]["category"] == "Potholes"
    assert figures["by_district"][0]["district"] == "District 1"
    assert figures["all"]["closed_by_deadline"] == {"numerator": 1, "denominator": 1, "rate": 1.0}
    assert figures["all"]["median_hours_to_close"] == 24.0


@pytest.mark.parametrize("policy", ["keep", "skip"])
@pytest.mark.parametrize("kind", list(ODD_ROWS))
def test_every_anomaly_kind_is_counted_with_its_line_and_follows_its_policy(
    hand_app: App, tmp_path: Path, kind: Anomaly, policy: str
) -> None:
    odd = {**GOOD, "id": "2", **ODD_ROWS[kind]}
    rows = [GOOD, odd, {**GOOD, "id": "3"}]
    profile = HAND_PROFILE + f'\n[anomalies]\n{kind.value} = "{policy}"\n'
    done = import_file(hand_app, profile, write_csv(tmp_path / "x.csv", rows))
    counted = done.anomalies[kind.value]
    assert counted.count == 1
    assert counted.lines == [3]  # the header is line 1
    stored = reported(hand_app)
    kept = policy == "keep" and kind is not Anomaly.MISSING_ID  # a row without an id cannot be kept
    assert counted.policy == ("skip" if kind is Anomaly.MISSING_ID else policy)
    assert done.rows == 3
    assert done.refused == []
    if kept:
        assert (done.imported, done.skipped) == (3, 0)
        assert kind.value in stored["H-2"]["external"]["flags"]
    else:
        assert (done.imported, done.skipped, counted.skipped) == (2, 1, 1)
        assert "H-2" not in stored
    assert {"H-1", "H-3"} <= set(stored)


def test_kept_anomalies_are_kept_as_the_documentation_says(hand_app: App, tmp_path: Path) -> None:
    rows = [{**GOOD, "id": str(10 + i), **change} for i, change in enumerate(ODD_ROWS.values())]
    import_file(hand_app, HAND_PROFILE, write_csv(tmp_path / "x.csv", rows))
    by_kind = {kind: reported(hand_app).get(f"H-{10 + i}") for i, kind in enumerate(ODD_ROWS)}
    opened = datetime(2021, 3, 1, 10, tzinfo=NY)

    def events(kind: Anomaly) -> list[dict[str, Any]]:
        found = by_kind[kind]
        assert found is not None
        return hand_app.service.history(found["case_number"])

    early = events(Anomaly.CLOSED_BEFORE_OPENED)
    assert datetime.fromisoformat(early[-1]["occurred_at"]) == opened  # closes when it opened: time order holds
    missing = events(Anomaly.MISSING_TIME)
    assert datetime.fromisoformat(missing[0]["occurred_at"]) == datetime(2021, 3, 2, 10, tzinfo=NY)
    assert events(Anomaly.STATUS_CLOSE_DISAGREE)[-1]["event"] == "DispatchSigned"  # kept open
    assert by_kind[Anomaly.PLACEHOLDER_COORDINATES]["location"]["lat"] is None  # type: ignore[index]
    undue = events(Anomaly.MISSING_DEADLINE)[2]["data"]["resolve_by"]
    assert undue.startswith("2099-12-31")  # no deadline: never overdue
    assert by_kind[Anomaly.MISSING_ID] is None


def test_duplicate_ids_are_kept_under_their_own_reference_or_skipped(hand_app: App, tmp_path: Path) -> None:
    rows = [GOOD, {**GOOD, "what": "the same id again"}]
    path = write_csv(tmp_path / "x.csv", rows)
    done = import_file(hand_app, HAND_PROFILE, path)
    assert done.anomalies["duplicate_id"].lines == [3]
    assert set(reported(hand_app)) == {"H-1", "H-1#2"}
    skipping = HAND_PROFILE + '\n[anomalies]\nduplicate_id = "skip"\n'
    app = make_app(Settings(database_url=f"sqlite:///{tmp_path / 'other.db'}", timezone="America/New_York"))
    done = import_file(app, skipping, path)
    assert (done.imported, done.skipped) == (1, 1)
    assert set(reported(app)) == {"H-1"}
    app.close()


def test_importing_twice_adds_nothing(any_app: App, tmp_path: Path) -> None:
    hand_app = any_app
    rows = [{**GOOD, "id": str(i), "district": str(i % 3)} for i in range(1, 40)]
    path = write_csv(tmp_path / "x.csv", rows)
    first = import_file(hand_app, HAND_PROFILE, path, batch_rows=7)
    last = hand_app.reader.last_position()
    again = import_file(hand_app, HAND_PROFILE, path, batch_rows=7)
    assert first.imported == 39
    assert (again.imported, again.already_imported, again.events) == (0, 39, 0)
    assert hand_app.reader.last_position() == last


def test_a_refused_row_is_named_and_the_rest_of_its_batch_goes_in(hand_app: App, tmp_path: Path) -> None:
    # A category mapped to a catalogue code that does not exist: the domain refuses the report (ReferenceMustExist).
    profile = HAND_PROFILE.replace("[channels.map]", '[categories.map]\n"Ghosts" = "no.such.category"\n[channels.map]')
    rows = [GOOD, {**GOOD, "id": "2", "category": "Ghosts"}, {**GOOD, "id": "3"}]
    done = import_file(hand_app, profile, write_csv(tmp_path / "x.csv", rows))
    assert done.imported == 2
    assert [(r["line"], r["ref"]) for r in done.refused] == [(3, "H-2")]
    assert "no.such.category" in done.refused[0]["error"]
    assert set(reported(hand_app)) == {"H-1", "H-3"}


# -- the San Francisco sample -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, dict[str, Any], Any]]:
    folder = tmp_path_factory.mktemp("sf")
    app = make_app(Settings(database_url=f"sqlite:///{folder / 'g.db'}", timezone="America/Los_Angeles"))
    profile = shipped_profile("sf311")
    assert profile is not None
    done = Importer(app.service, profile, imported=set()).run(read_rows(SAMPLE, "csv"))
    read = app.engine.read_side()
    read.catch_up()
    with read.engine.connect() as connection:
        report = import_report(connection, "SF311-")
    yield app, report, read
    read.close()
    app.close()
    assert done.imported == 10_000


def from_the_csv() -> dict[str, dict[str, dict[str, Any]]]:
    """The report's figures from the file, with csv, datetime and statistics only."""
    groups: dict[str, defaultdict[str, list[tuple[float | None, bool]]]] = {
        g: defaultdict(list) for g in ("all", "category", "agency", "district", "month")
    }
    closures: defaultdict[str, int] = defaultdict(int)
    with gzip.open(SAMPLE, "rt", encoding="utf-8", newline="") as stream:
        for row in csv.DictReader(stream):
            opened = datetime.strptime(row["Opened"], "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=SF)
            hours, early = None, False
            if row["Status"] == "Closed" and row["Closed"]:
                closed = datetime.strptime(row["Closed"], "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=SF)
                hours = (closed.astimezone(UTC) - opened.astimezone(UTC)).total_seconds() / 3600
                early = hours < 0
                closures[max(closed, opened).strftime("%Y-%m")] += 1
            district = row["Supervisor.District"]
            keys = {
                "all": "all", "category": row["Category"], "agency": row["Responsible.Agency"],
                "month": opened.strftime("%Y-%m"),
                "district": "Supervisor District 0 (outside the districts)" if district == "0"
                else f"Supervisor District {district}",
            }  # fmt: skip
            for grouping, key in keys.items():
                groups[grouping][key].append((hours, early))

    def nearest_rank_p90(values: list[float]) -> float:
        return sorted(values)[math.ceil(0.9 * len(values)) - 1]

    def figures(cases: list[tuple[float | None, bool]]) -> dict[str, Any]:
        every = [max(h, 0.0) for h, _ in cases if h is not None]  # kept, a closed-before-opened case takes 0 h
        valid = [h for h, early in cases if h is not None and not early]
        return {
            "requests": len(cases), "closed": len(every), "open": len(cases) - len(every),
            "median_hours_to_close": round(statistics.median(every), 2) if every else None,
            "p90_hours_to_close": round(nearest_rank_p90(every), 2) if every else None,
            "median_hours_to_close_without_closed_before_opened": round(statistics.median(valid), 2) if valid else None,
            "p90_hours_to_close_without_closed_before_opened": round(nearest_rank_p90(valid), 2) if valid else None,
            # The sample has no deadline column: no share, not zero.
            "closed_by_deadline": {"numerator": 0, "denominator": 0, "rate": None},
        }

    expected = {grouping: {key: figures(cases) for key, cases in found.items()} for grouping, found in groups.items()}
    for month, count in closures.items():
        expected["month"].setdefault(month, figures([]))["closures"] = count
    for figures_of_month in expected["month"].values():
        figures_of_month.setdefault("closures", 0)
    return expected


def test_every_figure_of_the_report_equals_the_figure_computed_from_the_csv(sf: tuple[App, dict[str, Any], Any],
                                                                           ) -> None:
    _, report, _ = sf
    expected = from_the_csv()
    assert report["all"] == expected["all"]["all"]
    assert report["all"]["requests"] == 10_000
    for grouping in ("category", "agency", "district", "month"):
        got = {entry[grouping]: {k: v for k, v in entry.items() if k not in {grouping, "code"}}
               for entry in report[f"by_{grouping}"]}  # fmt: skip
        assert got == expected[grouping], grouping


def test_intake_and_performance_give_the_same_figures_for_the_imported_months(
    sf: tuple[App, dict[str, Any], Any],
) -> None:
    _, report, read = sf
    codes = {g: {e["code"]: e for e in report[f"by_{g}"]} for g in ("category", "agency", "district")}
    received: dict[str, defaultdict[str, int]] = {"category": defaultdict(int), "street": defaultdict(int)}
    dispatched: defaultdict[str, int] = defaultdict(int)
    with read.engine.connect() as connection:
        for month in report["by_month"]:
            period = month["month"]
            per_category = intake_figures(connection, "category", period)
            assert sum(row["received"] for row in per_category) == month["requests"], period
            for by in ("category", "street"):
                for row in intake_figures(connection, by, period):  # type: ignore[arg-type]
                    received[by][row[by]] += row["received"]
            closed = performance(connection, "district", period)
            assert closed[0]["closed"] == month["closures"], period
            for row in performance(connection, "department", period):
                dispatched[row["subject"]] += row["dispatched"]
    assert {code: e["requests"] for code, e in codes["category"].items()} == dict(received["category"])
    assert {code: e["requests"] for code, e in codes["district"].items()} == dict(received["street"])
    assert {code: e["requests"] for code, e in codes["agency"].items()} == dict(dispatched)


def test_the_sample_finds_the_messes_the_city_has(sf: tuple[App, dict[str, Any], Any]) -> None:
    app, _, read = sf
    with read.engine.connect() as connection:
        number = case_number_of_ref(connection, "SF311-3600298")
    assert number is not None
    assert app.service.case(number).state == "in_progress"  # an open request: accepted, referred, signed for
    flags = defaultdict(int)
    for data in reported(app).values():
        for flag in data["external"]["flags"]:
            flags[flag] += 1
    assert flags["closed_before_opened"] == 129
    assert flags["closed_after_a_year"] == 195
    assert flags["missing_coordinates"] == 24
    assert flags["missing_deadline"] == 10_000


# -- the Open311 GeoReport v2 profile ---------------------------------------------------------------------

GEOREPORT = [
    {"service_request_id": "638344", "status": "closed", "status_notes": "Pothole filled", "service_name": "Pothole",
     "service_code": "006", "description": "A large pothole at the corner.", "agency_responsible": "Streets",
     "requested_datetime": "2010-04-14T06:37:38-08:00", "updated_datetime": "2010-04-15T06:37:38-08:00",
     "expected_datetime": "2010-04-16T06:37:38-08:00", "address": "8TH AVE and JUDAH ST", "zipcode": "94122",
     "lat": "37.762221815", "long": "-122.4651145"},
    {"service_request_id": "638349", "status": "open", "status_notes": "", "service_name": "Graffiti",
     "service_code": "007", "description": "", "agency_responsible": "Parks",
     "requested_datetime": "2010-04-19T06:37:38-08:00", "updated_datetime": "2010-04-19T07:00:00-08:00",
     "expected_datetime": "2010-04-25T06:37:38-08:00", "address": "", "zipcode": "94110",
     "lat": "37.7", "long": "-122.4"},
    {"service_request_id": "638350", "status": "closed", "status_notes": "", "service_name": "Pothole",
     "service_code": "006", "description": "Late", "agency_responsible": "Streets",
     "requested_datetime": "2010-04-20T09:00:00Z", "updated_datetime": "2010-04-30T09:00:00Z",
     "expected_datetime": "2010-04-22T09:00:00Z", "address": "", "zipcode": "94122", "lat": "", "long": ""},
]  # fmt: skip


@pytest.mark.parametrize("form", ["csv", "json"])
def test_the_open311_profile_reads_georeport_v2_exports_as_csv_and_json(tmp_path: Path, form: str) -> None:
    app = make_app(Settings(database_url=f"sqlite:///{tmp_path / 'g.db'}", timezone="America/Los_Angeles"))
    path = tmp_path / f"requests.{form}"
    if form == "json":
        path.write_text(json.dumps(GEOREPORT), encoding="utf-8")
    else:
        with path.open("w", encoding="utf-8", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(GEOREPORT[0]))
            writer.writeheader()
            writer.writerows(GEOREPORT)
    profile = shipped_profile("open311")
    assert profile is not None
    profile = profile.model_copy(update={"format": form})
    done = Importer(app.service, profile, imported=set()).run(read_rows(path, form))
    assert (done.imported, done.refused) == (3, [])
    # An open request's updated_datetime is its last update, not a closure: no disagreement.
    where = 4 if form == "csv" else 3  # the CSV line (the header is line 1), or the JSON array's item number
    assert {kind: k.lines for kind, k in done.anomalies.items() if k.count} == {"missing_coordinates": [where]}
    stored = reported(app)
    assert set(stored) == {"O311-638344", "O311-638349", "O311-638350"}
    assert stored["O311-638349"]["description"] == "Graffiti"  # an empty description: the service's name
    first = app.service.history(stored["O311-638344"]["case_number"])
    assert datetime.fromisoformat(first[-1]["occurred_at"]) == datetime(2010, 4, 15, 14, 37, 38, tzinfo=UTC)
    assert first[-1]["event"] == "CaseClosed"
    assert first[4]["data"]["result"] == "Pothole filled"
    read = app.engine.read_side()
    read.catch_up()
    with read.engine.connect() as connection:
        report = import_report(connection, "O311-")
    read.close()
    app.close()
    assert report["all"]["closed_by_deadline"] == {"numerator": 1, "denominator": 3, "rate": 0.3333}
    assert (report["all"]["closed"], report["all"]["open"]) == (2, 1)
    assert [e["district"] for e in report["by_district"]] == ["ZIP 94110", "ZIP 94122"]
    assert report["all"]["median_hours_to_close"] == statistics.median([24.0, 240.0])


def test_control_characters_of_the_file_become_spaces_and_one_line_fields_lose_their_breaks(
    hand_app: App, tmp_path: Path
) -> None:
    row = {**GOOD, "category": "Pot\tholes\x07", "agency": "Streets\nand Roads", "what": "line one\nline two\x07"}
    done = import_file(hand_app, HAND_PROFILE, write_csv(tmp_path / "x.csv", [row]))
    assert (done.imported, done.refused) == (1, [])
    stored = reported(hand_app)["H-1"]
    assert stored["description"] == "line one\nline two"
    read = hand_app.engine.read_side()
    read.catch_up()
    with read.engine.connect() as connection:
        figures = import_report(connection, "H-")
    read.close()
    assert figures["by_category"][0]["category"] == "Pot holes"
    assert figures["by_agency"][0]["agency"] == "Streets and Roads"
