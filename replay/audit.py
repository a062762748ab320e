"""The auditor's view: a case's full history with both clocks and its state around each event, and the chain check.

``history`` folds the case's stored events through the domain aggregate, so
"state before" and "state after" are what the engine itself believed at each
step. ``verify_chain`` walks the whole notification log in store order against
the ``event_chain`` links (replay/chain.py) and names every broken link: an
altered row (content or version changed), a removed row (a gap in the
gap-free positions, or a link with no event), a row moved to another position,
a commit time moved (chain version 2 hashes it), a commit time earlier than the
one before it along the log (the as-of-recorded cut-off relies on their order),
a version 1 link after version 2 began.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from eventsourcing.utils import resolve_topic
from sqlalchemy import inspect, select

from domain.base import upcast_state
from projections.case_status import case_status
from replay.chain import GENESIS, chain_version, event_chain, link_hash, micros_text
from replay.source import within

if TYPE_CHECKING:
    from collections.abc import Sequence
    from uuid import UUID

    from eventsourcing.persistence import StoredEvent
    from sqlalchemy import Connection, Engine

    from replay.source import Reader

#: The columns of a history row, in the order tables and CSV show them.
COLUMNS = (
    "position", "version", "event", "actor", "role", "unit", "occurred_at", "recorded_at", "committed_at",
    "state_before", "state_after",
)  # fmt: skip
#: What "state" shows of a case: the fields a step can change that an auditor asks about.
STATE_FIELDS = ("state", "level", "handler", "merged_into")


def _decode(stored: StoredEvent) -> tuple[Any, dict[str, Any]]:
    """The domain event and its stored fields."""
    cls = resolve_topic(stored.topic)
    data: dict[str, Any] = json.loads(stored.state)
    upcast_state(cls, data)
    event = cls.model_validate(
        {**data, "originator_id": stored.originator_id, "originator_version": stored.originator_version}
    )
    return event, data


def _text(value: Any) -> Any:
    if value is None or isinstance(value, int | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if hasattr(value, "value"):  # enums
        return value.value
    if hasattr(value, "model_dump"):  # handler references
        dumped = value.model_dump(mode="json")
        return f"{dumped.get('kind')}:{dumped.get('id')}" if "kind" in dumped else dumped
    return str(value)


def state_of(aggregate: Any) -> str:
    """The case's state as one line: ``in_progress level=community handler=worker:W001 …``."""
    if aggregate is None:
        return "—"
    parts = []
    for name in STATE_FIELDS:
        value = _text(getattr(aggregate, name, None))
        if value is None or (name == "suspended_seconds" and not value):
            continue
        parts.append(str(value) if name == "state" else f"{name}={value}")
    return " ".join(parts)


def history(stored_events: Sequence[StoredEvent], links: dict[int, tuple[int, int]]) -> list[dict[str, Any]]:
    """Every event of one aggregate, oldest first, with actor, role, both clocks, commit time and state around it.

    ``links`` maps each version to its (position, committed_at µs) from the chain table.
    """
    rows = []
    aggregate: Any = None
    for stored in stored_events:
        event, data = _decode(stored)
        before = state_of(aggregate)
        aggregate = event.mutate(aggregate)
        position, committed = links.get(stored.originator_version, (None, None))
        actor = data.get("actor") or {}
        shown = {k: v for k, v in data.items() if k not in {"actor", "occurred_at", "timestamp", "originator_topic"}}
        rows.append(
            {
                "position": position,
                "version": stored.originator_version,
                "event": stored.topic.rpartition(".")[2],
                "actor": actor.get("id"),
                "role": actor.get("role"),
                "unit": actor.get("unit"),
                "occurred_at": data.get("occurred_at"),
                "recorded_at": data.get("timestamp"),
                "committed_at": None if committed is None else micros_text(committed),
                "state_before": before,
                "state_after": state_of(aggregate),
                "data": shown,
            }
        )
    return rows


def as_of(
    stored_events: Sequence[StoredEvent],
    rows: Sequence[dict[str, Any]],
    *,
    version: int | None = None,
    occurred: datetime | None = None,
    last: int | None = None,
) -> list[tuple[StoredEvent, dict[str, Any]]]:
    """The events and their history rows that the cut-offs keep.

    Up to a version, and the replay cut-offs (replay/source.py): as of occurred, and as of recorded through
    ``last``, the last position the store knew then.
    """
    return [
        (event, row)
        for event, row in zip(stored_events, rows, strict=True)
        if (version is None or row["version"] <= version)
        and within(row["position"], row["occurred_at"], last=last, occurred=occurred)
    ]


def links_of(connection: Connection, originator_id: UUID) -> dict[int, tuple[int, int]]:
    """An aggregate's chain links: version → (position, committed_at µs)."""
    query = select(event_chain.c.originator_version, event_chain.c.position, event_chain.c.committed_at).where(
        event_chain.c.originator_id == str(originator_id)
    )
    return {int(v): (int(p), int(c)) for v, p, c in connection.execute(query)}


def state_at(stored_events: Sequence[StoredEvent]) -> dict[str, Any]:
    """The aggregate's fields after the given events (a case as of a version or a time)."""
    aggregate: Any = None
    for stored in stored_events:
        aggregate = _decode(stored)[0].mutate(aggregate)
    if aggregate is None:
        return {}
    fields = {k: v for k, v in vars(aggregate).items() if not k.startswith("_")}
    return {k: _text(v) if not isinstance(v, dict | list) else v for k, v in fields.items()}


# -- the chain check ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Broken:
    """One broken link: where, whose, and what is wrong."""

    position: int
    subject: str
    version: int | None
    problem: str

    def __str__(self) -> str:
        version = "" if self.version is None else f" version {self.version}"
        return f"position {self.position}: {self.subject}{version}: {self.problem}"


@dataclass
class ChainCheck:
    """What ``verify_chain`` found."""

    events: int = 0
    last_position: int = 0
    #: The last link's hash: published or written down, it makes a rewrite of the whole chain detectable too.
    head: str = GENESIS
    broken: list[Broken] = field(default_factory=list)
    #: Links of chain version 1 (written before the hash covered the commit time): their commit times are
    #: checked for order only.
    unclocked: int = 0

    @property
    def intact(self) -> bool:
        """No broken link."""
        return not self.broken


class _Subjects:
    """Names of aggregates for messages: case and patrol numbers, registry codes, learnt on the way."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.names: dict[str, str] = {}

    def learn(self, key: str, version: int, state: bytes) -> None:
        if version != 1:
            return
        try:
            data = json.loads(state)
        except ValueError:
            return
        for field_name, kind in (("case_number", "case"), ("patrol_number", "patrol"), ("code", "registry")):
            if isinstance(data.get(field_name), str):
                self.names[key] = f"{kind} {data[field_name]}"
                return

    def __call__(self, key: str) -> str:
        if key not in self.names:
            # A removed or altered report: the case-status read model still knows the number.
            with self.engine.connect() as connection:
                number = None
                if inspect(connection).has_table(case_status.name):
                    number = connection.execute(
                        select(case_status.c.case_number).where(case_status.c.case_id == key)
                    ).scalar()
            self.names[key] = f"case {number}" if number else f"aggregate {key}"
        return self.names[key]


def verify_chain(  # noqa: C901, PLR0912, PLR0915 - one walk, every kind of broken link
    read: Reader, engine: Engine, *, names: Engine | None = None, batch_size: int = 10_000, keep: int = 100
) -> ChainCheck:
    """Check every stored event against its chain link, in store order; keeps the first ``keep`` broken links.

    ``engine`` reaches the store's database (its chain table); ``names`` the read models' (case numbers of
    removed reports), when they live elsewhere.
    """
    check = ChainCheck()
    subjects = _Subjects(names or engine)
    heads: dict[str, tuple[int, str]] = {}
    expected = 1
    #: The position and commit time of the last link seen, and where chain version 2 began.
    last_commit: tuple[int, int] | None = None
    first_clocked: int | None = None

    def broken(position: int, key: str, version: int | None, problem: str) -> None:
        if len(check.broken) < keep:
            check.broken.append(Broken(position, subjects(key), version, problem))

    def removed(position: int, links: dict[int, Any]) -> None:
        link = links.pop(position, None)
        if link is None:
            if len(check.broken) < keep:
                check.broken.append(Broken(position, "unknown", None, "no event and no link at this position"))
            return
        broken(position, link.originator_id, link.originator_version, "the event was removed (its link remains)")
        # The removed event's link stands in for it, so the events after it are judged on their own.
        heads[link.originator_id] = (link.originator_version, link.chain_hash)

    after = 0
    while batch := read(after, batch_size):
        last = batch[-1].id
        with engine.connect() as connection:
            links = {
                row.position: row
                for row in connection.execute(
                    select(event_chain).where(event_chain.c.position > after, event_chain.c.position <= last)
                )
            }
        for notification in batch:
            key = str(notification.originator_id)
            version = notification.originator_version
            subjects.learn(key, version, notification.state)
            for position in range(expected, notification.id):
                removed(position, links)
            link = links.pop(notification.id, None)
            previous_version, previous = heads.get(key, (0, GENESIS))
            clocked = link is not None and chain_version(link.chain_hash) >= 2  # noqa: PLR2004
            committed = int(link.committed_at) if link is not None else None
            digest = link_hash(previous, notification.id, key, version, notification.topic, notification.state,
                               committed if clocked else None)  # fmt: skip
            if link is None:
                broken(notification.id, key, version, "no chain link was recorded for this event")
            elif link.originator_id != key or link.originator_version != version:
                broken(notification.id, key, version,
                       f"the event was moved: this position was written for {subjects(link.originator_id)} "
                       f"version {link.originator_version}")  # fmt: skip
            elif version != previous_version + 1:
                broken(notification.id, key, version, f"follows version {previous_version} of its aggregate")
            elif digest != link.chain_hash:
                broken(notification.id, key, version,
                       "the stored content or its commit time does not match its recorded hash" if clocked
                       else "the stored content does not match its recorded hash")  # fmt: skip
            elif not clocked and first_clocked is not None:
                broken(notification.id, key, version,
                       f"a chain version 1 link (commit time not covered) after version 2 began at position "
                       f"{first_clocked}")  # fmt: skip
            if committed is not None:
                if last_commit is not None and committed < last_commit[1]:
                    broken(notification.id, key, version,
                           f"committed at {micros_text(committed)}, before position {last_commit[0]} "
                           f"(committed at {micros_text(last_commit[1])}): commit times must not go back")  # fmt: skip
                last_commit = (notification.id, committed)
            if link is not None and not clocked:
                check.unclocked += 1
            if clocked and first_clocked is None:
                first_clocked = notification.id
            # Go on from the recorded hash, so that each later link is judged on its own.
            heads[key] = (version, cast("str", link.chain_hash) if link is not None else digest)
            check.head = heads[key][1]
            expected = notification.id + 1
            check.events += 1
        check.last_position = last
        after = last
    with engine.connect() as connection:
        for row in connection.execute(
            select(event_chain).where(event_chain.c.position >= expected).order_by(event_chain.c.position)
        ):
            broken(row.position, row.originator_id, row.originator_version, "the event was removed (its link remains)")
    return check
