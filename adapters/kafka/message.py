"""The Kafka message of a stored event, both ways: the value JSON and its headers, encoded and decoded here only.

A message's value is the event's published form (adapters/kafka/published.py); its headers are CloudEvents
binary mode (``ce_specversion``, ``ce_id`` = aggregate hex id and version, ``ce_source``, ``ce_type``,
``ce_time``, ``ce_subject``, ``content-type``) plus the store position ``gridcase_position`` and the recording
time ``gridcase_recorded_at``. A dead letter is the original message with ``gridcase_error``,
``gridcase_source`` (``topic/partition/offset``) and ``gridcase_projection`` added. A stored event the relay cannot
publish goes there too (:func:`relay_dead_letter`), with ``gridcase_source`` = ``store/<position>`` and
``gridcase_topic`` (where it belongs); when even that would be too large, a reference without the payload
(:func:`relay_reference`, ``gridcase_reference: true``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from adapters.kafka.published import ADDED_FIELDS, ce_type, event_classes, parse_ce_type, published_form
from projections.events import projected

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kafka.consumer.fetcher import ConsumerRecord

    from projections.events import ProjectedEvent

POSITION_HEADER = "gridcase_position"
Headers = list[tuple[str, bytes]]


def hex_id(originator_id: UUID | str) -> str:
    """An aggregate id as the topics carry it: 32 hex digits (the message key, ``ce_id``, ``originator_id``)."""
    return originator_id.hex if isinstance(originator_id, UUID) else UUID(originator_id).hex


def encode(
    notification: Notification, state: dict[str, Any], aggregate: str, name: str, *, source: str, subject: str
) -> tuple[bytes, Headers]:
    """The published value of a stored event (``state``: its stored JSON object) and its headers."""
    version = int(state.get("class_version", 1))
    originator = hex_id(notification.originator_id)
    value = published_form(name, state, originator, notification.originator_version)
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", f"{originator}-{notification.originator_version}".encode()),
        ("ce_source", source.encode()),
        ("ce_type", ce_type(aggregate, name, version).encode()),
        ("ce_time", str(state["occurred_at"]).encode()),
        ("ce_subject", subject.encode()),
        ("content-type", b"application/json"),
        (POSITION_HEADER, str(notification.id).encode()),
        ("gridcase_recorded_at", str(state.get("timestamp", "")).encode()),
    ]
    # Keys in the stored order (already sorted) with the added ones last: deterministic without sorting.
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    return body, headers


def position_of(headers: Sequence[tuple[str, bytes]] | None) -> int | None:
    """The store position a message carries, or None when it has none (not a gridcase event)."""
    for key, value in headers or ():
        if key == POSITION_HEADER:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def ce_id_of(headers: Sequence[tuple[str, bytes]] | None) -> str:
    """The message's ``ce_id`` (empty if it has none)."""
    return dict(headers or ()).get("ce_id", b"").decode(errors="replace")


def dead_letter_headers(record: ConsumerRecord, error: str, projection: str) -> Headers:
    """The headers of a message sent to the dead-letter topic: the original ones, where it came from and why."""
    return [
        *(record.headers or ()),
        ("gridcase_error", error.encode()[-4000:]),
        ("gridcase_source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ("gridcase_projection", projection.encode()),
    ]


#: ``gridcase_source`` of a dead letter the relay sent: the event's place in the store, not on a topic.
STORE_SOURCE = "store/"


def _relay_headers(position: int, topic: str, reason: str) -> Headers:
    return [
        ("gridcase_error", reason.encode()[-4000:]),
        ("gridcase_source", f"{STORE_SOURCE}{position}".encode()),
        ("gridcase_topic", topic.encode()),
    ]


def relay_dead_letter(
    notification: Notification, topic: str, value: bytes, headers: Headers | None, reason: str
) -> tuple[bytes, Headers]:
    """A stored event Kafka would not take, as the relay dead-letters it: the message itself and why.

    ``headers`` are the message's own (None when the event could not be encoded: then ``value`` is the stored
    state as it is, with just enough headers to find the event again).
    """
    if headers is None:
        headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", f"{hex_id(notification.originator_id)}-{notification.originator_version}".encode()),
            (POSITION_HEADER, str(notification.id).encode()),
        ]
    return value, [*headers, *_relay_headers(notification.id, topic, reason)]


def relay_reference(
    notification: Notification, topic: str, event_type: str, reason: str, size: int
) -> tuple[bytes, Headers]:
    """A dead letter that names the event without carrying it: for an event whose message is itself too large.

    The value is a JSON object: ``position``, ``topic``, ``aggregate`` (hex id), ``originator_version``,
    ``type``, ``reason`` and ``bytes`` (the size of the message Kafka would not take). The event stays in the
    store, the system of record; the reference is how to find it there.
    """
    aggregate = hex_id(notification.originator_id)
    value = {
        "position": notification.id,
        "topic": topic,
        "aggregate": aggregate,
        "originator_version": notification.originator_version,
        "type": event_type,
        "reason": reason,
        "bytes": size,
    }
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", f"{aggregate}-{notification.originator_version}".encode()),
        ("content-type", b"application/json"),
        (POSITION_HEADER, str(notification.id).encode()),
        *_relay_headers(notification.id, topic, reason),
        ("gridcase_reference", b"true"),
    ]
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(), headers


def relay_dead_lettered(headers: Sequence[tuple[str, bytes]] | None) -> int | None:
    """The store position of a dead letter the relay sent, or None for any other message (a projector's)."""
    source = dict(headers or ()).get("gridcase_source", b"").decode(errors="replace")
    if not source.startswith(STORE_SOURCE):
        return None
    return position_of(headers)


class Poison(ValueError):
    """A message that is not a gridcase event."""


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded message: the stored event it carries, in the stored form (the published additions taken off)."""

    position: int
    #: The stored event's topic (its class).
    topic: str
    originator_id: UUID
    originator_version: int
    #: The stored JSON object (without the reporter's contact, which is never published).
    value: dict[str, Any]
    where: str

    def event(self) -> ProjectedEvent:
        """The event as the store-fed runner would have decoded it (upcast: this takes ``value`` over)."""
        try:
            return projected(self.position, self.topic, str(self.originator_id), self.originator_version, self.value)
        except (KeyError, ValueError, TypeError) as error:
            raise _poison(self.where, error) from error

    def notification(self) -> Notification:
        """The event as the store's notification log holds it."""
        state = json.dumps(self.value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
        return Notification(
            id=self.position,
            originator_id=self.originator_id,
            originator_version=self.originator_version,
            topic=self.topic,
            state=state,
        )


def decode(record: ConsumerRecord) -> Message:
    """The stored event a message carries (its JSON parsed once); Poison if it is not a gridcase event."""
    where = f"{record.topic}[{record.partition}]@{record.offset}"
    headers = dict(record.headers or ())
    try:
        position = int(headers[POSITION_HEADER])
        name, version = parse_ce_type(headers["ce_type"].decode())
        value = json.loads(record.value)
        if not isinstance(value, dict):
            msg = f"value is a JSON {type(value).__name__}, not an object"
            raise TypeError(msg)  # noqa: TRY301 - reported as Poison like the others
        originator = UUID(hex=value["originator_id"])
        originator_version = int(value["originator_version"])
        _, cls = event_classes()[name]
        if int(value.get("class_version", 1)) != version:
            msg = f"ce_type says v{version}, the value says v{value.get('class_version', 1)}"
            raise ValueError(msg)  # noqa: TRY301
        for added in ADDED_FIELDS:
            value.pop(added, None)
    except (KeyError, ValueError, TypeError, UnicodeDecodeError) as error:
        raise _poison(where, error) from error
    return Message(position, get_topic(cls), originator, originator_version, value, where)


def _poison(where: str, error: Exception) -> Poison:
    detail = f"missing {error}" if isinstance(error, KeyError) else str(error)
    return Poison(f"{where}: not a gridcase event: {detail}")
