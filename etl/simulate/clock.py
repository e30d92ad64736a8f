"""The simulated clock: maps wall time to simulated time at a speed factor.

``SimClock(start, speed=1440)`` replays a day in a minute. ``SimClock.frozen(t)`` stands still,
which is what tests and the demo use to serve a complete window.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from etl.timeutil import utc


@dataclass
class SimClock:
    start: datetime
    speed: float = 1.0
    _wall0: float = field(default_factory=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        self.start = utc(self.start)

    @classmethod
    def frozen(cls, at: datetime) -> "SimClock":
        return cls(at, speed=0.0)

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._wall0) * self.speed)

    def set(self, at: datetime) -> None:
        self.start, self._wall0 = utc(at), time.monotonic()
