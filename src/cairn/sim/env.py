"""The simulated `Env`: one node's view of virtual time, the simulated network and disk.

A node gets a fresh `SimEnv` for every incarnation (each start after a crash): its timers
and its network handler die with the incarnation, while its `SimDisk` carries over.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from cairn.env import Clock, LogStore, MessageHandler, TimerHandle, Transport
from cairn.raft.types import Message, NodeId
from cairn.sim.disk import SimDisk
from cairn.sim.loop import NS_PER_SECOND, EventLoop
from cairn.sim.network import SimNetwork


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


class SimTransport:
    """A node's `Transport` onto the simulated network."""

    def __init__(self, network: SimNetwork, node_id: NodeId) -> None:
        self._network = network
        self._node_id = node_id

    def send(self, to: NodeId, msgs: Sequence[Message]) -> None:
        """See `Transport.send`."""
        self._network.send(self._node_id, to, msgs)

    def set_handler(self, handler: MessageHandler) -> None:
        """See `Transport.set_handler`."""
        self._network.register(self._node_id, handler)


class SimEnv:
    """`Env` for one incarnation of a simulated node."""

    def __init__(
        self,
        node_id: NodeId,
        clock: SimClock,
        transport: SimTransport,
        disk: SimDisk,
        rng: random.Random,
        buggify: Buggify,
    ) -> None:
        self._node_id = node_id
        self._clock = clock
        self._transport = transport
        self._disk = disk
        self._random = rng
        self._buggify = buggify

    @property
    def node_id(self) -> NodeId:
        """See `Env.node_id`."""
        return self._node_id

    @property
    def clock(self) -> Clock:
        """See `Env.clock`."""
        return self._clock

    @property
    def transport(self) -> Transport:
        """See `Env.transport`."""
        return self._transport

    @property
    def log_store(self) -> LogStore:
        """See `Env.log_store`."""
        return self._disk

    @property
    def random(self) -> random.Random:
        """See `Env.random`."""
        return self._random

    def buggify(self, site: str) -> bool:
        """See `Env.buggify`."""
        return self._buggify(site)
