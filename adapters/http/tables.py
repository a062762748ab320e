"""The API's own tables, in the read-model database: bearer tokens (hashed) and idempotency keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, inspect, text

from projections.sql import create_tables as create_all_tables

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

metadata = MetaData()

tokens = Table(
    "http_tokens",
    metadata,
    #: The public handle of a token (shown by ``token create``, used by ``token revoke``); not a secret.
    Column("token_id", String(32), primary_key=True),
    #: sha256 of the whole bearer token, hex; the token itself is never stored.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("actor_id", String(64), nullable=False),
    Column("role", String(32), nullable=False),
    Column("unit", String(64)),
    #: The intake channel a client filing through Open311 with this token stands for (app, hotline, …).
    Column("channel", String(16), nullable=False),
    Column("note", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
)

idempotency = Table(
    "http_idempotency",
    metadata,
    Column("token_id", String(32), primary_key=True),
    Column("key", String(255), primary_key=True),
    #: sha256 of the method, path and the parsed request, so a retry must ask for the same thing.
    Column("request_hash", String(64), nullable=False),
    #: 0 while the first request is being handled, then its HTTP status.
    Column("status_code", Integer, nullable=False),
    Column("media_type", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    #: Who handles the first request while status is 0: "host/pid/instance" of the serving process.
    Column("owner", String(100)),
    #: Until when that claim holds even if its owner cannot be seen to be gone (naive UTC).
    Column("lease_until", DateTime),
)

#: Columns added since the table was first made: (name, SQL type), added to older databases at start-up.
_ADDED = (("owner", "VARCHAR(100)"), ("lease_until", "TIMESTAMP"))


def _add_columns(connection: Connection) -> None:
    present = {column["name"] for column in inspect(connection).get_columns(idempotency.name)}
    for name, kind in _ADDED:
        if name not in present:
            connection.execute(text(f"ALTER TABLE {idempotency.name} ADD COLUMN {name} {kind}"))


def create_tables(engine: Engine) -> None:
    """Create the API's tables if missing (another process creating them at the same moment is fine)."""
    create_all_tables(engine, metadata, seed=_add_columns)
