"""The one loop every follower runs (the relay, the store-fed runner, the Kafka-fed projector).

A follower has a *step* that does one batch of work, counts it in the run's stats and says whether it found
any. Catching up repeats the step until it finds nothing; following repeats it until ``stop()`` says so,
pausing ``poll`` seconds whenever a step found nothing (a step that waits by itself, like a Kafka poll, is
followed with ``poll=0``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable


class Timed(Protocol):
    """The stats of a run: at least how long it took."""

    seconds: float


T = TypeVar("T", bound=Timed)


def repeat(
    step: Callable[[T], bool],
    stats: T,
    *,
    stop: Callable[[], bool] | None = None,
    poll: float = 0.0,
    progress: Callable[[T], None] | None = None,
    pause: Callable[[float], object] = time.sleep,
) -> T:
    """Repeat ``step(stats)``: without ``stop`` until it returns False, with ``stop`` until ``stop()`` is true.

    ``progress(stats)`` runs after every step that did something; ``pause`` is how an idle follower waits (an
    ``Event.wait`` lets a stop cut the pause short). Returns ``stats``, its ``seconds`` set to the run's time.
    """
    started = time.perf_counter()
    while stop is None or not stop():
        if step(stats):
            if progress is not None:
                progress(stats)
        elif stop is None:
            break
        elif poll > 0:
            pause(poll)
    stats.seconds = time.perf_counter() - started
    return stats
