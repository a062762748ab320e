"""Crypto-shredding of reporters' personal data (issue 18), on SQLite and PostgreSQL.

A citizen's contact is sealed in the event under a key of their own; ``person erase`` deletes the key. Afterwards
the data cannot be read (not through the service, not from the database file), the hash chain still verifies,
the review prints the same bytes, and Kafka never carried the contact.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from eventsourcing.utils import get_topic

from adapters.kafka.published import published_form, split_topic
from adapters.personal import KEYS, LOOKUPS, USES, MasterKeyMissing
from domain.base import ActorRef, Role
from domain.case import Case, case_id
from domain.errors import CommandRefused
from domain.personal import ERASED, LookupKind, is_sealed
from tests.conftest import KEY_VAR, make_settings
from tests.e2e.conftest import Cli
from tests.support import CATEGORY, GRID, T0, make_app, report, run, seed_small_district

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support import App

NAME, PHONE, ID_NUMBER = "王秀英", "13912345678", "11010519491231002X"
CONTACT = {"name": NAME, "phone": PHONE, "id_number": ID_NUMBER}
OTHER = {"name": "赵六", "phone": "13700001111", "id_number": None}
ADMIN = ActorRef(id="admin-1", role=Role.ADMIN)
WHY = "核对删除 checking the erasure"
REVIEW = ("review", "--period", "2021-06", "--rules", "rules/2021.toml", "--json")


def count(app: App, table: str) -> int:
    """Rows in one of the key-store tables."""
    vault = app.store.vault
    return int(vault._select(f"SELECT count(*) FROM {vault.table(table)}", [])[0][0])


def stored_reporters(app: App) -> list[Any]:
    """The reporter field of every stored report, as stored."""
    return [json.loads(n.state).get("reporter") for n in app.reader.read(0, 10_000) if n.topic.endswith("CaseReported")]


def file_bytes(database_url: str) -> bytes:
    """Every byte of a SQLite database: the file, its write-ahead log and shared memory."""
    path = Path(database_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))


def test_erasure_makes_the_data_unreadable_and_changes_no_figure(database_url: str) -> None:  # noqa: PLR0915 - one story
    cli = Cli(database_url)
    app = make_app(make_settings(database_url))
    try:
        seed_small_district(app)
        first = report(app, reporter=CONTACT)
        second = report(app, at=T0 + timedelta(hours=1), reporter={"id_number": ID_NUMBER})  # the same citizen
        other = report(app, at=T0 + timedelta(hours=2), reporter=OTHER)
        assert all(is_sealed(value) for value in stored_reporters(app))
        assert app.history(first, personal_data=True, viewer=ADMIN, reason=WHY)[0]["data"]["reporter"] == CONTACT
        assert app.history(first)[0]["data"]["reporter"] == {"name": "王**", "phone": "139****5678",
                                                            "id_number": "1101**********002X"}  # fmt: skip
        assert count(app, KEYS) == 2  # two citizens
        assert count(app, LOOKUPS) == 3
        vault = app.store.vault
        rows = vault._select(f"SELECT subject, wrapped FROM {vault.table(KEYS)}", [])
        wrapped = {str(subject): str(key) for subject, key in rows}
        citizen = stored_reporters(app)[0]["subject"]
    finally:
        app.close()
    if database_url.startswith("sqlite"):
        before = file_bytes(database_url)
        assert PHONE.encode() not in before and NAME.encode() not in before and ID_NUMBER.encode() not in before
    # As the store stood before the erasure: the same events, and the keys gone in between.
    cut = datetime.now(UTC).isoformat()
    review_before = cli(*REVIEW, "--as-of-recorded", cut)
    assert review_before.returncode == 0, review_before.stderr

    refused = cli("person", "erase", "--phone", PHONE, "--reason", "公民要求 citizen asked", "--actor", "d-1",
                  "--role", "dispatcher")  # fmt: skip
    assert refused.returncode == 3, refused.stderr
    erased = cli("person", "erase", "--phone", "+86 139-1234-5678", "--reason", "公民要求 citizen asked",
                 "--actor", "admin-1", "--role", "admin")  # fmt: skip
    assert erased.returncode == 0, erased.stderr
    assert "2 case(s)" in erased.stdout and first in erased.stdout and second in erased.stdout
    again = cli("person", "erase", "--id-number", ID_NUMBER, "--reason", "again", "--actor", "admin-1",
                "--role", "admin")  # fmt: skip
    assert again.returncode == 1 and "nothing to erase" in again.stderr, again  # idempotent
    verified = cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    audit = cli("audit", first, "--json")
    assert audit.returncode == 0, audit.stderr
    assert json.loads(audit.stdout)["history"][0]["data"]["reporter"] == ERASED

    app = make_app(make_settings(database_url))
    try:
        for number in (first, second):
            for clear in (False, True):
                seen = app.history(number, personal_data=clear, viewer=ADMIN, reason=WHY)
                assert seen[0]["data"]["reporter"] == ERASED
        seen = app.history(other, personal_data=True, viewer=ADMIN, reason=WHY)
        assert seen[0]["data"]["reporter"] == OTHER  # another citizen's stays
        assert count(app, KEYS) == 1 and count(app, USES) == 0  # an erasure finds its cases in the store itself
        erasures = [n for n in app.reader.read(0, 10_000) if n.topic.endswith("PersonalDataErased")]
        assert len(erasures) == 1
        recorded = json.loads(erasures[0].state)
        assert recorded["case_numbers"] == sorted([first, second]) and recorded["lookup"] == "phone"
        assert PHONE not in erasures[0].state.decode() and NAME not in erasures[0].state.decode()
        # Kafka never carried it: no published form names the contact.
        published = json.dumps([published_form(split_topic(n.topic)[1], json.loads(n.state), "x", n.originator_version)
                                for n in app.reader.read(0, 10_000)], ensure_ascii=False)  # fmt: skip
        assert PHONE not in published and NAME not in published and ID_NUMBER not in published
    finally:
        app.close()
    # The review reads stored bytes only: the same, byte for byte (as of before the erasure was recorded).
    review_after = cli(*REVIEW, "--as-of-recorded", cut)
    assert review_after.returncode == 0, review_after.stderr
    assert review_after.stdout == review_before.stdout
    if database_url.startswith("sqlite"):
        after = file_bytes(database_url)
        kept = {subject for subject, key in wrapped.items() if key.encode() in after}
        assert kept == set(wrapped) - {citizen}, "the erased citizen's key is gone from the files, the other's stays"
        assert PHONE.encode() not in after and NAME.encode() not in after and ID_NUMBER.encode() not in after


def refused_batch(app: App) -> None:
    """A report with a contact, then (in the same batch) a command the intake operator may not give."""
    with app.batch():
        report(app, reporter=CONTACT)
        run(app, command="case.accept", actor={"id": "op-1", "role": "intake_operator"}, at=T0,
            case_number="SN-20210601-000001")  # fmt: skip


def test_a_refused_command_leaves_no_key(database_url: str) -> None:
    app = make_app(make_settings(database_url))
    try:
        seed_small_district(app)
        with pytest.raises(CommandRefused):
            refused_batch(app)
        assert (count(app, KEYS), count(app, LOOKUPS), count(app, USES)) == (0, 0, 0)
        number = report(app, reporter=CONTACT)  # and the next write makes its own
        assert app.history(number, personal_data=True, viewer=ADMIN, reason=WHY)[0]["data"]["reporter"] == CONTACT
        assert count(app, KEYS) == 1
    finally:
        app.close()


def test_only_an_admin_erases_and_an_unknown_phone_says_so(database_url: str) -> None:
    app = make_app(make_settings(database_url))
    try:
        seed_small_district(app)
        report(app, reporter=CONTACT)
        with pytest.raises(CommandRefused, match="admin only"):
            app.erase_person(LookupKind.PHONE, PHONE, reason="x", actor=ActorRef(id="a", role=Role.AUDITOR))
        assert count(app, KEYS) == 1
        assert app.erase_person(LookupKind.PHONE, "13000000000", reason="x", actor=ADMIN)["erased"] == 0
    finally:
        app.close()


def test_the_embedded_default_makes_a_key_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_VAR, raising=False)
    cli = Cli(f"sqlite:///{tmp_path / 'gridcase.db'}")
    first = cli("registry", "org-unit", "--help")
    assert first.returncode == 0
    made = cli("queue", "--json")
    key_file = tmp_path / "gridcase.db.master-key"
    assert key_file.exists(), made.stderr
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600  # noqa: PTH116
    assert made.stderr.count("master key") == 1 and str(key_file) in made.stderr
    assert "master key" not in cli("queue", "--json").stderr  # said once


@pytest.mark.postgres
def test_postgresql_without_a_master_key_opens_the_store_but_seals_nothing(pg_url: str) -> None:
    settings = make_settings(pg_url).model_copy(update={"master_key": None, "master_key_file": None})
    app = make_app(settings)
    try:
        seed_small_district(app)  # no personal data: works (the relay and projectors need no key either)
        before = app.reader.last_position()
        with pytest.raises(MasterKeyMissing, match="GRIDCASE_MASTER_KEY"):
            report(app, reporter=CONTACT)
        assert app.reader.last_position() == before
    finally:
        app.close()


def staged_report(app: App, number: str, reporter: dict[str, Any]) -> Any:
    """A report of ``number`` with this contact, mapped for the store (its contact staged for sealing), not written."""
    event = Case.CaseReported.model_validate({
        "originator_id": case_id(number), "originator_version": 1, "timestamp": T0.isoformat(),
        "originator_topic": get_topic(Case), "actor": {"id": "op-1", "role": "intake_operator"},
        "occurred_at": T0.isoformat(), "case_number": number, "channel": "hotline", "category": CATEGORY,
        "grid": GRID, "community": "SN01-C01", "street": "SN01", "urgency": "normal",
        "location": {"address": "香港中路 1 号"}, "description": "井盖缺失", "reporter": reporter,
    })  # fmt: skip
    return app.store.mapper.to_stored_event(event)


def in_a_thread_of_its_own(work: Callable[[], Any]) -> Any:
    """What ``work`` gives (or raises), run on another thread: a write of its own, as another request's would be."""
    outcome: dict[str, Any] = {}

    def run_it() -> None:
        try:
            outcome["result"] = work()
        except Exception as error:  # noqa: BLE001 - handed back to the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=run_it)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def test_a_citizen_filed_by_two_writers_at_once_gets_one_key(sqlite_url: str) -> None:
    # SQLite looks the citizen up under the write lock: a report mapped before another process stored the same new
    # citizen is sealed under that citizen's key when written, not under a second one.
    mine, theirs = make_app(make_settings(sqlite_url)), make_app(make_settings(sqlite_url))
    try:
        seed_small_district(mine)
        staged = staged_report(mine, "SN-20210601-000099", CONTACT)
        number = in_a_thread_of_its_own(lambda: report(theirs, reporter=CONTACT))
        mine.store.recorder.insert_events([staged])
        assert (count(mine, KEYS), count(mine, LOOKUPS), count(mine, USES)) == (1, 2, 0)
        for case in (number, "SN-20210601-000099"):
            assert mine.history(case, personal_data=True, viewer=ADMIN, reason=WHY)[0]["data"]["reporter"] == CONTACT
        assert mine.erase_person(LookupKind.PHONE, PHONE, reason=WHY, actor=ADMIN)["erased"] == 1
        assert mine.history("SN-20210601-000099", personal_data=True, viewer=ADMIN, reason=WHY)[0]["data"][
            "reporter"] == ERASED  # fmt: skip
    finally:
        mine.close()
        theirs.close()


def test_an_event_whose_contact_was_never_sealed_is_not_stored(database_url: str) -> None:
    app = make_app(make_settings(database_url))
    try:
        seed_small_district(app)
        before = app.reader.last_position()
        staged = in_a_thread_of_its_own(lambda: staged_report(app, "SN-20210601-000099", CONTACT))
        with pytest.raises(RuntimeError, match="never sealed"):  # its contact was staged on the other thread
            app.store.recorder.insert_events([staged])
        assert app.reader.last_position() == before
        assert (count(app, KEYS), count(app, LOOKUPS), count(app, USES)) == (0, 0, 0)
    finally:
        app.close()
