"""The hash chain that makes the stored history tamper-evident.

Every stored event has a link in the ``event_chain`` table, written in the
same transaction as the event, under the store's write lock: its position,
its aggregate and version, a hash of its stored content chained to the hash of
the previous event of the same aggregate, and the commit clock (see
``committed_at`` below). The stored event JSON itself is left as it was.

The hash covers the previous link's hash, the event's position, aggregate id,
version, topic, the exact stored bytes and (chain version 2, issue 13) the
commit time, so changing any of them, removing an event, moving an event to
another position or moving its commit time breaks the chain at that event (and
only a rewrite of every later link of the aggregate, in a second table, could
hide it).

Chain versions: a link's hash says which one wrote it. Version 2 hashes are
``v2:`` and 64 hex digits, and cover ``committed_at``; version 1 hashes (64 hex
digits, no tag) were written before: they cover everything but the commit time.
A store keeps its version 1 links as they are (rewriting them would need the
very trust the chain replaces); ``audit verify`` checks them as before, checks
their commit times only for order along the log, and refuses a version 1 link
after the first version 2 one (a downgrade to escape the commit-time hash).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table

#: The hash a first event (version 1) is chained to.
GENESIS = ""
#: The chain version new links are written in, and the tag its hashes start with.
CHAIN_VERSION = 2
_V2 = "v2:"
CHAIN_TABLE = "event_chain"

chain_metadata = MetaData()

#: Read-only view of the table the recorders create and write (adapters/chained.py).
event_chain = Table(
    CHAIN_TABLE,
    chain_metadata,
    Column("position", BigInteger, primary_key=True),
    Column("originator_id", String(36), nullable=False),
    Column("originator_version", Integer, nullable=False),
    Column("chain_hash", String(64), nullable=False),
    #: The recording clock read under the write lock, in microseconds since the epoch, strictly increasing
    #: from one write to the next: "what the store held at T" is every position whose commit is at or before T.
    Column("committed_at", BigInteger, nullable=False),
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def link_hash(previous: str, position: int, originator_id: str, version: int, topic: str, state: bytes | str,
              committed_at: int | None = None) -> str:  # fmt: skip
    """The chain hash of one stored event: chain version 2 (``v2:`` and hex SHA-256) over its commit time too.

    Without ``committed_at`` it is a version 1 hash (hex SHA-256, no tag), as links were written before.
    """
    head = f"{previous}\n{position}\n{originator_id}\n{version}\n{topic}\n"
    if committed_at is not None:
        head = f"{_V2}{head}{committed_at}\n"
    digest = hashlib.sha256(head.encode())
    # Bytes as stored; a row edited by hand may come back as text.
    digest.update(state.encode() if isinstance(state, str) else state)
    return digest.hexdigest() if committed_at is None else _V2 + digest.hexdigest()


def chain_version(chain_hash: str) -> int:
    """The chain version a link was written in, told by its hash."""
    return 2 if chain_hash.startswith(_V2) else 1


def to_micros(moment: datetime) -> int:
    """An aware moment as microseconds since the epoch (exact, no float rounding)."""
    return (moment.astimezone(UTC) - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    """Microseconds since the epoch as an aware UTC moment."""
    return _EPOCH + micros * _MICROSECOND


def micros_text(micros: int) -> str:
    """A commit time for people: ISO 8601 UTC, or the raw number when no calendar can hold it (a tampered row)."""
    try:
        return from_micros(micros).isoformat().replace("+00:00", "Z")
    except OverflowError:
        return f"{micros} µs after 1970"
