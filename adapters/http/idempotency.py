"""Idempotent POSTs: a client-supplied ``Idempotency-Key`` makes a retried request return the first result.

The key is scoped to the caller's token. The first request with a key claims it
(a row with status 0), runs, and stores its response; a retry with the same key
and the same request gets that stored response back. The same key with a
different request is refused (422), and a retry while the first is still running
is told so (409). Only successful outcomes are kept: a refused or failed request
wrote nothing, so retrying it files nothing twice and may succeed later.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from adapters.http.tables import idempotency

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from sqlalchemy import Engine

MAX_KEY_LENGTH = 255


def request_hash(method: str, path: str, payload: Any) -> str:
    """A fingerprint of what a request asks for: method, path and its parsed input in canonical JSON."""
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class Stored:
    """A response kept for a key."""

    status_code: int
    media_type: str
    body: str


class KeyReused(Exception):
    """The key was used before for a different request."""


class KeyInFlight(Exception):
    """The first request with this key is still being handled."""


class IdempotencyStore:
    """Keys, request fingerprints and first responses in ``http_idempotency``."""

    def __init__(self, engine: Engine, gate: AbstractContextManager[None] | None = None) -> None:
        self.engine = engine
        self.gate: AbstractContextManager[None] = gate if gate is not None else nullcontext()

    def claim(self, token_id: str, key: str, fingerprint: str) -> Stored | None:
        """Claim a key for a new request (None), or the stored first response of the same request."""
        try:
            with self.gate, self.engine.begin() as connection:
                connection.execute(
                    idempotency.insert().values(
                        token_id=token_id,
                        key=key,
                        request_hash=fingerprint,
                        status_code=0,
                        media_type="",
                        body="",
                        created_at=datetime.now(UTC).replace(tzinfo=None),
                    )
                )
        except IntegrityError:
            pass
        else:
            return None
        with self.engine.connect() as connection:
            row = connection.execute(
                select(idempotency).where(idempotency.c.token_id == token_id, idempotency.c.key == key)
            ).first()
        if row is None:  # the first request failed and let go of the key just now: claim it again
            return self.claim(token_id, key, fingerprint)
        if row.request_hash != fingerprint:
            raise KeyReused
        if row.status_code == 0:
            raise KeyInFlight
        return Stored(row.status_code, row.media_type, row.body)

    def complete(self, token_id: str, key: str, stored: Stored) -> None:
        """Keep the response of the request that claimed the key."""
        with self.gate, self.engine.begin() as connection:
            connection.execute(
                update(idempotency)
                .where(idempotency.c.token_id == token_id, idempotency.c.key == key)
                .values(status_code=stored.status_code, media_type=stored.media_type, body=stored.body)
            )

    def release(self, token_id: str, key: str) -> None:
        """Let go of a key whose request did not succeed (nothing was written), so a retry runs again."""
        with self.gate, self.engine.begin() as connection:
            connection.execute(
                delete(idempotency).where(
                    idempotency.c.token_id == token_id, idempotency.c.key == key, idempotency.c.status_code == 0
                )
            )
