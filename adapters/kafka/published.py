"""The published form of a stored event: what goes on the Kafka topics, and what the JSON Schemas describe.

The value is the event's stored JSON, as the store holds it (so an event of an older class version is published
in that version's form and named so in ``ce_type``), with two changes:

- personal data is left out: ``CaseReported.reporter`` (the reporter's name, phone and ID number) is replaced by
  ``has_reporter_contact`` (true or false); nothing else carries personal data;
- free text a citizen or a worker typed (descriptions, notes, results, reasons, the address: ``MASKED_FIELDS``)
  is masked by domain.masking.mask_personal_text: phone numbers, valid ID numbers and e-mail addresses in it
  show as ``139****5678``, ``3702**********1234``, ``w***@example.com``; the stored text is kept for staff;
- the aggregate id and version are added as ``originator_id`` (hex, 32 characters) and ``originator_version``.

Everything else (``occurred_at``, the recording ``timestamp``, the actor, ``class_version`` above 1) is as stored.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from domain.masking import mask_personal_text

#: Where each aggregate's events go.
TOPICS = {
    "Case": "gridcase.case.events",
    "Patrol": "gridcase.patrol.events",
    "OrgUnit": "gridcase.registry.events",
    "Worker": "gridcase.registry.events",
    "Category": "gridcase.registry.events",
    "SlaPolicy": "gridcase.registry.events",
    "HolidayCalendar": "gridcase.registry.events",
    "Erasure": "gridcase.person.events",
}
DEADLETTER_TOPIC = "gridcase.deadletter"
#: Fields of an event that are personal data, by event type: left out of the published form.
PERSONAL_DATA = {"CaseReported": ("reporter",)}

#: Free-text fields of an event, by event type: published masked (a dotted name reaches into an object).
#: tests/unit/test_published_masking.py checks it against the event models, so a new free-text field is not missed.
MASKED_FIELDS: dict[str, tuple[str, ...]] = {
    "CaseReported": ("description", "location.address"),
    "CaseRejected": ("reason",),
    "DispatchReturned": ("reason",),
    "CaseEscalated": ("reason",),
    "DeadlineExtended": ("reason",),
    "CaseSuspended": ("reason",),
    "ProgressNoted": ("note",),
    "CaseResolved": ("result",),
    "ResolutionRejected": ("reason",),
    "CaseReopened": ("reason",),
    "PatrolCheckpointLogged": ("notes",),
    "PersonalDataErased": ("reason",),
}


def split_topic(stored_topic: str) -> tuple[str, str]:
    """The aggregate and event type named by a stored event's topic, e.g. ``("Case", "CaseReported")``."""
    aggregate, _, name = stored_topic.partition(":")[2].rpartition(".")
    return aggregate, name


def kafka_topic(aggregate: str) -> str:
    """The Kafka topic of an aggregate's events."""
    return TOPICS[aggregate]


def ce_type(aggregate: str, name: str, version: int) -> str:
    """The CloudEvents type: ``gridcase.<case|patrol|registry|person>.<Event>.v<N>``."""
    family = kafka_topic(aggregate).split(".")[1]
    return f"gridcase.{family}.{name}.v{version}"


def published_form(name: str, state: dict[str, Any], originator_id: str, originator_version: int) -> dict[str, Any]:
    """The published value of a stored event (``state`` is its stored JSON object; it is not changed)."""
    value = dict(state)
    for field in PERSONAL_DATA.get(name, ()):
        value["has_reporter_contact"] = value.pop(field, None) is not None
    for field in MASKED_FIELDS.get(name, ()):
        _mask(value, field)
    value["originator_id"] = originator_id
    value["originator_version"] = originator_version
    return value


def _mask(value: dict[str, Any], field: str) -> None:
    """Mask one (dotted) text field of a published value in place; objects on the way are copied first."""
    head, _, rest = field.partition(".")
    inner = value.get(head)
    if rest:
        if isinstance(inner, dict):
            value[head] = inner = dict(inner)
            _mask(inner, rest)
    elif isinstance(inner, str):
        value[head] = mask_personal_text(inner)


#: Fields the published form adds; a Kafka-fed projection takes them off again to see the stored form.
ADDED_FIELDS = ("originator_id", "originator_version", "has_reporter_contact")


@lru_cache(maxsize=1)
def event_classes() -> dict[str, tuple[str, type]]:
    """Every event type the domain defines, by name: its aggregate's name and its class.

    Names are unique across aggregates (the published ``ce_type`` relies on it).
    """
    from domain import case, patrol, personal, registry  # noqa: PLC0415 - the catalogue is built once, on first use
    from domain.base import Aggregate  # noqa: PLC0415

    found: dict[str, tuple[str, type]] = {}
    for module in (case, patrol, registry, personal):
        for aggregate in vars(module).values():
            if not (isinstance(aggregate, type) and issubclass(aggregate, Aggregate)) or aggregate is Aggregate:
                continue
            if aggregate.__module__ != module.__name__:
                continue
            for name, member in vars(aggregate).items():
                if not isinstance(member, type) or not issubclass(member, Aggregate.Event):
                    continue
                if name in {"Event", "Created"}:
                    continue
                if name in found:
                    msg = f"event type {name} is defined by {found[name][0]} and {aggregate.__name__}"
                    raise TypeError(msg)
                found[name] = (aggregate.__name__, member)
    return found


def parse_ce_type(value: str) -> tuple[str, int]:
    """The event name and version of a CloudEvents type ``gridcase.<family>.<Event>.v<N>``; ValueError if not ours."""
    parts = value.split(".")
    if len(parts) != 4 or parts[0] != "gridcase" or not parts[3].startswith("v") or not parts[3][1:].isdigit():  # noqa: PLR2004
        msg = f"ce_type {value!r} is not gridcase.<family>.<Event>.v<N>"
        raise ValueError(msg)
    if parts[2] not in event_classes():
        msg = f"ce_type {value!r}: unknown event type {parts[2]!r}"
        raise ValueError(msg)
    return parts[2], int(parts[3][1:])
