"""The application layer: command handlers per aggregate, a unit of work, number issuing.

Given the event store and plain values (time zone, number prefixes, a clock), never the settings.
"""

from __future__ import annotations

from service.application import Service
from service.errors import BadInput, ConcurrentChange
from service.handling import Result
from service.views import CaseView, mask_contact

__all__ = ["BadInput", "CaseView", "ConcurrentChange", "Result", "Service", "mask_contact"]
