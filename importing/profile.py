"""An import profile: how one export's columns, times, statuses, categories, channels and districts read.

Profiles are TOML (``importing/profiles/*.toml`` ship with the engine; docs/import.md says how to write
another). Every key is checked: a misspelt one is an error naming it.
"""

from __future__ import annotations

import tomllib
from enum import StrEnum
from importlib import resources
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domain.case import Channel, Level

Column = Annotated[str, Field(min_length=1, max_length=200)]


class Anomaly(StrEnum):
    """What can be odd about a row of a real export; each kind is counted with its line numbers."""

    CLOSED_BEFORE_OPENED = "closed_before_opened"
    CLOSED_SAME_SECOND = "closed_same_second"
    CLOSED_AFTER_A_YEAR = "closed_after_a_year"
    MISSING_TIME = "missing_time"
    UNPARSEABLE_TIME = "unparseable_time"
    STATUS_CLOSE_DISAGREE = "status_close_disagree"
    UNKNOWN_STATUS = "unknown_status"
    MISSING_DEADLINE = "missing_deadline"
    DEADLINE_NOT_AFTER_OPENED = "deadline_not_after_opened"
    MISSING_COORDINATES = "missing_coordinates"
    PLACEHOLDER_COORDINATES = "placeholder_coordinates"
    UNKNOWN_CATEGORY = "unknown_category"
    UNKNOWN_CHANNEL = "unknown_channel"
    MISSING_AGENCY = "missing_agency"
    DUPLICATE_ID = "duplicate_id"
    MISSING_ID = "missing_id"


#: Kinds a row cannot be kept with, whatever the policy: without an id a re-run cannot know it imported it.
NEVER_KEPT = frozenset({Anomaly.MISSING_ID})

Policy = Literal["keep", "skip"]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Columns(_Section):
    """Which column holds what; only ``id`` and ``opened`` are required."""

    id: Column
    opened: Column
    closed: Column | None = None
    status: Column | None = None
    deadline: Column | None = None
    agency: Column | None = None
    category: Column | None = None
    channel: Column | None = None
    district: Column | None = None
    address: Column | None = None
    #: One column holding "(lat, lon)" (or "lat, lon"), or two columns.
    point: Column | None = None
    lat: Column | None = None
    lon: Column | None = None
    #: Columns joined (" / ") into the case's description; the category's name when all are empty.
    description: tuple[Column, ...] = ()
    #: The column whose text becomes the resolution's result (status notes); a fixed sentence otherwise.
    notes: Column | None = None


class Times(_Section):
    """How times are written: a ``strptime`` format or ``iso`` (W3C / ISO 8601), and the zone of naive ones."""

    format: Annotated[str, Field(min_length=1, max_length=100)] = "iso"
    #: Times written without an offset are wall-clock times in this zone (an IANA name).
    zone: Annotated[str, Field(min_length=1, max_length=64)] = "UTC"

    @field_validator("zone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"{zone!r} is not an IANA time zone"
            raise ValueError(msg) from None
        return zone


class Statuses(_Section):
    """Which status values mean closed and which open (compared without case and surrounding spaces)."""

    closed: tuple[str, ...] = ("closed",)
    open: tuple[str, ...] = ("open",)
    #: The close column is the time of the last update (GeoReport's ``updated_datetime``): it is the close
    #: time of a closed row only, and an open row having one is no disagreement.
    close_is_last_update: bool = False


class Categories(_Section):
    """Categories: mapped to catalogue codes, or created on first sight with the file's names."""

    create: bool = True
    #: The SLA class given to a category created on first sight.
    sla_class: Literal["A", "B", "C"] = "C"
    #: The file's name → an existing catalogue code.
    map: dict[str, Annotated[str, Field(min_length=1, max_length=64)]] = {}
    #: The name of the category an unknown one is kept under.
    unknown: Annotated[str, Field(min_length=1, max_length=200)] = "(unknown category)"


class Channels(_Section):
    """The file's source values → the engine's channels; anything else takes ``default``."""

    default: Channel = Channel.HOTLINE
    map: dict[str, Channel] = {}


class Districts(_Section):
    """The file's district values → names (``name`` is a pattern with ``{value}`` for the others)."""

    name: Annotated[str, Field(min_length=1, max_length=200)] = "District {value}"
    names: dict[str, Annotated[str, Field(min_length=1, max_length=200)]] = {}
    #: The name of the district of a row without one.
    none: Annotated[str, Field(min_length=1, max_length=200)] = "(no district)"


class Places(_Section):
    """Which points mean "unknown location": listed placeholders, and anything outside the bounds."""

    placeholders: tuple[tuple[float, float], ...] = ()
    #: [south, north, west, east]; empty: any point on Earth.
    bounds: tuple[float, float, float, float] | None = None


class City(_Section):
    """The city the export is of: the engine's district its streets (the file's districts) hang under."""

    code: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9]{0,7}$")]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    #: The level imported cases are accepted at: city agencies work at district level.
    level: Level = Level.DISTRICT


class Profile(_Section):
    """Everything the import needs to know about one kind of export."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
    title: Annotated[str, Field(min_length=1, max_length=200)]
    #: ``csv``, or ``json`` (an array of objects, as GeoReport v2's requests.json answers).
    format: Literal["csv", "json"] = "csv"
    #: Put before every id to make the case's external reference (``SF311-`` + ``3600298``).
    ref_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{0,16}$")] = ""
    city: City
    columns: Columns
    times: Times = Times()
    status: Statuses = Statuses()
    categories: Categories = Categories()
    channels: Channels = Channels()
    districts: Districts = Districts()
    places: Places = Places()
    #: A policy per anomaly kind; the default keeps the row and flags it.
    anomalies: dict[Anomaly, Policy] = {}

    def policy(self, kind: Anomaly) -> Policy:
        """What happens to a row with this anomaly."""
        if kind in NEVER_KEPT:
            return "skip"
        return self.anomalies.get(kind, "keep")

    @property
    def zone(self) -> ZoneInfo:
        """The zone of the file's naive times."""
        return ZoneInfo(self.times.zone)


class BadProfile(ValueError):
    """A profile that does not read: the message names the key that is wrong."""


def parse_profile(text: str, where: str = "profile") -> Profile:
    """A profile from its TOML text; a bad one is :class:`BadProfile` naming the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        msg = f"{where}: not TOML: {error}"
        raise BadProfile(msg) from None
    try:
        return Profile.model_validate(data)
    except ValidationError as error:
        problem = error.errors()[0]
        key = ".".join(str(part) for part in problem["loc"])
        msg = f"{where}: {key}: {problem['msg']}"
        raise BadProfile(msg) from None


def shipped_profiles() -> list[str]:
    """The names of the profiles that ship with the engine."""
    folder = resources.files("importing") / "profiles"
    return sorted(entry.name.removesuffix(".toml") for entry in folder.iterdir() if entry.name.endswith(".toml"))


def shipped_profile(name: str) -> Profile | None:
    """A profile that ships with the engine, by name; None when there is none of that name."""
    if name not in shipped_profiles():
        return None
    text = (resources.files("importing") / "profiles" / f"{name}.toml").read_text("utf-8")
    return parse_profile(text, f"profile {name}")
