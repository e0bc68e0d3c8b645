"""The placement driver's facade: typed calls over the metadata state machine, and views.

Every mutating call builds a command and applies it to the local `ClusterMetadata`. That
is the whole story in a single-process setting (tests, the simulator's toy cluster). In a
real cluster the placement group's leader instead proposes `encode_command(command)` to
its Raft log, each replica calls `apply(decode_command(entry.data))` on commit, and the
leader hands the result back to the caller; the typed methods here show which command and
result go with which call. The read accessors return plain data for `cairn ctl status`,
`nodes`, `regions`, `events` and the dashboard to render.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from cairn.placement.commands import (
    Ack,
    AddNode,
    AllocIds,
    Command,
    IdRange,
    NodeHeartbeat,
    NodeHeartbeatReply,
    RegionHeartbeat,
    RegionHeartbeatReply,
    RequestKind,
    RequestOperator,
    RequestReply,
    Result,
    SetConfig,
    SetNodeAdmin,
    SetRules,
    Tick,
    TickResult,
)
from cairn.placement.config import PlacementConfig
from cairn.placement.metadata import ClusterMetadata
from cairn.placement.model import (
    Event,
    HostedPeer,
    NodeAdmin,
    NodeState,
    NodeStats,
    PlacementRules,
    RegionReport,
)
from cairn.placement.operators import Operator
from cairn.placement.steps import Step

_R = TypeVar("_R")


class UnexpectedResult(TypeError):  # noqa: N818 (a programming error, not a condition)
    """The state machine answered a command with a result of the wrong kind."""


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One line of `cairn ctl nodes`. Counts are from region reports, not node stats."""

    id: int
    state: NodeState
    peer_address: str
    client_address: str
    labels: tuple[tuple[str, str], ...]
    region_count: int
    leader_count: int
    silent_ms: int
    capacity_bytes: int
    used_bytes: int


@dataclass(frozen=True, slots=True)
class RegionRow:
    """One line of `cairn ctl regions`."""

    id: int
    start: bytes
    end: bytes
    version: int
    conf_ver: int
    leader_node: int | None
    voter_nodes: tuple[int, ...]
    learner_nodes: tuple[int, ...]
    approximate_size: int
    approximate_keys: int
    write_bytes_per_s: int
    silent_ms: int
    operator: str | None


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """The summary of `cairn ctl status`."""

    now_ms: int
    nodes: tuple[tuple[NodeState, int], ...]
    """How many nodes are in each state (states with none are left out)."""
    regions: int
    under_replicated: int
    """Regions with fewer voters than declared."""
    gaps: int
    """Ranges of the keyspace no known region covers."""
    operators_running: int
    last_event_seq: int
    refused_heartbeats: int
    rules: PlacementRules


class PlacementDriver:
    """The placement driver: commands in, steps and operators out (see the module doc)."""

    def __init__(
        self,
        config: PlacementConfig | None = None,
        rules: PlacementRules | None = None,
    ) -> None:
        self.metadata = ClusterMetadata(config, rules)

    def apply(self, command: Command) -> Result:
        """Apply a committed command (what each replica of the placement group does)."""
        return self.metadata.apply(command)

    def _expect(self, command: Command, kind: type[_R]) -> _R:
        result = self.apply(command)
        if not isinstance(result, kind):
            raise UnexpectedResult(f"{type(command).__name__} gave {result!r}")
        return result

    # --- commands --------------------------------------------------------------------------

    def tick(self, now_ms: int) -> list[Operator]:
        """Run the reconcile loops; the operators they started."""
        return list(self._expect(Tick(now_ms), TickResult).operators)

    def region_heartbeat(self, report: RegionReport, now_ms: int) -> Step | None:
        """A region leader's report; the step it must execute next, if any."""
        return self.region_heartbeat_reply(report, now_ms).step

    def region_heartbeat_reply(self, report: RegionReport, now_ms: int) -> RegionHeartbeatReply:
        """`region_heartbeat` with the whole reply (accepted or stale, operator id)."""
        return self._expect(RegionHeartbeat(report, now_ms), RegionHeartbeatReply)

    def node_heartbeat(
        self,
        node_id: int,
        now_ms: int,
        stats: NodeStats | None = None,
        hosted: tuple[HostedPeer, ...] = (),
    ) -> NodeHeartbeatReply:
        """A node is alive; the reply lists hosted replicas it must destroy."""
        command = NodeHeartbeat(node_id, now_ms, stats or NodeStats(), hosted)
        return self._expect(command, NodeHeartbeatReply)

    def add_node(
        self,
        node_id: int,
        peer_address: str,
        client_address: str,
        labels: Mapping[str, str],
        now_ms: int,
    ) -> Ack:
        """Register a node (it receives load from the balancers once it heartbeats)."""
        pairs = tuple(sorted(labels.items()))
        return self._expect(AddNode(node_id, peer_address, client_address, pairs, now_ms), Ack)

    def drain_node(self, node_id: int, now_ms: int, reason: str = "") -> Ack:
        """Move everything off a node, leaders first (`cairn ctl node drain`)."""
        return self._expect(SetNodeAdmin(node_id, NodeAdmin.DRAINING, now_ms, reason), Ack)

    def remove_node(self, node_id: int, now_ms: int, reason: str = "") -> Ack:
        """Declare a node gone for good; its replicas are rebuilt elsewhere at once."""
        return self._expect(SetNodeAdmin(node_id, NodeAdmin.REMOVED, now_ms, reason), Ack)

    def activate_node(self, node_id: int, now_ms: int, reason: str = "") -> Ack:
        """Cancel a drain: the node receives load again."""
        return self._expect(SetNodeAdmin(node_id, NodeAdmin.ACTIVE, now_ms, reason), Ack)

    def set_rules(self, rules: PlacementRules, now_ms: int) -> Ack:
        """Declare the desired placement (`cairn ctl placement set`)."""
        return self._expect(SetRules(rules, now_ms), Ack)

    def set_config(self, config: PlacementConfig, now_ms: int) -> Ack:
        """Change limits and thresholds."""
        return self._expect(SetConfig(config, now_ms), Ack)

    def alloc_ids(self, count: int) -> IdRange:
        """Reserve cluster-unique ids (bootstrapping the first region, say)."""
        return self._expect(AllocIds(count), IdRange)

    def request(self, request: RequestOperator) -> RequestReply:
        """Ask for one operator by hand (`cairn.placement.requests`): started, or why not."""
        return self._expect(request, RequestReply)

    def request_split(self, region_id: int, now_ms: int, slot: int = -1) -> RequestReply:
        """Split `region_id` at `slot`'s lower boundary (-1: halfway through its slots)."""
        return self.request(RequestOperator(RequestKind.SPLIT, region_id, now_ms, split_slot=slot))

    def request_merge(self, region_id: int, now_ms: int, target: int = 0) -> RequestReply:
        """Merge `region_id` into neighbour `target` (0: the right one, else the left)."""
        command = RequestOperator(RequestKind.MERGE, region_id, now_ms, target_region_id=target)
        return self.request(command)

    def request_move(
        self, region_id: int, from_node: int, to_node: int, now_ms: int
    ) -> RequestReply:
        """Move `region_id`'s replica from `from_node` to `to_node`."""
        command = RequestOperator(
            RequestKind.MOVE, region_id, now_ms, from_node=from_node, to_node=to_node
        )
        return self.request(command)

    def request_transfer(self, region_id: int, to_node: int, now_ms: int) -> RequestReply:
        """Hand `region_id`'s leadership to its voter on `to_node`."""
        command = RequestOperator(RequestKind.TRANSFER_LEADER, region_id, now_ms, to_node=to_node)
        return self.request(command)

    def snapshot(self) -> bytes:
        """The whole state as bytes."""
        return self.metadata.snapshot()

    def restore(self, data: bytes) -> None:
        """Replace the whole state with a snapshot's."""
        self.metadata.restore(data)

    # --- views -----------------------------------------------------------------------------

    def operators(self) -> list[Operator]:
        """The operators in flight, oldest first."""
        return [self.metadata.operators[i] for i in sorted(self.metadata.operators)]

    def history(self) -> list[Operator]:
        """Finished operators, oldest first (bounded)."""
        return list(self.metadata.history)

    def operator(self, operator_id: int) -> Operator | None:
        """Operator `operator_id`, running or finished (None: unknown or out of the history)."""
        found = self.metadata.operators.get(operator_id)
        if found is not None:
            return found
        return next((op for op in reversed(self.metadata.history) if op.id == operator_id), None)

    def events(self, since_seq: int = 0, limit: int | None = None) -> list[Event]:
        """Events numbered after `since_seq`, oldest first, at most `limit` (the newest)."""
        found = [e for e in self.metadata.events if e.seq > since_seq]
        return found if limit is None else found[-limit:] if limit > 0 else []

    def nodes(self) -> list[NodeRow]:
        """Every node, by id."""
        md = self.metadata
        regions, leaders = Counter[int](), Counter[int]()
        for info in md.region_infos.values():
            regions.update(p.node_id for p in info.region.peers)
            if info.report.leader_node_id is not None:
                leaders[info.report.leader_node_id] += 1
        return [
            NodeRow(
                n.id,
                n.state,
                n.peer_address,
                n.client_address,
                n.labels,
                regions[n.id],
                leaders[n.id],
                md.clock_ms - n.last_heartbeat_ms,
                n.stats.capacity_bytes,
                n.stats.used_bytes,
            )
            for n in (md.nodes[i] for i in sorted(md.nodes))
        ]

    def regions(self) -> list[RegionRow]:
        """Every known region, in key order."""
        md = self.metadata
        ops = {r: op for op in self.operators() for r in op.regions()}
        rows = []
        for region in md.region_map:
            info = md.region_infos[region.id]
            report, op = info.report, ops.get(region.id)
            rows.append(
                RegionRow(
                    region.id,
                    region.start,
                    region.end,
                    region.epoch.version,
                    region.epoch.conf_ver,
                    report.leader_node_id,
                    tuple(p.node_id for p in region.voters()),
                    tuple(p.node_id for p in region.learners()),
                    report.approximate_size,
                    report.approximate_keys,
                    report.write_bytes_per_s,
                    md.clock_ms - info.last_heartbeat_ms,
                    None if op is None else op.describe(),
                )
            )
        return rows

    def status(self) -> ClusterStatus:
        """The cluster in one value."""
        md = self.metadata
        states = Counter(n.state for n in md.nodes.values())
        short = sum(
            len(info.region.voters()) < md.rules.rule_for(info.region)[0]
            for info in md.region_infos.values()
        )
        return ClusterStatus(
            now_ms=md.clock_ms,
            nodes=tuple(sorted(states.items())),
            regions=len(md.region_map),
            under_replicated=short,
            gaps=len(md.region_map.gaps()),
            operators_running=len(md.operators),
            last_event_seq=md.event_seq,
            refused_heartbeats=md.refused_heartbeats,
            rules=md.rules,
        )
