"""The rule of who may see personal data in clear, and what reason a clear view needs (pure logic)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.base import ActorRef, Role
from domain.bounds import REASON_MAX
from domain.personal_data import (
    OnlyAuditorsAndAdminsSeePersonalData,
    check_may_see_personal_data,
    reason_problem,
)


@pytest.mark.parametrize("role", list(Role))
def test_only_auditors_and_admins_may_see_personal_data(role: Role) -> None:
    viewer = ActorRef(id="someone", role=role)
    if role in {Role.AUDITOR, Role.ADMIN}:
        check_may_see_personal_data(viewer)
    else:
        with pytest.raises(OnlyAuditorsAndAdminsSeePersonalData, match=f"role {role.value} \\(someone\\)") as refused:
            check_may_see_personal_data(viewer)
        assert refused.value.rule == "OnlyAuditorsAndAdminsSeePersonalData"


def test_nobody_named_may_not_see_it() -> None:
    with pytest.raises(OnlyAuditorsAndAdminsSeePersonalData, match="nobody named"):
        check_may_see_personal_data(None)


@given(st.text(alphabet=" \u3000\u00a0", max_size=20))
def test_a_missing_or_blank_reason_is_refused(blank: str) -> None:
    assert reason_problem(blank) is not None
    assert reason_problem(None) is not None


@given(st.text(min_size=1, max_size=REASON_MAX).filter(str.strip))
def test_a_reason_is_one_line_of_text_within_its_bound(reason: str) -> None:
    problem = reason_problem(reason)
    controls = [c for c in reason if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or "\ud800" <= c <= "\udfff"]
    assert (problem is None) == (not controls), (reason, problem)


def test_a_reason_longer_than_its_bound_is_refused() -> None:
    assert reason_problem("x" * REASON_MAX) is None
    assert reason_problem("x" * (REASON_MAX + 1)) == f"is {REASON_MAX + 1:,} characters long; at most {REASON_MAX:,}"
