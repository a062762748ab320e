"""The worker processes: ``gridcase project`` (the projections) and ``gridcase relay`` (the store to Kafka).

Each catches up once or follows (``--follow``) until SIGTERM or Ctrl-C, prints progress
on stderr and one summary line at the end (:class:`adapters.cli.common.LongRun`).
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from adapters.cli.common import Exit, JsonOpt, LongRun, err, fail, load_settings, opened_engine, rate

if TYPE_CHECKING:
    from collections.abc import Callable

    from adapters.settings import Settings
    from projections.batch import RunStats
    from projections.runner import Waiting


def register(app: typer.Typer) -> None:
    """Add ``project`` and ``relay`` to the ``gridcase`` program."""
    app.command("project")(project)
    app.command("relay")(relay)


class Source(StrEnum):
    """Where projections read events from."""

    STORE = "store"
    KAFKA = "kafka"


def _member(text: str) -> tuple[int, int]:
    """``i/n``: this process is member i (from 0) of n sharing the partitions."""
    found = re.fullmatch(r"(\d+)/(\d+)", text)
    if not found or not 0 <= int(found[1]) < int(found[2]):
        fail(Exit.BAD_INPUT, f"bad input: member: {text!r} is not i/n with 0 <= i < n (e.g. 0/2)")
    return int(found[1]), int(found[2])


def _projected(stats: RunStats) -> str:
    return f"projected to position {stats.position}: {stats.events} events"


def _say_waiting(settings: Settings) -> Callable[[Waiting], None]:
    """A line on stderr: which lease this runner waits for, held by whom, since when (district local time)."""

    def say(waiting: Waiting) -> None:
        since = datetime.fromtimestamp(waiting.since, settings.tz).isoformat(timespec="seconds")
        by: dict[str, list[str]] = {}
        for name, owner in waiting.holders.items():
            by.setdefault(owner, []).append(name)
        held = "; ".join(f"{', '.join(names)} held by {owner}" for owner, names in by.items())
        err.print(f"waiting since {since} for the lease of {held} (SIGTERM or Ctrl-C stops)",
                  markup=False, highlight=False)  # fmt: skip

    return say


def project(
    follow: Annotated[bool, typer.Option("--follow", help="Keep following the store")] = False,
    source: Annotated[Source, typer.Option("--from", help="store, or kafka (the relay's topics)")] = Source.STORE,
    member: Annotated[str, typer.Option(help="With --from kafka: this process is member i of n, as i/n")] = "0/1",
    batch_size: Annotated[int, typer.Option(min=1, help="Events per transaction")] = 25_000,
    as_json: JsonOpt = False,
) -> None:
    """Run the projections (case status, performance, intake): catch up once, or follow."""
    settings = load_settings()
    run = LongRun(as_json, _projected)
    if source is Source.KAFKA:
        _project_from_kafka(settings, _member(member), min(batch_size, 10_000), follow, run)
        return
    with opened_engine(settings) as engine:
        read = engine.read_side(batch_size=batch_size)
        read.runner.on_wait = _say_waiting(settings)
        read.runner.stop = run.stopping
        try:
            stats = run.run(read.runner, follow=follow)
        finally:
            read.runner.release()
            read.close()
    if stats is None:
        return
    if read.runner.stopped_waiting:
        err.print("stopped while waiting for the lease: nothing projected", highlight=False)
        return
    run.summary(
        {"events": stats.events, "batches": stats.batches, "position": stats.position,
         "seconds": round(stats.seconds, 2), "per_projection": stats.per_projection},
        f"projections at position {stats.position}: {stats.events} events applied "
        f"({rate(stats.events, stats.seconds)})",
    )  # fmt: skip


def _project_from_kafka(settings: Settings, member: tuple[int, int], batch_size: int, follow: bool,
                        run: LongRun) -> None:  # fmt: skip
    from kafka.errors import KafkaError  # noqa: PLC0415

    from adapters.kafka.wiring import KafkaNotConfiguredError  # noqa: PLC0415

    with opened_engine(settings) as engine:
        try:
            projector = engine.kafka_projector(member=member, batch_size=batch_size)
        except KafkaNotConfiguredError as error:
            fail(Exit.BAD_INPUT, f"bad setting: {error}")
        try:
            stats = run.run(projector, follow=follow, start=True)
        except KafkaError as error:
            fail(Exit.UNAVAILABLE, f"unavailable: Kafka: {error}")
        finally:
            projector.close()
    if stats is None:
        return
    run.summary(
        {"messages": stats.messages, "applied": stats.applied, "deadlettered": stats.deadlettered,
         "batches": stats.batches, "position": stats.position, "seconds": round(stats.seconds, 2),
         "per_projection": stats.per_projection, "member": f"{member[0]}/{member[1]}"},
        f"Kafka-fed projections (member {member[0]}/{member[1]}) at position {stats.position}: "
        f"{stats.messages} messages, {stats.deadlettered} dead-lettered "
        f"({rate(stats.messages, stats.seconds, 'messages')})",
    )  # fmt: skip


def relay(
    follow: Annotated[bool, typer.Option("--follow", help="Keep publishing as events are stored")] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=5_000, help="Events per flushed batch")] = 5_000,
    as_json: JsonOpt = False,
) -> None:
    """Publish every stored event to Kafka (GRIDCASE_KAFKA_BOOTSTRAP_SERVERS), in store order, exactly once."""
    from kafka.errors import KafkaError  # noqa: PLC0415

    from adapters.kafka.relay import RelayFailedError, RelayRunningError  # noqa: PLC0415
    from adapters.kafka.wiring import KafkaNotConfiguredError  # noqa: PLC0415

    settings = load_settings()
    run = LongRun(as_json, lambda stats: f"relayed to position {stats.position}: {stats.published} published")
    with opened_engine(settings) as engine:
        try:
            publisher = engine.relay(batch_size=batch_size)
        except KafkaNotConfiguredError as error:
            fail(Exit.BAD_INPUT, f"bad setting: {error}")
        try:
            stats = run.run(publisher, follow=follow, start=True)
        except RelayRunningError as error:
            fail(Exit.CONFLICT, f"conflict: {error}")
        except (RelayFailedError, KafkaError) as error:
            fail(Exit.UNAVAILABLE, f"unavailable: {error}")
        finally:
            publisher.close()
    if stats is None:
        return
    run.summary(
        {"published": stats.published, "skipped": stats.skipped, "deadlettered": stats.deadlettered,
         "deadlettered_positions": stats.deadlettered_positions, "position": stats.position,
         "seconds": round(stats.seconds, 2), "per_topic": stats.per_topic},
        f"relay at position {stats.position}: {stats.published} published, "
        f"{stats.skipped} already on Kafka, {stats.deadlettered} dead-lettered "
        f"({rate(stats.published, stats.seconds)})",
    )  # fmt: skip
