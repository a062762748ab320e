"""The district's commands and a short simulation, pinned: moving the code or its data must not change an event.

The digests were computed from the code as it stood before the reference tables
became data files (commit f0d20d8). If one of them changes, the reference
district or the simulator now writes different events; that is a new reference
district (or calendar, or policy) version, never a refactoring.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from district.reference import load_reference_district, reference_commands
from district.simulator import SimulationConfig, Simulator, World
from tests.conftest import make_settings
from tests.support import make_app

if TYPE_CHECKING:
    from pathlib import Path

#: ``at`` of the tests, and the one the CLI loads the district with.
AT_UTC = datetime(2021, 1, 1, tzinfo=UTC)
AT_CLI = datetime.fromisoformat("2021-01-01T00:00:00+08:00")
#: Since issue 19 every unit but a department has a generated boundary: 639 ``registry.boundary`` commands after
#: the grids, a new reference district. Without them, the commands are those of issue 18 item 5, byte for byte.
COMMANDS = 9_275
DIGEST_UTC = "e189bbdf035b9e7e1bdfd45dac07638e0e0349ce91b6b4074549df2a31127f71"
DIGEST_CLI = "d6b7a52b1ab45c9ce634efb6cda9632fedca90dcdac7bfd388c5fd5463fb8674"
WITHOUT_BOUNDARIES = 8_636
#: Before the boundaries: since issue 18 item 5 the categories say whether their place is public (the reference
#: district's disputes and livelihood services are not). Without that field, the commands first pinned.
BEFORE_BOUNDARIES_UTC = "b66b49f11d571843745f598e17205baa236c9c656f6bd92fcc447d7ba37cdc7f"
BEFORE_BOUNDARIES_CLI = "8e006e8c86a79732e19d2074f9c575c78fc66c427b68524a4a97ac68e6fcd57c"
BEFORE_LOCATIONS_UTC = "a7d08e6dab61d9a68612872e5a79f45ee12e71cab02cfec79eb8233d3e47885d"
BEFORE_LOCATIONS_CLI = "03f37716172ad043c4f4b2875e4c3c5b80fe5909bbe1ce92a91116bfe43529fe"
#: Three days of ten grids with seed 7, from 2021-06-01, on a fresh reference district. With the boundaries only
#: the versions of the six grids whose figures are counted again moved (each grid has one event more).
SIMULATION_EVENTS = 408
SIMULATION_DIGEST = "daccb07b631741b095ff4be3b5371238bcafc1c4db139e25536ad1f6e0288199"


def commands_digest(at: datetime, *, without: set[str] | None = None, boundaries: bool = True) -> tuple[int, str]:
    lines = [command.model_dump_json(exclude=without) for command in reference_commands(at)
             if boundaries or command.command != "registry.boundary"]  # fmt: skip
    return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()


def test_the_reference_commands_are_those_of_before() -> None:
    assert commands_digest(AT_UTC) == (COMMANDS, DIGEST_UTC)
    assert commands_digest(AT_CLI) == (COMMANDS, DIGEST_CLI)
    # The boundaries are the only change since issue 18 item 5.
    assert commands_digest(AT_UTC, boundaries=False) == (WITHOUT_BOUNDARIES, BEFORE_BOUNDARIES_UTC)
    assert commands_digest(AT_CLI, boundaries=False) == (WITHOUT_BOUNDARIES, BEFORE_BOUNDARIES_CLI)
    # The flag of public locations is the only change before that since the digests were first pinned.
    before = {"location_public"}
    assert commands_digest(AT_UTC, without=before, boundaries=False) == (WITHOUT_BOUNDARIES, BEFORE_LOCATIONS_UTC)
    assert commands_digest(AT_CLI, without=before, boundaries=False) == (WITHOUT_BOUNDARIES, BEFORE_LOCATIONS_CLI)


def test_a_short_simulation_writes_the_events_of_before(tmp_path: Path) -> None:
    service = make_app(make_settings(f"sqlite:///{tmp_path / 'gridcase.db'}"))
    try:
        reader = service.reader
        load_reference_district(service, reader, AT_CLI)
        world = World(reference_commands(AT_CLI), 10)
        config = SimulationConfig(days=3, seed=7, grids=10, start=date(2021, 6, 1))
        totals = Simulator(service, reader, world, config).run()
    finally:
        service.close()
    assert (totals.events, totals.digest) == (SIMULATION_EVENTS, SIMULATION_DIGEST)
