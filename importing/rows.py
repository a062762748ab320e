"""A row of an export → what it says (a :class:`Request`), its anomalies, and the commands it implies.

Pure: no I/O. :class:`RowReader` remembers the ids it has seen (for duplicates) and nothing else, so memory
stays flat apart from that set.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from domain import commands as c
from domain.base import ActorRef, Role
from domain.bounds import EARLIEST, LATEST
from domain.case import ExternalReference, HandlerKind, HandlerRef, Location
from domain.registry import GridKind, OrgKind, WorkerKind
from importing.profile import Anomaly

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from domain.case import Channel
    from importing.profile import Profile

#: A closure later than this is flagged (the export may have reopened and closed it again, or lost it).
A_YEAR = timedelta(days=365)
#: The resolve-by of a case whose export has no deadline: the end of the engine's window, so it is never overdue.
NO_DEADLINE = LATEST - timedelta(days=1)
#: The first day the import's own grid worker works the city's grids (the window's start).
SINCE = date(EARLIEST.year, 1, 1)
_POINT = re.compile(r"^\(?\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\)?$")
_SAFE_CODE = re.compile(r"^[A-Za-z0-9]{1,12}$")


@dataclass(frozen=True)
class Row:
    """One record of the file: the line it starts on and its values by column name."""

    line: int
    values: Mapping[str, str]


@dataclass(frozen=True)
class Request:
    """What a row says, cleaned: the times as aware moments, names as the file writes them."""

    ref: str
    opened: datetime
    closed: datetime | None
    deadline: datetime | None
    category: str
    category_code: str | None  # a catalogue code the profile maps the name to
    agency: str
    district: str
    channel: Channel
    address: str | None
    lat: float | None
    lon: float | None
    description: str
    result: str
    flags: tuple[Anomaly, ...]


@dataclass
class Reading:
    """A row read: its anomalies, and the request unless the row is skipped (``skipped`` says why)."""

    line: int
    ref: str | None
    anomalies: list[Anomaly] = field(default_factory=list)
    request: Request | None = None
    skipped: Anomaly | None = None


def clean_text(text: str, limit: int, *, line: bool = False) -> str:
    """A file's text fit to store: control characters and lone surrogates become spaces, cut to ``limit``.

    ``line``: a one-line field (a code, a name, an address), where line breaks and tabs become spaces too.
    """
    if text.isprintable():  # the common case, and a lone surrogate is not printable
        return text.strip()[:limit].strip()
    allowed = "" if line else "\n\t"
    kept = "".join(
        " " if ("\ud800" <= ch <= "\udfff" or (unicodedata.category(ch) == "Cc" and ch not in allowed)) else ch
        for ch in text
    )
    return kept.strip()[:limit].strip()


def short_code(text: str) -> str:
    """Eight hex digits standing for a name in a code (names hold spaces, slashes, any script)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8].upper()


class RowReader:
    """Reads an export's rows under one profile."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.zone = profile.zone
        self.closed_values = {v.strip().casefold() for v in profile.status.closed}
        self.open_values = {v.strip().casefold() for v in profile.status.open}
        self.seen: dict[str, int] = {}

    def _get(self, row: Row, column: str | None) -> str:
        if column is None:
            return ""
        return (row.values.get(column) or "").strip()

    def parse_time(self, text: str) -> datetime | None:
        """A time of the file as an aware moment (naive ones in the profile's zone); None if unreadable."""
        form = self.profile.times.format
        try:
            # Python 3.11 reads a trailing Z; a naive result is given the profile's zone below.
            moment = datetime.fromisoformat(text) if form == "iso" else datetime.strptime(text, form)  # noqa: DTZ007
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)  # fold 0: the first of an ambiguous hour
        if not EARLIEST <= moment < LATEST:
            return None
        return moment.astimezone(UTC)

    def _time(self, row: Row, column: str | None, found: list[Anomaly]) -> tuple[datetime | None, bool]:
        """(moment, given): an empty cell is not given; an unreadable one is given and flagged."""
        text = self._get(row, column)
        if not text:
            return None, False
        moment = self.parse_time(text)
        if moment is None:
            found.append(Anomaly.UNPARSEABLE_TIME)
        return moment, True

    def read(self, row: Row) -> Reading:
        """The row's request and anomalies; a row with an anomaly whose policy is ``skip`` is skipped."""
        p = self.profile
        cols = p.columns
        found: list[Anomaly] = []
        source_id = clean_text(self._get(row, cols.id), 40, line=True)
        if not source_id:
            return self._done(Reading(row.line, None, [Anomaly.MISSING_ID]))
        times = self.seen.get(source_id, 0) + 1
        self.seen[source_id] = times
        ref = f"{p.ref_prefix}{source_id}" + (f"#{times}" if times > 1 else "")
        if times > 1:
            found.append(Anomaly.DUPLICATE_ID)
        opened, opened_given = self._time(row, cols.opened, found)
        closed, _ = self._time(row, cols.closed, found)
        if not opened_given:
            found.append(Anomaly.MISSING_TIME)
        closed = self._closure(row, opened, closed, found)
        deadline = self._deadline(row, opened, found)
        if opened is None:
            # Kept, a row without its open time opens when it closed; without either it cannot be placed in time.
            if closed is None:
                why = Anomaly.UNPARSEABLE_TIME if opened_given else Anomaly.MISSING_TIME
                return self._done(Reading(row.line, ref, found), force=why)
            opened = closed
        lat, lon = self._point(row, found)
        category, code = self._category(row, found)
        agency = clean_text(self._get(row, cols.agency), 200, line=True)
        if not agency:
            found.append(Anomaly.MISSING_AGENCY)
            agency = "(no agency)"
        channel = self._channel(row, found)
        district = clean_text(self._get(row, cols.district), 200, line=True)
        description = " / ".join(t for col in cols.description if (t := clean_text(self._get(row, col), 1000)))
        result = clean_text(self._get(row, cols.notes), 1000) or f"closed in the {p.title}"
        address = clean_text(self._get(row, cols.address), 500, line=True) or None
        flags = tuple(dict.fromkeys(found))
        request = Request(
            ref=ref, opened=opened, closed=closed, deadline=deadline, category=category, category_code=code,
            agency=agency, district=district, channel=channel, address=address, lat=lat, lon=lon,
            description=clean_text(description, 4000) or category, result=result, flags=flags,
        )  # fmt: skip
        return self._done(Reading(row.line, ref, list(flags), request))

    def _done(self, reading: Reading, force: Anomaly | None = None) -> Reading:
        reading.anomalies = list(dict.fromkeys(reading.anomalies))
        if force is not None:
            reading.skipped, reading.request = force, None
            return reading
        for kind in reading.anomalies:
            if self.profile.policy(kind) == "skip":
                reading.skipped, reading.request = kind, None
                break
        return reading

    def _closure(self, row: Row, opened: datetime | None, closed: datetime | None,
                 found: list[Anomaly]) -> datetime | None:  # fmt: skip
        """The close time the case keeps: the status decides whether it is closed, the time when."""
        status = self._get(row, self.profile.columns.status).casefold()
        if self.profile.columns.status is None:
            says_closed = closed is not None
        elif status in self.closed_values:
            says_closed = True
        elif status in self.open_values:
            says_closed = False
        else:
            found.append(Anomaly.UNKNOWN_STATUS)
            says_closed = closed is not None
        if not says_closed and self.profile.status.close_is_last_update:
            return None
        if says_closed != (closed is not None):
            # Closed without a (readable) time, or open with one: kept open, as only the close time can close it.
            found.append(Anomaly.STATUS_CLOSE_DISAGREE)
            return None
        if closed is None or opened is None:
            return closed
        if closed < opened:
            found.append(Anomaly.CLOSED_BEFORE_OPENED)
            return opened  # a case's events keep time order: kept, it closes when it opened
        if closed == opened:
            found.append(Anomaly.CLOSED_SAME_SECOND)
        elif closed - opened > A_YEAR:
            found.append(Anomaly.CLOSED_AFTER_A_YEAR)
        return closed

    def _deadline(self, row: Row, opened: datetime | None, found: list[Anomaly]) -> datetime | None:
        deadline, given = self._time(row, self.profile.columns.deadline, found)
        if not given:
            found.append(Anomaly.MISSING_DEADLINE)
            return None
        if deadline is not None and opened is not None and deadline <= opened:
            found.append(Anomaly.DEADLINE_NOT_AFTER_OPENED)
            return None
        return deadline

    def _point(self, row: Row, found: list[Anomaly]) -> tuple[float | None, float | None]:
        cols = self.profile.columns
        if cols.point is None and cols.lat is None:
            found.append(Anomaly.MISSING_COORDINATES)
            return None, None
        if cols.point is not None:
            text = self._get(row, cols.point)
            match = _POINT.match(text)
            lat, lon = (float(match.group(1)), float(match.group(2))) if match else (None, None)
        else:
            try:
                lat, lon = float(self._get(row, cols.lat)), float(self._get(row, cols.lon))
            except ValueError:
                lat, lon = None, None
        if lat is None or lon is None:
            found.append(Anomaly.MISSING_COORDINATES)
            return None, None
        places = self.profile.places
        bounds = places.bounds
        placeholder = any(abs(lat - a) < 1e-7 and abs(lon - b) < 1e-7 for a, b in places.placeholders)  # noqa: PLR2004
        outside = not (-90 <= lat <= 90 and -180 <= lon <= 180) or (  # noqa: PLR2004
            bounds is not None and not (bounds[0] <= lat <= bounds[1] and bounds[2] <= lon <= bounds[3])
        )
        if placeholder or outside or (lat == 0 and lon == 0):
            found.append(Anomaly.PLACEHOLDER_COORDINATES)
            return None, None
        return lat, lon

    def _category(self, row: Row, found: list[Anomaly]) -> tuple[str, str | None]:
        cats = self.profile.categories
        name = clean_text(self._get(row, self.profile.columns.category), 200, line=True)
        if name in cats.map:
            return name, cats.map[name]
        if name and cats.create:
            return name, None
        found.append(Anomaly.UNKNOWN_CATEGORY)
        return cats.unknown, None

    def _channel(self, row: Row, found: list[Anomaly]) -> Channel:
        channels = self.profile.channels
        if self.profile.columns.channel is None:
            return channels.default
        value = self._get(row, self.profile.columns.channel)
        if value in channels.map:
            return channels.map[value]
        found.append(Anomaly.UNKNOWN_CHANNEL)
        return channels.default


# -- the commands a request implies --------------------------------------------------------------------------


@dataclass(frozen=True)
class Codes:
    """The engine's codes of what an import creates, derived from the profile and the file's names."""

    profile: Profile

    @property
    def city(self) -> str:
        """The district the city's units hang under."""
        return self.profile.city.code

    @property
    def worker(self) -> str:
        """The import's own grid worker: it checks each closure "on site" (the export says it was done)."""
        return f"IMPORT-{self.profile.name.upper()}"[:64]

    def street(self, district: str) -> str:
        """The street (the engine's unit under a district) standing for one of the file's districts."""
        part = district if _SAFE_CODE.match(district) else short_code(district or "(none)")
        return f"{self.city}-D{part}"

    def department(self, agency: str) -> str:
        """The department standing for one of the file's agencies."""
        return f"{self.city}-A{short_code(agency)}"

    def category(self, name: str) -> str:
        """The category created for one of the file's category names."""
        return f"{self.city}-C{short_code(name)}"


class Actors:
    """Who the import acts as: docs/import.md, "Who the import acts as"."""

    def __init__(self, profile: Profile, codes: Codes) -> None:
        who = f"import:{profile.name}"
        #: the registry (city, districts, agencies, categories), the report (it keeps the export's reference) and
        #: the dispatch (it keeps the export's deadline): only a migration may do those two
        self.admin = ActorRef(id=who, role=Role.ADMIN)
        self.dispatcher = ActorRef(id=who, role=Role.DISPATCHER)  # accept, close
        self.verifier = ActorRef(id=codes.worker, role=Role.GRID_WORKER)  # the on-site check of a closure
        self.who = who

    def handler(self, department: str) -> ActorRef:
        """The agency's desk: signs and resolves."""
        return ActorRef(id=self.who, role=Role.DEPARTMENT_HANDLER, unit=department)


class Registry:
    """What the city's registry needs before a request can be filed; ``known`` answers what already exists."""

    def __init__(self, profile: Profile, exists: Callable[[str, str], bool]) -> None:
        self.profile = profile
        self.codes = Codes(profile)
        self.actors = Actors(profile, self.codes)
        #: What this import created or found: "org:CODE", "worker:CODE", "category:CODE", "assign:GRID".
        self.known: set[str] = set()
        self.exists = exists

    def district_name(self, district: str) -> str:
        """The name a street is created with: the profile's, or its pattern with the file's value."""
        names = self.profile.districts
        if not district:
            return names.none
        return names.names.get(district) or names.name.replace("{value}", district)[:200]

    def needs(self, request: Request, at: datetime) -> list[c.Command]:
        """The registry commands not yet carried out that this request needs, created at its open time."""
        codes = self.codes
        street = codes.street(request.district)
        department = codes.department(request.agency)
        category = None if request.category_code is not None else codes.category(request.category)
        keys = [f"org:{codes.city}", f"worker:{codes.worker}", f"org:{street}", f"org:{street}-C", f"org:{street}-G",
                f"assign:{street}-G", f"org:{department}", *([f"category:{category}"] if category else [])]  # fmt: skip
        new: list[c.Command] = []
        for key in keys:
            if key in self.known:
                continue
            self.known.add(key)
            kind, _, code = key.partition(":")
            # A grid this import created was given the import's worker in the same transaction.
            if not self.exists("org" if kind == "assign" else kind, code):
                new.append(self._command(key, request, at))
        return new

    def _command(self, key: str, request: Request, at: datetime) -> c.Command:  # noqa: PLR0911 - one per kind
        """The registry command that creates what ``key`` names."""
        p, codes, admin = self.profile, self.codes, self.actors.admin
        kind, _, code = key.partition(":")
        street = codes.street(request.district)
        name = self.district_name(request.district)
        if kind == "worker":
            return c.RegisterWorker(actor=admin, at=at, code=code, name=f"Import of the {p.title}"[:200],
                                    kind=WorkerKind.FULL_TIME)  # fmt: skip
        if kind == "assign":
            return c.AssignWorker(actor=admin, at=at, worker=codes.worker, grid=code, start=SINCE)
        if kind == "category":
            return c.DefineCategory(
                actor=admin, at=at, code=code, group=codes.city, group_name=p.city.name, group_name_en=p.city.name,
                name=request.category, name_en=request.category, default_unit="grid", sla_class=p.categories.sla_class,
            )  # fmt: skip
        if code == codes.city:
            return c.CreateOrgUnit(actor=admin, at=at, code=code, kind=OrgKind.DISTRICT, name=p.city.name)
        if code == street:
            return c.CreateOrgUnit(actor=admin, at=at, code=code, kind=OrgKind.STREET, name=name, parent=codes.city)
        if code == f"{street}-C":
            return c.CreateOrgUnit(actor=admin, at=at, code=code, kind=OrgKind.COMMUNITY, name=name, parent=street)
        if code == f"{street}-G":
            return c.CreateOrgUnit(actor=admin, at=at, code=code, kind=OrgKind.GRID, name=name, parent=f"{street}-C",
                                   grid_kind=GridKind.BASE)  # fmt: skip
        return c.CreateOrgUnit(actor=admin, at=at, code=code, kind=OrgKind.DEPARTMENT, name=request.agency,
                               parent=codes.city)  # fmt: skip

    def report(self, request: Request) -> c.ReportCase:
        """The report, at the open time, with the export's id and the row's anomalies as its external reference."""
        codes = self.codes
        street = codes.street(request.district)
        external = ExternalReference(
            ref=request.ref, source=self.profile.name, flags=tuple(kind.value for kind in request.flags)
        )
        return c.ReportCase(
            actor=self.actors.admin,  # only a migration may keep another system's reference
            at=request.opened,
            channel=request.channel,
            category=request.category_code or codes.category(request.category),
            grid=f"{street}-G",
            location=Location(address=request.address, lat=request.lat, lon=request.lon),
            description=request.description,
            external=external,
        )

    def follow_ups(self, request: Request, number: str) -> list[c.Command]:
        """Accepted and referred to the agency, signed for, and (if closed) resolved, checked and closed."""
        actors = self.actors
        opened, closed = request.opened, request.closed
        department = self.codes.department(request.agency)
        handler = actors.handler(department)
        commands: list[c.Command] = [
            c.AcceptCase(actor=actors.dispatcher, at=opened, case_number=number, level=self.profile.city.level),
            c.DispatchCase(actor=actors.admin, at=opened, case_number=number,
                           handler=HandlerRef(kind=HandlerKind.DEPARTMENT, id=department),
                           resolve_by=request.deadline or NO_DEADLINE),
            c.SignDispatch(actor=handler, at=opened, case_number=number),
        ]  # fmt: skip
        if closed is not None:
            commands += [
                c.ResolveCase(actor=handler, at=closed, case_number=number, result=request.result),
                c.VerifyResolution(actor=actors.verifier, at=closed, case_number=number),
                c.CloseCase(actor=actors.dispatcher, at=closed, case_number=number),
            ]
        return commands
