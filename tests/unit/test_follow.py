"""The one follow loop: catch up until a step finds nothing, or follow until told to stop, pausing when idle."""

from __future__ import annotations

from dataclasses import dataclass, field

from projections.follow import repeat


@dataclass
class Stats:
    seconds: float = 0.0
    steps: list[bool] = field(default_factory=list)


def steps_of(*found: bool):
    answers = iter(found)

    def step(stats: Stats) -> bool:
        answer = next(answers)
        stats.steps.append(answer)
        return answer

    return step


def test_catching_up_repeats_until_a_step_finds_nothing() -> None:
    seen: list[int] = []
    pauses: list[float] = []
    stats = repeat(steps_of(True, True, False, True), Stats(), poll=9, progress=lambda s: seen.append(len(s.steps)),
                   pause=pauses.append)  # fmt: skip
    assert stats.steps == [True, True, False]
    assert seen == [1, 2], "progress after each step that did something"
    assert pauses == [], "catching up never pauses"
    assert stats.seconds >= 0


def test_following_pauses_when_idle_and_stops_when_told() -> None:
    pauses: list[float] = []
    stats = Stats()
    stats = repeat(steps_of(True, False, False, True, False), stats, stop=lambda: len(stats.steps) == 5, poll=0.25,
                   pause=pauses.append)  # fmt: skip
    assert stats.steps == [True, False, False, True, False]
    assert pauses == [0.25, 0.25, 0.25]


def test_a_step_that_waits_by_itself_is_followed_without_pauses() -> None:
    pauses: list[float] = []
    stats = Stats()
    repeat(steps_of(False, False), stats, stop=lambda: len(stats.steps) == 2, poll=0, pause=pauses.append)
    assert pauses == []


def test_a_stop_before_the_first_step_does_nothing() -> None:
    stats = repeat(steps_of(), Stats(), stop=lambda: True)
    assert stats.steps == []
