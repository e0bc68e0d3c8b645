"""Values that cross the Raft core's boundary: messages, entries, hard state, snapshots.

Every value is a frozen, slotted dataclass so that the core can hand the same object to
the driver, the simulator and the tests without defensive copies. Names follow the Raft
paper and etcd-raft (`term`, `index`, `commit`, `reject_hint`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import msgpack

NodeId = int
"""A node's identity inside one Raft group; 0 means "none"."""

NONE: NodeId = 0


class MessageType(enum.Enum):
    """The kinds of message the core sends and receives.

    `HUP`, `BEAT`, `PROP`, `READ_INDEX` (when sent by the local node to itself),
    `TRANSFER_LEADER`, `CHECK_QUORUM`, `UNREACHABLE` and `SNAP_STATUS` are local: they
    never travel on the network (see `is_local`).
    """

    HUP = "MsgHup"
    BEAT = "MsgBeat"
    PROP = "MsgProp"
    APP = "MsgApp"
    APP_RESP = "MsgAppResp"
    VOTE = "MsgVote"
    VOTE_RESP = "MsgVoteResp"
    PRE_VOTE = "MsgPreVote"
    PRE_VOTE_RESP = "MsgPreVoteResp"
    SNAP = "MsgSnap"
    HEARTBEAT = "MsgHeartbeat"
    HEARTBEAT_RESP = "MsgHeartbeatResp"
    UNREACHABLE = "MsgUnreachable"
    SNAP_STATUS = "MsgSnapStatus"
    CHECK_QUORUM = "MsgCheckQuorum"
    TRANSFER_LEADER = "MsgTransferLeader"
    TIMEOUT_NOW = "MsgTimeoutNow"
    READ_INDEX = "MsgReadIndex"
    READ_INDEX_RESP = "MsgReadIndexResp"


LOCAL_MESSAGES = frozenset(
    {
        MessageType.HUP,
        MessageType.BEAT,
        MessageType.UNREACHABLE,
        MessageType.SNAP_STATUS,
        MessageType.CHECK_QUORUM,
    }
)

RESPONSE_MESSAGES = frozenset(
    {
        MessageType.APP_RESP,
        MessageType.VOTE_RESP,
        MessageType.PRE_VOTE_RESP,
        MessageType.HEARTBEAT_RESP,
        MessageType.UNREACHABLE,
        MessageType.READ_INDEX_RESP,
    }
)


def is_local(t: MessageType) -> bool:
    """Whether a message of this type is generated and consumed on one node only."""
    return t in LOCAL_MESSAGES


def is_response(t: MessageType) -> bool:
    """Whether a message of this type answers another."""
    return t in RESPONSE_MESSAGES


def vote_resp_type(t: MessageType) -> MessageType:
    """The response type matching a vote or pre-vote request."""
    if t is MessageType.VOTE:
        return MessageType.VOTE_RESP
    if t is MessageType.PRE_VOTE:
        return MessageType.PRE_VOTE_RESP
    raise ValueError(f"not a vote message: {t}")


class EntryType(enum.Enum):
    """What an entry's data means to the layer above."""

    NORMAL = "EntryNormal"
    CONF_CHANGE = "EntryConfChange"


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. Invariant: `index` > 0 and `term` > 0 for every stored entry."""

    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    """State that must be on stable storage before messages that depend on it are sent.

    A vote granted or a term seen but not persisted could be forgotten by a crash, letting
    the node vote twice in one term (Raft paper, Figure 2, "Persistent state").
    """

    term: int = 0
    vote: NodeId = NONE
    commit: int = 0

    def is_empty(self) -> bool:
        """Whether this equals the zero state (nothing to persist)."""
        return self.term == 0 and self.vote == NONE and self.commit == 0


EMPTY_HARD_STATE = HardState()


class ConfChangeType(enum.Enum):
    """One step of a membership change."""

    ADD_NODE = "AddNode"
    REMOVE_NODE = "RemoveNode"
    ADD_LEARNER = "AddLearner"


class ConfChangeTransition(enum.Enum):
    """How a change is carried out: simple (one voter at a time) or by joint consensus.

    `AUTO` uses the simple protocol when at most one voter changes and joint consensus
    otherwise, leaving the joint state automatically. `JOINT_IMPLICIT` enters joint
    consensus and leaves automatically; `JOINT_EXPLICIT` waits for an empty change.
    """

    AUTO = "Auto"
    JOINT_IMPLICIT = "JointImplicit"
    JOINT_EXPLICIT = "JointExplicit"


@dataclass(frozen=True, slots=True)
class ConfChangeSingle:
    """Add or remove one node, or add it as a learner."""

    type: ConfChangeType
    node_id: NodeId


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A membership change carried by an `EntryType.CONF_CHANGE` entry.

    An empty `changes` tuple means "leave the joint configuration".
    """

    changes: tuple[ConfChangeSingle, ...] = ()
    transition: ConfChangeTransition = ConfChangeTransition.AUTO
    context: bytes = b""

    def leave_joint(self) -> bool:
        """Whether this is the empty change that leaves a joint configuration."""
        return not self.changes


@dataclass(frozen=True, slots=True)
class ConfState:
    """The membership of a group at some index.

    `voters_outgoing` is non-empty only in a joint configuration; `learners_next` holds
    voters being demoted to learners that must stay voters until the joint state is left.
    """

    voters: tuple[NodeId, ...] = ()
    learners: tuple[NodeId, ...] = ()
    voters_outgoing: tuple[NodeId, ...] = ()
    learners_next: tuple[NodeId, ...] = ()
    auto_leave: bool = False


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    """Where a snapshot stands in the log and the membership it carries."""

    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A state machine image standing for every entry up to `metadata.index`."""

    data: bytes = b""
    metadata: SnapshotMetadata = field(default_factory=SnapshotMetadata)

    def is_empty(self) -> bool:
        """Whether this is the zero snapshot."""
        return self.metadata.index == 0


EMPTY_SNAPSHOT = Snapshot()


@dataclass(frozen=True, slots=True)
class Message:
    """A message between Raft nodes (or from the application to its own node).

    `index`/`log_term` name the entry preceding `entries` in an append (or the candidate's
    last entry in a vote); `reject_hint`/`hint_term` carry the follower's conflict hint
    for fast backtracking; `context` carries a ReadIndex request's id or a campaign reason;
    `lease_tick` is the leader's tick count when it sent a heartbeat, echoed in the
    response, from which the leader derives its lease.
    """

    type: MessageType
    to: NodeId = NONE
    frm: NodeId = NONE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    hint_term: int = 0
    context: bytes = b""
    lease_tick: int = 0


class StateRole(enum.Enum):
    """A node's role in its current term."""

    FOLLOWER = "StateFollower"
    CANDIDATE = "StateCandidate"
    LEADER = "StateLeader"
    PRE_CANDIDATE = "StatePreCandidate"


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state useful to the application (logging, routing); never persisted."""

    lead: NodeId = NONE
    role: StateRole = StateRole.FOLLOWER


class ReadOnlyOption(enum.Enum):
    """How a leader confirms it may serve a linearizable read.

    `SAFE` (ReadIndex) sends a heartbeat round and waits for a quorum; `LEASE_BASED`
    trusts the leader lease that check-quorum maintains: valid for
    `election_tick - max_clock_drift_ticks` ticks after a quorum last answered.
    """

    SAFE = "Safe"
    LEASE_BASED = "LeaseBased"


@dataclass(frozen=True, slots=True)
class ReadState:
    """A read request that may be served once `applied >= index`."""

    index: int
    request_ctx: bytes


def encode_conf_change(cc: ConfChange) -> bytes:
    """The bytes carried by an `EntryType.CONF_CHANGE` entry."""
    changes = [[c.type.value, c.node_id] for c in cc.changes]
    data: bytes = msgpack.packb([changes, cc.transition.value, cc.context])
    return data


def decode_conf_change(data: bytes) -> ConfChange:
    """The inverse of `encode_conf_change`."""
    changes, transition, context = msgpack.unpackb(data)
    return ConfChange(
        changes=tuple(ConfChangeSingle(ConfChangeType(t), n) for t, n in changes),
        transition=ConfChangeTransition(transition),
        context=context,
    )
