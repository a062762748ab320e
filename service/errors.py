"""What the service layer itself refuses, apart from the domain's rules."""

from __future__ import annotations


class BadInput(ValueError):
    """Input that cannot be a command: malformed, a missing field, a time in the future."""


class ConcurrentChange(RuntimeError):
    """Someone else changed the same aggregate first; reload and try again."""
