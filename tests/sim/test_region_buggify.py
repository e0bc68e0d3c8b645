"""The buggify sites of the multi-region path: every one named, every one firing in a
bounded run that stays safe, and each rare one's behaviour forced on its own piece.

`SITES` lists every site in the source (a test keeps the two equal). A run with every
site switched on (`_AllOn`, with background fsyncs) must fire all but the rarest and stay
safe and converge; the rare ones (a crash with unsynced writes, an ignored leadership
transfer, a snapshot on the wire) and the disk and transport sites are forced one by one.
The sweep in `test_region_faults.py` shows the common sites firing in default runs.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

import cairn
from cairn.env import LogBatch
from cairn.meta.region import Peer, Region, slot_bound
from cairn.placement.service import PlacementReply
from cairn.raft.config import Config
from cairn.raft.types import HardState, Message, MessageType, ReadOnlyOption, Snapshot
from cairn.shard.envelope import Envelope, EnvelopeKind
from cairn.shard.host import HostConfig
from cairn.shard.replica import ReplicaConfig
from cairn.sim import region_run
from cairn.sim.env import Buggify, SimClock
from cairn.sim.loop import NS_PER_SECOND, EventLoop
from cairn.sim.multiraft import HELD_BACK, MultiCluster, SimHostTransport
from cairn.sim.network import NetworkFaults, SimNetwork
from cairn.sim.node_disk import LATE_REPORT, SLOW_FSYNC, BackgroundSyncDisk, SimNodeDisk
from cairn.sim.region_config import EVERY_FAULT
from cairn.sim.region_pd import STEP_DELAY, PlacementNetwork
from cairn.sim.region_runner import run_region_simulation

MS = 1_000_000

SITES = {
    # the simulated disk
    "disk.slow_fsync": "a background fsync takes 20-200 ms",
    "disk.sync_reported_late": "an fsync is done but its report reaches the node late",
    "disk.crash_loses_all_unsynced": "a crash keeps nothing of the write cache",
    # a host's transport
    "host.send_held_back": "a batch of envelopes waits 5-50 ms before it leaves",
    "host.batch_reordered": "a batch's envelopes leave last first",
    "host.snapshot_cut_short": "a snapshot is lost on the way",
    # the region host
    "host.drain_late": "the drain (Readies, sends) runs 4 ms later",
    "host.apply_notified_late": "a request's apply is reported 50 ms late",
    "host.quiesce_deferred": "an idle leader does not quiesce this tick",
    # a replica
    "replica.tick_skipped": "a tick does not run (caught up later; heartbeats, lease late)",
    "replica.lease_read_refused": "a valid lease is not used: the read takes a ReadIndex",
    "replica.read_served_late": "reads ready now are answered at a later Ready",
    "replica.snapshot_reported_failed": "a sent snapshot is reported lost: probe, resend",
    "replica.transfer_ignored": "a leadership transfer request is dropped",
    "replica.early_snapshot": "the log is compacted at 5 entries",
    # the placement agent and group
    "agent.round_skipped": "an agent's heartbeat round does not run",
    "agent.step_late": "an operator step runs 200 ms after it arrived",
    "agent.merge_commit_late": "a round proposes no commit-merge",
    "placement.step_delayed": "a placement request or reply waits 100-600 ms",
    "placement.tick_skipped": "the placement driver's tick is not proposed",
    # the simulated client
    "client.late_reply": "a reply reaches the client 50-400 ms late",
}
"""Every buggify site on the simulated path and what its odd path does."""
RARE = {"disk.crash_loses_all_unsynced", "replica.transfer_ignored", "host.snapshot_cut_short"}
"""Sites a short run may not reach (each forced on its own below)."""


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


def test_a_finished_fsync_may_be_reported_late() -> None:
    loop = EventLoop()
    disk = BackgroundSyncDisk(random.Random(3), buggify=only("disk.sync_reported_late"))
    disk.clock = SimClock(loop, 1, 1.0, lambda: True)
    disk.write_many([(1, LogBatch(hard_state=HardState(term=2)))], sync=False)
    done: list[int] = []
    disk.sync_in_background(lambda error: done.append(loop.now))
    while not disk.syncs:
        assert loop.run_one()
    durable_at = loop.now
    assert disk.load(1).hard_state.term == 2 and not done  # durable, not yet reported
    drain(loop)
    assert done and done[0] - durable_at >= LATE_REPORT[0] * NS_PER_SECOND


def test_a_reordered_batch_arrives_last_first() -> None:
    sent = [envelope(MessageType.APP), envelope(MessageType.HEARTBEAT)]
    for site, expected in (("none", sent), ("host.batch_reordered", sent[::-1])):
        loop, net, arrived = network()
        SimHostTransport(net, 1, only(site)).send(2, sent)
        drain(loop)
        assert [m for _, m in arrived] == expected


# -- sites forced in a small cluster --------------------------------------------------------


def cluster(buggify: Switch, hibernate: bool = False) -> tuple[MultiCluster, Region]:
    """Three hosts on a clean network, one region on them, run until it has a leader."""
    loop = EventLoop()
    raft = Config(id=1, election_tick=20, heartbeat_tick=2, pre_vote=True)
    config = HostConfig(ReplicaConfig(raft, tick_interval=0.01), hibernate=hibernate)
    c = MultiCluster(loop, SimNetwork(loop, random.Random(1), NetworkFaults()), config)
    c.buggify = buggify
    rng = random.Random(5)
    region = Region(1, slot_bound(0), b"", peers=tuple(Peer(10 + n, n) for n in (1, 2, 3)))
    for n in (1, 2, 3):
        c.add_node(n, random.Random(rng.getrandbits(64)))
        c.start(n).bootstrap_region(region)
    run(c, 2.0, until=lambda: leader(c) is not None)
    assert leader(c) is not None
    return c, region


def run(c: MultiCluster, seconds: float, until: Callable[[], bool] = lambda: False) -> None:
    deadline = c.loop.now + int(seconds * NS_PER_SECOND)
    while c.loop.now < deadline and not until() and c.loop.run_one():
        pass


def leader(c: MultiCluster) -> int | None:
    for n in (1, 2, 3):
        host = c.host(n)
        if host is not None and host.peers[1].replica.is_leader:
            return n
    return None


def test_an_ignored_leadership_transfer_leaves_the_leader_in_place() -> None:
    for site, moves in (("none", True), ("replica.transfer_ignored", False)):
        c, region = cluster(only(site))
        before = leader(c)
        assert before is not None
        host = c.host(before)
        assert host is not None
        target = next(p for p in region.peers if p.node_id != before)
        host.transfer_leader(1, target.id)
        run(c, 0.3, until=lambda: leader(c) == target.node_id)  # noqa: B023 (used at once)
        assert (leader(c) == target.node_id) is moves, site


def test_a_deferred_quiescence_keeps_an_idle_region_awake() -> None:
    for site, sleeps in (("none", True), ("host.quiesce_deferred", False)):
        c, _ = cluster(only(site), hibernate=True)
        hosts = [h for n in (1, 2, 3) if (h := c.host(n)) is not None]
        run(c, 1.0, until=lambda: all(h.peers[1].replica.quiesced for h in hosts))  # noqa: B023
        asleep = [h.peers[1].replica.quiesced for h in hosts]
        assert all(asleep) is sleeps, (site, asleep)


# -- every site, in the simulator ------------------------------------------------------------


class _AllOn(Buggify):
    """Every site switched on for the run, each firing with p = 1/10 per call."""

    def __call__(self, site: str) -> bool:
        if not self._enabled:
            return False
        self.sites[site] = True
        if self._rng.random() >= 0.1:
            return False
        self.fired[site] = self.fired.get(site, 0) + 1
        return True


def test_every_site_in_the_source_is_named_and_there_are_twenty() -> None:
    root = Path(cairn.__file__).parent
    found = {
        name
        for path in root.rglob("*.py")
        for name in re.findall(r'buggify\("([a-z_.]+)"\)', path.read_text())
    }
    assert found == set(SITES)
    assert len(SITES) >= 20


def test_every_site_fires_in_a_bounded_run_that_stays_safe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(region_run, "Buggify", _AllOn)
    fired: set[str] = set()
    for seed in (11, 3):  # between them every site but the rare ones fires
        config = replace(EVERY_FAULT, seed=seed, steps=2000, background_sync=True)
        result = run_region_simulation(config)
        assert result.ok, result.failure
        assert result.converged_after is not None
        assert result.read_mode in (ReadOnlyOption.SAFE, ReadOnlyOption.LEASE_BASED)
        fired |= set(result.buggify_fired)
    assert set(SITES) - RARE <= fired, set(SITES) - fired
