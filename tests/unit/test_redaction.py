"""What a log may say of an error (domain.redaction) and the structlog last line of defence (adapters.logging)."""

from __future__ import annotations

import io
import json
from datetime import date

import pydantic
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from adapters.logging import WITHHELD, configure_logging, withheld
from domain.errors import UnknownReference
from domain.redaction import describe_error, mask_contacts, safe_traceback

#: A phone and a name, named so that the line of code that uses them (in a traceback) does not spell them out.
PHONE, NAME = "13912345678", "欧阳明华"
mobiles = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)
id_numbers = st.from_regex(r"[1-6][0-9]{16}[0-9X]", fullmatch=True)
around = st.sampled_from(["请回电", "call me on", "电话：", "", "井盖丢了，", "tel."])


@given(mobiles, id_numbers, around, around)
def test_phone_and_id_numbers_in_chinese_or_english_text_are_masked(
    mobile: str, id_number: str, before: str, after: str
) -> None:
    masked = mask_contacts(f"{before}{mobile} {after} {id_number}。")
    assert mobile not in masked
    assert id_number not in masked
    assert "****" in masked or "[ID number]" in masked


@given(st.dates(date(2000, 1, 1), date(2099, 12, 31)), st.integers(1, 999_999), st.integers(1, 999))
def test_case_numbers_dates_and_grid_codes_are_left_alone(day: date, sequence: int, grid: int) -> None:
    text = f"SN-{day:%Y%m%d}-{sequence:06d} on {day:%Y-%m-%d} in SN01-C01-G{grid:03d} at position 1234567"
    assert mask_contacts(text) == text


class Reporter(pydantic.BaseModel):
    name: str
    phone: int


def test_a_validation_error_is_told_by_its_fields_never_its_input() -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        Reporter.model_validate({"name": ["欧阳明华"], "phone": "欧阳明华 13912345678"})
    assert "欧阳明华" in str(raised.value), "pydantic's own text repeats the input"
    assert (
        describe_error(raised.value) == "ValidationError: 2 error(s) in Reporter: name: string_type; phone: int_parsing"
    )


def test_other_errors_lose_what_they_quote_and_domain_errors_keep_their_codes() -> None:
    assert describe_error(ValueError("Invalid isoformat string: '欧阳明华 '")) == (
        "ValueError: Invalid isoformat string: '…'"
    )
    assert describe_error(KeyError("occurred_at")) == "KeyError: 'occurred_at'"
    assert describe_error(KeyError("13912345678")) == "KeyError: '…'"
    refusal = UnknownReference("grid", "SN01-C01-G009", command="case.report")
    assert "'SN01-C01-G009'" in describe_error(refusal)


def test_a_traceback_has_the_frames_and_the_chain_but_no_locals_and_no_values() -> None:
    def fail(payload: dict[str, str]) -> None:
        raise KeyError(payload["phone"] + " missing")

    try:
        try:
            fail({"phone": PHONE, "name": NAME})  # not written out: the line of code is in the traceback
        except KeyError as error:
            raise RuntimeError("could not apply it") from error
    except RuntimeError as error:
        text = safe_traceback(error)
    assert "in fail" in text
    assert "KeyError: '…'" in text
    assert text.index("KeyError") < text.index("RuntimeError: could not apply it")
    assert PHONE not in text
    assert NAME not in text


def test_keys_named_like_personal_data_or_payloads_are_withheld() -> None:
    for key in ("payload", "state", "event_data", "body", "reporter", "reporter_phone", "contact", "id_number",
                "name", "description", "form", "input_value"):  # fmt: skip
        assert withheld(key), key
    for key in ("event", "position", "projection", "case_number", "topic", "error", "request_id", "type"):
        assert not withheld(key), key


def test_the_configured_log_withholds_masks_and_never_shows_locals() -> None:
    configure_logging("json", "debug")
    out = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=out), cache_logger_on_first_use=False)
    try:
        _log_and_check(out)
    finally:
        configure_logging("console", "warning")  # as the suite's fixture left it


def _log_and_check(out: io.StringIO) -> None:
    log = structlog.get_logger("test")
    secret = {"reporter": {"phone": "13912345678"}}
    try:
        json.loads(json.dumps(secret)[:-1])
    except json.JSONDecodeError:
        log.exception("failed", state=secret, note="call 13912345678", position=7)
    line = json.loads(out.getvalue().splitlines()[0])
    assert line["state"] == WITHHELD
    assert line["note"] == WITHHELD
    assert line["position"] == 7
    assert "JSONDecodeError" in line["exception"]
    assert "13912345678" not in out.getvalue()
    assert "locals" not in out.getvalue()
    log.info("typed", error="call 13912345678 or a@b.cn")
    assert json.loads(out.getvalue().splitlines()[-1])["error"] == "call 139****5678 or a***@b.cn"
