"""The buggify sites of the multi-region path, each forced on: what its odd path does.

The sweep in `test_region_faults.py` shows the common sites firing inside whole runs;
these pin down each site's behaviour on its own piece, including the rare ones (a crash
with unsynced writes, a snapshot on the wire, a background fsync).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from cairn.env import LogBatch
from cairn.meta.region import Peer
from cairn.placement.service import PlacementReply
from cairn.raft.types import HardState, Message, MessageType, Snapshot
from cairn.shard.envelope import Envelope, EnvelopeKind
from cairn.sim.env import SimClock
from cairn.sim.loop import EventLoop
from cairn.sim.multiraft import HELD_BACK, SimHostTransport
from cairn.sim.network import NetworkFaults
from cairn.sim.node_disk import SLOW_FSYNC, BackgroundSyncDisk, SimNodeDisk
from cairn.sim.region_pd import STEP_DELAY, PlacementNetwork

MS = 1_000_000


Switch = Callable[[str], bool]


def only(site: str) -> Switch:
    """A buggify switch on which `site`, and only it, always takes its odd path."""
    return lambda asked: asked == site


def envelope(kind: MessageType) -> Envelope:
    message = Message(
        kind, to=2, frm=1, term=1, snapshot=Snapshot() if kind is MessageType.SNAP else None
    )
    return Envelope(EnvelopeKind.RAFT, 1, Peer(1, 1), Peer(2, 2), message=message)


def never(site: str) -> bool:
    return False


def network(
    buggify: Switch = never,
) -> tuple[EventLoop, PlacementNetwork, list[tuple[int, object]]]:
    loop = EventLoop()
    net = PlacementNetwork(loop, random.Random(1), NetworkFaults(), buggify)
    arrived: list[tuple[int, object]] = []
    net.register(2, lambda msgs: arrived.extend((loop.now, m) for m in msgs))
    return loop, net, arrived


def drain(loop: EventLoop) -> None:
    while loop.run_one():
        pass


def test_a_crash_may_lose_every_unsynced_write() -> None:
    batch = (1, LogBatch(hard_state=HardState(term=1)))
    for seed in range(20):
        disk = SimNodeDisk(
            random.Random(seed), background_flush=0.0, buggify=only("disk.crash_loses_all_unsynced")
        )
        for _ in range(5):
            disk.write_many([batch], sync=False)
        assert disk.crash() == 5
        assert disk.load(1).hard_state.term == 0
    # Without the site, some crash keeps a prefix of the cache.
    kept = []
    for seed in range(20):
        disk = SimNodeDisk(random.Random(seed), background_flush=0.0)
        for _ in range(5):
            disk.write_many([batch], sync=False)
        kept.append(5 - disk.crash())
    assert max(kept) > 0


def test_a_slow_fsync_takes_tens_of_milliseconds() -> None:
    loop = EventLoop()
    for site, low, high in (("none", 0, 3 * MS + 1), ("disk.slow_fsync", 20 * MS, 200 * MS + 1)):
        disk = BackgroundSyncDisk(random.Random(3), buggify=only(site))
        disk.clock = SimClock(loop, 1, 1.0, lambda: True)
        disk.write_many([(1, LogBatch(hard_state=HardState(term=2)))], sync=False)
        done: list[int] = []
        start = loop.now
        disk.sync_in_background(lambda error, done=done: done.append(loop.now))
        drain(loop)
        assert done and low <= done[0] - start <= high, (site, done[0] - start)
        assert disk.load(1).hard_state.term == 2
    assert SLOW_FSYNC[0] * 1e9 >= 20 * MS


def test_a_held_back_batch_leaves_late_and_a_cut_snapshot_never_arrives() -> None:
    loop, net, arrived = network()
    SimHostTransport(net, 1, only("host.send_held_back")).send(2, [envelope(MessageType.APP)])
    drain(loop)
    assert len(arrived) == 1 and arrived[0][0] >= HELD_BACK[0]
    loop, net, arrived = network()
    cut = SimHostTransport(net, 1, only("host.snapshot_cut_short"))
    cut.send(2, [envelope(MessageType.SNAP), envelope(MessageType.APP)])
    drain(loop)
    kinds = [m.message.type for _, m in arrived if isinstance(m, Envelope) and m.message]
    assert kinds == [MessageType.APP]
    loop, net, arrived = network()
    SimHostTransport(net, 1).send(2, [envelope(MessageType.SNAP)])
    drain(loop)
    assert len(arrived) == 1 and arrived[0][0] < HELD_BACK[0]


def test_a_delayed_operator_step_arrives_hundreds_of_milliseconds_late() -> None:
    loop, net, arrived = network(only("placement.step_delayed"))
    reply = PlacementReply(member=1, node_id=2, request_id=1, served=False)
    net.send_placement(1, 2, reply)
    drain(loop)
    assert len(arrived) == 1 and arrived[0][0] >= STEP_DELAY[0]
