"""The topics as a replay source: ``read(after, limit)`` giving the stored events in store order, from Kafka.

Replays (rebuild, verify, as-of builds) read a source shaped like the store's notification log. This one reads
every partition of the three event topics from the beginning and merges them by the ``gridcase_position``
header: within a partition positions only grow (the relay publishes in store order), so the next event in
store order is always at the head of one partition. It hands out only an unbroken run of positions from 1: if
a position is missing when every partition has been read to its end (the relay has not published it yet), the
source ends just before it, so a replay from Kafka stops exactly where the topics are complete. A position the
relay dead-lettered (issue 13) will never be on the topics: it is passed over and counted (``set_aside``), as
the Kafka-fed read models never saw it either.

The events come back in their stored form (the published form without the fields it adds); the reporter's
contact, which is never published, is absent, and no read model uses it.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

from kafka import TopicPartition

from adapters.kafka.consumer import reading_consumer
from adapters.kafka.message import Poison, decode, position_of
from adapters.kafka.published import TOPICS
from adapters.kafka.relay import dead_lettered_positions

if TYPE_CHECKING:
    from collections.abc import Sequence

    from eventsourcing.persistence import Notification
    from kafka import KafkaConsumer
    from kafka.consumer.fetcher import ConsumerRecord


class KafkaSource:
    """Stored events from the topics, in store order; callable as ``read(after, limit)``."""

    def __init__(self, config: dict[str, Any], *, wait_seconds: float = 30.0) -> None:
        self.config = config
        self.wait_seconds = wait_seconds
        self._consumer: KafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._heads: dict[TopicPartition, deque[ConsumerRecord]] = {}
        #: The last position handed out (the next one is this + 1).
        self._last = 0
        #: Messages that were not gridcase events (skipped; the Kafka-fed projector dead-letters them).
        self.skipped = 0
        #: Positions the relay dead-lettered instead of publishing, and how many of them were passed over.
        self._dead: set[int] = set()
        self.set_aside = 0

    def __call__(self, after: int, limit: int) -> Sequence[Notification]:
        """Up to ``limit`` events after position ``after``, in store order, without gaps."""
        if self._consumer is None or after < self._last:
            self._rewind()
        found: list[Notification] = []
        while len(found) < limit:
            record = self._next()
            if record is None:
                break
            position = _position(record)
            if position <= after:
                continue
            try:
                message = decode(record)  # the same checks as the Kafka-fed projector
                notification = message.notification()
                message.event()  # upcasting too (it takes the message's value over: after the notification)
            except Poison as error:
                msg = f"position {position} on Kafka is not a readable event, so a replay cannot go past it: {error}"
                raise ValueError(msg) from error
            found.append(notification)
        return found

    def close(self) -> None:
        """Close the consumer."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _rewind(self) -> None:
        self.close()
        consumer = reading_consumer(self.config, 10_000)
        self._partitions = [
            TopicPartition(topic, partition)
            for topic in sorted(set(TOPICS.values()))
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(self._partitions)
        consumer.seek_to_beginning(*self._partitions)
        self._consumer = consumer
        self._heads = {tp: deque() for tp in self._partitions}
        self._last = 0
        self._dead = dead_lettered_positions(self.config, lambda _position, _ce_id: True)
        self.set_aside = 0

    def _next(self) -> ConsumerRecord | None:
        """The record of position ``_last + 1``, or None when the topics end before it."""
        while self._last + 1 in self._dead:  # the relay set it aside: it will never be on the topics
            self._last += 1
            self.set_aside += 1
        wanted = self._last + 1
        deadline = time.monotonic() + self.wait_seconds
        looked_again = False
        while True:
            found = self._take(wanted)
            if found is not None:
                self._last = wanted
                return found
            unread = [tp for tp in self._partitions if not self._at_end(tp)]
            if not any(not self._heads[tp] for tp in unread):
                # No partition that could hold it next is waiting to be read: a stray may hide it further back.
                found = self._take_behind_strays(wanted)
                if found is not None:
                    self._last = wanted
                    return found
            if not unread:
                if looked_again:
                    return None  # every partition is read to its end: the topics stop before ``wanted``
                looked_again = True  # but first one more fetch, for events published since the last look
            elif time.monotonic() > deadline:
                msg = f"Kafka did not answer for {self.wait_seconds:.0f} s while reading {unread[0]}"
                raise TimeoutError(msg)
            self._fill()

    def _take(self, wanted: int) -> ConsumerRecord | None:
        """Take the record of position ``wanted`` if it heads a partition's buffer."""
        for queue in self._heads.values():
            while queue and _position(queue[0]) < wanted:
                queue.popleft()  # not an event (-1), or a position handed out already (a re-publication)
                self.skipped += 1
            if queue and _position(queue[0]) == wanted:
                return queue.popleft()
        return None

    def _take_behind_strays(self, wanted: int) -> ConsumerRecord | None:
        """Positions only grow along a partition: records before ``wanted`` in a buffer are strays; drop them."""
        for queue in self._heads.values():
            for index, record in enumerate(queue):
                if _position(record) == wanted:
                    for _ in range(index):
                        queue.popleft()
                    self.skipped += index
                    return queue.popleft()
        return None

    def _at_end(self, tp: TopicPartition) -> bool:
        consumer = self._consumer
        assert consumer is not None
        high = consumer.highwater(tp)
        return high is not None and consumer.position(tp) >= high

    def _fill(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        for tp, records in consumer.poll(timeout_ms=200, max_records=10_000).items():
            self._heads[tp].extend(records)


def _position(record: ConsumerRecord) -> int:
    """The record's store position, or -1 when it has none (not a gridcase event: skipped)."""
    found = position_of(record.headers)
    return -1 if found is None else found
