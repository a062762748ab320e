"""``gridcase delivery`` (proof of delivery) and ``gridcase deadletters`` (the one dead-letter view).

Both read adapters/kafka/delivery.py: the topics against the store, the readers against the topics, and the dead
letters of the database and of the ``gridcase.deadletter`` topic side by side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from adapters.cli.common import Exit, JsonOpt, emit, fail, load_settings, opened_engine, out, read_side, show_rows

if TYPE_CHECKING:
    from adapters.settings import Settings

LETTER_COLUMNS = ["where", "projection", "position", "event_type", "attempts", "failed_at", "error", "source"]


def register(app: typer.Typer) -> None:
    """Add ``delivery`` and ``deadletters`` to the ``gridcase`` program."""
    app.command("delivery")(delivery)
    app.command("deadletters")(deadletters_command)


def _kafka_failed(error: Exception) -> None:
    fail(Exit.UNAVAILABLE, f"unavailable: Kafka: {' '.join(str(error).split()) or type(error).__name__}; run it again")


def delivery(as_json: JsonOpt = False) -> None:
    """Proof of delivery: the topics against the store (lag), what each reader has read, every dead letter.

    Per topic and partition the last stored and the last published position and the lag; per Kafka-fed projection
    (its offsets table) and consumer group the offset read and how far behind; the database's dead letters and the
    dead-letter topic's, in one list.
    """
    from kafka.errors import KafkaError  # noqa: PLC0415 - only a configured Kafka needs the client

    from adapters.kafka.delivery import delivery_view  # noqa: PLC0415

    settings = load_settings()
    with opened_engine(settings) as engine:
        try:
            view = delivery_view(settings, engine.reader.read, engine.reader.last_position(), engine.read_engine)
        except (KafkaError, TimeoutError) as error:
            _kafka_failed(error)
    if as_json:
        emit(view, ensure_ascii=False)
        return
    _print(view, settings)


def _print(view: dict[str, Any], settings: Settings) -> None:
    if view["kafka"] is None:
        out.print(f"store head {view['store_head']:,}; Kafka is not configured (GRIDCASE_KAFKA_BOOTSTRAP_SERVERS): "
                  "nothing is published", highlight=False)  # fmt: skip
    else:
        behind = "all published" if not view["lag"] else f"{view['lag']:,} events not published yet"
        out.print(f"store head {view['store_head']:,}, published up to {view['published_up_to']:,} on "
                  f"{settings.kafka_bootstrap_servers}: {behind}", highlight=False)  # fmt: skip
        show_rows(view["topics"], as_json=False, title="Topics / 主题 (position: store order; lag: events)")
        show_rows(view["readers"], as_json=False, title="Readers / 读取方 (offsets)")
    _letters(view["dead_letters"])


def _letters(rows: list[dict[str, Any]]) -> None:
    from adapters.kafka.delivery import reason  # noqa: PLC0415

    shown = [{**row, "error": reason(row)} for row in rows]
    title = "Dead letters / 死信 (database and gridcase.deadletter)"
    show_rows(shown, as_json=False, title=title, columns=LETTER_COLUMNS)


def deadletters_command(
    retry: Annotated[
        bool, typer.Option("--retry", help="Apply each dead-lettered event again, with the rest of its case's events")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Every dead letter with its reason, the database's and gridcase.deadletter's; --retry applies the first again.

    The database holds the events a store-fed projection could not apply or write; the topic, what the relay could
    not publish and what a Kafka-fed projector could not decode, apply or write.
    """
    from kafka.errors import KafkaError  # noqa: PLC0415

    from adapters.kafka.delivery import dead_letter_view  # noqa: PLC0415

    settings = load_settings()
    with read_side(settings, catch_up=False) as read:
        outcome = read.runner.retry_deadletters() if retry else None
        try:
            rows = dead_letter_view(settings, read.engine)
        except (KafkaError, TimeoutError) as error:
            _kafka_failed(error)
    if outcome is not None and not as_json:
        out.print(f"retried: {outcome[0]} applied, {outcome[1]} still failing", highlight=False)
    if as_json:
        emit(rows, ensure_ascii=False)
        return
    _letters(rows)
