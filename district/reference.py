"""The reference district: Qingdao's Shinan district (市南区) at the scale DESIGN.md gives, built through commands.

Everything here goes through the ordinary registry commands, so the reference
district is event-sourced like any later change to it, and a review can replay
it. The commands come out in a fixed order, parents before children, and are
the same on every call for the same ``at`` (the only randomness is a
``random.Random(seed)`` made afresh per call, the seed in ``data/district.toml``).

The district's data are files in ``district/data/`` (read by
:mod:`district.tables`); this module turns them into commands and applies
them. What comes from the source (DESIGN.md, after the 2021 reports on
Shinan's grid governance), what is written out by hand and what is generated:

- From the source: the district and its ten streets (``streets.toml``); the six
  communities it names and the street each sits under (``source = true`` in
  ``streets.toml``); the figures (``[figures]`` in ``district.toml``: 505 base
  grids, 68 dedicated grids, 505 full-time, 453 professional and 2,648
  part-time grid workers); grids of about 500 households / 1,000 people; grid
  names numbered within their community (永嘉路社区004网格); the kinds of work
  the categories cover.
- Illustrative, written out in the data files: the other 49 communities (real
  road and place names, but which community exists under which street is not
  an official list); the 68 dedicated grids' places (``dedicated_grids.csv``,
  well-known places placed under a plausible street, not checked); the
  departments' exact names and where the professional workers come from
  (``departments.toml``); the category catalogue, its default units and SLA
  classes (``categories.toml``); SLA policy version 1 (``sla_policy.toml``).
- The holiday calendar version 1 (``holidays.toml``) is mainland China's
  public holidays and make-up working days (调休) for 2021–2026 as the State
  Council's yearly notices published them, written out by hand. It is
  reference data: when a day turns out wrong, or a new year is announced,
  publish calendar version 2 with a ``registry.calendar`` command; never edit
  the file in place, since cases record the calendar version their deadlines
  were computed with.
- Generated here, by code, from the seed: how the base grids are spread over
  communities; which community each dedicated grid sits in; every grid's
  households, population and elderly; worker names (from the surname and
  given-name characters in ``district.toml``); which grids professional and
  part-time workers cover; every unit's boundary (``district/geometry.py``:
  seeded Voronoi tilings inside a hand-drawn outline of Shinan, communities,
  streets and the district as unions of their grids).

Codes: streets ``SN01``…``SN10`` in file order; communities ``SN08-C01``;
base grids ``SN08-C01-G004``; dedicated grids ``SN07-C02-Z01`` (Z for 专属);
departments ``D-CG``… (from the file); workers ``W00001`` (full-time, one per
base grid in grid order, each its grid's leader), ``P00001`` (professional),
``V00001`` (part-time, grid by grid).
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import TYPE_CHECKING

from district.geometry import district_shapes
from district.tables import reference_data
from domain import commands as c
from domain.base import ActorRef, Role
from domain.errors import AlreadyExists
from domain.registry import GridKind, OrgKind, WorkerKind, category_id, org_unit_id, worker_id
from service.geometry import as_boundary

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from datetime import date, datetime
    from uuid import UUID

    from district.ports import Service, StoreReader
    from district.tables import Generated
    from domain.commands import AnyCommand


#: Every reference command is issued by this actor.
LOADER = ActorRef(id="reference-loader", role=Role.SYSTEM)
DISTRICT = reference_data().district.code
#: Commands saved per transaction. Kept small because of a PostgreSQL hang: psycopg 3.3.9 (Python and
#: C implementations alike) can leave the end of a pipelined ``executemany`` unsent when it syncs, and
#: the event store's recorder then waits forever for results (seen with 2,000–4,000 events, several
#: hundred KB, in one transaction). 250 commands (~110 KB of rows) fit in a socket buffer.
CHUNK = 250
#: The public holidays of ``holidays.toml``: (holiday, first day off, last day off, make-up working days 调休),
#: days as ISO strings.
PUBLIC_HOLIDAYS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = tuple(
    (h.name, h.first.isoformat(), h.last.isoformat(), tuple(d.isoformat() for d in h.make_up))
    for h in reference_data().holidays
)


def holiday_calendar() -> tuple[tuple[date, ...], tuple[date, ...]]:
    """Calendar version 1: every day off of the public holidays (weekends inside them too) and the make-up days."""
    holidays: list[date] = []
    workdays: list[date] = []
    for holiday in reference_data().holidays:
        day = holiday.first
        while day <= holiday.last:
            holidays.append(day)
            day += timedelta(days=1)
        workdays.extend(holiday.make_up)
    return tuple(sorted(holidays)), tuple(sorted(workdays))


def _person(rng: random.Random, names: Generated) -> str:
    given = "".join(rng.choice(names.given) for _ in range(1 if rng.random() < 0.3 else 2))  # noqa: PLR2004
    return rng.choice(names.surnames) + given


def _spread(rng: random.Random, total: int, bins: int, low: int, high: int) -> list[int]:
    """``total`` split over ``bins`` counts between ``low`` and ``high``, unevenly but reproducibly."""
    counts = [total // bins] * bins
    for i in rng.sample(range(bins), total % bins):
        counts[i] += 1
    for _ in range(bins * 4):
        a, b = rng.randrange(bins), rng.randrange(bins)
        if counts[a] > low and counts[b] < high:
            counts[a] -= 1
            counts[b] += 1
    return counts


def reference_commands(at: datetime) -> Iterator[AnyCommand]:  # noqa: C901, PLR0912, PLR0915
    """The registry commands that build the reference district, parents before children, the same on every call."""
    data = reference_data()
    generated, figures = data.generated, data.figures
    rng = random.Random(generated.seed)  # noqa: S311 - reproducible test data, not security
    actor = LOADER

    def unit(
        code: str,
        kind: OrgKind,
        name: str,
        name_en: str,
        parent: str | None,
        grid_kind: GridKind | None = None,
        households: int = 0,
        population: int = 0,
        elderly: int = 0,
    ) -> AnyCommand:
        return c.CreateOrgUnit(
            actor=actor,
            at=at,
            code=code,
            kind=kind,
            name=name,
            name_en=name_en,
            parent=parent,
            grid_kind=grid_kind,
            households=households,
            population=population,
            elderly=elderly,
        )

    yield unit(DISTRICT, OrgKind.DISTRICT, data.district.name, data.district.name_en, None)
    for n, street in enumerate(data.streets, start=1):
        yield unit(f"{DISTRICT}{n:02d}", OrgKind.STREET, f"{street.name}街道", f"{street.name_en} Street", DISTRICT)
    for dept in data.departments:
        yield unit(dept.code, OrgKind.DEPARTMENT, dept.name, dept.name_en, DISTRICT)

    # Communities, then base grids spread over them.
    communities: list[tuple[str, str, str, str]] = []  # code, street code, name, English label
    for n, street in enumerate(data.streets, start=1):
        street_code = f"{DISTRICT}{n:02d}"
        for m, own_community in enumerate(street.communities, start=1):
            code = f"{street_code}-C{m:02d}"
            name, name_en = own_community.name, own_community.name_en
            communities.append((code, street_code, name, name_en))
            yield unit(code, OrgKind.COMMUNITY, f"{name}社区", f"{name_en} Community", street_code)

    base_grids: list[str] = []
    grids_of_street: dict[str, list[str]] = {}
    #: street → community → its grids, in the order they are created: what the boundaries are drawn for.
    layout: dict[str, dict[str, list[str]]] = {}
    for code, street_code, *_ in communities:
        layout.setdefault(street_code, {})[code] = []
    for (code, street_code, name, name_en), count in zip(
        communities, _spread(rng, figures.base_grids, len(communities), 6, 13), strict=True
    ):
        for g in range(1, count + 1):
            grid = f"{code}-G{g:03d}"
            households = rng.randint(400, 600)
            population = min(1_250, max(800, round(households * rng.uniform(1.8, 2.1))))
            elderly = rng.randint(-(-population * 10 // 100), population * 35 // 100)  # 10%–35%
            base_grids.append(grid)
            grids_of_street.setdefault(street_code, []).append(grid)
            layout[street_code][code].append(grid)
            yield unit(grid, OrgKind.GRID, f"{name}社区{g:03d}网格", f"{name_en} Community Grid {g:03d}", code,
                       GridKind.BASE, households, population, elderly)  # fmt: skip

    dedicated_grids: list[str] = []
    numbered: dict[str, int] = {}
    for n, street in enumerate(data.streets, start=1):
        street_code = f"{DISTRICT}{n:02d}"
        own = [community for community in communities if community[1] == street_code]
        for place, place_en in ((d.place, d.place_en) for d in data.dedicated_grids if d.street == street.name):
            community = rng.choice(own)[0]
            numbered[community] = numbered.get(community, 0) + 1
            grid = f"{community}-Z{numbered[community]:02d}"
            households = rng.randint(10, 150)
            population = households * 2 + rng.randint(0, 60)
            elderly = rng.randint(population * 5 // 100, population * 25 // 100)
            dedicated_grids.append(grid)
            grids_of_street[street_code].append(grid)
            layout[street_code][community].append(grid)
            yield unit(grid, OrgKind.GRID, f"{place}专属网格", f"{place_en} Dedicated Grid", community,
                       GridKind.DEDICATED, households, population, elderly)  # fmt: skip

    # Generated boundaries (district/geometry.py): grids, then communities, streets and the district as unions.
    shapes = district_shapes(DISTRICT, layout, generated.seed)
    ordered = [g for street in layout.values() for grids in street.values() for g in grids]
    ordered += [community for street in layout.values() for community in street] + [*layout, DISTRICT]
    for code in ordered:
        yield c.SetBoundary(actor=actor, at=at, code=code, boundary=as_boundary(shapes[code]))

    for category in data.categories:
        group = category.code.split(".", 1)[0]
        yield c.DefineCategory(actor=actor, at=at, code=category.code, group=group,
                               group_name=data.groups[group].name, group_name_en=data.groups[group].name_en,
                               name=category.name, name_en=category.name_en, default_unit=category.default_unit,
                               sla_class=category.sla_class, location_public=category.location_public)  # fmt: skip
    yield c.PublishSlaPolicy(actor=actor, at=at, version=data.sla_version, rules=data.sla_rules)
    holidays, workdays = holiday_calendar()
    yield c.PublishCalendar(actor=actor, at=at, version=data.calendar_version, holidays=holidays, workdays=workdays)

    def worker(code: str, kind: WorkerKind, department: str | None = None) -> AnyCommand:
        name = _person(rng, generated)
        return c.RegisterWorker(actor=actor, at=at, code=code, name=name, kind=kind, department=department)

    def assign(code: str, grid: str) -> AnyCommand:
        return c.AssignWorker(actor=actor, at=at, worker=code, grid=grid, start=generated.assignments_start)

    # One full-time worker per base grid, who also leads it.
    for n, grid in enumerate(base_grids, start=1):
        code = f"W{n:05d}"
        yield worker(code, WorkerKind.FULL_TIME)
        yield assign(code, grid)
        yield c.AppointGridLeader(actor=actor, at=at, grid=grid, worker=code)

    # Professional workers: the first 68 cover one dedicated grid each, so none is left without one;
    # each covers one or two grids (base or dedicated) of a single street.
    departments = [p.department for p in data.professionals for _ in range(p.count)]
    rng.shuffle(departments)
    streets = sorted(grids_of_street)
    for n, department in enumerate(departments, start=1):
        code = f"P{n:05d}"
        if n <= len(dedicated_grids):
            first = dedicated_grids[n - 1]
            pool = grids_of_street[first[: len(DISTRICT) + 2]]
        else:
            pool = grids_of_street[rng.choice(streets)]
            first = rng.choice(pool)
        grids = [first]
        if rng.random() < 0.5:  # noqa: PLR2004
            grids.append(rng.choice([g for g in pool if g != first]))
        yield worker(code, WorkerKind.PROFESSIONAL, department)
        for grid in grids:
            yield assign(code, grid)

    # Part-time workers (building leaders, volunteers, property security): five or six per base grid.
    n = 0
    for grid, count in zip(base_grids, _spread(rng, figures.part_time, len(base_grids), 5, 6), strict=True):
        for _ in range(count):
            n += 1
            code = f"V{n:05d}"
            yield worker(code, WorkerKind.PART_TIME)
            yield assign(code, grid)

    if (len(base_grids), len(dedicated_grids), len(departments), n) != (
        figures.base_grids,
        figures.dedicated_grids,
        figures.professional,
        figures.part_time,
    ):  # pragma: no cover - guards the data files
        msg = "the reference data files no longer give DESIGN.md's figures"
        raise AssertionError(msg)


def reference_figures(commands: Sequence[AnyCommand]) -> dict[str, int]:
    """What a list of reference commands sets up: units, workers, categories, households and population."""
    figures = dict.fromkeys(
        ("streets", "communities", "base_grids", "dedicated_grids", "departments", "full_time", "professional",
         "part_time", "categories", "households", "population"),
        0,
    )  # fmt: skip
    for command in commands:
        if isinstance(command, c.CreateOrgUnit):
            if command.kind is OrgKind.GRID:
                figures[f"{command.grid_kind}_grids"] += 1
                figures["households"] += command.households
                figures["population"] += command.population
            elif command.kind is not OrgKind.DISTRICT:
                figures[{"street": "streets", "community": "communities"}.get(command.kind, "departments")] += 1
        elif isinstance(command, c.RegisterWorker):
            figures[command.kind.value] += 1
        elif isinstance(command, c.DefineCategory):
            figures["categories"] += 1
    return figures


def _created_id(command: AnyCommand) -> UUID | None:
    """The id of the aggregate a command creates, for commands that create one."""
    if isinstance(command, c.CreateOrgUnit):
        return org_unit_id(command.code)
    if isinstance(command, c.RegisterWorker):
        return worker_id(command.code)
    if isinstance(command, c.DefineCategory):
        return category_id(command.code)
    return None


def _chunks_loaded(reader: StoreReader, chunks: Sequence[Sequence[AnyCommand]]) -> int:
    """How many leading chunks are already in the store (each chunk is one transaction, saved in order)."""

    def stored(aggregate_id: UUID) -> bool:
        return reader.first_event(aggregate_id) is not None

    def creates(chunk: Sequence[AnyCommand]) -> list[UUID]:
        return [i for i in map(_created_id, reversed(chunk)) if i is not None]

    def saved(chunk: Sequence[AnyCommand]) -> bool:
        # The last thing a chunk creates exists only if the chunk was committed. A chunk that creates nothing
        # (only boundaries) counts as unsaved: drawing the same boundary again records nothing.
        created = creates(chunk)
        return bool(created) and stored(created[0])

    if not stored(org_unit_id(DISTRICT)):
        return 0
    if saved(chunks[-1]):
        return len(chunks)
    index = next(index for index, chunk in enumerate(chunks) if creates(chunk) and not saved(chunk))
    if index == 0:
        # The district is there but this loader did not make it: never load on top of someone else's.
        raise AlreadyExists("district", DISTRICT, command="reference.load")
    while index > 0 and not creates(chunks[index - 1]):
        index -= 1
    return index


def load_reference_district(
    app: Service, reader: StoreReader, at: datetime, progress: Callable[[int, int], None] | None = None
) -> dict[str, int]:
    """Load the reference district unless it is there already; return its figures and the events written.

    The commands are saved in chunks of :data:`CHUNK`, one transaction each, in
    order, and ``progress(done, total)`` is called after each chunk is saved.
    Loading is idempotent:

    - district ``SN`` absent: everything is loaded; ``skipped`` is 0.
    - the whole reference district present: nothing is written and ``progress``
      is not called; ``skipped`` is 1, ``events`` 0.
    - an earlier load stopped part-way (a crash between chunks): the chunks
      already saved are recognised (the last unit, worker or category each one
      creates exists) and the load resumes with the next one; ``resumed`` is 1.
      Resumed commands carry the new ``at``.
    - district ``SN`` present but not made by this loader: ``AlreadyExists`` is
      raised and nothing is written.

    The figures (streets, communities, base_grids, dedicated_grids, departments,
    full_time, professional, part_time, categories, and households and
    population summed over all grids, base and dedicated) describe the
    reference district, whatever this call wrote. ``events`` is how far the
    notification log advanced during the call: events written by other
    processes meanwhile are counted too.
    """
    commands = list(reference_commands(at))
    chunks = [commands[i : i + CHUNK] for i in range(0, len(commands), CHUNK)]
    figures = reference_figures(commands)
    loaded = _chunks_loaded(reader, chunks)
    if loaded == len(chunks):
        return {**figures, "events": 0, "skipped": 1, "resumed": 0}
    before = reader.last_position()
    done = sum(len(chunk) for chunk in chunks[:loaded])
    for chunk in chunks[loaded:]:
        with app.batch():
            for command in chunk:
                app.handle(command)
        done += len(chunk)
        if progress is not None:
            progress(done, len(commands))
    return {**figures, "events": reader.last_position() - before, "skipped": 0, "resumed": int(loaded > 0)}
