"""`Envelope`: one message between two nodes' region hosts, tagged with its region.

Inside a region, Raft's ids are peer ids (cluster-unique, see `cairn.meta.region`); an
envelope adds what the receiving host needs to route and vet the message before any Raft
group sees it (TiKV's `RaftMessage`): the region id, the sending and receiving peers with
their nodes, and the sender's region epoch and range, so a host can tell a message from a
stale peer, or one for a region it has not created yet, apart from normal traffic.

Besides Raft messages a host sends a few of its own, per region or per node:
`QUIESCE` (the leader of an idle region asks its followers to stop ticking), `WAKE` (a
follower that could not quiesce asks the leader to resume), and `LIVENESS` (one per pair
of nodes per interval, whatever the number of regions: how a host learns that another is
alive, which is what lets the followers of a quiescent region do without heartbeats).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from cairn.meta.region import Peer, RegionEpoch
from cairn.raft.types import Message, NodeId


class EnvelopeKind(enum.Enum):
    """What an envelope carries."""

    RAFT = "raft"
    QUIESCE = "quiesce"
    WAKE = "wake"
    LIVENESS = "liveness"


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message from `from_peer` to `to_peer` of region `region_id`.

    `epoch`, `start` and `end` describe the region as the sender knows it. For `QUIESCE`,
    `term` and `commit` are the leader's: a follower quiesces only if its own match.
    A `LIVENESS` envelope has region 0 and peers on the two nodes with id 0.
    """

    kind: EnvelopeKind
    region_id: int
    from_peer: Peer
    to_peer: Peer
    epoch: RegionEpoch = field(default_factory=RegionEpoch)
    start: bytes = b""
    end: bytes = b""
    message: Message | None = None
    term: int = 0
    commit: int = 0

    @property
    def from_node(self) -> NodeId:
        """The sending node."""
        return self.from_peer.node_id

    def describe(self) -> str:
        """A stable one-line rendering for traces."""
        head = f"r{self.region_id} {self.from_peer.id}@n{self.from_peer.node_id}"
        head += f"->{self.to_peer.id}@n{self.to_peer.node_id} {self.kind.value}"
        m = self.message
        if m is None:
            return f"{head} t{self.term} c{self.commit}"
        return f"{head} {m.type.value} t{m.term} i{m.index} n{len(m.entries)} c{m.commit}"


def liveness(frm: NodeId, to: NodeId) -> Envelope:
    """The node-level "I am alive" from `frm` to `to`."""
    return Envelope(EnvelopeKind.LIVENESS, 0, Peer(0, frm), Peer(0, to))
