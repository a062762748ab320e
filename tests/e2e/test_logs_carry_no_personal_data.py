"""Logs never carry personal data or event payloads (issue 18, item 7).

A case is filed with a known reporter (name, phone, ID number) and a phone number typed into its description;
then every failure path that writes to a log is made to run, through the real programs: a bad-input refusal
of a command carrying that data (CLI and HTTP), a CLI internal error (exit 70, whose traceback goes to a
file), an HTTP 500, the server's projections failing, a poison event in a projection (its dead letter, as
``gridcase project`` logs it and ``gridcase deadletters`` shows it), and an event the relay dead-letters.
Everything they wrote (stderr, the server's log, the traceback files) is searched: none of the personal
values, and no event payload, may appear.

Before: the server's log printed each failing frame's local variables (rich's ``show_locals``, through
structlog's console renderer); the traceback file of an internal error began with the whole command line,
the reporter's data included; a projection's and the relay's dead-letter reasons repeated the error's text,
the value it refused included.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import time
from typing import TYPE_CHECKING
from uuid import uuid4

import httpx
import pytest
from eventsourcing.persistence import StoredEvent

from tests.conftest import KEY_VAR, make_settings
from tests.e2e.conftest import GRIDCASE
from tests.e2e.http.conftest import issue_tokens, serve_process
from tests.support import CATEGORY, GRID, make_app, seed_small_district

if TYPE_CHECKING:
    from pathlib import Path

NAME, PHONE, ID_NUMBER, TYPED_PHONE = "欧阳明华", "13912345678", "370202199001011234", "18687654321"
DESCRIPTION = f"井盖丢了，请回电 {TYPED_PHONE}"
#: What no log may hold: the personal values, and an event's payload as the store keeps it.
NEVER = (NAME, PHONE, ID_NUMBER, TYPED_PHONE, DESCRIPTION, '"reporter"', "'reporter'", '"description"')
OPERATOR = ("--actor", "op-1", "--role", "intake_operator")
DISPATCHER = ("--actor", "disp-1", "--role", "dispatcher")
REPORT = ("case", "report", "--channel", "hotline", "--category", CATEGORY, "--grid", GRID,
          "--description", DESCRIPTION, "--reporter-name", NAME, "--reporter-phone", PHONE,
          "--reporter-id-number", ID_NUMBER, *OPERATOR)  # fmt: skip


def assert_no_personal_data(what: str, text: str) -> None:
    """Fail naming the first forbidden value found in ``text`` and showing where.

    Also across a terminal renderer's wrapping (rich draws boxes and breaks long lines), and no frame's locals.
    """
    assert "locals" not in text, f"{what} shows a frame's local variables: {text[text.find('locals') - 500 :][:1500]}"
    squeezed = _SQUEEZE.sub("", text)
    for value in NEVER:
        at = text.find(value)
        assert at < 0, f"{what} carries {value!r}: …{text[max(0, at - 300) : at + 300]}…"
        at = squeezed.find(_SQUEEZE.sub("", value))
        assert at < 0, f"{what} carries {value!r}, wrapped: …{squeezed[max(0, at - 300) : at + 300]}…"


#: What a terminal renderer puts between the characters of a long value: white space and box drawing.
_SQUEEZE = re.compile(r"[\s\u2500-\u257f]+")


def district(tmp_path: Path) -> str:
    """A fresh SQLite file with the small district; its URL."""
    url = f"sqlite:///{tmp_path / 'gridcase.db'}"
    service = make_app(make_settings(url))
    try:
        seed_small_district(service)
    finally:
        service.close()
    return url


def gridcase(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the program as a user would, its temporary directory (traceback files) in ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_") or k == KEY_VAR}
    env |= {"GRIDCASE_DATABASE_URL": url, "TMPDIR": str(tmp_path), "GRIDCASE_LOG_LEVEL": "debug"}
    return subprocess.run([str(GRIDCASE), *args], capture_output=True, text=True, env=env, timeout=300, check=False)


def corrupt_report(url: str, number: str) -> None:
    """Cut the last character off the case's stored ``CaseReported``: loading the case is then a bug path.

    The state keeps the description (and the reporter's sealed data): what a failing frame's locals would show.
    """
    with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
        rows = connection.execute("SELECT rowid, state FROM stored_events WHERE topic LIKE '%CaseReported'")
        [(rowid, state)] = [(rowid, state) for rowid, state in rows if number.encode() in state]
        assert TYPED_PHONE.encode() in state  # the reporter's own contact is sealed; the description is not
        connection.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (state[:-1], rowid))


def traceback_files(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("gridcase-internal-error-*.txt"))


def test_the_cli_refusing_bad_input_and_meeting_a_bug_logs_no_personal_data(tmp_path: Path) -> None:
    url = district(tmp_path)
    filed = gridcase(url, tmp_path, *REPORT)
    assert filed.returncode == 0, filed.stderr
    number = filed.stdout.split()[0]
    assert_no_personal_data("the report's stderr", filed.stderr)

    refused = gridcase(url, tmp_path, *REPORT, "--urgency", "galaxy")
    assert refused.returncode == 2, refused.stderr
    assert "urgency" in refused.stderr
    assert_no_personal_data("a bad-input refusal", refused.stderr)

    corrupt_report(url, number)
    broken = gridcase(url, tmp_path, "case", "reject", number, "--reason", f"{NAME} 已电话 {PHONE} 沟通", *DISPATCHER)
    assert broken.returncode == 70, broken.stderr
    assert broken.stderr.startswith("internal error: JSONDecodeError: ")
    assert_no_personal_data("an internal error's line", broken.stderr)
    [details] = traceback_files(tmp_path)
    text = details.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text
    assert f"gridcase case reject {number} --reason --actor --role" in text.splitlines()[0]
    assert_no_personal_data("the traceback file", text)


def test_the_server_failing_logs_no_personal_data(tmp_path: Path) -> None:
    url = district(tmp_path)
    tokens = issue_tokens(url, ("operator", "dispatcher"))
    case = {"channel": "hotline", "category": CATEGORY, "grid": GRID, "description": DESCRIPTION,
            "reporter": {"name": NAME, "phone": PHONE, "id_number": ID_NUMBER}}  # fmt: skip
    with serve_process(url, TMPDIR=str(tmp_path), GRIDCASE_LOG_LEVEL="debug") as served:
        operator = {"Authorization": f"Bearer {tokens['operator']}"}
        dispatcher = {"Authorization": f"Bearer {tokens['dispatcher']}"}
        with httpx.Client(base_url=served.url, timeout=30) as client:
            filed = client.post("/api/v1/cases", json=case, headers=operator)
            assert filed.status_code == 201, filed.text
            number = filed.json()["case_number"]
            refused = client.post("/api/v1/cases", json=case | {"urgency": "galaxy"}, headers=operator)
            assert refused.status_code == 422, refused.text

            corrupt_report(url, number)  # a bug path: the request meets an error nobody expected
            failed = client.post(f"/api/v1/cases/{number}/reject", json={"reason": f"{NAME} {PHONE}"},
                                 headers=dispatcher)  # fmt: skip
            assert failed.status_code == 500, failed.text
            assert_no_personal_data("the 500's body", failed.text)

            # The in-process projections fail on a table gone (the database's failure, retried): logged.
            with sqlite3.connect(tmp_path / "gridcase.db") as connection:
                connection.execute("DROP TABLE case_status")
            again = client.post("/api/v1/cases", json=case, headers=operator)
            assert again.status_code == 201, again.text
            deadline = time.monotonic() + 30
            while "projections failed" not in served.log():
                assert time.monotonic() < deadline, f"the projections did not fail: {served.log()[-2000:]}"
                time.sleep(0.2)
        log = served.log()
    assert "request failed" in log
    assert "JSONDecodeError" in log
    assert_no_personal_data("the server's log", log)


def test_a_poison_event_in_a_projection_logs_and_dead_letters_no_personal_data(tmp_path: Path) -> None:
    url = district(tmp_path)
    filed = gridcase(url, tmp_path, *REPORT)
    assert filed.returncode == 0, filed.stderr
    # A CaseReported as an engine without bounds might have stored it, of a new case: its moment a citizen's words.
    service = make_app(make_settings(url))
    try:
        model = [n for n in service.reader.read(0, 1_000_000) if n.topic.endswith(".CaseReported")][-1]
        data = json.loads(model.state) | {"occurred_at": f"{NAME} {PHONE}", "case_number": "SN-20210601-999999"}
        service.store.recorder.insert_events([StoredEvent(uuid4(), 1, model.topic, json.dumps(data).encode())])
    finally:
        service.close()
    projected = gridcase(url, tmp_path, "project")
    assert projected.returncode == 0, projected.stderr
    assert "dead-lettered" in projected.stderr
    assert_no_personal_data("gridcase project's log", projected.stderr)
    letters = gridcase(url, tmp_path, "deadletters")
    assert letters.returncode == 0, letters.stderr
    assert "CaseReported" in letters.stdout
    assert_no_personal_data("the dead letters", letters.stdout + letters.stderr)


@pytest.mark.slow
def test_a_relay_dead_letter_logs_no_personal_data(tmp_path: Path, broker: str) -> None:
    url = district(tmp_path)
    filed = gridcase(url, tmp_path, *REPORT)
    assert filed.returncode == 0, filed.stderr
    # A CaseReported the relay cannot make a message of (its class version a citizen's words), of a new case.
    service = make_app(make_settings(url))
    try:
        model = [n for n in service.reader.read(0, 1_000_000) if n.topic.endswith(".CaseReported")][-1]
        data = json.loads(model.state) | {"class_version": f"{NAME} {PHONE}"}
        service.store.recorder.insert_events([StoredEvent(uuid4(), 1, model.topic, json.dumps(data).encode())])
    finally:
        service.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_") or k == KEY_VAR}
    env |= {"GRIDCASE_DATABASE_URL": url, "GRIDCASE_KAFKA_BOOTSTRAP_SERVERS": broker, "GRIDCASE_LOG_LEVEL": "debug",
            "GRIDCASE_KAFKA_PARTITIONS": "1", "GRIDCASE_RELAY_LEASE_SECONDS": "2"}  # fmt: skip
    relayed = subprocess.run([str(GRIDCASE), "relay", "--json"], capture_output=True, text=True, env=env,
                             timeout=300, check=False)  # fmt: skip
    assert relayed.returncode == 0, relayed.stderr[-3000:]
    assert json.loads(relayed.stdout)["deadlettered"] == 1
    assert "dead-lettered" in relayed.stderr
    assert_no_personal_data("the relay's log", relayed.stderr)
