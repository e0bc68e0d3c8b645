"""A toy cluster that executes the placement driver's operator steps, for convergence tests.

The model keeps the truth (which regions exist, their peers, leaders, sizes) and plays the
parts the real system plays: nodes heartbeat, region leaders report and execute the step in
the reply (possibly late, or never), learners take a few rounds to catch up, nodes crash
and come back, join and drain. It lives in the tests rather than in `cairn.placement`: the
simulator exercises the driver against real replicas, so a second executor in the package
would only be a second thing to keep in step; this one is small and deliberately crude.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from random import Random

from cairn.meta.region import (
    Peer,
    PeerRole,
    Region,
    bound_slot,
    merge_regions,
    slot_bound,
    split_region,
)
from cairn.placement import (
    Command,
    PlacementConfig,
    PlacementDriver,
    PlacementRules,
    RegionReport,
    Result,
    encode_command,
)
from cairn.placement.model import DownPeer, HostedPeer
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
from cairn.store.slot import SLOT_COUNT

TICK_MS = 1000

HARNESS_CONFIG = PlacementConfig(
    down_after_ms=30_000,
    disconnected_after_ms=10_000,
    max_operators=12,
    max_node_operators=4,
    max_node_snapshots=2,
    operator_timeout_ms=20_000,
    snapshot_operator_timeout_ms=60_000,
    split_size_bytes=1000,
    split_write_bytes_per_s=800,
    merge_size_bytes=150,
    merge_keys=10**9,
    split_merge_interval_ms=60_000,
)


@dataclass
class ModelNode:
    """A node: its zone, whether it runs, and the replicas it holds as it knows them."""

    id: int
    zone: str | None
    alive: bool = True
    down_since_ms: int = 0
    hosted: dict[int, HostedPeer] = field(default_factory=dict)


@dataclass
class ModelRegion:
    """The truth about one region."""

    region: Region
    leader: int | None
    size: int = 0
    write_bps: int = 0
    catching_up: dict[int, int] = field(default_factory=dict)
    """Learner peer id -> rounds left before it has caught up."""


@dataclass
class Stats:
    """What happened during a run (for assertions)."""

    rounds: int = 0
    steps_executed: int = 0
    operators_started: int = 0
    limit_violations: list[str] = field(default_factory=list)


class ModelCluster:
    """The truth, a driver, and faults (see the module doc)."""

    def __init__(
        self,
        rng: Random,
        zones: list[str | None],
        rules: PlacementRules | None = None,
        config: PlacementConfig = HARNESS_CONFIG,
        loss: float = 0.1,
        record: bool = False,
    ) -> None:
        self.rng = rng
        self.loss = loss
        self.now_ms = 0
        self.driver = PlacementDriver(config, rules)
        self.log: list[bytes] = []
        """Every command the driver applied, encoded (when recording)."""
        if record:
            self._record()
        self.nodes: dict[int, ModelNode] = {}
        self.regions: dict[int, ModelRegion] = {}
        self.delayed: list[tuple[int, int, Step]] = []
        self.stats = Stats()
        for zone in zones:
            self.add_node(zone)
        ids = self.driver.alloc_ids(2)
        first_node = min(self.nodes)
        peer = Peer(ids.first + 1, first_node)
        self.regions[ids.first] = ModelRegion(Region(ids.first, peers=(peer,)), peer.id)
        self._sync_hosted(self.regions[ids.first])
        self.driver.region_heartbeat(self.report(self.regions[ids.first]), self.now_ms)

    def _record(self) -> None:
        apply = self.driver.apply

        def logged(command: Command) -> Result:
            self.log.append(encode_command(command))
            return apply(command)

        self.driver.apply = logged  # type: ignore[method-assign]

    # --- faults and admin ------------------------------------------------------------------

    def add_node(self, zone: str | None) -> int:
        """A new node joins."""
        node_id = max(self.nodes, default=0) + 1
        self.nodes[node_id] = ModelNode(node_id, zone)
        labels = {} if zone is None else {"zone": zone}
        ack = self.driver.add_node(
            node_id, f"n{node_id}:7000", f"n{node_id}:6379", labels, self.now_ms
        )
        assert ack.ok
        return node_id

    def crash(self, node_id: int) -> None:
        """The node stops (its replicas keep what they knew)."""
        node = self.nodes[node_id]
        node.alive, node.down_since_ms = False, self.now_ms

    def restart(self, node_id: int) -> None:
        """The node comes back with the replicas it had."""
        node = self.nodes[node_id]
        node.alive = True
        for model in self.regions.values():
            if model.region.peer_on(node_id) is not None:
                self._sync_hosted(model)

    def drain(self, node_id: int) -> None:
        """Ask the driver to move everything off the node."""
        assert self.driver.drain_node(node_id, self.now_ms).ok

    # --- one round -------------------------------------------------------------------------

    def round(self) -> list[int]:
        """Advance one tick: heartbeats, delayed steps, the driver's tick; new operator ids."""
        self.now_ms += TICK_MS
        self.stats.rounds += 1
        self._node_heartbeats()
        for model in sorted(self.regions.values(), key=lambda m: m.region.id):
            if model.region.id in self.regions:
                self._region_round(model)
        self._run_delayed()
        started = self.driver.tick(self.now_ms)
        self.stats.operators_started += len(started)
        self._check_limits()
        return [op.id for op in started]

    def _node_heartbeats(self) -> None:
        for node in sorted(self.nodes.values(), key=lambda n: n.id):
            if not node.alive or self.rng.random() < self.loss:
                continue
            hosted = tuple(node.hosted[r] for r in sorted(node.hosted))
            reply = self.driver.node_heartbeat(node.id, self.now_ms, hosted=hosted)
            for stale in reply.stale_peers:
                node.hosted.pop(stale.region_id, None)

    def _region_round(self, model: ModelRegion) -> None:
        self._elect(model)
        for peer_id in sorted(model.catching_up):
            peer = model.region.peer(peer_id)
            if peer is not None and self.nodes[peer.node_id].alive:
                model.catching_up[peer_id] -= 1
                if model.catching_up[peer_id] <= 0:
                    del model.catching_up[peer_id]
        if model.leader is None or self.rng.random() < self.loss:
            return
        step = self.driver.region_heartbeat(self.report(model), self.now_ms)
        if step is None:
            return
        fate = self.rng.random()
        if fate < 0.75:
            self.execute(model.region.id, step)
        elif fate < 0.9:
            self.delayed.append(
                (self.now_ms + self.rng.randint(1, 5) * TICK_MS, model.region.id, step)
            )

    def _run_delayed(self) -> None:
        due = [d for d in self.delayed if d[0] <= self.now_ms]
        self.delayed = [d for d in self.delayed if d[0] > self.now_ms]
        for _, region_id, step in due:
            self.execute(region_id, step)

    def _elect(self, model: ModelRegion) -> None:
        region = model.region
        leader = None if model.leader is None else region.peer(model.leader)
        if leader is not None and self.nodes[leader.node_id].alive:
            return
        voters = region.voters()
        alive = [p for p in voters if self.nodes[p.node_id].alive]
        model.leader = None
        if len(alive) * 2 > len(voters):
            model.leader = self.rng.choice(sorted(alive, key=lambda p: p.id)).id

    def report(self, model: ModelRegion) -> RegionReport:
        """What the region's leader tells the driver."""
        assert model.leader is not None
        down = tuple(
            DownPeer(p.id, self.now_ms - self.nodes[p.node_id].down_since_ms)
            for p in model.region.peers
            if not self.nodes[p.node_id].alive
        )
        return RegionReport(
            model.region,
            model.leader,
            approximate_size=model.size,
            approximate_keys=model.size,
            write_bytes_per_s=model.write_bps,
            pending_peers=tuple(sorted(model.catching_up)),
            down_peers=down,
        )

    # --- executing steps (idempotently, as a real leader must) -----------------------------

    def execute(self, region_id: int, step: Step) -> None:
        """Apply `step` to region `region_id` if it still makes sense; else do nothing."""
        model = self.regions.get(region_id)
        if model is None or model.leader is None:
            return
        self.stats.steps_executed += 1
        match step:
            case AddLearner():
                self._add_learner(model, step)
            case PromoteLearner(peer_id=pid):
                peer = model.region.peer(pid)
                if (
                    peer is not None
                    and peer.role is PeerRole.LEARNER
                    and pid not in model.catching_up
                ):
                    self._set_peers(
                        model,
                        tuple(
                            replace(p, role=PeerRole.VOTER) if p.id == pid else p
                            for p in model.region.peers
                        ),
                    )
            case RemovePeer(peer_id=pid):
                if model.region.peer(pid) is not None and pid != model.leader:
                    self._set_peers(model, tuple(p for p in model.region.peers if p.id != pid))
                    model.catching_up.pop(pid, None)
            case TransferLeader(peer_id=pid):
                peer = model.region.peer(pid)
                if (
                    peer is not None
                    and peer.role is PeerRole.VOTER
                    and self.nodes[peer.node_id].alive
                ):
                    model.leader = pid
            case SplitRegion():
                self._split(model, step)
            case MergeRegion():
                self._merge(step)

    def _add_learner(self, model: ModelRegion, step: AddLearner) -> None:
        region = model.region
        if region.peer(step.peer_id) is not None or region.peer_on(step.node_id) is not None:
            return
        if not self.nodes[step.node_id].alive:
            return
        self._set_peers(model, (*region.peers, Peer(step.peer_id, step.node_id, PeerRole.LEARNER)))
        model.catching_up[step.peer_id] = self.rng.randint(1, 4)

    def _set_peers(self, model: ModelRegion, peers: tuple[Peer, ...]) -> None:
        old_nodes = {p.node_id for p in model.region.peers}
        model.region = model.region.with_peers(peers)
        for node_id in sorted(old_nodes - {p.node_id for p in peers}):
            if self.nodes[node_id].alive:
                self.nodes[node_id].hosted.pop(model.region.id, None)
        self._sync_hosted(model)

    def _sync_hosted(self, model: ModelRegion) -> None:
        region = model.region
        for peer in region.peers:
            node = self.nodes[peer.node_id]
            if node.alive:
                node.hosted[region.id] = HostedPeer(region.id, peer.id, region.epoch.conf_ver)

    def _split_key(self, region: Region, step: SplitRegion) -> bytes | None:
        if step.policy is SplitPolicy.KEY:
            key = step.split_key
        elif step.slot_aligned:
            first = bound_slot(region.start) + 1
            last = bound_slot(region.end, end=True) if region.end else SLOT_COUNT
            key = slot_bound(min(max(first, (first + last) // 2), SLOT_COUNT - 1))
        else:
            key = region.start + b"m"
        if not region.contains(key) or key == region.start:
            return None
        return key

    def _split(self, model: ModelRegion, step: SplitRegion) -> None:
        region = model.region
        key = self._split_key(region, step)
        if region.epoch != step.epoch or key is None:
            return
        left, right = split_region(region, key, step.new_region_id, step.new_peer_ids)
        leader_node = region.peer(model.leader or 0)
        assert leader_node is not None
        right_leader = right.peer_on(leader_node.node_id)
        assert right_leader is not None
        by_node = {region.peer(pid).node_id: n for pid, n in model.catching_up.items()}  # type: ignore[union-attr]
        half, load = model.size // 2, model.write_bps // 2
        model.region, model.size, model.write_bps = left, model.size - half, load
        self.regions[right.id] = ModelRegion(
            right,
            right_leader.id,
            half,
            load,
            {p.id: by_node[p.node_id] for p in right.peers if p.node_id in by_node},
        )
        self._sync_hosted(model)
        self._sync_hosted(self.regions[right.id])

    def _merge(self, step: MergeRegion) -> None:
        source, target = self.regions.get(step.source_id), self.regions.get(step.target_id)
        if source is None or target is None or target.leader is None:
            return
        if (source.region.epoch, target.region.epoch) != (step.source_epoch, step.target_epoch):
            return
        nodes = {p.node_id for p in source.region.peers}
        if nodes != {p.node_id for p in target.region.peers}:
            return
        target.region = merge_regions(source.region, target.region)
        target.size += source.size
        target.write_bps += source.write_bps
        del self.regions[source.region.id]
        for node in self.nodes.values():
            if node.alive:
                node.hosted.pop(source.region.id, None)
        self._sync_hosted(target)

    # --- checks ----------------------------------------------------------------------------

    def _check_limits(self) -> None:
        cfg = self.driver.metadata.config
        ops = self.driver.operators()
        touched, adds = Counter[int](), Counter[int]()
        for op in ops:
            touched.update(op.nodes())
            adds.update(op.adds_on())
        if len(ops) > cfg.max_operators:
            self.stats.limit_violations.append(f"{len(ops)} operators in flight")
        for node, n in sorted(touched.items()):
            if n > cfg.max_node_operators:
                self.stats.limit_violations.append(f"node {node}: {n} operators")
        for node, n in sorted(adds.items()):
            if n > cfg.max_node_snapshots:
                self.stats.limit_violations.append(f"node {node}: {n} snapshots")

    def tiling_problems(self) -> list[str]:
        """Overlaps and gaps among the true regions, then in the driver's map."""
        problems = []
        ordered = sorted((m.region for m in self.regions.values()), key=lambda r: r.start)
        at = b""
        for region in ordered:
            if region.start != at:
                problems.append(f"truth: region {region.id} starts at {region.start!r}, not {at!r}")
            at = region.end
        if at != b"" or not ordered:
            problems.append("truth: the last region does not reach the end")
        gaps = self.driver.metadata.region_map.gaps()
        if gaps:
            problems.append(f"driver map gaps: {gaps}")
        return problems
