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
COMMANDS = 8_636
#: Since issue 18 item 5 the categories say whether their place is public (the reference district's disputes and
#: livelihood services are not): a new reference district. Without that field its commands are those of before.
DIGEST_UTC = "b66b49f11d571843745f598e17205baa236c9c656f6bd92fcc447d7ba37cdc7f"
DIGEST_CLI = "8e006e8c86a79732e19d2074f9c575c78fc66c427b68524a4a97ac68e6fcd57c"
BEFORE_LOCATIONS_UTC = "a7d08e6dab61d9a68612872e5a79f45ee12e71cab02cfec79eb8233d3e47885d"
BEFORE_LOCATIONS_CLI = "03f37716172ad043c4f4b2875e4c3c5b80fe5909bbe1ce92a91116bfe43529fe"
#: Three days of ten grids with seed 7, from 2021-06-01, on a fresh reference district.
SIMULATION_EVENTS = 408
SIMULATION_DIGEST = "35110d408802600976e0f89fa2fec0704378dae4caa2837f947dd22b0ab98b47"


def commands_digest(at: datetime, *, without: set[str] | None = None) -> tuple[int, str]:
    lines = [command.model_dump_json(exclude=without) for command in reference_commands(at)]
    return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()


def test_the_reference_commands_are_those_of_before() -> None:
    assert commands_digest(AT_UTC) == (COMMANDS, DIGEST_UTC)
    assert commands_digest(AT_CLI) == (COMMANDS, DIGEST_CLI)
    # The flag of public locations is the only change since the digests were first pinned.
    assert commands_digest(AT_UTC, without={"location_public"}) == (COMMANDS, BEFORE_LOCATIONS_UTC)
    assert commands_digest(AT_CLI, without={"location_public"}) == (COMMANDS, BEFORE_LOCATIONS_CLI)


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
