"""The audit trail: a case's full history, and tamper evidence on SQLite and PostgreSQL.

Each tampering test edits one stored event row directly in SQL, as someone with
database access could, and expects ``verify_chain`` to name the case and the
position of the first broken link.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text

from domain.case import case_id
from projections.sql import make_engine
from replay.audit import history, links_of, verify_chain
from replay.chain import GENESIS, chain_version, link_hash
from tests.conftest import make_settings
from tests.support import CALLBACK, DISPATCHER, T0, WORKER, App, make_app, report, run, seed_small_district

if TYPE_CHECKING:
    from collections.abc import Iterator



class Store:
    """The application and an engine on one database, with the SQL a tamperer would use."""

    def __init__(self, url: str) -> None:
        self.app = make_app(make_settings(url))
        self.engine = make_engine(url)
        self.sqlite = url.startswith("sqlite")
        #: The column holding an event's position: SQLite's rowid, PostgreSQL's notification_id.
        self.position = "rowid" if self.sqlite else "notification_id"
        #: The library names the table after the application on PostgreSQL only.
        self.table = "stored_events" if self.sqlite else "gridcase_events"

    def read(self, after: int, limit: int) -> Any:
        return self.app.store.recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False)

    def sql(self, statement: str, **params: Any) -> Any:
        with self.engine.begin() as connection:
            return connection.execute(text(statement), params)

    def row(self, position: int) -> Any:
        return self.sql(f"SELECT * FROM {self.table} WHERE {self.position} = :p", p=position).mappings().one()

    def positions_of(self, number: str) -> list[int]:
        key = case_id(number) if self.sqlite is False else case_id(number).hex
        found = self.sql(
            f"SELECT {self.position} AS p FROM {self.table} WHERE originator_id = :id ORDER BY originator_version",
            id=key,
        )
        return [row.p for row in found]


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store(database_url)
    seed_small_district(opened.app)
    yield opened
    opened.engine.dispose()
    opened.app.close()


def full_life(app: App) -> str:
    """A case from report to a satisfied callback."""
    number = report(app)
    # In 2021, one step an hour after the report: W002 covered GRID (and could check on site) through 2021 only.
    for step, (command, actor, fields) in enumerate((
        ("case.accept", DISPATCHER, {"level": "community"}),
        ("case.dispatch", DISPATCHER, {"handler": {"kind": "worker", "id": "W001"}}),
        ("case.sign", WORKER, {}),
        ("case.resolve", WORKER, {"result": "已更换 replaced"}),
        ("case.verify", {"id": "W002", "role": "grid_worker"}, {}),
        ("case.close", DISPATCHER, {}),
        ("case.feedback", CALLBACK, {"satisfaction": "satisfied", "resolved": True}),
    ), start=1):  # fmt: skip
        run(app, command=command, case_number=number, actor=actor, at=T0 + timedelta(hours=step), **fields)
    return number


def broken(store: Store) -> list[tuple[int, str]]:
    return [(b.position, b.subject) for b in verify_chain(store.read, store.engine).broken]


def test_a_case_history_shows_every_event_actor_role_both_clocks_and_the_state_around_it(store: Store) -> None:
    number = full_life(store.app)
    with store.engine.connect() as connection:
        rows = history(store.app.store.recorder.select_events(case_id(number)), links_of(connection, case_id(number)))
    assert [r["event"] for r in rows] == [
        "CaseReported", "CaseAccepted", "CaseDispatched", "DispatchSigned", "CaseResolved", "ResolutionVerified",
        "CaseClosed", "CitizenFeedbackRecorded",
    ]  # fmt: skip
    assert [r["position"] for r in rows] == store.positions_of(number)
    assert [(r["actor"], r["role"]) for r in rows][:3] == [
        ("op-1", "intake_operator"), ("disp-1", "dispatcher"), ("disp-1", "dispatcher"),
    ]  # fmt: skip
    assert [(r["state_before"], r["state_after"].split()[0]) for r in rows] == [
        ("—", "reported"), ("reported", "accepted"), ("accepted level=community", "dispatched"),
        ("dispatched level=community handler=worker:W001", "in_progress"),
        ("in_progress level=community handler=worker:W001", "resolved"),
        ("resolved level=community handler=worker:W001", "verified"),
        ("verified level=community handler=worker:W001", "closed"),
        ("closed level=community handler=worker:W001", "closed"),
    ]  # fmt: skip
    for row in rows:
        assert row["occurred_at"].endswith("Z")
        assert row["recorded_at"] <= row["committed_at"], "committed under the write lock, after the decision"
    assert rows[0]["occurred_at"] == "2021-06-01T01:00:00Z"
    assert [r["committed_at"] for r in rows] == sorted({r["committed_at"] for r in rows}), "one commit per command"


def test_an_untouched_store_verifies(store: Store) -> None:
    full_life(store.app)
    check = verify_chain(store.read, store.engine, batch_size=7)
    assert check.intact
    assert check.events == check.last_position == store.app.store.recorder.max_notification_id()


def test_altering_one_stored_event_names_its_case_and_position(store: Store) -> None:
    number = full_life(store.app)
    full_life(store.app)
    position = store.positions_of(number)[4]  # CaseResolved
    state = json.loads(bytes(store.row(position)["state"]))
    state["result"] = "从未修理 never fixed"
    store.sql(f"UPDATE {store.table} SET state = :s WHERE {store.position} = :p",
              s=json.dumps(state, ensure_ascii=False).encode(), p=position)  # fmt: skip
    assert broken(store) == [(position, f"case {number}")]


def test_changing_only_the_version_of_a_stored_event_breaks_the_chain_there(store: Store) -> None:
    number = full_life(store.app)
    last = store.positions_of(number)[-1]
    store.sql(f"UPDATE {store.table} SET originator_version = 99 WHERE {store.position} = :p", p=last)
    assert broken(store)[0] == (last, f"case {number}")


def test_deleting_one_stored_event_names_its_case_and_position(store: Store) -> None:
    number = full_life(store.app)
    full_life(store.app)
    position = store.positions_of(number)[2]  # CaseDispatched
    store.sql(f"DELETE FROM {store.table} WHERE {store.position} = :p", p=position)
    found = broken(store)
    assert found[0] == (position, f"case {number}")
    assert len(found) == 1


def test_deleting_the_last_stored_event_is_seen_too(store: Store) -> None:
    number = full_life(store.app)
    last = store.positions_of(number)[-1]
    store.sql(f"DELETE FROM {store.table} WHERE {store.position} = :p", p=last)
    assert broken(store) == [(last, f"case {number}")]


def test_deleting_a_report_still_names_the_case(store: Store, database_url: str) -> None:
    from tests.integration.replay.test_rebuild import catch_up, live_runner  # noqa: PLC0415

    number = full_life(store.app)
    catch_up(live_runner(store.app, store.engine))  # the case-status read model knows the number
    first = store.positions_of(number)[0]
    store.sql(f"DELETE FROM {store.table} WHERE {store.position} = :p", p=first)
    assert broken(store)[0] == (first, f"case {number}")


def test_reordering_two_events_of_a_case_names_it_and_the_first_moved_position(store: Store) -> None:
    number = full_life(store.app)
    accepted, dispatched = store.positions_of(number)[1:3]
    for old, new in ((accepted, -1), (dispatched, accepted), (-1, dispatched)):
        store.sql(f"UPDATE {store.table} SET {store.position} = :new WHERE {store.position} = :old", new=new, old=old)
    found = broken(store)
    assert found[0] == (accepted, f"case {number}")


def test_swapping_the_positions_of_events_of_two_cases_is_seen(store: Store) -> None:
    first, second = full_life(store.app), full_life(store.app)
    a, b = store.positions_of(first)[-1], store.positions_of(second)[0]
    for old, new in ((a, -1), (b, a), (-1, b)):
        store.sql(f"UPDATE {store.table} SET {store.position} = :new WHERE {store.position} = :old", new=new, old=old)
    found = broken(store)
    assert found[0] == (a, f"case {second}")
    assert (b, f"case {first}") in found


def test_two_processes_writing_one_case_in_turn_keep_its_chain_whole(store: Store, database_url: str) -> None:
    other = make_app(make_settings(database_url))  # its own connections and its own memory of recent links
    try:
        number = report(store.app)
        run(other, command="case.accept", case_number=number, actor=DISPATCHER, level="community")
        run(store.app, command="case.dispatch", case_number=number, actor=DISPATCHER,
            handler={"kind": "worker", "id": "W001"})  # fmt: skip
        run(other, command="case.sign", case_number=number, actor=WORKER)
        run(store.app, command="case.resolve", case_number=number, actor=WORKER, result="已修 fixed")
    finally:
        other.close()
    check = verify_chain(store.read, store.engine)
    assert check.intact, [str(b) for b in check.broken]
    assert check.events == store.app.store.recorder.max_notification_id()


# -- the commit clock (issue 13): chain version 2 hashes it, and its order along the log is checked ----------


def committed(store: Store, position: int) -> int:
    return int(store.sql("SELECT committed_at FROM event_chain WHERE position = :p", p=position).scalar_one())


def move_commit(store: Store, position: int, micros: int) -> None:
    store.sql("UPDATE event_chain SET committed_at = :c WHERE position = :p", c=micros, p=position)


def rewrite_as_chain_version_1(store: Store) -> None:
    """Make the chain what a store written before chain version 2 holds: hashes that leave out the commit time."""
    heads: dict[str, str] = {}
    for link in store.sql("SELECT * FROM event_chain ORDER BY position").mappings().all():
        stored = store.row(link["position"])
        digest = link_hash(heads.get(link["originator_id"], GENESIS), link["position"], link["originator_id"],
                           link["originator_version"], stored["topic"], bytes(stored["state"]))  # fmt: skip
        heads[link["originator_id"]] = digest
        store.sql("UPDATE event_chain SET chain_hash = :h WHERE position = :p", h=digest, p=link["position"])


def test_new_links_are_chain_version_2_and_cover_the_commit_time(store: Store) -> None:
    full_life(store.app)
    hashes = store.sql("SELECT chain_hash FROM event_chain").scalars().all()
    assert hashes and all(chain_version(h) == 2 and len(h) == len("v2:") + 64 for h in hashes)
    check = verify_chain(store.read, store.engine)
    assert check.intact and check.unclocked == 0


def test_moving_one_commit_time_back_names_its_position(store: Store) -> None:
    """The review's as-of-recorded cut-off reads these times: one moved back pulls later events into the past."""
    full_life(store.app)
    number = full_life(store.app)
    position = store.positions_of(number)[-1]
    move_commit(store, position, committed(store, 1))  # as if it had been committed with the first event
    found = verify_chain(store.read, store.engine).broken
    assert [(b.position, b.subject) for b in found] == [(position, f"case {number}")] * 2
    assert "commit time does not match its recorded hash" in found[0].problem
    assert "commit times must not go back" in found[1].problem


def test_moving_one_commit_time_forward_names_its_position(store: Store) -> None:
    number = full_life(store.app)
    full_life(store.app)
    position = store.positions_of(number)[3]
    move_commit(store, position, committed(store, position) + 1)  # one microsecond is enough
    found = verify_chain(store.read, store.engine).broken
    assert found[0].position == position
    assert found[0].subject == f"case {number}"
    assert "commit time" in found[0].problem


def test_a_chain_written_before_version_2_still_verifies_and_says_how_much_of_it_is_unclocked(store: Store) -> None:
    full_life(store.app)
    rewrite_as_chain_version_1(store)
    check = verify_chain(store.read, store.engine)
    assert check.intact, [str(b) for b in check.broken]
    assert check.unclocked == check.events
    # Written on after the upgrade: the old links stay version 1, the new ones are version 2, both verify.
    number = full_life(store.app)
    later = verify_chain(store.read, store.engine)
    assert later.intact, [str(b) for b in later.broken]
    assert later.unclocked == check.events
    assert chain_version(later.head) == 2
    assert store.positions_of(number)[0] == check.last_position + 1


def test_in_a_version_1_chain_a_commit_time_moved_back_is_still_seen_by_its_order(store: Store) -> None:
    full_life(store.app)
    number = full_life(store.app)
    rewrite_as_chain_version_1(store)
    position = store.positions_of(number)[-1]
    move_commit(store, position, committed(store, 1))
    assert broken(store) == [(position, f"case {number}")]
    assert "must not go back" in verify_chain(store.read, store.engine).broken[0].problem


def test_a_link_downgraded_to_version_1_after_version_2_began_is_broken(store: Store) -> None:
    number = full_life(store.app)
    position = store.positions_of(number)[-1]
    link = store.sql("SELECT * FROM event_chain WHERE position = :p", p=position).mappings().one()
    previous = store.sql("SELECT chain_hash FROM event_chain WHERE position = :p",
                         p=store.positions_of(number)[-2]).scalar_one()  # fmt: skip
    stored = store.row(position)
    # A tamperer who moves the commit time and rewrites the last link as a version 1 hash, which does not cover it.
    move_commit(store, position, committed(store, position) - 60_000_000)
    downgraded = link_hash(previous, position, link["originator_id"], link["originator_version"], stored["topic"],
                           bytes(stored["state"]))  # fmt: skip
    store.sql("UPDATE event_chain SET chain_hash = :h WHERE position = :p", h=downgraded, p=position)
    found = verify_chain(store.read, store.engine).broken
    assert found[0].position == position
    assert "version 1 link" in found[0].problem
