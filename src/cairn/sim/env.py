"""A simulated node's view of virtual time (`SimClock`) and its run's buggify switch.

A node gets a fresh `SimClock` for every incarnation (each start after a crash): its timers
die with the incarnation, while its disk carries over. A region host builds each of its
replicas' `Env` from them (`cairn.shard.host`).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from cairn.env import TimerHandle
from cairn.raft.types import NodeId
from cairn.sim.loop import NS_PER_SECOND, EventLoop


class Buggify:
    """FoundationDB's BUGGIFY for one run: a site is enabled with p=1/4 the first time it
    is asked about, then fires with p=1/4 per call while enabled."""

    def __init__(self, rng: random.Random, enabled: bool) -> None:
        self._rng = rng
        self._enabled = enabled
        self.sites: dict[str, bool] = {}
        self.fired: dict[str, int] = {}

    def __call__(self, site: str) -> bool:
        """Whether `site` takes its unusual path this time."""
        if not self._enabled:
            return False
        if site not in self.sites:
            self.sites[site] = self._rng.random() < 0.25
        if not self.sites[site] or self._rng.random() >= 0.25:
            return False
        self.fired[site] = self.fired.get(site, 0) + 1
        return True


class SimClock:
    """A node's clock: virtual time scaled by its drift `rate` (1.0: a perfect clock)."""

    def __init__(self, loop: EventLoop, owner: NodeId, rate: float, alive: Callable[[], bool]):
        self._loop = loop
        self._owner = owner
        self._rate = rate
        self._alive = alive

    def now(self) -> float:
        """See `Clock.now`."""
        return self._loop.now * self._rate / NS_PER_SECOND

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """See `Clock.call_later`; the timer dies with the node's incarnation."""
        ns = int(delay * NS_PER_SECOND / self._rate) + 1

        def fire() -> None:
            if self._alive():
                callback()

        return self._loop.call_later(ns, self._owner, f"timer n{self._owner}", fire)
