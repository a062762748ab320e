"""Builds the relay and the Kafka-fed projector from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.kafka.consumer import KafkaProjector
from adapters.kafka.relay import Relay, kafka_config
from projections.sql import make_engine

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy import Engine

    from adapters.settings import Settings
    from adapters.store import StoreReader
    from projections.base import Projection


class KafkaNotConfiguredError(RuntimeError):
    """GRIDCASE_KAFKA_BOOTSTRAP_SERVERS is empty."""


def _config(settings: Settings) -> dict[str, object]:
    if not settings.kafka_enabled:
        msg = "no Kafka configured: set GRIDCASE_KAFKA_BOOTSTRAP_SERVERS (host:port)"
        raise KafkaNotConfiguredError(msg)
    return kafka_config(settings.kafka_bootstrap_servers, settings.kafka_client_id)


def make_relay(settings: Settings, reader: StoreReader, *, batch_size: int = 5_000) -> Relay:
    """The relay over the store this reader reads."""
    return Relay(
        reader.read,
        reader.first_event,
        _config(settings),
        partitions=settings.kafka_partitions,
        batch_size=batch_size,
        source=f"urn:gridcase:{settings.case_prefix.lower()}",
        lease_engine=make_engine(settings.database_url),
        lease_seconds=settings.relay_lease_seconds,
        max_message_bytes=settings.kafka_max_message_bytes,
    )


def make_kafka_projector(
    settings: Settings, read_engine: Engine, projections: Sequence[Projection], *, member: tuple[int, int] = (0, 1),
    batch_size: int = 10_000,
) -> KafkaProjector:
    """The read models, fed from the topics, in the read models' database."""
    return KafkaProjector(
        read_engine,
        _config(settings),
        projections,
        member=member,
        batch_size=batch_size,
        partitions=settings.kafka_partitions,
    )
