"""Crypto-shredding: each citizen's personal data sealed under a data key of their own, erasable by deleting it.

Three tables in the event store's database (docs/privacy.md, "How personal data is stored and erased"):

- ``personal_keys``: per citizen (subject) a random 256-bit data key, wrapped with AES-GCM under a key derived
  from the master key (``GRIDCASE_MASTER_KEY`` / ``_FILE``; on the embedded SQLite default a key file next to
  the database, made on first run);
- ``personal_lookups``: HMAC of a normalised phone number or ID number, to the subject (the same citizen by either);
- ``personal_uses``: which aggregates held data sealed under a subject's key, as earlier releases wrote it at each
  intake. No longer written: an erasure finds the cases by the subject in the stored events (a scan, rare), so
  intake writes one table fewer; rows written before are still read and deleted.

The store's mapper hands each personal value to :meth:`Vault.seal`, which stages it in :data:`STAGED` and leaves a
placeholder in the event's JSON; the chained recorders (adapters/chained.py), in the events' transaction and
under the store's write lock on SQLite, find or make the citizen's key (:func:`seal_staged`), put the sealed form
in place of the placeholder, and write the new key-store rows with the events, so a refused command leaves no key.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import secrets
import sys
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import StoredEvent

from domain.personal import Sealed, is_sealed

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    #: Runs one key-store SELECT (``?`` marks) and gives its rows.
    Select = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]

    from adapters.settings import Settings
    from domain.personal import LookupKind, PersonalData

KEYS, LOOKUPS, USES = "personal_keys", "personal_lookups", "personal_uses"
TABLES = {
    KEYS: "subject TEXT PRIMARY KEY, wrapped TEXT NOT NULL",
    LOOKUPS: "digest TEXT NOT NULL, subject TEXT NOT NULL, PRIMARY KEY (digest, subject)",
    USES: "subject TEXT NOT NULL, originator_id TEXT NOT NULL, PRIMARY KEY (subject, originator_id)",
}
_NONCE = 12
#: A staged value's placeholder in an event's JSON, until sealed in the write: this process's own (random), so no
#: text a citizen types can be taken for one. ``\x00`` is escaped by JSON, so the mark is searched as encoded.
_PLACEHOLDER = f"\x00gridcase-sealing:{secrets.token_hex(16)}:"
_PLACEHOLDER_JSON = json.dumps(_PLACEHOLDER, ensure_ascii=False)[1:-1].encode()


class MasterKeyMissing(ValueError):
    """No master key is configured where the engine cannot make one (PostgreSQL), or the one given is wrong."""


def master_key(settings: Settings) -> bytes:
    """The master key: ``GRIDCASE_MASTER_KEY``, else ``GRIDCASE_MASTER_KEY_FILE``, else (SQLite) a key file of its own.

    On SQLite with neither set, ``<database>.master-key`` is made next to the database on first run (mode 0600)
    and one line on stderr says where; an in-memory database gets a key for the process only.
    """
    if settings.master_key is not None:
        return _decode(settings.master_key.get_secret_value(), "GRIDCASE_MASTER_KEY")
    if settings.master_key_file is not None:
        return _read_key_file(settings.master_key_file, "GRIDCASE_MASTER_KEY_FILE")
    path = settings.sqlite_path
    if path is None:
        msg = "GRIDCASE_MASTER_KEY or GRIDCASE_MASTER_KEY_FILE must be set for a PostgreSQL store (base64 of 32 bytes)"
        raise MasterKeyMissing(msg)
    if str(path) == ":memory:":
        return secrets.token_bytes(32)
    key_file = path.with_name(path.name + ".master-key")
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it meanwhile
            return _read_key_file(key_file, str(key_file))
        with os.fdopen(descriptor, "w") as out:
            out.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
        sys.stderr.write(f"gridcase: made a master key for personal data at {key_file} (keep it; back it up)\n")
    return _read_key_file(key_file, str(key_file))


def _read_key_file(path: Path, name: str) -> bytes:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        msg = f"{name}: cannot read the master key file {path}: {error}"
        raise MasterKeyMissing(msg) from None
    return _decode(text, name)


def _decode(text: str, name: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:  # noqa: PLR2004 - AES-256
        msg = f"{name} must be the base64 of 32 bytes (e.g. `openssl rand -base64 32`)"
        raise MasterKeyMissing(msg)
    return key


@dataclass
class Pending:
    """A personal value staged by the mapper, sealed by the recorder: its placeholder, clear JSON and lookups."""

    placeholder: bytes  # as it stands in the encoded event, quotes included
    clear: bytes
    digests: list[str]
    aggregate_id: str


@dataclass
class Staged:
    """Key-store rows of the write in progress, written by the recorder in the events' transaction."""

    keys: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # subject -> (wrapped, data key)
    lookups: dict[str, str] = field(default_factory=dict)  # digest -> subject
    erase: list[str] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    vault: Vault | None = None

    def rows(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The rows to insert: keys, lookups."""
        return [(s, w) for s, (w, _) in self.keys.items()], [(d, s) for d, s in self.lookups.items()]


#: The staged rows of the save in progress on this thread (set by the mapper, consumed by the recorder).
STAGED: ContextVar[Staged | None] = ContextVar("gridcase_personal_staged", default=None)


def staged() -> Staged:
    """The staging of the write in progress, made when first asked."""
    found = STAGED.get()
    if found is None:
        found = Staged()
        STAGED.set(found)
    return found


class Vault:
    """Seals personal values on the way into the store, opens them for the service, erases a citizen's key."""

    def __init__(self, master: bytes | None, missing: str = "") -> None:
        """A vault under the master key; without one (``missing`` says why) it seals and opens nothing.

        The relay and the projectors never need the key; a write or a view of personal data refuses.
        """
        self.missing = missing
        self._master = master
        if master is not None:
            self._wrap = AESGCM(hmac.digest(master, b"gridcase key wrapping v1", "sha256"))
            self._lookup = hmac.digest(master, b"gridcase lookups v1", "sha256")
        self.recorder: Any = None

    def _need_key(self) -> None:
        if self._master is None:
            raise MasterKeyMissing(self.missing)

    # -- the database -----------------------------------------------------------------------------------

    @property
    def is_postgres(self) -> bool:
        """Whether the store is PostgreSQL (else SQLite)."""
        return hasattr(self.recorder.datastore, "schema")

    def table(self, name: str) -> str:
        """A key-store table's name as SQL (schema-qualified on PostgreSQL)."""
        return f'"{self.recorder.datastore.schema}".{name}' if self.is_postgres else name

    def _select(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self.is_postgres:
            sql = sql.replace("?", "%s")
        with self.recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(sql, tuple(params))
            return [tuple(row.values()) if isinstance(row, dict) else tuple(row) for row in cursor.fetchall()]

    # -- sealing ------------------------------------------------------------------------------------------

    def digest(self, kind: str, value: str) -> str:
        """The lookup of a normalised phone or ID number: HMAC under a master-derived key, never the value."""
        self._need_key()
        return hmac.digest(self._lookup, f"{kind}:{value}".encode(), "sha256").hex()  # one call, the same digest

    def seal(self, value: PersonalData, aggregate_id: str) -> str:
        """Stage one personal value for sealing in the write; its placeholder in the event until then.

        The lookups are computed here, the citizen's key is found or made by :func:`seal_staged` in the write.
        """
        stage = staged()
        digests = [self.digest(kind, found) for kind, found in sorted(value.lookups().items())]
        clear = json.dumps(value.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        placeholder = f"{_PLACEHOLDER}{len(stage.pending)}"
        stage.pending.append(Pending(json.dumps(placeholder, ensure_ascii=False).encode(), clear.encode(), digests,
                                     aggregate_id))  # fmt: skip
        stage.vault = self
        return placeholder

    def sealed_form(self, pending: Pending, stage: Staged, select: Select | None) -> bytes:
        """The stored form of one staged value as JSON, under its citizen's data key (a new key staged if need be).

        ``select`` reads the key store in the write's transaction; without it, in a read transaction of its own.
        """
        subject, key = self._subject_of(pending.digests, stage, select or self._select)
        for digest in pending.digests:
            stage.lookups.setdefault(digest, subject)
        nonce = secrets.token_bytes(_NONCE)
        data = base64.b64encode(nonce + AESGCM(key).encrypt(nonce, pending.clear, subject.encode())).decode()
        return f'{{"data":"{data}","sealed":"v1","subject":"{subject}"}}'.encode()  # as the transcoder writes it

    def _subject_of(self, digests: list[str], stage: Staged, select: Select) -> tuple[str, bytes]:
        for digest in digests:  # the same citizen earlier in this write
            if (subject := stage.lookups.get(digest)) is not None and subject in stage.keys:
                return subject, stage.keys[subject][1]
        if digests:  # one index probe; a new citizen (the common case) costs no more
            marks = ",".join("?" * len(digests))
            found = select(f"SELECT subject FROM {self.table(LOOKUPS)} WHERE digest IN ({marks})", digests)  # noqa: S608
            if found:
                subjects = sorted({str(row[0]) for row in found})
                marks = ",".join("?" * len(subjects))
                rows = select(f"SELECT subject, wrapped FROM {self.table(KEYS)} WHERE subject IN ({marks}) "  # noqa: S608
                              "ORDER BY subject LIMIT 1", subjects)  # fmt: skip
                if rows:
                    subject, wrapped = str(rows[0][0]), str(rows[0][1])
                    return subject, self._unwrap(subject, wrapped)
        subject = secrets.token_hex(16)
        key = AESGCM.generate_key(bit_length=256)
        nonce = secrets.token_bytes(_NONCE)
        wrapped = base64.b64encode(nonce + self._wrap.encrypt(nonce, key, b"key:" + subject.encode())).decode()
        stage.keys[subject] = (wrapped, key)
        return subject, key

    def _unwrap(self, subject: str, wrapped: str) -> bytes:
        raw = base64.b64decode(wrapped)
        return self._wrap.decrypt(raw[:_NONCE], raw[_NONCE:], b"key:" + subject.encode())

    # -- opening ------------------------------------------------------------------------------------------

    def reveal(self, sealed: Sealed) -> dict[str, Any] | None:
        """The clear value, or None when the citizen's key was erased."""
        self._need_key()
        rows = self._select(f"SELECT wrapped FROM {self.table(KEYS)} WHERE subject = ?", [sealed.subject])  # noqa: S608
        if not rows:
            return None
        key = self._unwrap(sealed.subject, str(rows[0][0]))
        raw = base64.b64decode(sealed.data)
        try:
            clear = AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], sealed.subject.encode())
        except InvalidTag:
            return None
        found: dict[str, Any] = json.loads(clear)
        return found

    def clear_state(self, state: bytes) -> bytes:
        """A stored event's JSON with its sealed values opened, encoded as the store encodes (sorted, compact)."""
        if b'"sealed":"v1"' not in state:
            return state
        document = json.loads(state)
        for name, value in document.items():
            if is_sealed(value) and (opened := self.reveal(Sealed.model_validate(value))) is not None:
                document[name] = opened
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()

    # -- erasing ------------------------------------------------------------------------------------------

    def subjects(self, kind: LookupKind, value: str) -> dict[str, list[str]]:
        """The citizens a phone or ID number leads to, each with the aggregates holding their sealed data."""
        rows = self._select(f"SELECT l.subject, u.originator_id FROM {self.table(LOOKUPS)} l LEFT JOIN "  # noqa: S608
                            f"{self.table(USES)} u ON u.subject = l.subject WHERE l.digest = ? "
                            "ORDER BY l.subject, u.originator_id", [self.digest(kind.value, value)])  # fmt: skip
        found: dict[str, set[str]] = {}
        for subject, originator in rows:
            found.setdefault(str(subject), set())
            if originator is not None:
                found[str(subject)].add(str(originator))
        for subject, holders in found.items():
            holders.update(self._holders(subject))
        return {subject: sorted(holders) for subject, holders in found.items()}

    def _holders(self, subject: str) -> list[str]:
        """The aggregates whose stored events hold a value sealed under the subject's key (a scan of the store).

        The sealed form is written as ``"subject":"<hex>"`` (:meth:`sealed_form`), the ciphertext and the rest of
        the event are not searched for anything else. An erasure is rare; intake pays nothing for it.
        """
        found = "position(?::bytea in state) > 0" if self.is_postgres else "instr(state, ?) > 0"
        rows = self._select(f"SELECT DISTINCT originator_id FROM {self.table(self.recorder.events_table_name)} "  # noqa: S608
                            f"WHERE {found}", [f'"subject":"{subject}"'.encode()])  # fmt: skip
        return [str(row[0]) for row in rows]

    def stage_erasure(self, subjects: Sequence[str]) -> None:
        """Delete these citizens' keys, lookups and uses in the transaction of the next write (the erasure event)."""
        staged().erase.extend(subjects)

    def scrub(self) -> None:
        """After an erasure committed: leave no copy of the deleted key bytes in the database's files.

        SQLite deleted with ``secure_delete`` (the freed cells are zeroed); the write-ahead log, which still holds
        the pages as they were, is checkpointed and truncated here. PostgreSQL keeps dead row versions until a
        vacuum: ``VACUUM FULL`` rewrites the (small) key tables.
        """
        if self.is_postgres:
            with self.recorder.datastore.get_connection() as connection:
                connection.autocommit = True
                for name in (KEYS, LOOKUPS):
                    connection.execute(f"VACUUM FULL {self.table(name)}")
            return
        with self.recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute("ROLLBACK")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.execute("BEGIN")


def create_statements(qualify: Any, options: str = "") -> list[str]:
    """``CREATE TABLE`` statements of the key store, names made SQL by ``qualify``, ``options`` after each."""
    return [f"CREATE TABLE IF NOT EXISTS {qualify(name)} ({columns}){options}" for name, columns in TABLES.items()]


def has_pending() -> bool:
    """Whether the write in progress carries personal values still to seal."""
    stage = STAGED.get()
    return stage is not None and bool(stage.pending)


def seal_staged(stored_events: Sequence[StoredEvent], select: Select | None = None) -> Sequence[StoredEvent]:
    """The events with their staged personal values sealed in place of the placeholders.

    ``select`` reads the key store in the write's own transaction (SQLite: under its write lock, so two writers
    cannot both make a key for one new citizen); without it the vault reads in a transaction of its own. A staged
    value none of these events holds is dropped (no key made for it); an event left holding a placeholder (its
    staging lost) is refused, never stored.
    """
    stage = STAGED.get()
    if stage is None or not stage.pending or stage.vault is None:
        found = stored_events
    else:
        held = [p for p in stage.pending if any(p.placeholder in stored.state for stored in stored_events)]
        forms = [(p.placeholder, stage.vault.sealed_form(p, stage, select)) for p in held]
        stage.pending = []
        found = []
        for stored in stored_events:
            state = stored.state
            if _PLACEHOLDER_JSON in state:
                for placeholder, form in forms:
                    state = state.replace(placeholder, form)
                stored = StoredEvent(stored.originator_id, stored.originator_version, stored.topic, state)  # noqa: PLW2901
            found.append(stored)
    if any(_PLACEHOLDER_JSON in stored.state for stored in found):
        msg = "an event holds personal data that was never sealed (staged by another write?); nothing written"
        raise RuntimeError(msg)
    return found


def write_staged(cursor: Any, qualify: Any, mark: str) -> None:
    """Write (and clear) the staged key-store rows inside the events' transaction; ``mark`` is ``?`` or ``%s``."""
    stage = STAGED.get()
    if stage is None:
        return
    keys, lookups = stage.rows()
    conflict = "ON CONFLICT DO NOTHING"
    if keys:
        cursor.executemany(f"INSERT INTO {qualify(KEYS)} VALUES ({mark},{mark})", keys)  # noqa: S608
    if lookups:
        cursor.executemany(f"INSERT INTO {qualify(LOOKUPS)} VALUES ({mark},{mark}) {conflict}", lookups)  # noqa: S608
    if stage.erase:
        if mark == "?":
            cursor.execute("PRAGMA secure_delete = ON")
        for name in (KEYS, LOOKUPS, USES):
            cursor.executemany(f"DELETE FROM {qualify(name)} WHERE subject = {mark}", [(s,) for s in stage.erase])  # noqa: S608
