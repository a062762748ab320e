"""The reference district's data files (``district/data/``), read and checked into typed tables.

The files are package data, read through :mod:`importlib.resources`, so an
installed wheel carries them. Each table keeps the files' order, which the
loader depends on: codes are numbered in file order, and the generated parts
draw from one seeded generator in that order.
"""

from __future__ import annotations

import csv
import io
import tomllib
from datetime import date
from functools import cache
from importlib.resources import files
from typing import Any

from pydantic import BaseModel, ConfigDict

from domain.sla import SlaClass, SlaRule

#: The folder of the data files, inside the package.
DATA = "data"


class Table(BaseModel):
    """A row of a data file: unknown keys are refused, so a misspelt one is not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Named(Table):
    """Something with a Chinese name and an English label."""

    name: str
    name_en: str


class Community(Named):
    """A community (社区) of a street; ``source`` if the source article names it under that street."""

    source: bool = False


class Street(Named):
    """A street (街道) and its communities, in order."""

    communities: tuple[Community, ...]


class DedicatedGrid(Table):
    """A dedicated grid (专属网格): a place of a street, named ``<place>专属网格``."""

    street: str
    place: str
    place_en: str


class Unit(Named):
    """An org unit the data files name with its code: the district, a department (职能部门)."""

    code: str


class Professionals(Table):
    """How many professional grid workers come from one department."""

    department: str
    count: int


class CategoryRow(Named):
    """One category of the catalogue, with its default unit (a department code or ``grid``) and SLA class."""

    code: str
    default_unit: str
    sla_class: SlaClass
    #: False: public views show only the grid of its cases (a dispute, a care visit).
    location_public: bool = True


class PublicHoliday(Table):
    """One public holiday: the days off, ``first`` to ``last``, and the make-up working days (调休)."""

    name: str
    first: date
    last: date
    make_up: tuple[date, ...] = ()


class Figures(Table):
    """DESIGN.md's figures, which the generated grids and workers must give."""

    base_grids: int
    dedicated_grids: int
    full_time: int
    professional: int
    part_time: int


class Generated(Table):
    """What the generated parts are generated from."""

    seed: int
    assignments_start: date
    surnames: str
    given: str


class ReferenceData(Table):
    """Every data file of the reference district, read."""

    district: Unit
    figures: Figures
    generated: Generated
    streets: tuple[Street, ...]
    dedicated_grids: tuple[DedicatedGrid, ...]
    departments: tuple[Unit, ...]
    professionals: tuple[Professionals, ...]
    groups: dict[str, Named]
    categories: tuple[CategoryRow, ...]
    sla_version: int
    sla_rules: tuple[SlaRule, ...]
    calendar_version: int
    holidays: tuple[PublicHoliday, ...]


def _text(name: str) -> str:
    return files("district").joinpath(DATA, name).read_text(encoding="utf-8")


def _toml(name: str) -> dict[str, Any]:
    return tomllib.loads(_text(name))


def _csv(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(_text(name))))


@cache
def reference_data() -> ReferenceData:
    """The data files, read once per process (the result is frozen)."""
    district = _toml("district.toml")
    departments = _toml("departments.toml")
    categories = _toml("categories.toml")
    policy = _toml("sla_policy.toml")
    calendar = _toml("holidays.toml")
    return ReferenceData.model_validate({
        "district": district["district"],
        "figures": district["figures"],
        "generated": district["generated"],
        "streets": _toml("streets.toml")["streets"],
        "dedicated_grids": _csv("dedicated_grids.csv"),
        "departments": departments["departments"],
        "professionals": departments["professionals"],
        "groups": categories["groups"],
        "categories": categories["categories"],
        "sla_version": policy["version"],
        "sla_rules": policy["rules"],
        "calendar_version": calendar["version"],
        "holidays": calendar["holidays"],
    })  # fmt: skip

