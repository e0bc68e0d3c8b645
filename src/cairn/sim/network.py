"""A simulated network between Raft nodes: latency, loss, duplication, reordering, partitions.

Theory of operation. Every message is scheduled as its own delivery event on the loop,
owned by the destination (so a paused node receives late). Its fate is drawn from the
run's random source when it is sent: dropped with probability `drop`, otherwise delayed by
a base latency plus jitter (with a rare long tail when `delay` faults are on), and
sometimes delivered twice. Without reordering a link stays FIFO: a message never
overtakes the previous one on the same link. A partition is a set of cut directed links,
checked when a message is sent and again when it arrives.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cairn.raft.types import Message, NodeId
from cairn.shard.envelope import Envelope
from cairn.sim.loop import EventLoop

MS = 1_000_000


@dataclass(frozen=True, slots=True)
class NetworkFaults:
    """Probabilities and delays of the network for one run (zero: a perfect network)."""

    drop: float = 0.0
    duplicate: float = 0.0
    long_delay: float = 0.0
    reorder: bool = False
    base_latency: int = 1 * MS
    jitter: int = 2 * MS
    max_long_delay: int = 80 * MS


Payload = Message | Envelope
"""What travels: a Raft message (one group per node) or a region host's envelope."""

Handler = Callable[[Sequence[Any]], None]
"""A node's receiver: a `MessageHandler`, or a region host's envelope handler."""


def describe_message(msg: Payload) -> str:
    """A stable one-line rendering of a message for the trace."""
    if isinstance(msg, Envelope):
        return msg.describe()
    return (
        f"{msg.frm}->{msg.to} {msg.type.value} t{msg.term} lt{msg.log_term} i{msg.index}"
        f" n{len(msg.entries)} c{msg.commit} r{int(msg.reject)}"
    )


class SimNetwork:
    """Delivers messages between registered handlers through the event loop."""

    def __init__(self, loop: EventLoop, rng: random.Random, faults: NetworkFaults) -> None:
        self.loop = loop
        self.rng = rng
        self.faults = faults
        self.handlers: dict[NodeId, Handler | None] = {}
        self.cut: frozenset[tuple[NodeId, NodeId]] = frozenset()
        self._last_delivery: dict[tuple[NodeId, NodeId], int] = {}
        self.sent = 0
        self.dropped = 0
        self.blocked = 0
        self.undeliverable = 0
        self.duplicated = 0
        self.delayed = 0
        self.reordered = 0

    def register(self, node: NodeId, handler: Handler | None) -> None:
        """Route messages for `node` to `handler` (None: the node is down)."""
        self.handlers[node] = handler

    def set_partition(self, cut: frozenset[tuple[NodeId, NodeId]]) -> None:
        """Cut exactly these directed links (replacing any previous partition)."""
        self.cut = cut

    def heal(self) -> None:
        """Reconnect every link."""
        self.cut = frozenset()

    def connected(self, a: NodeId, b: NodeId) -> bool:
        """Whether messages from `a` reach `b` now."""
        return (a, b) not in self.cut

    def send(self, frm: NodeId, to: NodeId, msgs: Sequence[Payload]) -> None:
        """Schedule the delivery of each message (or lose it)."""
        for msg in msgs:
            self.sent += 1
            if not self.connected(frm, to):
                self.blocked += 1
                continue
            if self.rng.random() < self.faults.drop:
                self.dropped += 1
                continue
            self._schedule(frm, to, msg)
            if self.rng.random() < self.faults.duplicate:
                self.duplicated += 1
                self._schedule(frm, to, msg)

    def _delay(self) -> int:
        f = self.faults
        delay = f.base_latency + self.rng.randrange(f.jitter + 1)
        if f.long_delay and self.rng.random() < f.long_delay:
            self.delayed += 1
            delay += self.rng.randrange(f.max_long_delay + 1)
        return delay

    def _schedule(self, frm: NodeId, to: NodeId, msg: Payload) -> None:
        at = self.loop.now + self._delay()
        last = self._last_delivery.get((frm, to), 0)
        if not self.faults.reorder:
            at = max(at, last)
        elif at < last:
            self.reordered += 1
        self._last_delivery[(frm, to)] = max(at, last)
        label = f"deliver {describe_message(msg)}"
        self.loop.call_at(at, to, label, lambda: self._deliver(frm, to, msg))

    def _deliver(self, frm: NodeId, to: NodeId, msg: Payload) -> None:
        handler = self.handlers.get(to)
        if handler is None or not self.connected(frm, to):
            self.undeliverable += 1
            return
        handler((msg,))


def halves(nodes: Sequence[NodeId], rng: random.Random) -> list[list[NodeId]]:
    """Split `nodes` into a random majority and minority."""
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    cut = len(shuffled) // 2
    return [sorted(shuffled[:cut]), sorted(shuffled[cut:])]


def cut_between(groups: Sequence[Sequence[NodeId]]) -> frozenset[tuple[NodeId, NodeId]]:
    """The directed links between nodes of different groups."""
    links: set[tuple[NodeId, NodeId]] = set()
    for i, group in enumerate(groups):
        for j, other in enumerate(groups):
            if i != j:
                links.update((a, b) for a in group for b in other)
    return frozenset(links)


def isolate(node: NodeId, nodes: Sequence[NodeId]) -> frozenset[tuple[NodeId, NodeId]]:
    """Cut `node` off from every other node."""
    return cut_between([[node], [n for n in nodes if n != node]])


def majority_ring(nodes: Sequence[NodeId], rng: random.Random) -> frozenset[tuple[NodeId, NodeId]]:
    """Each node keeps links only to its ring neighbours: every node sees a majority, but
    no two neighbours see the same one (Jepsen's "majorities ring")."""
    ring = list(nodes)
    rng.shuffle(ring)
    n = len(ring)
    reach = (n // 2 + 1) // 2
    links: set[tuple[NodeId, NodeId]] = set()
    for i, a in enumerate(ring):
        near = {ring[(i + d) % n] for d in range(-reach, reach + 1)}
        links.update((a, b) for b in ring if b not in near)
    return frozenset(links)


def bridge(nodes: Sequence[NodeId], rng: random.Random) -> frozenset[tuple[NodeId, NodeId]]:
    """Two halves that only one bridge node connects."""
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    middle = shuffled[0]
    rest = shuffled[1:]
    cut = len(rest) // 2
    return (
        cut_between([rest[:cut], rest[cut:]])
        - {(middle, n) for n in rest}
        - {(n, middle) for n in rest}
    )


def one_way(nodes: Sequence[NodeId], rng: random.Random) -> frozenset[tuple[NodeId, NodeId]]:
    """A one-way partition: one node hears the others but nothing it sends reaches them
    (or, half the time, the reverse: it speaks but hears nothing)."""
    victim = rng.choice(list(nodes))
    others = [n for n in nodes if n != victim]
    if rng.random() < 0.5:
        return frozenset((victim, n) for n in others)
    return frozenset((n, victim) for n in others)
