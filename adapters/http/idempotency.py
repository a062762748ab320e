"""Idempotent POSTs: a client-supplied ``Idempotency-Key`` makes a retried request return the first result.

The key is scoped to the caller's token. The first request with a key claims it
(a row with status 0, its owner — this serving process — and a lease), runs, and
stores its response; a retry with the same key and the same request gets that
stored response back. The same key with a different request is refused (422),
and a retry while the first is still running is told so (409). Only successful
outcomes are kept: a refused or failed request wrote nothing, so retrying it
files nothing twice and may succeed later.

A crash must not keep a key claimed for ever, nor let a retry file twice. So the
command runs with a *write mark* (adapters/chained.py), derived from the token and
the key, that the event store writes in the same transaction as the command's
events, unique: a command with a given mark is stored at most once, whoever runs
it. A claim whose owner is gone (a process of this host that no longer runs, or
a lease run out) is abandoned: if its mark is in the store, the command was stored
and only the answer was lost, so the retry is answered from the stored events;
if not, nothing was stored and the retry takes the claim over and runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from adapters.http.tables import idempotency

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from sqlalchemy import Engine, Row

MAX_KEY_LENGTH = 255
#: How many times a claim is tried again when its row changed under it (another retry at the same moment).
ATTEMPTS = 5


def request_hash(method: str, path: str, payload: Any) -> str:
    """A fingerprint of what a request asks for: method, path and its parsed input in canonical JSON."""
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def write_mark(token_id: str, key: str) -> str:
    """The mark the command of this key is stored with: the same for every retry, unique per token and key."""
    return "idem:" + hashlib.sha256(f"{token_id}\n{key}".encode()).hexdigest()


@dataclass(frozen=True)
class Stored:
    """A response kept for a key."""

    status_code: int
    media_type: str
    body: str


@dataclass(frozen=True)
class Landed:
    """The key's command was stored (its first event is at ``position``) but its answer was lost in a crash."""

    position: int


class KeyReused(Exception):
    """The key was used before for a different request."""


class KeyInFlight(Exception):
    """The first request with this key is still being handled."""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, someone else's
        return False
    return False


class IdempotencyStore:
    """Keys, request fingerprints, owners and first responses in ``http_idempotency``."""

    def __init__(self, engine: Engine, gate: AbstractContextManager[None] | None = None, *,
                 lease_seconds: float = 30.0, landed: Callable[[str], int | None] | None = None) -> None:  # fmt: skip
        self.engine = engine
        self.gate: AbstractContextManager[None] = gate if gate is not None else nullcontext()
        self.lease = timedelta(seconds=lease_seconds)
        #: Where the store put the first event of the command with this mark, if it stored one.
        self.landed: Callable[[str], int | None] = landed or (lambda _mark: None)
        self.host = socket.gethostname()[:50]
        self.pid = os.getpid()
        #: This serving process, as claims name it.
        self.owner = f"{self.host}/{self.pid}/{uuid.uuid4().hex[:12]}"

    def claim(self, token_id: str, key: str, fingerprint: str) -> Stored | Landed | None:
        """Claim a key for a new request (None), or what the first request with it left: its answer, or its write.

        Raises KeyReused for a different request, KeyInFlight while the first is still being handled.
        """
        mark = write_mark(token_id, key)
        where = (idempotency.c.token_id == token_id, idempotency.c.key == key)
        for _attempt in range(ATTEMPTS):
            if self._insert(token_id, key, fingerprint):
                # A claim lost after its command was stored (e.g. let go by a process that took it over):
                # the store still knows.
                position = self.landed(mark)
                return None if position is None else Landed(position)
            with self.engine.connect() as connection:
                row = connection.execute(select(idempotency).where(*where)).first()
            if row is None:  # the first request failed and let go of the key just now: claim it again
                continue
            if row.request_hash != fingerprint:
                raise KeyReused
            if row.status_code != 0:
                return Stored(row.status_code, row.media_type, row.body)
            if not self._abandoned(row):
                raise KeyInFlight
            position = self.landed(mark)
            if position is not None:
                return Landed(position)
            if self._take_over(row):
                return None
        raise KeyInFlight

    def _insert(self, token_id: str, key: str, fingerprint: str) -> bool:
        now = _now()
        try:
            with self.gate, self.engine.begin() as connection:
                connection.execute(
                    idempotency.insert().values(
                        token_id=token_id, key=key, request_hash=fingerprint, status_code=0, media_type="", body="",
                        created_at=now, owner=self.owner, lease_until=now + self.lease,
                    )
                )  # fmt: skip
        except IntegrityError:
            return False
        return True

    def _abandoned(self, row: Row[Any]) -> bool:
        """Whether the claim's owner is gone: a process of this host that has ended, or its lease ran out."""
        if row.owner == self.owner:
            return False  # this process is handling it
        if row.owner is None or row.lease_until is None or row.lease_until < _now():
            return True
        host, _, rest = str(row.owner).partition("/")
        pid = rest.partition("/")[0]
        return host == self.host and pid.isdigit() and int(pid) != self.pid and _process_gone(int(pid))

    def _take_over(self, row: Row[Any]) -> bool:
        """Make an abandoned claim this process's own; False if someone else changed it first."""
        now = _now()
        owned = idempotency.c.owner.is_(None) if row.owner is None else idempotency.c.owner == row.owner
        still = (idempotency.c.token_id == row.token_id, idempotency.c.key == row.key, idempotency.c.status_code == 0)
        with self.gate, self.engine.begin() as connection:
            taken = connection.execute(
                update(idempotency).where(*still, owned).values(owner=self.owner, lease_until=now + self.lease)
            ).rowcount
        return bool(taken)

    def complete(self, token_id: str, key: str, stored: Stored) -> None:
        """Keep the response of the request that claimed the key (or of its command, found after a crash)."""
        with self.gate, self.engine.begin() as connection:
            connection.execute(
                update(idempotency)
                .where(idempotency.c.token_id == token_id, idempotency.c.key == key, idempotency.c.status_code == 0)
                .values(status_code=stored.status_code, media_type=stored.media_type, body=stored.body)
            )

    def release(self, token_id: str, key: str) -> None:
        """Let go of this process's claim on a key whose request did not succeed (nothing was written)."""
        with self.gate, self.engine.begin() as connection:
            connection.execute(
                delete(idempotency).where(
                    idempotency.c.token_id == token_id, idempotency.c.key == key, idempotency.c.status_code == 0,
                    idempotency.c.owner == self.owner,
                )
            )  # fmt: skip
