"""Whether a category's location is public (issue 18 item 5): the catalogue's flag and the rule of public views."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.base import ActorRef, Role
from domain.errors import CommandRefused
from domain.personal_data import public_place
from domain.registry import Category

T0 = datetime(2021, 1, 1, tzinfo=UTC)
ADMIN = ActorRef(id="admin", role=Role.ADMIN)
PLACE = ("东海西路 12号", 36.06, 120.38)


def _manhole() -> Category:
    return Category.define(code="facility.manhole", group="facility", group_name="公共设施",
                           group_name_en="Public facilities", name="井盖", name_en="Manhole cover",
                           default_unit="grid", sla_class="A", actor=ADMIN, at=T0)  # fmt: skip


def test_public_views_show_a_place_only_when_the_catalogue_says_it_is_public() -> None:
    assert public_place(True, *PLACE) == PLACE
    assert public_place(False, *PLACE) == (None, None, None)
    assert public_place(None, *PLACE) == (None, None, None), "a category the catalogue does not know"


def test_a_category_recorded_before_the_flag_existed_loads_as_public() -> None:
    [defined] = _manhole().collect_events()
    old_state = defined.model_dump()
    del old_state["location_public"]
    assert Category.CategoryDefined.model_validate(old_state).mutate(None).location_public is True


def test_only_a_change_of_visibility_is_recorded_and_only_by_an_administrator() -> None:
    category = _manhole()
    category.collect_events()
    category.set_location_visibility(ADMIN, True, T0)
    assert category.collect_events() == []
    category.set_location_visibility(ADMIN, False, T0)
    [changed] = category.collect_events()
    assert isinstance(changed, Category.LocationVisibilitySet) and category.location_public is False
    with pytest.raises(CommandRefused, match="OnlyAdministratorsChangeTheRegistry"):
        category.set_location_visibility(ActorRef(id="d", role=Role.DISPATCHER), True, T0)
    assert category.location_public is False and category.collect_events() == []
