"""The sink's loop: read the topics from assigned partitions, fold each batch, write it with its offsets.

No consumer group: the sink assigns itself every partition of the topics ``index.json`` names and keeps its
own offsets in DuckDB, in the transaction that writes the rows (a group's committed offsets could not be).
A message the sink cannot use is *poison*: set aside in ``sink_poison`` with the reason, counted, and read past.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import duckdb
from kafka import KafkaConsumer, TopicPartition

from sink import parquet, schema, tables
from sink.figures import Fold, parse_time

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from kafka.consumer.fetcher import ConsumerRecord

@dataclass
class SinkStats:
    """What a run did."""

    messages: int = 0
    events: int = 0
    poison: int = 0
    #: Messages of an event the sink already held (the same ce_id published again): skipped.
    duplicates: int = 0
    batches: int = 0
    #: Messages on the topics not read yet, when last looked.
    lag: int = 0
    seconds: float = 0.0
    columns_added: list[str] = field(default_factory=list)
    per_type: dict[str, int] = field(default_factory=dict)


class _Poison(Exception):
    """Why a message cannot be used."""


@dataclass(frozen=True, slots=True)
class _Decoded:
    """A message the sink can use."""

    area: str
    name: str
    aggregate_id: str
    data: dict[str, Any]
    meta: list[Any]
    text: str


#: The headers the sink reads (the others are kept only with a message set aside).
_HEADERS = frozenset({"ce_type", "ce_id", "ce_subject", "gridcase_position", "gridcase_recorded_at"})


@dataclass
class _InFlight:
    """A batch being written by the writer thread."""

    records: list[ConsumerRecord]
    batch: tables.Batch
    thread: threading.Thread | None = None
    error: BaseException | None = None


class Sink:
    """The reference downstream consumer: the topics and ``schemas/`` in, analytics tables in DuckDB out."""

    def __init__(
        self,
        path: Path,
        bootstrap: str,
        *,
        schemas: Path | None = None,
        timezone: str = "Asia/Shanghai",
        batch_size: int = 5_000,
        poll_ms: int = 500,
    ) -> None:
        self.path = path
        self.bootstrap = bootstrap
        self.catalogue = schema.load(schemas)
        self.timezone = timezone
        self.tz = ZoneInfo(timezone)
        self.batch_size = batch_size
        self.poll_ms = poll_ms
        self.stats = SinkStats()
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._consumer: KafkaConsumer | None = None
        self._sql = tables.events_sql(self.catalogue)
        self._check = tables.check_sql(self.catalogue)
        self._partitions: list[TopicPartition] = []
        self._looked = 0.0
        self._exported_at = -1
        self._export_time = 0.0
        self._write_connection: duckdb.DuckDBPyConnection | None = None
        self._inflight: _InFlight | None = None
        self._redone = False

    # -- life -----------------------------------------------------------------------

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The open DuckDB file (opened on first use)."""
        return self.open()

    def open(self) -> duckdb.DuckDBPyConnection:
        """Open the DuckDB file once, its tables created or widened to the schemas."""
        if self._connection is None:
            connection = tables.connect(self.path)
            try:
                self.stats.columns_added = tables.migrate(connection, self.catalogue, self.timezone)
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def start(self) -> None:
        """Open the file (creating or widening its tables) and the consumer, at the stored offsets."""
        self.open()
        self._consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False, client_id="gridcase-sink",
            max_poll_records=self.batch_size, fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )  # fmt: skip
        self._assign()

    def close(self) -> None:
        """Close the consumer and the file (after the batch being written, if any)."""
        if self._inflight is not None and self._inflight.thread is not None:
            self._inflight.thread.join()
            self._inflight = None
        if self._write_connection is not None:
            self._write_connection.close()
            self._write_connection = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _assign(self) -> None:
        """Take every partition of the schemas' topics (again: a topic may appear or grow while following)."""
        consumer = self._require()
        found = consumer.topics()
        wanted = [
            TopicPartition(topic, p)
            for topic in self.catalogue.topics if topic in found
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]  # fmt: skip
        self._looked = time.monotonic()
        if wanted == self._partitions:
            return
        stored = tables.offsets(self.connection)
        new = [tp for tp in wanted if tp not in self._partitions]
        consumer.assign(wanted)
        for tp in new:
            if (tp.topic, tp.partition) in stored:
                consumer.seek(tp, stored[(tp.topic, tp.partition)])
            else:
                consumer.seek_to_beginning(tp)
        self._partitions = wanted

    def _require(self) -> KafkaConsumer:
        if self._consumer is None:
            msg = "the sink is not started"
            raise RuntimeError(msg)
        return self._consumer

    # -- running --------------------------------------------------------------------

    def run_once(self, progress: Callable[[SinkStats], None] | None = None) -> SinkStats:
        """Read until every partition is at its end, then stop."""
        return self._repeat(None, progress)

    def follow(
        self,
        stop: Callable[[], bool],
        progress: Callable[[SinkStats], None] | None = None,
        *,
        parquet_to: Path | None = None,
        parquet_every: float = 60.0,
    ) -> SinkStats:
        """Keep reading until ``stop()`` says so.

        With ``parquet_to``, export again when there is news, at most every ``parquet_every`` seconds.
        """
        return self._repeat(stop, progress, parquet_to, parquet_every)

    def _repeat(
        self,
        stop: Callable[[], bool] | None,
        progress: Callable[[SinkStats], None] | None,
        parquet_to: Path | None = None,
        parquet_every: float = 60.0,
    ) -> SinkStats:
        started = time.perf_counter()
        while stop is None or not stop():
            if self.step():
                if progress is not None:
                    progress(self.stats)
            elif stop is None:
                break
            elif time.monotonic() - self._looked > 10:  # noqa: PLR2004 - look for new topics and partitions
                self._assign()
            news = self.stats.events + self.stats.poison != self._exported_at
            if parquet_to is not None and news and time.monotonic() - self._export_time >= parquet_every:
                self.export_parquet(parquet_to)
        self._finish()
        self.stats.seconds = time.perf_counter() - started
        return self.stats

    def step(self) -> bool:
        """Read and write one batch; False when there was nothing to read."""
        consumer = self._require()
        if not self._partitions:
            self._assign()
            if not self._partitions:
                time.sleep(self.poll_ms / 1000)
                return False
        polled = consumer.poll(timeout_ms=self.poll_ms, max_records=self.batch_size)
        records = [record for batch in polled.values() for record in batch]
        if not records:
            written = self._finish()
            ends = consumer.end_offsets(self._partitions)
            self.stats.lag = sum(max(0, ends[tp] - consumer.position(tp)) for tp in self._partitions)
            return written or self.stats.lag > 0
        # This batch is folded while the one before is written (DuckDB lets go of the GIL), on top of it.
        batch = self._fold(records, {}, self._inflight.batch if self._inflight else None)
        if self._finish() and self._redone:
            batch = self._fold(records, {})
        self._launch(records, batch)
        # What the last fetches said each partition's end is: no round trip to the broker.
        ends = {tp: consumer.highwater(tp) for tp in self._partitions}
        self.stats.lag = sum(max(0, end - consumer.position(tp)) for tp, end in ends.items() if end is not None)
        return True

    def _launch(self, records: list[ConsumerRecord], batch: tables.Batch) -> None:
        """Write a folded batch in a thread of its own; :meth:`_finish` waits for it."""
        inflight = _InFlight(records, batch)

        def write() -> None:
            try:
                tables.write(self._writer(), batch, self._sql)
            except BaseException as error:  # noqa: BLE001 - handed to the main thread by _finish
                inflight.error = error

        inflight.thread = threading.Thread(target=write, name="sink-writer")
        inflight.thread.start()
        self._inflight = inflight

    def _finish(self) -> bool:
        """Wait for the batch being written; True if one was.

        A batch that failed is done again in full here (setting aside what does not fit), and ``_redone`` says
        so: what was folded on top of it is stale.
        """
        inflight, self._inflight = self._inflight, None
        self._redone = False
        if inflight is None:
            return False
        if inflight.thread is not None:
            inflight.thread.join()
        if inflight.error is None:
            self._count(inflight.batch)
            return True
        if not isinstance(inflight.error, duckdb.Error):
            raise inflight.error  # rolled back: a restart reads the batch again
        self._apply(inflight.records)
        self._redone = True
        return True

    def _writer(self) -> duckdb.DuckDBPyConnection:
        """A second connection to the file for the writing thread (one connection is not shared by threads)."""
        if self._write_connection is None:
            self._write_connection = self.connection.cursor()
        return self._write_connection

    def _apply(self, records: list[ConsumerRecord]) -> None:
        """Fold and write a batch; a value a column cannot hold is found, set aside, and the batch done again."""
        unfit: dict[tuple[str, int, int], str] = {}
        for _ in range(3):
            batch = self._fold(records, unfit)
            try:
                tables.write(self._writer(), batch, self._sql)
            except duckdb.Error:
                found = self._unfit(batch)
                if not found:
                    raise
                unfit.update(found)
                continue
            self._count(batch)
            return
        msg = "a batch could not be written after setting aside the values that do not fit"
        raise RuntimeError(msg)

    def _count(self, batch: tables.Batch) -> None:
        stats = self.stats
        stats.batches += 1
        stats.messages += len(batch.events) + len(batch.poison) + batch.duplicates
        stats.events += len(batch.events)
        stats.poison += len(batch.poison)
        stats.duplicates += batch.duplicates
        for meta, _ in batch.events:
            stats.per_type[meta[tables.EVENT_TYPE]] = stats.per_type.get(meta[tables.EVENT_TYPE], 0) + 1

    def _unfit(self, batch: tables.Batch) -> dict[tuple[str, int, int], str]:
        found = {}
        for meta, text in batch.events:
            try:
                self.connection.execute(self._check, [tables.message_text(meta, text)]).fetchall()
            except duckdb.Error as error:
                where = (meta[tables.TOPIC], meta[tables.PARTITION], meta[tables.OFFSET])
                found[where] = f"a value does not fit its column: {error}".splitlines()[0]
        return found

    def _fold(
        self, records: list[ConsumerRecord], unfit: dict[tuple[str, int, int], str], before: tables.Batch | None = None
    ) -> tables.Batch:
        """Fold a batch on what is committed and, if given, on the batch ``before`` it that is being written."""
        batch = tables.Batch()
        decoded: list[tuple[ConsumerRecord, _Decoded | str]] = []
        for record in records:
            batch.offsets[(record.topic, record.partition)] = record.offset + 1
            reason = unfit.get((record.topic, record.partition, record.offset))
            if reason is not None:
                decoded.append((record, reason))
                continue
            try:
                decoded.append((record, self._decode(record)))
            except _Poison as poison:
                decoded.append((record, str(poison)))
        ids = [d.aggregate_id for _, d in decoded if isinstance(d, _Decoded) and d.area in {"case", "patrol"}]
        memory = tables.load_memory(self.connection, sorted(set(ids)))
        if before is not None:
            memory.update(before.cases)
            memory.update(before.patrols)
        # A message whose ce_id the sink holds is the same event published again: taken once, counted as such.
        ce_ids = [d.meta[tables.CE_ID] for _, d in decoded if isinstance(d, _Decoded)]
        held = tables.held_events(self.connection, ce_ids)
        if before is not None:
            held.update(meta[tables.CE_ID] for meta, _ in before.events)
        fold = Fold(self.tz)
        for record, item in decoded:
            if isinstance(item, str):
                batch.poison.append(_poison_row(record, item))
                continue
            if item.meta[tables.CE_ID] in held:
                batch.duplicates += 1
                continue
            try:
                self._fold_one(fold, batch, memory, item)
            except (KeyError, LookupError, TypeError, ValueError, AttributeError) as error:
                batch.poison.append(_poison_row(record, f"cannot fold {item.name}: {type(error).__name__}: {error}"))
                continue
            batch.events.append((item.meta, item.text))
            held.add(item.meta[tables.CE_ID])
        return batch

    @staticmethod
    def _fold_one(fold: Fold, batch: tables.Batch, memory: dict[str, dict[str, Any]], item: _Decoded) -> None:
        """Fold one event; its counts join the batch's only if the whole event folded."""
        fold.deltas = {}
        if item.area == "case":
            known = batch.cases.get(item.aggregate_id) or memory.get(item.aggregate_id)
            row = fold.case(known, item.name, item.data, item.aggregate_id)
            batch.cases[item.aggregate_id] = row
        elif item.area == "patrol":
            known = batch.patrols.get(item.aggregate_id) or memory.get(item.aggregate_id)
            row = fold.patrol(known, item.name, item.data, item.aggregate_id)
            batch.patrols[item.aggregate_id] = row
        counts = batch.counts
        for key, amount in fold.deltas.items():
            counts[key] = counts.get(key, 0) + amount

    def _decode(self, record: ConsumerRecord) -> _Decoded:
        headers = {key: value.decode("utf-8", "replace") for key, value in record.headers or () if key in _HEADERS}
        kind = headers.get("ce_type")
        if kind is None or "ce_id" not in headers:
            msg = f"no {'ce_type' if kind is None else 'ce_id'} header: not a gridcase event"
            raise _Poison(msg)
        known = self.catalogue.types.get(kind)
        if known is None:
            msg = f"{kind} is not in {self.catalogue.folder / 'index.json'}: update schemas/ to take it"
            raise _Poison(msg)
        try:
            text = record.value.decode("utf-8")
            data = json.loads(text)
            position = int(headers["gridcase_position"])
            recorded = headers.get("gridcase_recorded_at") or data.get("timestamp")
            parse_time(recorded)
            occurred = data.get("occurred_at")
            day = parse_time(occurred).astimezone(self.tz).date().isoformat() if occurred is not None else None
            aggregate_id = str(data["originator_id"])
        except (AttributeError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
            msg = f"{kind}: unreadable: {type(error).__name__}: {error}"
            raise _Poison(msg) from error
        name, version = known
        _, area, short = name.split(".", 2)
        meta = [record.topic, record.partition, record.offset, position, headers.get("ce_id"), kind, name, version,
                headers.get("ce_subject"), recorded, day]  # fmt: skip
        return _Decoded(area=area, name=short, aggregate_id=aggregate_id, data=data, meta=meta, text=text)

    # -- Parquet --------------------------------------------------------------------

    def export_parquet(self, folder: Path) -> dict[str, int]:
        """Write each table as Parquet files in ``folder/<table>/month=YYYY-MM/``; rows per table."""
        self._exported_at = self.stats.events + self.stats.poison
        self._export_time = time.monotonic()
        return parquet.export(self.connection, folder)


def _poison_row(record: ConsumerRecord, error: str) -> dict[str, Any]:
    headers = {key: value.decode("utf-8", "replace") for key, value in record.headers or ()}
    value = record.value.decode("utf-8", "replace") if record.value is not None else None
    position = headers.get("gridcase_position", "")
    return {
        "topic": record.topic, "partition": record.partition, "offset": record.offset,
        "key": record.key.decode("utf-8", "replace") if record.key is not None else None,
        "ce_type": headers.get("ce_type"), "position": int(position) if position.isdigit() else None,
        "error": error[:4000], "value": value, "headers": headers,
    }  # fmt: skip
