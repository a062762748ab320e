"""What the API runs on: the application service, the read side kept by a follower thread, the API's tables."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import func, select, text

from adapters.chained import MARKS_TABLE
from adapters.http.auth import TokenStore
from adapters.http.catalogue import Catalogue
from adapters.http.idempotency import IdempotencyStore
from adapters.http.tables import create_tables
from domain.redaction import describe_error
from projections.follow import repeat
from projections.runner import LeaseHeld, RunStats
from projections.sql import make_engine, positions

if TYPE_CHECKING:
    from types import TracebackType

    from sqlalchemy import Engine as SqlEngine

    from adapters.bootstrap import Engine
    from domain.commands import AnyCommand
    from service import Result

log = structlog.get_logger("gridcase.http")

#: How long a query waits for the projections to reach the writes made before it (then answers anyway).
FRESHNESS_TIMEOUT = 5.0
#: Events per projection transaction while serving: small, so a batch never holds writers up for long.
FOLLOW_BATCH = 2_000
#: How often the follower looks for new events when it is caught up.
FOLLOW_POLL = 0.25


class WriteGate:
    """One writer at a time in this process, on SQLite, in the order they came.

    SQLite has one writer at a time anyway; when threads queue here instead of on
    SQLite's busy handler (which sleeps in steps of up to 100 ms), a write waits
    only as long as the writes before it take. First come, first served: a
    request passes the gate three times (key, command, answer), and with a plain
    lock the thread that just left could win it again and again while another
    waits. On PostgreSQL it lets everyone in.
    """

    def __init__(self, serialise: bool) -> None:
        self._serialise = serialise
        self._turns = threading.Condition()
        self._issued = 0
        self._serving = 0

    def __enter__(self) -> None:
        if not self._serialise:
            return
        with self._turns:
            ticket = self._issued
            self._issued += 1
            self._turns.wait_for(lambda: self._serving == ticket)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:  # fmt: skip
        if not self._serialise:
            return
        with self._turns:
            self._serving += 1
            self._turns.notify_all()

    def breathe(self) -> None:
        """Let the writers that are waiting go first, in the middle of a long piece of work."""
        self.__exit__(None, None, None)
        self.__enter__()


class Runtime:
    """The engine behind the API: commands go to the service, queries to the read models."""

    def __init__(self, engine: Engine, *, follow: bool = True) -> None:
        settings = engine.settings
        self.settings = settings
        self.parts = engine
        self.service = engine.service
        self.reader = engine.reader
        self.read = engine.read_side(batch_size=FOLLOW_BATCH)
        self.engine = self.read.engine
        create_tables(self.engine)
        self.gate = WriteGate(serialise=settings.sqlite_path is not None)
        self.tokens = TokenStore(self.engine)
        # The write marks are in the store's database, which may not be the read models'.
        self._store_engine: SqlEngine | None = (
            None if settings.read_url == settings.database_url else make_engine(settings.database_url)
        )
        self.idempotency = IdempotencyStore(
            self.engine, self.gate, lease_seconds=settings.http_idempotency_lease_seconds, landed=self._landed
        )
        self.catalogue = Catalogue(engine.reader)
        # With Kafka-fed projections, projector processes keep the read models; this process only reads them.
        self.follow = follow and settings.projections_source == "store"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._names = [projection.name for projection in self.read.runner.projections]

    def _landed(self, mark: str) -> int | None:
        """Where the store put the first event written with this mark (adapters/chained.py), if it did."""
        engine = self._store_engine or self.engine
        with engine.connect() as connection:
            found = connection.execute(
                text(f"SELECT position FROM {MARKS_TABLE} WHERE mark = :mark"),  # noqa: S608 - a constant
                {"mark": mark},
            ).scalar()
        return None if found is None else int(found)

    # -- life -------------------------------------------------------------------

    def start(self) -> None:
        """Start the projections following the store in a background thread."""
        if not self.follow or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._follow, name="gridcase-projections", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        """Catch up, wait a moment, again; the projections' writes queue with the commands' at the gate."""
        runner = self.read.runner
        reached = [-1]

        def step(_stats: RunStats) -> bool:
            top = self.reader.last_position()
            if top == reached[0]:  # nothing new: do not take the gate (nor renew leases) for nothing
                return False
            try:
                with self.gate:
                    stats = runner.run_once(lease_timeout=0, progress=lambda _: self.gate.breathe())
            except LeaseHeld:  # another process keeps the projections: queries read what it writes
                self._stop.wait(1.0)
                return True
            except Exception as error:
                log.exception("projections failed; retrying", error=describe_error(error))
                self._stop.wait(1.0)
                return True
            reached[0] = max(top, stats.position)  # a run goes on until it finds nothing new
            return True

        repeat(step, RunStats(), stop=self._stop.is_set, poll=FOLLOW_POLL, pause=self._stop.wait)

    def close(self) -> None:
        """Stop the follower and release connections."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            try:
                self.read.runner.release()
            except Exception:  # noqa: BLE001 - shutting down anyway
                log.warning("could not release the projection leases")
        self.read.close()
        if self._store_engine is not None:
            self._store_engine.dispose()
        self.parts.close()

    # -- commands and queries ---------------------------------------------------

    def handle(self, command: AnyCommand) -> Result:
        """Carry out a command (one at a time on SQLite)."""
        with self.gate:
            return self.service.handle(command)

    def wait_fresh(self, timeout: float = FRESHNESS_TIMEOUT) -> bool:
        """Wait until the read models include every event stored before now; False if they did not in time."""
        if self.settings.projections_source == "kafka":
            return True  # the projectors' positions are Kafka offsets: read what they have written
        if not self.follow:
            with self.gate:
                self.read.catch_up()
            return True
        target = self.reader.last_position()
        deadline = time.monotonic() + timeout
        query = select(func.min(positions.c.position)).where(positions.c.name.in_(self._names))
        while True:
            with self.engine.connect() as connection:
                reached = connection.execute(query).scalar() or 0
            if reached >= target:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
