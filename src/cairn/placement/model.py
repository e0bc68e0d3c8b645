"""What the placement driver knows: nodes, region reports, placement rules and events.

Everything here is a frozen value: the metadata state machine replaces values rather than
mutating them, so a value handed to a reader (the CLI, the dashboard) never changes under it,
and a snapshot is just the values.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass

from cairn.meta.region import Region


class NodeAdmin(enum.IntEnum):
    """What the operator asked of a node (liveness is tracked apart)."""

    ACTIVE = 0
    DRAINING = 1
    """Everything moves off it, leaders first; it receives nothing new."""
    REMOVED = 2
    """Gone for good: its replicas are rebuilt elsewhere at once."""


class NodeState(enum.IntEnum):
    """A node's state as shown to people: admin intent combined with liveness."""

    UP = 0
    DOWN = 1
    DRAINING = 2
    REMOVED = 3


@dataclass(frozen=True, slots=True)
class NodeStats:
    """What a node says about itself in its heartbeat (shown, not used to place)."""

    capacity_bytes: int = 0
    used_bytes: int = 0
    region_count: int = 0
    leader_count: int = 0


@dataclass(frozen=True, slots=True)
class HostedPeer:
    """A replica a node hosts, as the node knows it (`conf_ver` of its last applied change)."""

    region_id: int
    peer_id: int
    conf_ver: int


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One node of the cluster.

    Invariant: `down` is only set by the driver's tick (silence longer than the down time)
    and cleared by the node's next heartbeat.
    """

    id: int
    peer_address: str
    client_address: str
    labels: tuple[tuple[str, str], ...] = ()
    admin: NodeAdmin = NodeAdmin.ACTIVE
    down: bool = False
    last_heartbeat_ms: int = 0
    joined_ms: int = 0
    stats: NodeStats = NodeStats()
    drained: bool = False
    """Set once a draining node holds nothing (an event was recorded)."""

    @property
    def state(self) -> NodeState:
        """Admin intent first (removed, draining), then liveness."""
        if self.admin is NodeAdmin.REMOVED:
            return NodeState.REMOVED
        if self.down:
            return NodeState.DOWN
        if self.admin is NodeAdmin.DRAINING:
            return NodeState.DRAINING
        return NodeState.UP

    def label(self, key: str) -> str | None:
        """The value of label `key`, if the node has it."""
        return next((v for k, v in self.labels if k == key), None)


@dataclass(frozen=True, slots=True)
class DownPeer:
    """A peer the leader has not heard from for `down_ms`."""

    peer_id: int
    down_ms: int


@dataclass(frozen=True, slots=True)
class RegionReport:
    """A region as its leader describes it in a heartbeat.

    `pending_peers` are peers behind the leader's log (a learner still catching up by
    snapshot is pending and is not promoted); `down_peers` have not answered for a while.
    """

    region: Region
    leader_peer_id: int
    approximate_size: int = 0
    approximate_keys: int = 0
    write_bytes_per_s: int = 0
    pending_peers: tuple[int, ...] = ()
    down_peers: tuple[DownPeer, ...] = ()
    term: int = 0
    """The reporting leader's Raft term: of two reports of one epoch, the older term's comes
    from a deposed leader and is refused (PD does the same), else a late report of the old
    leader would undo a leader transfer in the driver's view and start it again."""

    @property
    def leader_node_id(self) -> int | None:
        """The node of the reporting leader."""
        peer = self.region.peer(self.leader_peer_id)
        return None if peer is None else peer.node_id


@dataclass(frozen=True, slots=True)
class RegionInfo:
    """The driver's record of a region: its latest accepted report, and when.

    `born_ms` is when this range came to be (first report, split or merge); young regions
    are not merged, so a split is not undone at once.
    """

    report: RegionReport
    last_heartbeat_ms: int
    born_ms: int

    @property
    def region(self) -> Region:
        """The region's description (range, epoch, peers)."""
        return self.report.region


@dataclass(frozen=True, slots=True)
class RangeRule:
    """A placement rule for the range keys ``[start, end)``, overriding the default."""

    start: bytes
    end: bytes
    replicas: int
    location_label: str = "zone"
    name: str = ""

    def covers(self, region: Region) -> bool:
        """Whether all of `region` lies inside this rule's range."""
        if region.start < self.start:
            return False
        if not self.end:
            return True
        return bool(region.end) and region.end <= self.end


@dataclass(frozen=True, slots=True)
class PlacementRules:
    """The declared placement: a default replica count and zone label, and range rules.

    Invariant (checked by `validate`): range rules do not overlap.
    """

    replicas: int = 3
    location_label: str = "zone"
    ranges: tuple[RangeRule, ...] = ()

    def validate(self) -> None:
        """Raise `InvalidRulesError` when a count is not positive or two ranges overlap."""
        if self.replicas < 1 or any(r.replicas < 1 for r in self.ranges):
            raise InvalidRulesError("replica counts must be at least 1")
        ordered = sorted(self.ranges, key=lambda r: r.start)
        for rule in ordered:
            if rule.end and rule.start >= rule.end:
                raise InvalidRulesError(f"rule {rule.name!r}: empty range")
        for a, b in itertools.pairwise(ordered):
            if not a.end or a.end > b.start:
                raise InvalidRulesError(f"rules {a.name!r} and {b.name!r} overlap")

    def rule_for(self, region: Region) -> tuple[int, str]:
        """(replicas, location label) for `region`: a range rule covering it, else default."""
        for rule in self.ranges:
            if rule.covers(region):
                return rule.replicas, rule.location_label
        return self.replicas, self.location_label

    def boundaries(self) -> list[bytes]:
        """Every rule boundary (a region straddling one is split there)."""
        found = {b for r in self.ranges for b in (r.start, r.end) if b}
        return sorted(found)


class InvalidRulesError(ValueError):
    """Placement rules that cannot be applied."""


class EventKind(enum.StrEnum):
    """What happened; each event also says why (its `reason`)."""

    NODE_ADDED = "node-added"
    NODE_DOWN = "node-down"
    NODE_UP = "node-up"
    NODE_DRAINING = "node-draining"
    NODE_DRAINED = "node-drained"
    NODE_ACTIVE = "node-active"
    NODE_REMOVED = "node-removed"
    RULES_CHANGED = "rules-changed"
    CONFIG_CHANGED = "config-changed"
    REGION_NEW = "region-new"
    REGION_SPLIT = "region-split"
    REGION_MERGED = "region-merged"
    STALE_PEER = "stale-peer"
    OPERATOR_CREATED = "operator-created"
    OPERATOR_FINISHED = "operator-finished"
    OPERATOR_CANCELLED = "operator-cancelled"
    OPERATOR_TIMED_OUT = "operator-timed-out"


@dataclass(frozen=True, slots=True)
class Event:
    """One recorded decision or observation, numbered in order (`seq`)."""

    seq: int
    time_ms: int
    kind: EventKind
    reason: str
    region_id: int | None = None
    node_id: int | None = None
    operator_id: int | None = None
