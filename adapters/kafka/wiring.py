"""Builds the relay and the Kafka-fed projector from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.kafka.consumer import KafkaProjector
from adapters.kafka.relay import Relay, kafka_config
from projections.case_status import CaseStatus
from projections.intake import Intake
from projections.performance import Performance
from projections.sql import make_engine

if TYPE_CHECKING:
    from uuid import UUID

    from eventsourcing.persistence import StoredEvent

    from adapters.service import Gridcase
    from adapters.settings import Settings


class KafkaNotConfiguredError(RuntimeError):
    """GRIDCASE_KAFKA_BOOTSTRAP_SERVERS is empty."""


def _config(settings: Settings) -> dict[str, object]:
    if not settings.kafka_enabled:
        msg = "no Kafka configured: set GRIDCASE_KAFKA_BOOTSTRAP_SERVERS (host:port)"
        raise KafkaNotConfiguredError(msg)
    return kafka_config(settings.kafka_bootstrap_servers, settings.kafka_client_id)


def make_relay(settings: Settings, service: Gridcase, *, batch_size: int = 5_000) -> Relay:
    """The relay over the service's store."""
    recorder = service.store.recorder

    def first_event(originator_id: UUID) -> StoredEvent | None:
        found = recorder.select_events(originator_id, limit=1)
        return found[0] if found else None

    return Relay(
        lambda after, limit: recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False),
        first_event,
        _config(settings),
        partitions=settings.kafka_partitions,
        batch_size=batch_size,
        source=f"urn:gridcase:{settings.case_prefix.lower()}",
        lease_engine=make_engine(settings.database_url),
        lease_seconds=settings.relay_lease_seconds,
    )


def make_kafka_projector(
    settings: Settings, *, member: tuple[int, int] = (0, 1), batch_size: int = 10_000
) -> KafkaProjector:
    """The three read models, fed from the topics, in the read models' database."""
    return KafkaProjector(
        make_engine(settings.read_url),
        _config(settings),
        [CaseStatus(), Performance(settings.tz), Intake(settings.tz)],
        member=member,
        batch_size=batch_size,
        partitions=settings.kafka_partitions,
    )
