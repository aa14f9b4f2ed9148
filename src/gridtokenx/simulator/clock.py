"""Simulated time, possibly faster than the wall clock, that never runs ahead of it.

The gateway refuses readings from the future, so an accelerated run replays the recent past:
with `speed` X and a run of T wall seconds the simulated clock starts (X - 1) x T seconds ago and
reaches the present as the run ends (`--speed 60 --duration 600` covers the last ten hours).
After that, or with no duration, it is clamped to the wall clock. A resumed fleet starts no
earlier than where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_REPLAY_S = 86_400  # an accelerated run without a duration replays the last day


def aligned(t: float, interval_s: int) -> int:
    """The start of the interval holding `t`."""
    whole = int(t)
    return whole - whole % interval_s


@dataclass
class SimClock:
    speed: float = 1.0
    duration_s: float | None = None
    wall: Callable[[], float] = time.time
    not_before: float | None = None  # a resumed fleet never replays what it already measured
    origin_wall: float = field(init=False)
    origin_sim: float = field(init=False)

    def __post_init__(self) -> None:
        if self.speed < 1:
            raise ValueError("speed must be at least 1")
        self.origin_wall = self.wall()
        replay = (self.duration_s if self.duration_s is not None else DEFAULT_REPLAY_S / self.speed) * (
            self.speed - 1
        )
        self.origin_sim = self.origin_wall - replay
        if self.not_before is not None:
            self.origin_sim = min(max(self.origin_sim, self.not_before), self.origin_wall)

    def now(self) -> float:
        """Simulated seconds since the epoch (UTC), never later than the wall clock."""
        wall = self.wall()
        return min(self.origin_sim + (wall - self.origin_wall) * self.speed, wall)

    def wall_seconds_until(self, sim_t: float) -> float:
        """How long to wait on the wall clock for the simulated clock to reach `sim_t`."""
        reached_at = max(self.origin_wall + (sim_t - self.origin_sim) / self.speed, sim_t)
        return max(reached_at - self.wall(), 0.0)
