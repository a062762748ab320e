"""What a log line, a traceback file or a dead letter may say of an error: never a value it carried.

A log is read by operators, shipped to log stores and pasted into bug reports; personal data (a reporter's
name, phone, ID number) and event payloads must never reach it (docs/privacy.md, "Logs"). So an error is
told by its class, the fields it names and the frames it went through, never by the values it held:

- a pydantic ``ValidationError`` by the location and kind of each error (its ``str`` repeats the input);
- a SQLAlchemy error by the driver's error, without the statement's parameters (they are the event's
  JSON) and without PostgreSQL's ``DETAIL`` line (which repeats a key's value);
- a domain error (:class:`domain.errors.DomainError`) by its message, which names codes and rules;
- a ``KeyError`` by its key when that is a field's name (``'occurred_at'``: lower-case snake_case);
- any other error by the first line of its message, with what it quotes (``'…'``: by Python's custom, a
  value) left out;

and whatever is left has the phone numbers, ID numbers and e-mail addresses in it masked, as a last net.
A traceback is its frames (file, line, function and the line of code), never their local variables.
"""

from __future__ import annotations

import re
import traceback
from typing import Any

from domain.errors import DomainError
from domain.masking import mask_personal_text

#: How long a description of an error may be: one line of a log, not a dump.
MAX_DESCRIPTION = 300

#: Logs cast a wider net than public views: any 18-character ID-like run, whatever its check digit.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
#: ... and any mobile number, also glued to a word (``tel13912345678``), which public views leave alone.
_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
#: A key that is a field's name (``occurred_at``), which a ``KeyError`` may name.
_FIELD_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
#: A quoted value in an error's message: ``'…'`` or ``"…"`` (Python's errors quote the value they refuse).
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")


def mask_contacts(text: str) -> str:
    """``text`` masked as public views mask it, and any other 18-character ID-like run too.

    Public views mask phones, valid ID numbers and e-mail addresses (:func:`domain.masking.mask_personal_text`);
    a log need not tell a valid ID number from an invalid one.
    """
    return _MOBILE.sub("[phone]", _ID_NUMBER.sub("[ID number]", mask_personal_text(text)))


def describe_error(error: BaseException) -> str:
    """One line naming the error's class and what went wrong, without any value it carried."""
    return mask_contacts(f"{type(error).__name__}: {_message(error)}")[:MAX_DESCRIPTION]


def safe_traceback(error: BaseException, limit: int | None = None) -> str:
    """The error's traceback (and its causes', first cause first), frames only: no local variable, no value."""
    blocks: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = traceback.extract_tb(current.__traceback__, limit=limit)
        listed = "".join(traceback.format_list(frames))
        blocks.append(f"Traceback (most recent call last):\n{listed}{describe_error(current)}\n")
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "\nwhich led to:\n\n".join(reversed(blocks))


def _message(error: BaseException) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors) and type(error).__name__ == "ValidationError":
        return _validation_message(error, errors)
    original = getattr(error, "orig", None)
    if isinstance(original, BaseException) and hasattr(error, "statement"):
        return f"{type(original).__name__}: {_unquoted(_first_line(original))}"
    if isinstance(error, DomainError):
        return _first_line(error)
    if isinstance(error, KeyError) and len(error.args) == 1 and _FIELD_NAME.fullmatch(str(error.args[0])):
        return repr(error.args[0])  # the key a lookup missed: a field's name
    return _unquoted(_first_line(error))


def _unquoted(text: str) -> str:
    return _QUOTED.sub("'…'", text)


def _validation_message(error: BaseException, errors: Any) -> str:
    try:
        found = errors(include_input=False, include_url=False, include_context=False)
    except TypeError:
        return "invalid input"
    named = "; ".join(f"{'.'.join(str(part) for part in item['loc']) or '(whole)'}: {item['type']}" for item in found)
    title = getattr(error, "title", "")
    return f"{len(found)} error(s) in {title}: {named}" if title else f"{len(found)} error(s): {named}"


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if not line.lstrip().startswith("DETAIL")]
    first = lines[0] if lines else "(no message)"
    # SQLAlchemy folds the statement and parameters into the message: cut them off, whatever the line.
    return re.split(r"\s*\[(?:SQL|parameters): ", first, maxsplit=1)[0]
