"""Leases: one worker at a time for a named job (a projection, the relay), taken over when its holder dies.

A lease is a row (name, owner, expiry). The holder renews it before it expires; another worker may take it
once it has expired or been released. Clocks of the workers are compared, so keep them in sync (NTP).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from projections.sql import create_tables, leases

if TYPE_CHECKING:
    from sqlalchemy import Engine


def create_lease_table(engine: Engine) -> None:
    """Create the lease table if missing."""
    create_tables(engine, leases)


def acquire(engine: Engine, name: str, owner: str, seconds: float) -> bool:
    """Take or renew the lease ``name`` for ``seconds``; False if another live owner holds it."""
    now = time.time()
    with engine.begin() as connection:
        taken = connection.execute(
            update(leases)
            .where(leases.c.name == name)
            .where((leases.c.owner == owner) | (leases.c.expires_at < now))
            .values(owner=owner, expires_at=now + seconds)
        ).rowcount
        if taken:
            return True
        if connection.execute(select(leases.c.name).where(leases.c.name == name)).first() is not None:
            return False
    try:
        with engine.begin() as connection:
            connection.execute(leases.insert().values(name=name, owner=owner, expires_at=now + seconds))
    except IntegrityError:
        return False
    return True


def holder(engine: Engine, name: str) -> str | None:
    """Who holds the lease now, if anyone."""
    with engine.connect() as connection:
        row = connection.execute(select(leases.c.owner, leases.c.expires_at).where(leases.c.name == name)).first()
    return row.owner if row is not None and row.expires_at >= time.time() else None


def release(engine: Engine, owner: str) -> None:
    """Give up every lease this owner holds."""
    with engine.begin() as connection:
        connection.execute(delete(leases).where(leases.c.owner == owner))
