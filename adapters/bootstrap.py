"""The one place that builds the engine's parts from the settings; every entry point asks it for what it needs.

The CLI, the HTTP server, the relay, the projectors, replays and the benches call
:func:`bootstrap` (or :func:`settings_from_environment` first) and take the store
reader, the service, the read side, the relay or the HTTP app from the
:class:`Engine`. Nothing else builds ``Settings`` or reaches through the service
to the store.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from adapters.logging import configure_logging
from adapters.settings import Settings

# The costly parts are imported where they are built: a CLI query on current read models needs only the settings.
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from fastapi import FastAPI
    from sqlalchemy import Engine as SqlEngine

    from adapters.access_log import SqlAccessLog
    from adapters.kafka.consumer import KafkaProjector
    from adapters.kafka.relay import Relay
    from adapters.store import EventStoreApplication, StoreReader
    from projections.base import Projection
    from projections.read_side import ReadSide
    from projections.runner import Runner
    from service import Service


class BadSettings(ValueError):
    """A ``GRIDCASE_*`` environment variable the settings model refuses; the message names it."""


def settings_from_environment(*, configure_logs: bool = True, **overrides: Any) -> Settings:
    """The settings from ``GRIDCASE_*`` variables (read once, at start-up); logging configured from them.

    ``overrides`` win over the environment: a bench or a tool that works on a database of its own names it here.
    """
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        raise BadSettings(describe(error)) from None
    if configure_logs:
        configure_logging(settings.log_format, settings.log_level)
    return settings


def describe(error: ValidationError) -> str:
    """One line naming each wrong field."""
    parts = []
    for problem in error.errors()[:5]:
        where = ".".join(str(p) for p in problem["loc"] if not str(p).startswith("function-"))
        parts.append(f"{where}: {problem['msg']}" if where else problem["msg"])
    return "; ".join(parts)


class Engine:
    """Everything an entry point may ask for, built once from the settings (the costly parts when first asked)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self._clock = clock

    @cached_property
    def store(self) -> EventStoreApplication:
        """The event store (opened when first asked: a Kafka-fed projector never opens it)."""
        from adapters.personal import MasterKeyMissing, Vault, master_key  # noqa: PLC0415
        from adapters.store import EventStoreApplication, store_env  # noqa: PLC0415

        try:
            vault = Vault(master_key(self.settings))
        except MasterKeyMissing as error:
            if self.settings.master_key is not None or self.settings.master_key_file is not None:
                raise BadSettings(str(error)) from None
            vault = Vault(None, str(error))  # PostgreSQL, no key: the relay and projectors need none; sealing refuses
        return EventStoreApplication(env=store_env(self.settings), vault=vault)

    @cached_property
    def reader(self) -> StoreReader:
        """The store's notification log, in store order."""
        from adapters.store import StoreReader  # noqa: PLC0415

        return StoreReader(self.store.recorder)

    @cached_property
    def access_log(self) -> SqlAccessLog:
        """The log of clear views of personal data, in the event store's database."""
        from adapters.access_log import SqlAccessLog  # noqa: PLC0415

        return SqlAccessLog(self.settings.database_url)

    @cached_property
    def service(self) -> Service:
        """The application service over the store: the district's zone, number prefixes, event limit, access log."""
        from adapters.settings import check_code_secret  # noqa: PLC0415
        from service import Service  # noqa: PLC0415

        settings = self.settings
        return Service(
            self.store,
            tz=settings.tz,
            case_prefix=settings.case_prefix,
            patrol_prefix=settings.patrol_prefix,
            clock=self._clock,
            max_event_bytes=settings.max_event_bytes,
            check_code_secret=check_code_secret(settings),
            access_log=self.access_log,
            vault=self.store.vault,
        )

    @cached_property
    def read_engine(self) -> SqlEngine:
        """The read models' database."""
        from projections.sql import make_engine  # noqa: PLC0415

        return make_engine(self.settings.read_url)

    def projections(self, names: Sequence[str] | None = None) -> list[Projection]:
        """Fresh instances of the read models (all of them, or those named)."""
        from projections.catalogue import all_projections, make_projections  # noqa: PLC0415

        tz = self.settings.tz
        return all_projections(tz) if names is None else make_projections(names, tz)

    def runner(self, *, batch_size: int = 25_000, owner: str | None = None) -> Runner:
        """The projection runner over the store's notification log, into the read models' database."""
        from projections.runner import Runner  # noqa: PLC0415

        return Runner(self.read_engine, self.reader.read, self.projections(), batch_size=batch_size, owner=owner)

    def read_side(self, *, batch_size: int = 25_000) -> ReadSide:
        """The read models with their queries; caught up from the store unless Kafka-fed projectors keep them."""
        from projections.read_side import ReadSide  # noqa: PLC0415

        return ReadSide(
            self.read_engine,
            self.runner(batch_size=batch_size),
            fetch=self.reader.fetch,
            catch_up_from_store=self.settings.projections_source == "store",
        )

    def relay(self, *, batch_size: int = 5_000) -> Relay:
        """The relay from this store to the Kafka topics."""
        from adapters.kafka.wiring import make_relay  # noqa: PLC0415 - only the relay pays for kafka-python

        return make_relay(self.settings, self.reader, batch_size=batch_size)

    def kafka_projector(self, *, member: tuple[int, int] = (0, 1), batch_size: int = 10_000) -> KafkaProjector:
        """The read models fed from the Kafka topics, in the read models' database."""
        from adapters.kafka.wiring import make_kafka_projector  # noqa: PLC0415

        return make_kafka_projector(
            self.settings, self.read_engine, self.projections(), member=member, batch_size=batch_size
        )

    def http_app(self, *, follow: bool = True) -> FastAPI:
        """The HTTP API over this engine; ``follow`` runs the projections in a background thread."""
        from adapters.http.app import create_app  # noqa: PLC0415 - only the server pays for FastAPI
        from adapters.http.runtime import Runtime  # noqa: PLC0415

        return create_app(lambda: Runtime(self, follow=follow))

    def close(self) -> None:
        """Release database connections."""
        if "read_engine" in self.__dict__:
            self.read_engine.dispose()
        if "store" in self.__dict__:
            self.store.close()
        if "access_log" in self.__dict__:
            self.access_log.close()


def bootstrap(settings: Settings | None = None, *, clock: Callable[[], datetime] | None = None) -> Engine:
    """The engine over the configured databases (the settings from the environment when none are given)."""
    return Engine(settings or settings_from_environment(), clock=clock)
