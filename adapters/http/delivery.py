"""Proof of delivery for administrators: ``GET /api/v1/delivery`` and ``GET /api/v1/deadletters``.

The same views as ``gridcase delivery`` and ``gridcase deadletters`` (adapters/kafka/delivery.py): the topics
against the store, the readers against the topics, and the dead letters of the database and of the
``gridcase.deadletter`` topic in one list. Administrators only, like every other view of the engine's own
machinery; Kafka not answering is a 503 (``unavailable``), as a query the database does not answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from adapters.http.deps import Caller, runtime_of
from adapters.http.errors import ApiError
from adapters.http.execution import forbidden, json_response
from domain.base import Role

if TYPE_CHECKING:
    from collections.abc import Callable


router = APIRouter(prefix="/api/v1")


def _admin(principal: Any, what: str) -> None:
    if principal.role is not Role.ADMIN:
        raise forbidden(f"role {principal.role.value} may not read {what}")


def _kafka(read: Callable[[], Any]) -> Any:
    from kafka.errors import KafkaError  # noqa: PLC0415 - only a configured Kafka needs the client

    try:
        return read()
    except (KafkaError, TimeoutError) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        raise ApiError(503, "unavailable", f"Kafka did not answer: {message}; try again") from None


@router.get("/delivery", tags=["queries"])
def delivery(request: Request, principal: Caller) -> Response:
    """Proof of delivery (administrators): the topics against the store, the readers, every dead letter.

    Per topic and partition the last stored and last published position and the lag; per reader (a Kafka-fed
    projection's offsets table, a consumer group) the offset it has read and how far behind it is; every dead
    letter, the database's and the dead-letter topic's.
    """
    from adapters.kafka.delivery import delivery_view  # noqa: PLC0415

    _admin(principal, "delivery")
    runtime = runtime_of(request)
    reader = runtime.reader
    return json_response(
        _kafka(lambda: delivery_view(runtime.settings, reader.read, reader.last_position(), runtime.engine))
    )


@router.get("/deadletters", tags=["queries"])
def dead_letters(request: Request, principal: Caller) -> Response:
    """Every dead letter with its reason (administrators), the database's and the dead-letter topic's.

    The database holds the events a projection could not apply or write; gridcase.deadletter, what the relay could
    not publish and what a Kafka-fed projector could not decode, apply or write.
    """
    from adapters.kafka.delivery import dead_letter_view  # noqa: PLC0415

    _admin(principal, "dead letters")
    runtime = runtime_of(request)
    return json_response(_kafka(lambda: dead_letter_view(runtime.settings, runtime.engine)))
