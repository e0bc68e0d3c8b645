"""The view the checkers and schedulers decide from, for one tick.

A `ScheduleContext` holds the cluster as the driver knows it (nodes, regions in key order,
operators in flight) plus what follows from it: how many replicas and leaders each node
holds *counting the operators in flight as if they had finished* (PD's "influence"), so
that several operators started in one tick do not all pick the same emptiest node, and how
many operators touch each node (the rate limits). `start` records a new operator and
updates all of this at once.

Node order is always by id, so every replica of the placement group decides alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from cairn.meta.region import Peer, Region
from cairn.placement.config import PlacementConfig
from cairn.placement.model import NodeAdmin, NodeInfo, PlacementRules, RegionInfo
from cairn.placement.operators import Operator, OperatorKind, moves_data
from cairn.placement.steps import AddLearner, RemovePeer, Step, TransferLeader


@dataclass
class ScheduleContext:
    """The cluster for one tick, and the operators started so far (see the module doc)."""

    now_ms: int
    config: PlacementConfig
    rules: PlacementRules
    nodes: dict[int, NodeInfo]
    regions: list[RegionInfo]
    running: dict[int, Operator]
    """In-flight operators by region id (related regions included)."""
    alloc_ids: Callable[[int], int]
    """Reserves n ids and returns the first."""
    alloc_operator_id: Callable[[], int]
    started: list[Operator] = field(default_factory=list)
    region_count: Counter[int] = field(default_factory=Counter)
    leader_count: Counter[int] = field(default_factory=Counter)
    node_ops: Counter[int] = field(default_factory=Counter)
    node_adds: Counter[int] = field(default_factory=Counter)
    ops_in_flight: int = 0
    by_id: dict[int, RegionInfo] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for info in self.regions:
            self.by_id[info.region.id] = info
            for peer in info.region.peers:
                self.region_count[peer.node_id] += 1
            leader = info.report.leader_node_id
            if leader is not None:
                self.leader_count[leader] += 1
        for op in sorted({o.id: o for o in self.running.values()}.values(), key=lambda o: o.id):
            self._count(op)

    def _count(self, op: Operator) -> None:
        self.ops_in_flight += 1
        for node in op.nodes():
            self.node_ops[node] += 1
        for node in op.adds_on():
            self.node_adds[node] += 1
        info = self.region_info(op.region_id)
        for step in op.pending_steps():
            self._influence(step, info)

    def _influence(self, step: Step, info: RegionInfo | None) -> None:
        if isinstance(step, AddLearner):
            self.region_count[step.node_id] += 1
        elif isinstance(step, RemovePeer):
            self.region_count[step.node_id] -= 1
        elif isinstance(step, TransferLeader) and info is not None:
            old = info.report.leader_node_id
            if old is not None:
                self.leader_count[old] -= 1
            self.leader_count[step.node_id] += 1

    # --- nodes -----------------------------------------------------------------------------

    def node_ids(self) -> list[int]:
        """Every known node id, sorted."""
        return sorted(self.nodes)

    def is_alive(self, node_id: int) -> bool:
        """Whether the node can hold replicas now (not down, not removed)."""
        node = self.nodes.get(node_id)
        return node is not None and not node.down and node.admin is not NodeAdmin.REMOVED

    def is_schedulable(self, node_id: int) -> bool:
        """Whether the node may receive replicas and leaders: active and heard from lately."""
        node = self.nodes.get(node_id)
        if node is None or node.down or node.admin is not NodeAdmin.ACTIVE:
            return False
        return self.now_ms - node.last_heartbeat_ms <= self.config.disconnected_after_ms

    def schedulable_nodes(self) -> list[int]:
        """The nodes that may receive replicas, sorted."""
        return [n for n in self.node_ids() if self.is_schedulable(n)]

    def zone(self, node_id: int, label: str) -> str:
        """The node's value for the location label; a node without one is a zone of its own."""
        node = self.nodes.get(node_id)
        value = None if node is None else node.label(label)
        return f"\0node-{node_id}" if value is None else value

    # --- regions ---------------------------------------------------------------------------

    def region_info(self, region_id: int) -> RegionInfo | None:
        """The region's record, if known."""
        return self.by_id.get(region_id)

    def is_busy(self, region_id: int) -> bool:
        """Whether an operator in flight involves the region."""
        return region_id in self.running

    def rule(self, region: Region) -> tuple[int, str]:
        """(replicas, location label) declared for `region`."""
        return self.rules.rule_for(region)

    def peer_is_healthy(self, info: RegionInfo, peer: Peer) -> bool:
        """Whether the peer's node is alive and its leader has not reported it down long."""
        if not self.is_alive(peer.node_id):
            return False
        down = {d.peer_id: d.down_ms for d in info.report.down_peers}
        return down.get(peer.id, 0) < self.config.down_after_ms

    def zone_counts(self, peers: tuple[Peer, ...] | list[Peer], label: str) -> Counter[str]:
        """How many of `peers` each zone holds."""
        return Counter(self.zone(p.node_id, label) for p in peers)

    # --- limits and starting operators -----------------------------------------------------

    def within_limits(self, steps: tuple[Step, ...]) -> bool:
        """Whether an operator of `steps` may start without exceeding any rate limit."""
        cfg = self.config
        if self.ops_in_flight >= cfg.max_operators:
            return False
        touched = {n for s in steps for n in s.nodes()}
        if any(self.node_ops[n] >= cfg.max_node_operators for n in touched):
            return False
        adds = {s.node_id for s in steps if isinstance(s, AddLearner)}
        return all(self.node_adds[n] < cfg.max_node_snapshots for n in adds)

    def can_add_on(self, node_id: int) -> bool:
        """Whether one more replica may be added on `node_id` now."""
        cfg = self.config
        return (
            self.node_adds[node_id] < cfg.max_node_snapshots
            and self.node_ops[node_id] < cfg.max_node_operators
        )

    def start(
        self,
        info: RegionInfo,
        kind: OperatorKind,
        steps: tuple[Step, ...],
        reason: str,
        related: tuple[int, ...] = (),
    ) -> Operator | None:
        """Start an operator on `info`'s region unless it is busy or a limit forbids it."""
        if any(self.is_busy(r) for r in (info.region.id, *related)):
            return None
        if not steps or not self.within_limits(steps):
            return None
        timeout = (
            self.config.snapshot_operator_timeout_ms
            if moves_data(steps)
            else self.config.operator_timeout_ms
        )
        op = Operator(
            id=self.alloc_operator_id(),
            region_id=info.region.id,
            kind=kind,
            steps=steps,
            epoch=info.region.epoch,
            created_ms=self.now_ms,
            timeout_ms=timeout,
            reason=reason,
            related_region_ids=related,
        )
        for region_id in op.regions():
            self.running[region_id] = op
        self._count(op)
        self.started.append(op)
        return op
