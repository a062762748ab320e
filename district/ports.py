"""What the district (loader, simulator, walkthrough) needs of the engine, and no more.

The district is a client of the engine: it issues commands through the
service and reads the store only through a reader it is handed. These
protocols say exactly what it uses, so any service and reader with these
members will do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from contextlib import AbstractContextManager
    from datetime import datetime
    from uuid import UUID
    from zoneinfo import ZoneInfo

    from eventsourcing.persistence import Notification

    from domain.commands import AnyCommand


class StoreReader(Protocol):
    """Reads the store's notification log, and whether an aggregate has any events."""

    def read(self, after: int, limit: int) -> Sequence[Notification]:
        """Up to ``limit`` notifications after position ``after``, in order."""
        ...

    def last_position(self) -> int:
        """The position of the last notification (0 for an empty store)."""
        ...

    def first_event(self, aggregate_id: UUID) -> object | None:
        """The first stored event of one aggregate (None if it was never saved): one indexed row."""
        ...


class CaseView(Protocol):
    """The figures of a case the simulator looks at."""

    @property
    def is_open(self) -> bool:
        """Whether the case is still being handled."""
        ...

    @property
    def sign_by(self) -> datetime | None:
        """When the current handler must have signed by."""
        ...

    @property
    def resolve_by(self) -> datetime | None:
        """When the case must be resolved by."""
        ...

    @property
    def suspended_seconds(self) -> int:
        """How long the case has been suspended in all."""
        ...


class Service(Protocol):
    """The engine's service as the district uses it: commands, one transaction for many, a case, a worker."""

    clock: Callable[[], datetime]

    @property
    def tz(self) -> ZoneInfo:
        """The district's time zone."""
        ...

    def batch(self) -> AbstractContextManager[None]:
        """Everything handled inside is saved in one transaction."""
        ...

    def handle(self, command: AnyCommand) -> dict[str, Any]:
        """Handle one command; a refusal raises a domain error."""
        ...

    def case(self, number: str) -> CaseView:
        """The case as it stands now."""
        ...

    def worker_registered(self, code: str) -> bool:
        """Whether a worker with this code was ever registered."""
        ...
