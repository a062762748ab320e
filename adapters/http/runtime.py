"""What the API runs on: the application service, the read side kept by a follower thread, the API's tables."""

from __future__ import annotations

import threading
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import structlog
from eventsourcing.application import AggregateNotFoundError
from sqlalchemy import func, select

from adapters.http.auth import TokenStore
from adapters.http.catalogue import Catalogue
from adapters.http.idempotency import IdempotencyStore
from adapters.http.tables import create_tables
from adapters.read_side import ReadSide
from adapters.service import Gridcase, replay_events
from domain.registry import Worker, worker_id
from projections.sql import positions

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from adapters.service import Result
    from adapters.settings import Settings
    from domain.commands import AnyCommand

log = structlog.get_logger("gridcase.http")

#: How long a query waits for the projections to reach the writes made before it (then answers anyway).
FRESHNESS_TIMEOUT = 5.0


class Runtime:
    """The engine behind the API: commands go to :class:`Gridcase`, queries to the read models."""

    def __init__(self, settings: Settings, *, follow: bool = True) -> None:
        self.settings = settings
        self.service = Gridcase(settings)
        self.read = ReadSide(settings, self.service)
        self.engine = self.read.engine
        create_tables(self.engine)
        self.tokens = TokenStore(self.engine)
        self.idempotency = IdempotencyStore(self.engine)
        self.catalogue = Catalogue(self.service.store.recorder)
        self.follow = follow
        # SQLite has one writer at a time anyway; serialising here spares the threads lock waits and retries.
        self._write_lock: AbstractContextManager[Any] = (
            threading.Lock() if settings.sqlite_path is not None else nullcontext()
        )
        self._catch_up_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._names = [projection.name for projection in self.read.runner.projections]

    # -- life -------------------------------------------------------------------

    def start(self) -> None:
        """Start the projections following the store in a background thread."""
        if not self.follow or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._follow, name="gridcase-projections", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                self.read.runner.follow(poll=0.05, stop=self._stop.is_set)
            except Exception:
                log.exception("projections stopped; retrying")
                self._stop.wait(1.0)

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
        self.service.close()

    # -- commands and queries ---------------------------------------------------

    def handle(self, command: AnyCommand) -> Result:
        """Carry out a command (one at a time on SQLite)."""
        with self._write_lock:
            return self.service.handle(command)

    def wait_fresh(self, timeout: float = FRESHNESS_TIMEOUT) -> bool:
        """Wait until the read models include every event stored before now; False if they did not in time."""
        if not self.follow:
            with self._catch_up_lock:
                self.read.catch_up()
            return True
        target = self.service.store.recorder.max_notification_id() or 0
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

    def worker_grids(self, code: str) -> set[str]:
        """The grids a worker is assigned to now (none for an unknown worker)."""
        try:
            worker = self.service.store.repository.get(worker_id(code), projector_func=replay_events)
        except AggregateNotFoundError:
            return set()
        if not isinstance(worker, Worker):
            return set()
        return set(worker.assignments)
