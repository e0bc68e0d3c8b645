"""The placement driver in a multi-region run: an oracle fed by heartbeats, steps executed
through the hosts, and the coordinator of merges.

Theory of operation. A `PlacementDriver` runs outside Raft (the placement group is not
simulated yet): every `interval` of virtual time the oracle sends it a heartbeat from every
live node (with the peers it hosts; stale ones it names are destroyed) and a report from
every region leader (range, epoch, size, pending peers), executes the step each report is
answered with on that leader's host, advances the merges in flight, and ticks the driver.

Steps map onto `RegionHost` calls: `AddLearner`/`PromoteLearner`/`RemovePeer` are
membership changes, `TransferLeader` a leadership transfer, `SplitRegion` a split at a key
the leader chooses from its data (between two slots where the region spans several), and
`MergeRegion` starts a merge job. The executor is idempotent in the driver's sense: a step
that has visibly happened already (the peer exists, the role is right) is not proposed,
and the same step for the same region is not re-proposed within `retry` of the last try.

A merge job drives the two-command merge (`cairn.shard.region_machine`): prepare on the
source's leader until some replica of the source is frozen, then commit on the target's
leader with that replica's final data and the target's current epoch, until the source is
retired from the applied layout. While a job runs, no other step touches its two regions
(the driver's operator for them may time out; the job does not), so the target's range
stays adjacent to the frozen source. A job whose prepare can no longer apply (the source
moved on before freezing) is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cairn.placement import PlacementDriver, RegionReport
from cairn.placement.model import HostedPeer
from cairn.placement.steps import (
    AddLearner,
    MergeRegion,
    PromoteLearner,
    RemovePeer,
    SplitPolicy,
    SplitRegion,
    Step,
    TransferLeader,
)
from cairn.raft.types import ConfChangeType, NodeId
from cairn.shard.host import RegionHost, RegionPeer
from cairn.shard.region import (
    Peer,
    PeerRole,
    Region,
    RegionEpoch,
    bound_slot,
    range_key,
    slot_bound,
)
from cairn.shard.replica import Completion
from cairn.sim.loop import HARNESS
from cairn.sim.multiraft import MultiCluster
from cairn.sim.range_kv import RangeKVMachine
from cairn.store.slot import SLOT_COUNT

MS = 1_000_000


@dataclass(slots=True)
class MergeJob:
    """One merge in flight: `source` into `target`, planned at `source_epoch`."""

    source: int
    source_epoch: RegionEpoch
    target: int
    last_try: int = -(10**18)


@dataclass(slots=True)
class PlacementStats:
    """What the oracle did in a run."""

    rounds: int = 0
    steps: dict[str, int] = field(default_factory=dict)
    merges_started: int = 0
    stale_peers: int = 0


def _ignore(done: Completion) -> None:
    """A step's outcome is learned from the next report, not from its callback."""


class PlacementOracle:
    """Drives a `PlacementDriver` from a `MultiCluster` (see the module docstring)."""

    def __init__(
        self,
        cluster: MultiCluster,
        driver: PlacementDriver,
        interval: int = 100 * MS,
        retry: int = 300 * MS,
    ) -> None:
        self.cluster = cluster
        self.loop = cluster.loop
        self.driver = driver
        self.interval = interval
        self.retry = retry
        self.stats = PlacementStats()
        self.merges: dict[int, MergeJob] = {}
        self.active = True
        self._tried: dict[tuple[int, Step], int] = {}

    @property
    def now_ms(self) -> int:
        """The driver's clock: virtual time in milliseconds."""
        return self.loop.now // MS

    def register(self, node_id: NodeId) -> None:
        """Tell the driver about a node (before it first heartbeats)."""
        self.driver.add_node(node_id, f"n{node_id}", f"n{node_id}", {}, self.now_ms)

    def start(self) -> None:
        """Begin the rounds."""
        self.loop.call_later(self.interval, HARNESS, "pd round", self._round)

    def _round(self) -> None:
        if not self.active:
            return
        self.round()
        self.loop.call_later(self.interval, HARNESS, "pd round", self._round)

    def round(self) -> None:
        """One round: node heartbeats, leader reports and their steps, merges, a tick."""
        self.stats.rounds += 1
        for node_id in self.cluster.live():
            host = self.cluster.host(node_id)
            if host is not None:
                self._node_heartbeat(host)
        for node_id in self.cluster.live():
            host = self.cluster.host(node_id)
            if host is not None:
                self._region_heartbeats(host)
        for source in sorted(self.merges):
            self._advance(self.merges[source])
        self.driver.tick(self.now_ms)

    # -- heartbeats ---------------------------------------------------------------------

    def _node_heartbeat(self, host: RegionHost) -> None:
        # A peer whose description does not name it yet is catching up from a snapshot
        # older than its own addition: it is no stale peer, so it is not reported.
        hosted = tuple(
            HostedPeer(p.region_id, p.peer_id, p.region.epoch.conf_ver)
            for p in (host.peers[i] for i in sorted(host.peers))
            if p.initialized and p.region.peer(p.peer_id) is not None
        )
        reply = self.driver.node_heartbeat(host.node_id, self.now_ms, hosted=hosted)
        for stale in reply.stale_peers:
            self.stats.stale_peers += 1
            host.destroy_stale_peer(stale.region_id, stale.peer_id)

    def _region_heartbeats(self, host: RegionHost) -> None:
        for region_id in sorted(host.peers):
            peer = host.peers.get(region_id)
            if peer is None or not peer.replica.is_leader or not peer.initialized:
                continue
            if peer.machine.merging_into is not None:
                continue  # frozen: its merge job, not the driver, decides what happens next
            step = self.driver.region_heartbeat(report_of(peer), self.now_ms)
            if step is not None and not self._busy(region_id):
                self._execute(host, peer, step)

    def _busy(self, region_id: int) -> bool:
        return any(region_id in (j.source, j.target) for j in self.merges.values())

    # -- steps --------------------------------------------------------------------------

    def _execute(self, host: RegionHost, peer: RegionPeer, step: Step) -> None:
        key = (peer.region_id, step)
        if self.loop.now - self._tried.get(key, -(10**18)) < self.retry:
            return
        self._tried[key] = self.loop.now
        action = self._action(host, peer, step)
        if action is not None:
            name = type(step).__name__
            self.stats.steps[name] = self.stats.steps.get(name, 0) + 1
            self.loop.record(f"pd r{peer.region_id} {name}")
            action()

    def _action(self, host: RegionHost, peer: RegionPeer, step: Step) -> Callable[[], None] | None:
        region, rid = peer.region, peer.region_id
        match step:
            case AddLearner(node_id=n, peer_id=p) if region.peer(p) is None:
                return lambda: host.change_peer(
                    rid, ConfChangeType.ADD_LEARNER, Peer(p, n), _ignore
                )
            case PromoteLearner(node_id=n, peer_id=p) if _role(region, p) is PeerRole.LEARNER:
                return lambda: host.change_peer(rid, ConfChangeType.ADD_NODE, Peer(p, n), _ignore)
            case RemovePeer(node_id=n, peer_id=p) if region.peer(p) is not None:
                return lambda: host.change_peer(
                    rid, ConfChangeType.REMOVE_NODE, Peer(p, n), _ignore
                )
            case TransferLeader(peer_id=p) if p != peer.peer_id:
                return lambda: host.transfer_leader(rid, p)
            case SplitRegion() if step.epoch == region.epoch:
                at = step.split_key if step.policy is SplitPolicy.KEY else split_key(peer)
                if at is None:
                    return None
                ids = step.new_peer_ids
                return lambda: host.split(rid, step.epoch, at, step.new_region_id, ids, _ignore)
            case MergeRegion() if step.source_epoch == region.epoch and rid == step.source_id:
                return lambda: self._start_merge(step)
        return None

    # -- merges -------------------------------------------------------------------------

    def _start_merge(self, step: MergeRegion) -> None:
        target = self.cluster.applied.get(step.target_id)
        if target is None or target.epoch != step.target_epoch or self._busy(step.target_id):
            return
        self.stats.merges_started += 1
        self.merges[step.source_id] = MergeJob(step.source_id, step.source_epoch, step.target_id)
        self._advance(self.merges[step.source_id])

    def _advance(self, job: MergeJob) -> None:
        if job.source in self.cluster.retired:
            del self.merges[job.source]
            return
        if self.loop.now - job.last_try < self.retry:
            return
        frozen = self._frozen(job)
        if frozen is None:
            self._prepare(job)
            return
        target = self._leader(job.target)
        if target is not None:
            job.last_try = self.loop.now
            self.loop.record(f"pd commit-merge r{job.source} into r{job.target}")
            host, peer = target
            data = frozen.machine.inner.snapshot()
            host.commit_merge(job.target, peer.region.epoch, frozen.region, data, _ignore)

    def _prepare(self, job: MergeJob) -> None:
        applied = self.cluster.applied.get(job.source)
        if applied is None or applied.epoch.version > job.source_epoch.version:
            # It moved on without freezing (nobody froze it, or it is retired): give up.
            if applied is None or not self._any_frozen(job):
                del self.merges[job.source]
            return
        leader = self._leader(job.source)
        if leader is not None:
            job.last_try = self.loop.now
            self.loop.record(f"pd prepare-merge r{job.source} into r{job.target}")
            host, _ = leader
            host.prepare_merge(job.source, job.source_epoch, job.target, _ignore)

    def _any_frozen(self, job: MergeJob) -> bool:
        return self._frozen(job) is not None

    def _frozen(self, job: MergeJob) -> RegionPeer | None:
        """A live replica of the source frozen for this job's target."""
        for node_id in self.cluster.live():
            host = self.cluster.host(node_id)
            peer = host.peers.get(job.source) if host is not None else None
            if peer is not None and peer.machine.merging_into == job.target:
                return peer
        return None

    def _leader(self, region_id: int) -> tuple[RegionHost, RegionPeer] | None:
        for node_id in self.cluster.live():
            host = self.cluster.host(node_id)
            peer = host.peers.get(region_id) if host is not None else None
            if host is not None and peer is not None and peer.replica.is_leader:
                return host, peer
        return None


def _role(region: Region, peer_id: int) -> PeerRole | None:
    peer = region.peer(peer_id)
    return None if peer is None else peer.role


def report_of(peer: RegionPeer) -> RegionReport:
    """What the leader `peer` tells the driver about its region."""
    inner = peer.machine.inner
    assert isinstance(inner, RangeKVMachine)
    size = sum(len(k) + len(v) for k, v in inner.data.items())
    raft = peer.replica.raw.raft
    behind = raft.raft_log.committed - 10
    pending = tuple(
        sorted(i for i, pr in raft.prs.progress.items() if i != peer.peer_id and pr.match < behind)
    )
    return RegionReport(
        peer.region,
        peer.peer_id,
        approximate_size=size,
        approximate_keys=len(inner.data),
        pending_peers=pending,
    )


def split_key(peer: RegionPeer) -> bytes | None:
    """Where the leader cuts its region: at the median key, moved to a slot boundary when
    the region spans several slots; None when no valid key exists."""
    region = peer.region
    inner = peer.machine.inner
    assert isinstance(inner, RangeKVMachine)
    keys = sorted(range_key(k.encode()) for k in inner.data)
    first = bound_slot(region.start)
    last = bound_slot(region.end, end=True)
    if last - first >= 2:
        mid = bound_slot(keys[len(keys) // 2]) if keys else (first + last) // 2
        for slot in (mid, mid + 1, (first + last) // 2):
            at = slot_bound(min(slot, SLOT_COUNT - 1))
            if region.start < at and (not region.end or at < region.end):
                return at
        return None
    inside = [k for k in keys if k > region.start]
    return inside[len(inside) // 2] if inside else None
