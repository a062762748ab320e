"""What the sink does with messages it cannot use, and with a new event version the schemas add.

Messages are produced by hand onto a real broker, as another producer (or a bug) could put them there.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

pytestmark = pytest.mark.slow
SCHEMAS = Path(__file__).resolve().parents[3] / "schemas" / "events"
TOPIC = "gridcase.case.events"


def reported(case_id: str, number: str, position: int) -> dict[str, Any]:
    return {
        "actor": {"id": "W00001", "role": "grid_worker", "unit": None}, "case_number": number,
        "category": "公共设施/井盖", "channel": "patrol", "community": "永嘉路", "description": "井盖缺失",
        "external": None, "grid": "永嘉路社区004网格", "has_reporter_contact": False,
        "location": {"address": "永嘉路12号", "lat": 36.06, "lon": 120.38}, "occurred_at": "2021-06-01T01:00:00Z",
        "originator_id": case_id, "originator_topic": "domain.case:Case", "originator_version": 1,
        "patrol_id": None, "street": "八大湖", "timestamp": f"2021-06-01T01:00:{position:02d}Z", "urgency": "normal",
    }  # fmt: skip


def accepted(case_id: str, **extra: Any) -> dict[str, Any]:
    return {"actor": {"id": "centre-SN08", "role": "dispatcher", "unit": None}, "level": "community",
            "occurred_at": "2021-06-01T02:00:00Z", "originator_id": case_id, "originator_version": 2,
            "timestamp": "2021-06-01T02:00:00Z", **extra}  # fmt: skip


def headers(kind: str, position: int, case_id: str) -> list[tuple[str, bytes]]:
    version = 1 if "CaseReported" in kind else 2  # the case's version after the event: ce_id is unique per event
    return [("ce_specversion", b"1.0"), ("ce_id", f"{case_id}-{version}".encode()), ("ce_source", b"urn:gridcase:sn"),
            ("ce_type", kind.encode()), ("ce_time", b"2021-06-01T01:00:00Z"), ("ce_subject", b"SN-1"),
            ("content-type", b"application/json"), ("gridcase_position", str(position).encode()),
            ("gridcase_recorded_at", b"2021-06-01T01:00:00Z")]  # fmt: skip


def send(broker: str, messages: list[tuple[bytes, list[tuple[str, bytes]]]]) -> None:
    producer = KafkaProducer(bootstrap_servers=broker)
    for value, meta in messages:
        producer.send(TOPIC, value=value, headers=meta, partition=0)
    producer.flush()
    producer.close()


def run_sink(into: Path, broker: str, schemas: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "sink", "--into", str(into), "--bootstrap", broker, "--schemas", str(schemas), "--json",
         *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def _exported(folder: Path) -> int:
    """Events in the Parquet export, read as another process reads it (0 while there is none)."""
    try:
        with duckdb.connect() as reader:
            row = reader.execute(f"SELECT count(*) FROM read_parquet('{folder}/events/*/*.parquet')").fetchone()
    except duckdb.Error:
        return 0
    return int(row[0]) if row else 0


def test_poison_is_set_aside_and_counted_and_a_new_additive_version_adds_its_column(
    broker: str, tmp_path: Path
) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker)
    admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])
    admin.close()
    schemas = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, schemas)
    into = tmp_path / "analytics.duckdb"
    a, b, c, d = (uuid.uuid4().hex for _ in range(4))
    good = json.dumps(reported(a, "SN-20210601-000001", 1)).encode()
    send(broker, [
        (good, headers("gridcase.case.CaseReported.v1", 1, a)),
        (b"{not json", headers("gridcase.case.CaseAccepted.v1", 2, a)),
        (good, []),  # no headers: not a gridcase event
        (json.dumps(accepted(c)).encode(), headers("gridcase.case.CaseAccepted.v1", 3, c)),  # a case never reported
        (json.dumps({**reported(d, "SN-20210601-000009", 4), "originator_version": "many"}).encode(),
         headers("gridcase.case.CaseReported.v1", 4, d)),  # a value its column cannot hold
        (json.dumps(accepted(a)).encode(), headers("gridcase.case.CaseAccepted.v1", 5, a)),
        (good, headers("gridcase.case.CaseReported.v1", 1, a)),  # the same event published again
    ])  # fmt: skip

    # Two messages a batch: the value that does not fit fails a batch while the next one is folded on top of it.
    first = run_sink(into, broker, schemas, "--batch", "2")
    assert (first["events"], first["poison"], first["tables"]["sink_poison"]) == (2, 4, 4), "set aside, not stopped"
    assert first["duplicates"] == 1, "the event published again is taken once"
    with duckdb.connect(str(into), read_only=True) as db:
        reasons = dict(db.execute("SELECT kafka_offset, error FROM sink_poison ORDER BY 1").fetchall())
        assert db.execute("SELECT case_number, state FROM cases").fetchall() == [("SN-20210601-000001", "accepted")]
    assert "unreadable" in reasons[1]
    assert "no ce_type header" in reasons[2]
    assert "before CaseReported" in reasons[3]
    assert "does not fit its column" in reasons[4]

    # The schemas gain CaseAccepted v2 with one more property: the sink takes it with no code changed.
    index = json.loads((schemas / "index.json").read_text())
    entry = index["events"]["gridcase.case.CaseAccepted"]
    v2 = json.loads((schemas / entry["versions"]["1"]).read_text())
    v2["properties"]["accepting_desk"] = {"type": "string", "description": "Which desk accepted it."}
    (schemas / "gridcase.case.CaseAccepted.v2.schema.json").write_text(json.dumps(v2))
    entry["versions"]["2"], entry["current_version"] = "gridcase.case.CaseAccepted.v2.schema.json", 2
    (schemas / "index.json").write_text(json.dumps(index))
    # A follower started on the new schemas takes the new version as it arrives; SIGTERM ends it with its summary.
    out = tmp_path / "parquet"
    follower = subprocess.Popen(
        [sys.executable, "-m", "sink", "--into", str(into), "--bootstrap", broker, "--schemas", str(schemas),
         "--follow", "--parquet", str(out), "--parquet-every", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert follower.stderr is not None
    send(broker, [
        (json.dumps(reported(b, "SN-20210601-000002", 6)).encode(), headers("gridcase.case.CaseReported.v1", 6, b)),
        (json.dumps(accepted(b, accepting_desk="窗口3")).encode(), headers("gridcase.case.CaseAccepted.v2", 7, b)),
    ])  # fmt: skip
    while not (line := follower.stderr.readline()).startswith("sink: 2 events"):
        assert line, "the follower ended before taking the new messages"
    # While it runs (and holds the DuckDB file), its Parquet export shows the new rows within moments.
    deadline = time.monotonic() + 20
    while _exported(out) != 4:
        assert time.monotonic() < deadline, f"the export still shows {_exported(out)} events"
        time.sleep(0.1)
    assert (out / "units.parquet").exists()
    follower.send_signal(signal.SIGTERM)
    summary, _ = follower.communicate(timeout=30)
    assert follower.returncode == 0
    assert summary.startswith(f"sink {into}: 2 events taken, 0 set aside (sink_poison: 4 in all), 0 behind")
    assert summary.rstrip().endswith(f"columns added: accepting_desk; Parquet in {out}")
    with duckdb.connect(str(into), read_only=True) as db:
        desks = db.execute("SELECT event_version, accepting_desk FROM events WHERE event_type = "
                           "'gridcase.case.CaseAccepted' ORDER BY position").fetchall()  # fmt: skip
        figures = db.execute("SELECT subject, reported, accepted FROM daily_figures WHERE kind = 'street'").fetchall()
    assert desks == [(1, None), (2, "窗口3")]
    assert figures == [("八大湖", 2, 2)]
