"""The hash chain that makes the stored history tamper-evident.

Every stored event has a link in the ``event_chain`` table, written in the
same transaction as the event, under the store's write lock: its position,
its aggregate and version, a hash of its stored content chained to the hash of
the previous event of the same aggregate, and the commit clock (see
``committed_at`` below). The stored event JSON itself is left as it was.

The hash covers the previous link's hash, the event's position, aggregate id,
version, topic and the exact stored bytes, so changing any of them, removing
an event, or moving an event to another position breaks the chain at that
event (and only a rewrite of every later link of the aggregate, in a second
table, could hide it).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table

#: The hash a first event (version 1) is chained to.
GENESIS = ""
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


def link_hash(previous: str, position: int, originator_id: str, version: int, topic: str, state: bytes | str) -> str:
    """The chain hash of one stored event (hex SHA-256)."""
    digest = hashlib.sha256(f"{previous}\n{position}\n{originator_id}\n{version}\n{topic}\n".encode())
    # Bytes as stored; a row edited by hand may come back as text.
    digest.update(state.encode() if isinstance(state, str) else state)
    return digest.hexdigest()


def to_micros(moment: datetime) -> int:
    """An aware moment as microseconds since the epoch (exact, no float rounding)."""
    return (moment.astimezone(UTC) - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    """Microseconds since the epoch as an aware UTC moment."""
    return _EPOCH + micros * _MICROSECOND
