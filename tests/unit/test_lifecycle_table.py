"""The lifecycle table read models take from the domain is the aggregate's own behaviour."""

from __future__ import annotations

from domain.case import STATE_AFTER
from tests.unit.test_case_aggregate import (
    accept,
    close,
    dispatch,
    escalate,
    merge,
    reject,
    reopen,
    reported,
    resolve,
    resume,
    return_,
    rework,
    sign,
    suspend,
    verify,
)

WALKS = (
    (accept(), dispatch(), return_(), escalate(), dispatch(), sign(), suspend(), resume(), resolve(), rework(),
     resolve(), verify(), close(), reopen()),
    (reject(),),
    (merge(),),
)  # fmt: skip


def test_every_state_changing_event_leaves_the_case_where_the_table_says() -> None:
    seen = {}
    for walk in WALKS:
        case = reported()
        case.collect_events()
        for step in walk:
            step(case)
            for event in case.collect_events():
                name = type(event).__name__
                if name in STATE_AFTER:
                    seen[name] = case.state
    assert set(seen) == set(STATE_AFTER)
    assert seen == STATE_AFTER
