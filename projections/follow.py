"""The one loop every follower runs (the relay, the store-fed runner, the Kafka-fed projector).

A follower has a *step* that does one batch of work and says whether it found any. Catching up repeats the step
until it finds nothing; following repeats it until ``stop()`` says so, pausing ``poll`` seconds whenever a step
found nothing (a step that waits by itself, like a Kafka poll, is followed with ``poll=0``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


def repeat(
    step: Callable[[], bool],
    *,
    stop: Callable[[], bool] | None = None,
    poll: float = 0.0,
    progress: Callable[[], None] | None = None,
    pause: Callable[[float], object] = time.sleep,
) -> float:
    """Repeat ``step``: without ``stop`` until it returns False, with ``stop`` until ``stop()`` is true.

    ``progress`` runs after every step that did something; ``pause`` is how an idle follower waits (e.g. an
    ``Event.wait``, so that stopping need not wait for the pause to end). Returns the seconds it ran.
    """
    started = time.perf_counter()
    while stop is None or not stop():
        if step():
            if progress is not None:
                progress()
        elif stop is None:
            break
        elif poll > 0:
            pause(poll)
    return time.perf_counter() - started
