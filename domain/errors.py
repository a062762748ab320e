"""Domain errors: every refusal names what was refused and why, in a sentence."""

from __future__ import annotations


class DomainError(Exception):
    """A command the domain refuses. Nothing is written when one is raised."""

    rule: str = "DomainRuleBroken"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


class CommandRefused(DomainError):
    """A command not allowed on an aggregate in its current state, or by this actor."""

    def __init__(self, *, subject: str, state: str, command: str, rule: str, reason: str) -> None:
        self.subject = subject
        self.state = state
        self.command = command
        self.rule = rule
        super().__init__(f"{subject} is {state}; command {command} refused: {reason}")


class UnknownReference(DomainError):
    """A command names a grid, worker, category, case or patrol that does not exist."""

    rule = "ReferenceMustExist"

    def __init__(self, kind: str, code: str, *, command: str) -> None:
        self.kind = kind
        self.code = code
        self.command = command
        super().__init__(f"command {command} refused: unknown {kind} {code!r}")


class AlreadyExists(DomainError):
    """A command would create something whose code is already taken."""

    rule = "CodeMustBeUnique"

    def __init__(self, kind: str, code: str, *, command: str) -> None:
        self.kind = kind
        self.code = code
        self.command = command
        super().__init__(f"command {command} refused: {kind} {code!r} already exists")
