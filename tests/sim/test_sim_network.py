"""The simulated network: latency, loss, duplication, FIFO without reordering, partitions."""

from __future__ import annotations

import random
from collections.abc import Sequence

from cairn.raft.types import Message, MessageType
from cairn.sim.loop import EventLoop
from cairn.sim.network import (
    NetworkFaults,
    SimNetwork,
    bridge,
    cut_between,
    halves,
    isolate,
    majority_ring,
)


def build(faults: NetworkFaults) -> tuple[EventLoop, SimNetwork, list[Message]]:
    loop = EventLoop()
    net = SimNetwork(loop, random.Random(5), faults)
    got: list[Message] = []

    def handler(msgs: Sequence[Message]) -> None:
        got.extend(msgs)

    net.register(2, handler)
    return loop, net, got


def msgs(n: int) -> list[Message]:
    return [Message(MessageType.HEARTBEAT, to=2, frm=1, commit=i) for i in range(n)]


def drain(loop: EventLoop) -> None:
    while loop.run_one():
        pass


def test_perfect_network_delivers_everything_in_order() -> None:
    loop, net, got = build(NetworkFaults())
    net.send(1, 2, msgs(50))
    drain(loop)
    assert [m.commit for m in got] == list(range(50))


def test_loss_and_duplication_happen_at_their_rates() -> None:
    loop, net, got = build(NetworkFaults(drop=0.2, duplicate=0.2))
    net.send(1, 2, msgs(1000))
    drain(loop)
    assert 100 < net.dropped < 300
    assert 100 < net.duplicated < 300
    assert len(got) == 1000 - net.dropped + net.duplicated


def test_reordering_happens_only_when_enabled() -> None:
    loop, net, got = build(NetworkFaults(reorder=True))
    net.send(1, 2, msgs(200))
    drain(loop)
    assert [m.commit for m in got] != list(range(200))
    assert net.reordered > 0


def test_a_cut_link_drops_messages_sent_and_in_flight() -> None:
    loop, net, got = build(NetworkFaults())
    net.send(1, 2, msgs(3))
    net.set_partition(isolate(2, [1, 2, 3]))
    net.send(1, 2, msgs(3))
    drain(loop)
    assert got == []
    assert net.blocked == 3 and net.undeliverable == 3
    net.heal()
    net.send(1, 2, msgs(1))
    drain(loop)
    assert len(got) == 1


def test_partition_shapes() -> None:
    rng = random.Random(1)
    nodes = [1, 2, 3, 4, 5]
    small, big = halves(nodes, rng)
    assert len(small) == 2 and len(big) == 3 and sorted(small + big) == nodes
    cut = cut_between([small, big])
    assert all((a, b) in cut for a in small for b in big)
    ring = majority_ring(nodes, rng)
    for node in nodes:
        reachable = [n for n in nodes if (node, n) not in ring]
        assert len(reachable) == 3  # itself and two neighbours: a majority of five
    links = bridge(nodes, rng)
    middles = [n for n in nodes if not any((n, m) in links for m in nodes)]
    assert len(middles) == 1
