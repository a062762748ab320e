"""Who may do what: bearer tokens mapped to an actor and a role, and the boundaries of each role.

A token is ``gc_<token id>_<secret>``; only its sha256 is stored. The role
checks here come before the command reaches the domain, so a request outside
its role's boundary is refused with 403 and writes nothing; the domain checks
the same rules again (and more: state, current handler).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from adapters.http.tables import tokens
from domain.base import ActorRef, Role
from domain.case import CALLBACK, DISPATCHERS, INTAKE, MERGERS, NOTE_TAKERS, VERIFIERS, Channel
from domain.personal_data import PERSONAL_DATA_READERS

if TYPE_CHECKING:
    from sqlalchemy import Engine

#: Roles a token may carry (``system`` is the engine's own policies, never a caller).
TOKEN_ROLES = (
    Role.GRID_WORKER,
    Role.INTAKE_OPERATOR,
    Role.DISPATCHER,
    Role.DEPARTMENT_HANDLER,
    Role.CALLBACK_OPERATOR,
    Role.AUDITOR,
    Role.ADMIN,
)
_HANDLERS = frozenset({Role.GRID_WORKER, Role.DEPARTMENT_HANDLER})
_PATROLLERS = frozenset({Role.GRID_WORKER, Role.ADMIN})
_REGISTRARS = frozenset({Role.ADMIN})

#: command → the roles that may send it over HTTP (docs/decisions.md, "Permissions by role").
COMMAND_ROLES: dict[str, frozenset[Role]] = {
    "case.report": INTAKE - {Role.SYSTEM},
    "case.accept": DISPATCHERS,
    "case.reject": DISPATCHERS,
    "case.merge": MERGERS,
    "case.dispatch": DISPATCHERS,
    "case.sign": _HANDLERS,
    "case.return": _HANDLERS,
    "case.escalate": DISPATCHERS,
    "case.extend": DISPATCHERS,
    "case.suspend": DISPATCHERS,
    "case.resume": DISPATCHERS,
    "case.note": NOTE_TAKERS - {Role.SYSTEM},
    "case.resolve": _HANDLERS,
    "case.verify": VERIFIERS,
    "case.reject-resolution": VERIFIERS,
    "case.close": DISPATCHERS,
    "case.feedback": CALLBACK,
    "case.reopen": DISPATCHERS,
    "patrol.start": _PATROLLERS,
    "patrol.checkpoint": _PATROLLERS,
    "patrol.end": _PATROLLERS,
    "patrol.hazard": _PATROLLERS,
}


def roles_for(command: str) -> frozenset[Role]:
    """The roles that may send a command; every registry command is the administrator's."""
    if command.startswith("registry."):
        return _REGISTRARS
    return COMMAND_ROLES[command]


@dataclass(frozen=True)
class Principal:
    """The caller behind a bearer token."""

    token_id: str
    actor_id: str
    role: Role
    unit: str | None
    channel: Channel

    @property
    def actor(self) -> ActorRef:
        """The actor commands are issued as."""
        return ActorRef(id=self.actor_id, role=self.role, unit=self.unit)

    @property
    def reads_personal_data(self) -> bool:
        """Whether this caller's role may see reporters' contact details in clear (the domain's rule decides)."""
        return self.role in PERSONAL_DATA_READERS


def token_hash(token: str) -> str:
    """sha256 of a bearer token, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    """A token as ``token create`` hands it out: the secret is shown once, then only its hash exists."""

    token_id: str
    token: str
    actor_id: str
    role: str
    unit: str | None
    channel: str


class TokenStore:
    """Bearer tokens in the ``http_tokens`` table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, actor_id: str, role: Role, unit: str | None = None, channel: Channel = Channel.APP,
               note: str = "") -> IssuedToken:  # fmt: skip
        """Issue a new token for an actor in a role."""
        token_id = secrets.token_hex(6)
        token = f"gc_{token_id}_{secrets.token_urlsafe(32)}"
        with self.engine.begin() as connection:
            connection.execute(
                tokens.insert().values(
                    token_id=token_id,
                    token_hash=token_hash(token),
                    actor_id=actor_id,
                    role=role.value,
                    unit=unit,
                    channel=channel.value,
                    note=note,
                    created_at=datetime.now(UTC).replace(tzinfo=None),
                )
            )
        return IssuedToken(token_id, token, actor_id, role.value, unit, channel.value)

    def revoke(self, token_id: str) -> bool:
        """Revoke a token by its id; False when there is no such live token."""
        with self.engine.begin() as connection:
            done = connection.execute(
                update(tokens)
                .where(tokens.c.token_id == token_id, tokens.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC).replace(tzinfo=None))
            ).rowcount
        return bool(done)

    def list(self) -> list[dict[str, object]]:
        """Every token (without secrets), oldest first."""
        columns = [c for c in tokens.c if c.name != "token_hash"]
        with self.engine.connect() as connection:
            rows = connection.execute(select(*columns).order_by(tokens.c.created_at)).mappings()
            return [{k: (str(v) if isinstance(v, datetime) else v) for k, v in row.items()} for row in rows]

    def verify(self, token: str) -> Principal | None:
        """The caller a live token stands for, or None."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(tokens).where(tokens.c.token_hash == token_hash(token), tokens.c.revoked_at.is_(None))
            ).first()
        if row is None:
            return None
        return Principal(row.token_id, row.actor_id, Role(row.role), row.unit, Channel(row.channel))
