"""A simulated multi-raft cluster: a `RegionHost` per node, many regions, crashes.

Each `HostNode` owns a `SimNodeDisk` for its whole life and a `RegionHost` per incarnation
(its timers die with it, through `SimClock`'s liveness check). Every region description a
host applies is reported to the cluster, which keeps the newest of each region in
`applied`: a description replaces an older one of the same region, and one that covers
another region's range with a newer version retires that region (a merge's source), for
good. `applied` is what the coverage invariant (`cairn.sim.coverage`) and the clients'
routing read.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cairn.env import Clock
from cairn.meta.region import Region
from cairn.raft.types import MessageType, NodeId
from cairn.shard.envelope import Envelope
from cairn.shard.host import (
    EnvelopeHandler,
    HostConfig,
    MachineFactory,
    ObserverFactory,
    RegionHost,
)
from cairn.sim.env import SimClock
from cairn.sim.loop import EventLoop
from cairn.sim.network import SimNetwork
from cairn.sim.node_disk import BackgroundSyncDisk, SimNodeDisk
from cairn.sim.range_kv import RangeKVMachine

Buggify = Callable[[str], bool]
"""A run's buggify switch (`cairn.sim.env.Buggify`): whether a site takes its odd path."""

MS = 1_000_000
HELD_BACK = (5 * MS, 50 * MS)
"""How long a held-back batch of envelopes waits before it goes out (buggify)."""


def _never(site: str) -> bool:
    return False


class SimHostTransport:
    """A host's `HostTransport` onto the simulated network.

    Three buggify sites: `host.send_held_back` holds a whole batch back for a while before
    it leaves (a congested socket buffer: later batches may overtake it),
    `host.snapshot_cut_short` loses a snapshot on the way (a stream that broke midway; the
    leader retries after a probe), and `host.batch_reordered` sends a batch's envelopes
    last first (frames of one flush that took different connections)."""

    def __init__(self, network: SimNetwork, node_id: NodeId, buggify: Buggify = _never) -> None:
        self._network = network
        self._node_id = node_id
        self._buggify = buggify

    def send(self, to: NodeId, envelopes: Sequence[Envelope]) -> None:
        """See `HostTransport.send`."""
        if any(_is_snapshot(e) for e in envelopes) and self._buggify("host.snapshot_cut_short"):
            envelopes = [e for e in envelopes if not _is_snapshot(e)]
            self._network.loop.record(f"buggify snapshot cut short n{self._node_id}->n{to}")
        if not envelopes:
            return
        if len(envelopes) > 1 and self._buggify("host.batch_reordered"):
            envelopes = envelopes[::-1]
        network = self._network
        if self._buggify("host.send_held_back"):
            delay = network.rng.randint(*HELD_BACK)
            frm = self._node_id
            batch = list(envelopes)
            label = f"buggify held back n{frm}->n{to}"
            network.loop.call_later(delay, frm, label, lambda: network.send(frm, to, batch))
            return
        network.send(self._node_id, to, envelopes)

    def set_handler(self, handler: EnvelopeHandler | None) -> None:
        """See `HostTransport.set_handler`."""
        self._network.register(self._node_id, handler)


def _is_snapshot(envelope: Envelope) -> bool:
    return envelope.message is not None and envelope.message.type is MessageType.SNAP


@dataclass(slots=True)
class HostNode:
    """One node across its incarnations."""

    node_id: NodeId
    disk: SimNodeDisk
    rng: random.Random
    up: bool = False
    incarnation: int = 0
    host: RegionHost | None = None
    clock_rate: float = 1.0
    """The node's clock runs this much faster than virtual time (clock skew)."""
    lost: bool = False
    """Crashed for good (its disk is gone with it)."""


@dataclass(slots=True)
class MultiCluster:
    """The hosts of one multi-raft run."""

    loop: EventLoop
    network: SimNetwork
    config: HostConfig
    observers: ObserverFactory = lambda node, region: None
    nodes: dict[NodeId, HostNode] = field(default_factory=dict)
    applied: dict[int, Region] = field(default_factory=dict)
    """The newest description of every region applied anywhere (by epoch version)."""
    history: list[tuple[NodeId, Region]] = field(default_factory=list)
    retired: dict[int, int] = field(default_factory=dict)
    """Region id -> the version of the region that absorbed it (a merge's source)."""
    keep_history: bool = True
    changes: int = 0
    """How many times `applied` changed (the coverage check runs when it moves)."""
    buggify: Buggify = _never
    """The run's buggify switch, handed to every host and its transport."""
    new_machine: MachineFactory = RangeKVMachine
    """Each region peer's machine: the run's real store (`SimStoreMachine`), or the
    get/put model the shard tests drive."""

    def add_node(
        self, node_id: NodeId, rng: random.Random, *, background_sync: bool = False
    ) -> HostNode:
        """Register a node with a fresh disk (down until `start`); with `background_sync`
        its fsyncs run in the background, as a real node's do (`BackgroundSyncDisk`)."""
        disk_rng = random.Random(rng.getrandbits(64))
        disk = (
            BackgroundSyncDisk(disk_rng, buggify=self.buggify)
            if background_sync
            else SimNodeDisk(disk_rng, buggify=self.buggify)
        )
        node = HostNode(node_id, disk, rng)
        self.nodes[node_id] = node
        return node

    def start(self, node_id: NodeId) -> RegionHost:
        """Start a new incarnation of a node from what its disk holds."""
        node = self.nodes[node_id]
        node.incarnation += 1
        node.up = True
        incarnation = node.incarnation

        def alive() -> bool:
            return node.up and node.incarnation == incarnation

        clock: Clock = SimClock(self.loop, node_id, node.clock_rate, alive)
        if isinstance(node.disk, BackgroundSyncDisk):
            node.disk.clock = clock
        node.host = RegionHost(
            node_id,
            clock,
            SimHostTransport(self.network, node_id, self.buggify),
            node.disk,
            random.Random(node.rng.getrandbits(64)),
            self.config,
            self.new_machine,
            buggify=self.buggify,
            observers=self.observers,
            on_region=self._on_region,
        )
        self.loop.record(f"start n{node_id} incarnation {incarnation}")
        return node.host

    def crash(self, node_id: NodeId) -> None:
        """Kill a node's process: unsynced writes may be lost, timers and sockets die."""
        node = self.nodes[node_id]
        if node.host is not None:
            node.host.stop()
        node.host = None
        node.up = False
        self.network.register(node_id, None)
        lost = node.disk.crash()
        self.loop.resume(node_id)
        self.loop.record(f"crash n{node_id} lost {lost}")

    def host(self, node_id: NodeId) -> RegionHost | None:
        """The running host of a node, if it is up."""
        node = self.nodes.get(node_id)
        return node.host if node is not None and node.up else None

    def lose(self, node_id: NodeId) -> None:
        """Crash a node for good: it never starts again."""
        self.crash(node_id)
        self.nodes[node_id].lost = True
        self.loop.record(f"lost n{node_id}")

    def live(self) -> list[NodeId]:
        """The nodes that are up, by id."""
        return [n for n in sorted(self.nodes) if self.nodes[n].up]

    def _on_region(self, node_id: NodeId, region: Region) -> None:
        if self.keep_history:
            self.history.append((node_id, region))
        if region.epoch.version <= self.retired.get(region.id, 0):
            return
        known = self.applied.get(region.id)
        if known is not None and (region.epoch.version, region.epoch.conf_ver) <= (
            known.epoch.version,
            known.epoch.conf_ver,
        ):
            return
        self.applied[region.id] = region
        self.changes += 1
        for other in [self.applied[i] for i in sorted(self.applied)]:
            if other.id != region.id and _absorbed(other, region):
                del self.applied[other.id]
                self.retired[other.id] = region.epoch.version


def _absorbed(old: Region, new: Region) -> bool:
    """Whether `new` covers `old`'s range with a newer version (`old` merged into it)."""
    if old.epoch.version >= new.epoch.version or old.start < new.start:
        return False
    return not new.end or (bool(old.end) and old.end <= new.end)
