"""Bounds on every command and event field (issue 13): one place, the same answer for every entry point.

Pure: the command models as ``gridcase apply`` and the HTTP API validate them, the aggregates deciding
events, stored events read back, and the schemas generated from the models.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from adapters.kafka.schemas import EventType, event_schema
from adapters.schemas import command_schema
from domain import bounds
from domain.base import ActorRef, Role
from domain.bounds import period_days
from domain.case import Case, Channel, HandlerKind, HandlerRef, Level, Location, Urgency
from domain.commands import COMMANDS, EndPatrol
from domain.errors import CommandRefused
from domain.numbers import old_number_problem
from domain.patrol import CheckpointKind, Patrol

T0 = datetime(2021, 6, 1, 1, 0, tzinfo=UTC)
OPERATOR = {"id": "op-1", "role": "intake_operator"}
ADMIN = {"id": "admin", "role": "admin"}
WORKER = ActorRef(id="W001", role=Role.GRID_WORKER)
REPORT = {"command": "case.report", "actor": OPERATOR, "channel": "hotline", "category": "facility.manhole",
          "grid": "SN01-C01-G001", "description": "井盖缺失 manhole cover missing"}  # fmt: skip
NUMBER = "SN-20210601-000001"
PATROL = "PT-20210601-000001"


def problems(fields: dict[str, Any]) -> list[tuple[str, str]]:
    """Each wrong field (without the command's tag) and its message; [] when the command is valid."""
    try:
        COMMANDS.validate_python(fields)
    except ValidationError as error:
        return [(".".join(str(p) for p in e["loc"][1:]), e["msg"]) for e in error.errors()]
    return []


def wrong_fields(fields: dict[str, Any]) -> set[str]:
    return {field for field, _ in problems(fields)}


# -- moments and days ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("at", [1622509200, 1622509200.0, "1622509200", True, "2021-06-01", "next tuesday"])
def test_at_as_a_unix_number_or_any_non_iso_text_is_refused_naming_at(at: object) -> None:
    found = problems({**REPORT, "at": at})
    assert [field for field, _ in found] == ["at"]
    assert "ISO 8601" in found[0][1]


@pytest.mark.parametrize("at", ["2021-06-01T09:00:00+08:00", "2021-06-01 01:00:00Z", T0])
def test_at_as_iso_text_or_an_aware_datetime_is_accepted(at: object) -> None:
    command = COMMANDS.validate_python({**REPORT, "at": at})
    assert command.at is not None
    assert command.at.astimezone(UTC) == T0


@pytest.mark.parametrize(
    "at", ["0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-08:00", "1969-12-31T23:59:59Z", "2100-01-01T00:00:00Z"]
)
def test_moments_outside_the_window_are_refused_without_overflowing(at: str) -> None:
    assert problems({**REPORT, "at": at}) == [("at", "is outside 1970-01-01 … 2099-12-31")]
    extend = {"command": "case.extend", "actor": ADMIN, "case_number": NUMBER, "reason": "later", "resolve_by": at}
    assert wrong_fields(extend) == {"resolve_by"}


def test_the_window_edges_are_inside() -> None:
    assert problems({**REPORT, "at": "1970-01-01T00:00:00Z"}) == []
    assert problems({**REPORT, "at": "2099-12-31T23:59:59Z"}) == []


@pytest.mark.parametrize("start", ["0001-01-01", "2100-01-01", 20210101, "2021-06-01T00:00:00", "2021-02-30"])
def test_registry_days_are_iso_dates_inside_the_window(start: object) -> None:
    assign = {"command": "registry.assign", "actor": ADMIN, "worker": "W001", "grid": "G", "start": start}
    assert wrong_fields(assign) == {"start"}
    unassign = {"command": "registry.unassign", "actor": ADMIN, "worker": "W001", "grid": "G", "end": start}
    assert wrong_fields(unassign) == {"end"}
    calendar = {"command": "registry.calendar", "actor": ADMIN, "version": 1, "holidays": ["2021-10-01", start]}
    assert wrong_fields(calendar) == {"holidays.1"}


# -- lengths of texts and lists ----------------------------------------------------------------------------------

CASE = {"actor": ADMIN, "case_number": NUMBER}
TEXTS = [
    ({**REPORT}, "description", bounds.DESCRIPTION_MAX),
    ({"command": "patrol.hazard", "actor": ADMIN, "patrol_number": PATROL, "category": "c"}, "description",
     bounds.DESCRIPTION_MAX),
    ({"command": "case.reject", **CASE}, "reason", bounds.REASON_MAX),
    ({"command": "case.return", **CASE}, "reason", bounds.REASON_MAX),
    ({"command": "case.escalate", **CASE, "to_level": "street"}, "reason", bounds.REASON_MAX),
    ({"command": "case.extend", **CASE, "resolve_by": "2021-06-09T00:00:00Z"}, "reason", bounds.REASON_MAX),
    ({"command": "case.suspend", **CASE}, "reason", bounds.REASON_MAX),
    ({"command": "case.reject-resolution", **CASE}, "reason", bounds.REASON_MAX),
    ({"command": "case.reopen", **CASE}, "reason", bounds.REASON_MAX),
    ({"command": "case.note", **CASE}, "note", bounds.TEXT_MAX),
    ({"command": "case.resolve", **CASE}, "result", bounds.TEXT_MAX),
    ({"command": "patrol.checkpoint", "actor": ADMIN, "patrol_number": PATROL, "kind": "household_visit",
      "target": "H1"}, "notes", bounds.TEXT_MAX),
]  # fmt: skip


@pytest.mark.parametrize(("command", "field", "most"), TEXTS, ids=lambda v: v if isinstance(v, str) else None)
def test_every_free_text_has_a_length_and_the_longest_allowed_passes(
    command: dict[str, Any], field: str, most: int
) -> None:
    assert problems({**command, field: "字" * most}) == []
    [(wrong, message)] = problems({**command, field: "字" * (most + 1)})
    assert wrong == field
    assert f"at most {most}" in message.replace(",", "")


@pytest.mark.parametrize(("command", "field", "most"), TEXTS, ids=lambda v: v if isinstance(v, str) else None)
def test_free_texts_keep_line_breaks_and_tabs_but_refuse_other_controls_and_lone_surrogates(
    command: dict[str, Any], field: str, most: int
) -> None:
    assert most > 0
    assert problems({**command, field: "第一行\n\t第二行 line two"}) == []
    assert wrong_fields({**command, field: "bell\x07"}) == {field}
    assert wrong_fields({**command, field: "esc\x1b[31m"}) == {field}
    assert wrong_fields({**command, field: "half \ud83d of an emoji"}) == {field}
    if field != "notes":  # pydantic strips the notes' whitespace first, and refuses a lone surrogate itself
        assert problems({**command, field: "half \ud83d"}) == [(field, "has a lone surrogate (U+D83D) at character 6")]


ONE_LINE = [
    ({**REPORT, "location": {"address": "{}"}}, "location.address"),
    ({**REPORT, "reporter": {"name": "{}"}}, "reporter.name"),
    ({**REPORT, "reporter": {"phone": "{}"}}, "reporter.phone"),
    ({**REPORT, "reporter": {"id_number": "{}"}}, "reporter.id_number"),
    ({**REPORT, "grid": "{}"}, "grid"),
    ({**REPORT, "category": "{}"}, "category"),
    ({**REPORT, "actor": {"id": "{}", "role": "intake_operator"}}, "actor.id"),
    ({"command": "registry.worker", "actor": ADMIN, "code": "W9", "kind": "full_time", "name": "{}"}, "name"),
    ({"command": "registry.org-unit", "actor": ADMIN, "code": "{}", "kind": "district", "name": "N"}, "code"),
    ({"command": "case.dispatch", **CASE, "handler": {"kind": "department", "id": "{}"}}, "handler.id"),
    ({"command": "case.resolve", **CASE, "result": "r", "evidence": ["{}"]}, "evidence.0"),
]


def _with(template: Any, text: str) -> Any:
    if isinstance(template, dict):
        return {key: _with(value, text) for key, value in template.items()}
    if isinstance(template, list):
        return [_with(value, text) for value in template]
    return text if template == "{}" else template


@pytest.mark.parametrize(("command", "field"), ONE_LINE, ids=[field for _, field in ONE_LINE])
def test_single_line_fields_refuse_every_control_character_and_lone_surrogates(
    command: dict[str, Any], field: str
) -> None:
    assert problems(_with(command, "永嘉路12号 No. 12")) == []
    for bad in ("two\nlines", "tab\there", "nul\x00!", "del\x7f!", "c1\x85!", "\udc00"):
        assert wrong_fields(_with(command, bad)) == {field}, repr(bad)


def test_evidence_has_at_most_so_many_items_each_one_line_of_bounded_length() -> None:
    resolve = {"command": "case.resolve", **CASE, "result": "fixed"}
    assert problems({**resolve, "evidence": ["photo"] * bounds.EVIDENCE_ITEMS_MAX}) == []
    assert problems({**resolve, "evidence": ["photo"] * 100_000}) == [("evidence", "has 100,000 items; at most 20")]
    assert wrong_fields({**resolve, "evidence": ["x" * (bounds.EVIDENCE_ITEM_MAX + 1)]}) == {"evidence.0"}


def test_calendars_and_policies_have_at_most_so_many_items() -> None:
    days = [(date(1970, 1, 1) + timedelta(days=n)).isoformat() for n in range(bounds.CALENDAR_DAYS_MAX + 1)]
    calendar = {"command": "registry.calendar", "actor": ADMIN, "version": 1}
    assert problems({**calendar, "holidays": days[:-1]}) == []
    assert wrong_fields({**calendar, "holidays": days}) == {"holidays"}
    assert wrong_fields({**calendar, "workdays": days}) == {"workdays"}
    rule = {"sla_class": "A", "urgency": "normal", "sign_within": {"amount": 1, "unit": "hours"},
            "resolve_within": {"amount": 2, "unit": "hours"}}  # fmt: skip
    policy = {"command": "registry.sla-policy", "actor": ADMIN, "version": 1, "rules": [rule] * 7}
    assert wrong_fields(policy) == {"rules"}


# -- numbers -----------------------------------------------------------------------------------------------------


def test_a_patrols_distance_is_a_plausible_day_of_walking() -> None:
    end = {"command": "patrol.end", "actor": ADMIN, "patrol_number": PATROL}
    assert problems({**end, "distance_m": bounds.DISTANCE_M_MAX}) == []
    assert problems({**end, "distance_m": 10**20}) == [
        ("distance_m", "is 100,000,000,000,000,000,000; at most 200,000")
    ]
    assert wrong_fields({**end, "distance_m": -1}) == {"distance_m"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"location": {"lat": 91, "lon": 0}}, "location.lat"),
        ({"location": {"lat": 0, "lon": -181}}, "location.lon"),
        ({"location": {"lat": float("nan"), "lon": 0}}, "location.lat"),
        ({"location": {"lat": 0, "lon": float("inf")}}, "location.lon"),
    ],
)
def test_coordinates_are_on_the_globe(fields: dict[str, Any], field: str) -> None:
    assert wrong_fields({**REPORT, **fields}) == {field}


@pytest.mark.parametrize("field", ["households", "population", "elderly"])
def test_counts_and_versions_fit_a_32_bit_column(field: str) -> None:
    figures = {"command": "registry.grid-figures", "actor": ADMIN, "grid": "G", "households": 1, "population": 1}
    assert wrong_fields({**figures, field: 2**31}) == {field}
    policy = {"command": "registry.calendar", "actor": ADMIN, "version": 2**31}
    assert wrong_fields(policy) == {"version"}


# -- case numbers ------------------------------------------------------------------------------------------------


def test_intake_cannot_choose_a_case_number() -> None:
    assert problems({**REPORT, "case_number": "ZZZZZZ-00000000-000000"}) == [
        ("case_number", "Extra inputs are not permitted")
    ]


def test_case_numbers_are_ascii_digits_only() -> None:
    accept = {"command": "case.accept", "actor": ADMIN}
    assert problems({**accept, "case_number": NUMBER}) == []
    assert wrong_fields({**accept, "case_number": "SN-٢٠٢١٠٦٠١-000001"}) == {"case_number"}


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        ("SN-20210601-000001", None),
        ("SN-19700101-999999", None),
        ("ZZZZZZ-00000000-000000", "does not carry the district's prefix SN"),
        ("PT-20210601-000001", "does not carry the district's prefix SN"),
        ("SN-20210230-000001", "20210230 is not a real day"),
        ("SN-00010101-000001", "its day is outside 1970-01-01"),
        ("SN-21000101-000001", "its day is outside 1970-01-01"),
        ("SN-20210601-000000", "sequences start at 000001"),
        ("SN-2021061-000001", "is not PREFIX-YYYYMMDD-NNNNNN"),
        ("SN-20210601-00000a", "is not PREFIX-YYYYMMDD-NNNNNN"),
    ],
)
def test_an_old_number_to_keep_has_its_own_format_check(number: str, problem: str | None) -> None:
    found = old_number_problem(number, "SN")
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


# -- decided events and stored events ----------------------------------------------------------------------------


def _case() -> Case:
    case = Case.report(case_number=NUMBER, channel=Channel.HOTLINE, category="facility.manhole", grid="G",
                       community="C", street="S", location=Location(), description="井盖缺失", reporter=None,
                       urgency=Urgency.NORMAL, patrol_id=None, actor=ActorRef(id="op", role=Role.INTAKE_OPERATOR),
                       at=T0)  # fmt: skip
    case.accept(ActorRef(id="d", role=Role.DISPATCHER), Level.COMMUNITY, T0)
    return case


def test_an_event_the_domain_decides_is_held_to_the_bounds_too() -> None:
    case = _case()
    dispatcher = ActorRef(id="d", role=Role.DISPATCHER)
    handler = HandlerRef(kind=HandlerKind.WORKER, id="W001")
    beyond = datetime(2100, 1, 2, tzinfo=UTC)  # a deadline a policy could compute past the window
    with pytest.raises(ValidationError) as refused:
        case.dispatch(dispatcher, handler, T0 + timedelta(hours=1), beyond, 1, 0, T0)
    assert [e["loc"] for e in refused.value.errors()] == [("resolve_by",)]
    assert case.version == 2  # nothing decided
    with pytest.raises(ValidationError):
        Patrol.PatrolEnded(originator_id=uuid4(), originator_version=3, timestamp=T0, actor=WORKER, occurred_at=T0,
                           duration_seconds=10, distance_m=10**20, checkpoints=0)  # fmt: skip


def test_a_stored_event_from_before_the_bounds_is_read_back_as_it_was() -> None:
    stored = {"originator_id": uuid4(), "originator_version": 3, "timestamp": "2021-06-01T01:00:00Z",
              "actor": {"id": "W001", "role": "grid_worker"}, "occurred_at": "2021-06-01T01:00:00Z",
              "duration_seconds": 2**40, "distance_m": 10**20, "checkpoints": 10**9}  # fmt: skip
    ended = Patrol.PatrolEnded.model_validate(stored)
    assert (ended.distance_m, ended.duration_seconds) == (10**20, 2**40)
    reported = Case.CaseReported.model_validate({
        "originator_id": uuid4(), "originator_version": 1, "timestamp": "2021-06-01T01:00:00Z",
        "originator_topic": "domain.case:Case", "actor": {"id": "op", "role": "intake_operator"},
        "occurred_at": "0001-01-01T00:00:00Z", "case_number": NUMBER, "channel": "hotline",
        "category": "c", "grid": "G", "community": "C", "street": "S", "urgency": "normal",
        "location": {"address": "a\x01b"}, "description": "x\ud800" * 3_000_000,
    })  # fmt: skip
    assert len(reported.description) == 6_000_000
    assert reported.location.address == "a\x01b"


def test_a_patrol_refuses_what_would_break_its_ended_events_bounds() -> None:
    patrol = Patrol.start(patrol_number=PATROL, worker="W001", grid="G", community="C", street="S", actor=WORKER,
                          at=T0)  # fmt: skip
    with pytest.raises(CommandRefused, match="PatrolLastsAtMostAYear"):
        patrol.end(WORKER, 1000, T0 + timedelta(days=367))
    for minute in range(bounds.CHECKPOINTS_MAX):
        patrol.log_checkpoint(WORKER, CheckpointKind.PLACE_INSPECTION, f"P{minute}", "", False,
                              T0 + timedelta(seconds=minute))  # fmt: skip
    with pytest.raises(CommandRefused, match="PatrolHasAtMostSoManyCheckpoints"):
        patrol.log_checkpoint(WORKER, CheckpointKind.PLACE_INSPECTION, "one more", "", False, T0 + timedelta(hours=1))
    patrol.end(WORKER, 5000, T0 + timedelta(hours=2))
    assert patrol.checkpoints == bounds.CHECKPOINTS_MAX


# -- the schemas show the bounds ------------------------------------------------------------------------------------


def _definition(name: str) -> dict[str, Any]:
    definitions: dict[str, Any] = command_schema()["$defs"]
    return definitions[name]["properties"]


def test_the_command_schema_shows_every_bound_as_a_constraint() -> None:
    report = _definition("ReportCase")
    assert report["description"]["maxLength"] == bounds.DESCRIPTION_MAX
    assert "case_number" not in report
    at = report["at"]["anyOf"][0]
    assert at["format"] == "date-time"
    assert at["pattern"] == "^(19[7-9][0-9]|20[0-9][0-9])-"
    assert "Unix" in at["description"]
    end = _definition("EndPatrol")["distance_m"]
    assert (end["minimum"], end["maximum"]) == (0, bounds.DISTANCE_M_MAX)
    resolve = _definition("ResolveCase")
    assert resolve["evidence"]["maxItems"] == bounds.EVIDENCE_ITEMS_MAX
    assert resolve["evidence"]["items"]["maxLength"] == bounds.EVIDENCE_ITEM_MAX
    assert _definition("RejectCase")["reason"]["maxLength"] == bounds.REASON_MAX
    assert _definition("AssignWorker")["start"]["format"] == "date"
    assert _definition("PublishCalendar")["holidays"]["maxItems"] == bounds.CALENDAR_DAYS_MAX
    address = _definition("Location")["address"]["anyOf"][0]
    assert address["maxLength"] == bounds.ADDRESS_MAX
    assert address["pattern"] == "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"


def test_the_published_event_schemas_describe_the_bounds_without_refusing_older_events() -> None:
    schema = event_schema(EventType.of(Patrol.PatrolEnded))
    distance = schema["properties"]["distance_m"]
    assert "maximum" not in distance  # events published before the bound may be larger
    assert "at most 200000" in distance["description"]
    reported = event_schema(EventType.of(Case.CaseReported))["properties"]["description"]
    assert "maxLength" not in reported
    assert f"at most {bounds.DESCRIPTION_MAX} characters" in reported["description"]


def test_an_end_patrol_command_keeps_its_default_distance() -> None:
    assert EndPatrol.model_validate({"actor": ADMIN, "patrol_number": PATROL}).distance_m == 0


@pytest.mark.parametrize(
    ("period", "problem"),
    [("2021-13", "not a real month"), ("2021-00", "not a real month"), ("2021-06-00", "not a real day"),
     ("2021-02-30", "not a real day"), ("0001", "outside"), ("9999-12", "outside"), ("2021-6", "is not YYYY")],
)  # fmt: skip
def test_a_period_is_a_real_year_month_or_day_inside_the_window(period: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        period_days(period)


def test_a_period_covers_its_local_days() -> None:
    assert period_days("2021") == (date(2021, 1, 1), date(2022, 1, 1))
    assert period_days("2021-12") == (date(2021, 12, 1), date(2022, 1, 1))
    assert period_days("2024-02-29") == (date(2024, 2, 29), date(2024, 3, 1))
