"""The real `Clock`: the asyncio event loop's monotonic time and timers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from cairn.env import TimerHandle


class LoopClock:
    """`Clock` on the running event loop's monotonic time.

    `skew` (seconds per second) exists for the chaos runner's clock-skew fault: the node
    then believes time runs that much faster or slower than it does.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, skew: float = 0.0) -> None:
        self.loop = loop
        self.skew = skew
        self._origin = loop.time()
        self._base = 0.0

    def now(self) -> float:
        """See `Clock.now`."""
        return self._base + (self.loop.time() - self._origin) * (1.0 + self.skew)

    def set_skew(self, skew: float) -> None:
        """Change the rate from now on; `now()` stays continuous (no jump)."""
        self._base = self.now()
        self._origin = self.loop.time()
        self.skew = skew

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """See `Clock.call_later`."""
        return self.loop.call_later(delay / (1.0 + self.skew), callback)
