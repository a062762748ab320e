"""A lost optimistic-concurrency race says which case was changed and what to do, not the database's SQL.

Two engines on one database (SQLite and PostgreSQL) load the same case; one saves, then the other saves
its stale copy, as two processes would when they decide at the same moment (issue 13).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from domain.base import ActorRef
from domain.case import Level
from service import ConcurrentChange
from tests.conftest import make_settings
from tests.support import DISPATCHER, T0, App, make_app, report, seed_small_district

if TYPE_CHECKING:
    from collections.abc import Iterator

DISPATCHER_REF = ActorRef.model_validate(DISPATCHER)


@pytest.fixture
def two(database_url: str) -> Iterator[tuple[App, App]]:
    first, second = make_app(make_settings(database_url)), make_app(make_settings(database_url))
    yield first, second
    first.close()
    second.close()


def test_a_lost_race_names_the_case_and_says_to_try_again_without_sql(two: tuple[App, App]) -> None:
    winner, loser = two
    seed_small_district(winner)
    number = report(winner)
    won, lost = winner.load_case(number), loser.load_case(number)
    won.accept(DISPATCHER_REF, Level.COMMUNITY, T0 + timedelta(minutes=5))
    lost.reject(DISPATCHER_REF, "信息不足", T0 + timedelta(minutes=5))
    winner.save(won)
    with pytest.raises(ConcurrentChange) as raised:
        loser.save(lost)
    message = str(raised.value)
    assert message == f"case {number} (now at version 2) was changed by someone else meanwhile; try again"
    for words in ("UNIQUE", "constraint", "duplicate key", "INSERT", "stored_events", "already at version"):
        assert words not in message
