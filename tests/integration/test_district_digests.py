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
#: The reference district with its generated boundaries (issue 19): the 8,636 commands of before and 639
#: ``registry.boundary``. Without the boundaries, the commands are those of before, byte for byte.
COMMANDS = 9_275
DIGEST_UTC = "e189bbdf035b9e7e1bdfd45dac07638e0e0349ce91b6b4074549df2a31127f71"
DIGEST_CLI = "d6b7a52b1ab45c9ce634efb6cda9632fedca90dcdac7bfd388c5fd5463fb8674"
WITHOUT_BOUNDARIES = 8_636
WITHOUT_BOUNDARIES_UTC = "b66b49f11d571843745f598e17205baa236c9c656f6bd92fcc447d7ba37cdc7f"
WITHOUT_BOUNDARIES_CLI = "8e006e8c86a79732e19d2074f9c575c78fc66c427b68524a4a97ac68e6fcd57c"
#: Three days of ten grids with seed 7, from 2021-06-01, on a fresh reference district. Only the versions of
#: the six grids whose figures are counted again moved with the boundaries (each grid has one event more).
SIMULATION_EVENTS = 408
SIMULATION_DIGEST = "daccb07b631741b095ff4be3b5371238bcafc1c4db139e25536ad1f6e0288199"


def commands_digest(at: datetime, *, boundaries: bool = True) -> tuple[int, str]:
    lines = [command.model_dump_json() for command in reference_commands(at)
             if boundaries or command.command != "registry.boundary"]  # fmt: skip
    return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()


def test_the_reference_commands_are_those_of_before() -> None:
    assert commands_digest(AT_UTC) == (COMMANDS, DIGEST_UTC)
    assert commands_digest(AT_CLI) == (COMMANDS, DIGEST_CLI)
    assert commands_digest(AT_UTC, boundaries=False) == (WITHOUT_BOUNDARIES, WITHOUT_BOUNDARIES_UTC)
    assert commands_digest(AT_CLI, boundaries=False) == (WITHOUT_BOUNDARIES, WITHOUT_BOUNDARIES_CLI)


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
