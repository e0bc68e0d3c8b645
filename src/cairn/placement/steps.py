"""The steps of an operator: the orders a region leader receives in heartbeat replies.

Every step is idempotent. Each can tell, from the region's latest report, whether it has
already happened (`is_done`), so re-sending one that has happened is harmless and the leader
never needs to remember what it was told: an `AddLearner` for a peer that exists, a
`RemovePeer` for a peer that is gone, a `SplitRegion` or `MergeRegion` stamped with an epoch
the region has left behind are all no-ops at the leader.

`is_done` receives `None` when the region no longer exists in the driver's map (it merged
away). Each step also says how it moves the region's epoch (`conf_changes`,
`version_changes`), so an operator can tell its own changes from someone else's.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cairn.meta.region import PeerRole, RegionEpoch
from cairn.placement.model import RegionReport


@dataclass(frozen=True, slots=True)
class AddLearner:
    """Add peer `peer_id` on node `node_id` as a learner (it catches up by snapshot)."""

    node_id: int
    peer_id: int
    conf_changes = 1
    version_changes = 0

    def is_done(self, report: RegionReport | None) -> bool:
        """Done once the peer is a member, in either role (promotion comes after)."""
        return report is not None and report.region.peer(self.peer_id) is not None

    def nodes(self) -> tuple[int, ...]:
        """The nodes this step touches."""
        return (self.node_id,)


@dataclass(frozen=True, slots=True)
class PromoteLearner:
    """Make learner `peer_id` (on `node_id`) a voter; sent only once it has caught up."""

    node_id: int
    peer_id: int
    conf_changes = 1
    version_changes = 0

    def is_done(self, report: RegionReport | None) -> bool:
        """Done once the peer votes."""
        peer = None if report is None else report.region.peer(self.peer_id)
        return peer is not None and peer.role is PeerRole.VOTER

    def nodes(self) -> tuple[int, ...]:
        """The nodes this step touches."""
        return (self.node_id,)


@dataclass(frozen=True, slots=True)
class RemovePeer:
    """Remove peer `peer_id` (on `node_id`) from the region."""

    node_id: int
    peer_id: int
    conf_changes = 1
    version_changes = 0

    def is_done(self, report: RegionReport | None) -> bool:
        """Done once the peer is no member."""
        return report is not None and report.region.peer(self.peer_id) is None

    def nodes(self) -> tuple[int, ...]:
        """The nodes this step touches."""
        return (self.node_id,)


@dataclass(frozen=True, slots=True)
class TransferLeader:
    """Hand leadership to peer `peer_id` on node `node_id`."""

    node_id: int
    peer_id: int
    conf_changes = 0
    version_changes = 0

    def is_done(self, report: RegionReport | None) -> bool:
        """Done once that peer reports as leader."""
        return report is not None and report.leader_peer_id == self.peer_id

    def nodes(self) -> tuple[int, ...]:
        """The nodes this step touches."""
        return (self.node_id,)


class SplitPolicy(enum.IntEnum):
    """How the leader chooses the split key (only the leader sees the data)."""

    KEY = 0
    """At `split_key` exactly (a rule boundary)."""
    HALF_BY_SIZE = 1
    """Where about half the region's bytes lie on each side."""
    BY_LOAD = 2
    """Where about half the region's recent writes fall on each side."""


@dataclass(frozen=True, slots=True)
class SplitRegion:
    """Split the region, which must still be at `epoch`, into itself and `new_region_id`.

    The new region's peers get `new_peer_ids`, in the order of the region's peers. With
    `slot_aligned`, the leader picks a key between two slots (the region spans several).
    """

    epoch: RegionEpoch
    policy: SplitPolicy
    new_region_id: int
    new_peer_ids: tuple[int, ...]
    split_key: bytes = b""
    slot_aligned: bool = True
    conf_changes = 0
    version_changes = 1

    def is_done(self, report: RegionReport | None) -> bool:
        """Done once the region's version has passed the one the split was ordered at."""
        return report is not None and report.region.epoch.version > self.epoch.version

    def nodes(self) -> tuple[int, ...]:
        """A split moves nothing between nodes."""
        return ()


@dataclass(frozen=True, slots=True)
class MergeRegion:
    """Merge region `source_id` (this operator's region) into its neighbour `target_id`.

    Both must still be at the epochs given and have peers on the same nodes.
    """

    source_id: int
    source_epoch: RegionEpoch
    target_id: int
    target_epoch: RegionEpoch
    conf_changes = 0
    version_changes = 1

    def is_done(self, report: RegionReport | None) -> bool:
        """Done once the source region is gone."""
        return report is None

    def nodes(self) -> tuple[int, ...]:
        """A merge moves nothing between nodes."""
        return ()


Step = AddLearner | PromoteLearner | RemovePeer | TransferLeader | SplitRegion | MergeRegion
"""Any step of an operator."""


def describe_step(step: Step) -> str:
    """A one-line rendering for events and the CLI (`add-learner peer 7 on node 3`)."""
    match step:
        case AddLearner(node_id=n, peer_id=p):
            return f"add-learner peer {p} on node {n}"
        case PromoteLearner(node_id=n, peer_id=p):
            return f"promote peer {p} on node {n}"
        case RemovePeer(node_id=n, peer_id=p):
            return f"remove peer {p} on node {n}"
        case TransferLeader(node_id=n, peer_id=p):
            return f"transfer-leader to peer {p} on node {n}"
        case SplitRegion(policy=policy, new_region_id=new_id, split_key=key):
            at = f" at {key!r}" if policy is SplitPolicy.KEY else ""
            return f"split ({policy.name.lower()}){at} into new region {new_id}"
        case MergeRegion(source_id=s, target_id=t):
            return f"merge region {s} into region {t}"
