"""structlog, configured once at start-up: readable in a terminal, JSON otherwise; never personal data.

A log line carries positions, event types, case numbers, field names and error classes, never an event's
payload, a stored state, a request body or a reporter's contact (docs/privacy.md, "Logs"). The call sites
log only such things; the processors here are the last line of defence:

- an exception is rendered by :func:`domain.redaction.safe_traceback`: frames only, never their local
  variables (structlog's console renderer would otherwise print them through rich, ``show_locals``), and
  the error told by its class and the fields it names, never the values it carried;
- a key named like personal data or a payload (:data:`WITHHELD_KEYS`) has its value replaced by
  ``[withheld]``;
- phone numbers, ID numbers and e-mail addresses left in any text value are masked.

The standard library's loggers (uvicorn's) get the same treatment of their exceptions and messages.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TYPE_CHECKING, Any

import structlog

from domain.redaction import mask_contacts, safe_traceback

if TYPE_CHECKING:
    from structlog.typing import EventDict

#: The words a log key must not contain (a whole word of a snake_case key, or the key itself): what names a
#: payload or a person. ``event`` is not among them: it is structlog's key of the message itself.
WITHHELD_WORDS = frozenset({
    "payload", "state", "data", "body", "form", "input", "value", "values", "locals", "args", "kwargs",
    "reporter", "contact", "phone", "mobile", "tel", "person", "citizen", "party", "parties", "household",
    "members", "name", "id_number", "idcard", "email", "address", "description", "note", "text", "content",
})  # fmt: skip
#: What a withheld value is replaced by.
WITHHELD = "[withheld]"
#: Keys structlog or the call sites use that contain such a word and are no one's data.
ALLOWED_KEYS = frozenset({"event", "level", "timestamp", "logger", "exception"})

_WORD = re.compile(r"[a-z0-9]+")


def withheld(key: str) -> bool:
    """Whether a log key names a payload or a person's data (its value is then never logged)."""
    lowered = key.lower()
    if lowered in ALLOWED_KEYS:
        return False
    if lowered in WITHHELD_WORDS:
        return True
    words = _WORD.findall(lowered)
    return any(word in WITHHELD_WORDS for word in words) or any(
        "_".join(words[index : index + 2]) in WITHHELD_WORDS for index in range(len(words) - 1)
    )


def drop_personal_keys(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """A structlog processor: the value of every key :func:`withheld` names becomes ``[withheld]``."""
    for key in list(event_dict):
        if withheld(str(key)):
            event_dict[key] = WITHHELD
    return event_dict


def exceptions_without_locals(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """A structlog processor: ``exc_info`` becomes ``exception``, a traceback of frames without their locals."""
    info = event_dict.pop("exc_info", None)
    if info:
        error = info if isinstance(info, BaseException) else sys.exc_info()[1] if info is True else info[1]
        if isinstance(error, BaseException):
            event_dict["exception"] = safe_traceback(error)
    event_dict.pop("stack_info", None)
    return event_dict


def mask_text(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """A structlog processor: phone numbers, ID numbers and e-mail addresses in text values masked."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = mask_contacts(value)
    return event_dict


class _SafeRecords(logging.Filter):
    """The standard library's records (uvicorn's) told like structlog's: masked, exceptions without values."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_contacts(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.msg}\n{safe_traceback(record.exc_info[1])}"
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def configure_logging(log_format: str, level: str = "warning") -> None:
    """Set up structlog for the whole process; log lines go to stderr, without personal data."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            exceptions_without_locals,
            drop_personal_keys,
            mask_text,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    guard_standard_logging()


def guard_standard_logging() -> None:
    """Put the filter on the handlers of the standard library's loggers that exist now (uvicorn's included)."""
    names = ["", "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", *logging.root.manager.loggerDict]
    for name in names:
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if not any(isinstance(existing, _SafeRecords) for existing in handler.filters):
                handler.addFilter(_SafeRecords())
