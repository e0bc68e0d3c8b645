"""Commands of the placement metadata state machine, their results, and their wire form.

Every change to the metadata is one of these commands, proposed to the placement group's
Raft log as `encode_command(c)` and applied on every replica in log order by
`ClusterMetadata.apply`. Time enters only as the `now_ms` a command carries (stamped by the
proposer), never from a clock, so every replica computes the same state. Heartbeats and the
periodic `Tick` that runs the reconcile loops are commands too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cairn.meta.region import Peer, PeerRole, Region, RegionEpoch
from cairn.placement.codec import Codec, DecodeError
from cairn.placement.config import PlacementConfig
from cairn.placement.model import (
    DownPeer,
    HostedPeer,
    NodeAdmin,
    NodeStats,
    PlacementRules,
    RangeRule,
    RegionReport,
)
from cairn.placement.operators import Operator, OperatorKind, OperatorStatus
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
from cairn.placement.tenants import RegionUsage, TenantSpec, TenantState, TenantUsage
from cairn.placement.tso import SaveTsoBound


@dataclass(frozen=True, slots=True)
class AddNode:
    """Register node `node_id` (a node joining; registering again updates addresses)."""

    node_id: int
    peer_address: str
    client_address: str
    labels: tuple[tuple[str, str], ...]
    now_ms: int


@dataclass(frozen=True, slots=True)
class NodeHeartbeat:
    """A node is alive; its stats and the replicas it hosts (to find stale ones)."""

    node_id: int
    now_ms: int
    stats: NodeStats = NodeStats()  # noqa: RUF009 (frozen)
    hosted: tuple[HostedPeer, ...] = ()


@dataclass(frozen=True, slots=True)
class RegionHeartbeat:
    """A region's leader reports the region."""

    report: RegionReport
    now_ms: int


@dataclass(frozen=True, slots=True)
class SetNodeAdmin:
    """Drain, remove or re-activate a node."""

    node_id: int
    admin: NodeAdmin
    now_ms: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SetRules:
    """Declare the desired placement."""

    rules: PlacementRules
    now_ms: int


@dataclass(frozen=True, slots=True)
class SetConfig:
    """Change the limits and thresholds."""

    config: PlacementConfig
    now_ms: int


@dataclass(frozen=True, slots=True)
class AllocIds:
    """Reserve `count` cluster-unique ids (for region and peer ids made outside the driver)."""

    count: int


class RequestKind(enum.StrEnum):
    """What an operator request asks of one region (`RequestOperator`)."""

    SPLIT = "split"
    MERGE = "merge"
    MOVE = "move"
    TRANSFER_LEADER = "transfer-leader"


class SplitChoice(enum.IntEnum):
    """Where a requested split without a slot cuts the region."""

    MIDDLE_SLOT = 0
    """At the slot boundary halfway through the region's slots (works on an empty region)."""
    HALF_BY_SIZE = 1
    """Where the leader finds half the keys on each side (nothing happens under two keys)."""


@dataclass(frozen=True, slots=True)
class RequestOperator:
    """Someone (an operator, a test) asks for one operator on region `region_id`.

    SPLIT: at `split_slot`'s lower boundary when it is not -1, else as `split_choice`
    says. MERGE: into `target_region_id` (0: the right neighbour, else the left one),
    moving the region's replicas onto the target's nodes first when they differ. MOVE:
    the replica on `from_node` to `to_node`. TRANSFER_LEADER: to the voter on `to_node`.
    Validated by the driver (`cairn.placement.requests`); the reply says why not.
    """

    kind: RequestKind
    region_id: int
    now_ms: int
    from_node: int = 0
    to_node: int = 0
    target_region_id: int = 0
    split_slot: int = -1
    split_choice: SplitChoice = SplitChoice.MIDDLE_SLOT
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Tick:
    """Run the reconcile loops: liveness, operator timeouts, checkers and schedulers."""

    now_ms: int


@dataclass(frozen=True, slots=True)
class SetAclUser:
    """Create or replace ACL user `name` with `rules` (its canonical description,
    `cairn.store.acl.describe`), if the user is still as the proposer saw it:
    `expected` is the description it changed ("" when it created the user). A user
    changed meanwhile on another node is refused, and ACL SETUSER says to retry."""

    name: str
    rules: str
    expected: str
    now_ms: int


@dataclass(frozen=True, slots=True)
class DelAclUsers:
    """Delete the ACL users `names` (those that exist)."""

    names: tuple[str, ...]
    now_ms: int


@dataclass(frozen=True, slots=True)
class SetFunctions:
    """Replace the cluster's FUNCTION libraries with `libraries` ((name, code) pairs), if
    the table is still at `base` (its version when the proposer computed the change: see
    `cairn.store.scripting.functions`); else refused, and the client told to retry."""

    base: int
    libraries: tuple[tuple[str, bytes], ...]
    now_ms: int


@dataclass(frozen=True, slots=True)
class SetTenant:
    """Create tenant `spec` and its ACL user `spec.name` with `rules` (canonical, as
    `SetAclUser`'s), both or neither (see `cairn.placement.tenants`)."""

    spec: TenantSpec
    rules: str
    now_ms: int


@dataclass(frozen=True, slots=True)
class DelTenant:
    """Delete tenant `name` and its ACL user."""

    name: str
    now_ms: int


@dataclass(frozen=True, slots=True)
class ReportTenantUsage:
    """Node `node_id`'s count of each tenant's usage in the regions it leads; answered
    with every tenant's cluster-wide usage (`TenantTable`)."""

    node_id: int
    regions: tuple[RegionUsage, ...]
    now_ms: int


Command = (
    AddNode
    | NodeHeartbeat
    | RegionHeartbeat
    | SetNodeAdmin
    | SetRules
    | SetConfig
    | AllocIds
    | Tick
    | SetAclUser
    | DelAclUsers
    | SetFunctions
    | SetTenant
    | DelTenant
    | ReportTenantUsage
    | RequestOperator
)
"""Any command of the metadata state machine."""


@dataclass(frozen=True, slots=True)
class Ack:
    """The result of a command that only changes state: whether it did, and why not."""

    ok: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RegionHeartbeatReply:
    """What goes back to a region leader: the step to execute, if any.

    `accepted` is false when the report's epoch is stale (the driver knows a newer one) or
    it comes from a deposed leader (an older term of the same epoch).
    """

    accepted: bool
    step: Step | None = None
    operator_id: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class NodeHeartbeatReply:
    """What goes back to a node: hosted replicas it must destroy (removed from their
    region), and the regions it leads that an operator is working on (`wanted`): their
    leaders report them every round until the operator ends, while the other regions are
    reported only when they change."""

    known: bool
    stale_peers: tuple[HostedPeer, ...] = ()
    wanted: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class IdRange:
    """Ids ``first .. first + count - 1`` are reserved."""

    first: int
    count: int


@dataclass(frozen=True, slots=True)
class TickResult:
    """The operators a tick started."""

    operators: tuple[Operator, ...]


@dataclass(frozen=True, slots=True)
class AclDeleted:
    """How many ACL users a `DelAclUsers` deleted."""

    count: int


@dataclass(frozen=True, slots=True)
class TenantTable:
    """Every tenant with its cluster-wide usage, as of the latest reports."""

    tenants: tuple[TenantState, ...]


@dataclass(frozen=True, slots=True)
class RequestReply:
    """The answer to a `RequestOperator`: the operator started, or why none was."""

    ok: bool
    reason: str = ""
    operator_id: int = 0
    description: str = ""


Result = (
    Ack
    | RegionHeartbeatReply
    | NodeHeartbeatReply
    | IdRange
    | TickResult
    | AclDeleted
    | TenantTable
    | RequestReply
)
"""Any result of `ClusterMetadata.apply`."""

# Codes are the wire format: append only.
CODEC_TABLE: dict[int, type] = {
    1: RegionEpoch,
    2: PeerRole,
    3: Peer,
    4: Region,
    5: NodeAdmin,
    6: NodeStats,
    7: HostedPeer,
    8: DownPeer,
    9: RegionReport,
    10: RangeRule,
    11: PlacementRules,
    12: PlacementConfig,
    13: SplitPolicy,
    14: AddLearner,
    15: PromoteLearner,
    16: RemovePeer,
    17: TransferLeader,
    18: SplitRegion,
    19: MergeRegion,
    20: OperatorKind,
    21: OperatorStatus,
    22: Operator,
    23: RequestKind,
    24: SplitChoice,
    30: AddNode,
    31: NodeHeartbeat,
    32: RegionHeartbeat,
    33: SetNodeAdmin,
    34: SetRules,
    35: SetConfig,
    36: AllocIds,
    37: Tick,
    38: RequestOperator,
    40: Ack,
    41: RegionHeartbeatReply,
    42: NodeHeartbeatReply,
    43: IdRange,
    44: TickResult,
    45: SetAclUser,
    46: DelAclUsers,
    47: AclDeleted,
    70: TenantSpec,
    71: TenantUsage,
    72: RegionUsage,
    73: TenantState,
    74: SetTenant,
    75: DelTenant,
    76: ReportTenantUsage,
    77: TenantTable,
    78: SetFunctions,
    48: RequestReply,
    79: SaveTsoBound,
}

CODEC = Codec(CODEC_TABLE, checked=True)
"""The codec of every placement value that travels or is stored (extended by the snapshot)."""

_COMMANDS = (
    AddNode,
    NodeHeartbeat,
    RegionHeartbeat,
    SetNodeAdmin,
    SetRules,
    SetConfig,
    SetAclUser,
    DelAclUsers,
    SetFunctions,
    SetTenant,
    DelTenant,
    ReportTenantUsage,
    RequestOperator,
)
_COMMANDS_ALL = (*_COMMANDS, AllocIds, Tick)
_STEPS = (AddLearner, PromoteLearner, RemovePeer, TransferLeader, SplitRegion, MergeRegion)
_RESULTS = (
    Ack,
    RegionHeartbeatReply,
    NodeHeartbeatReply,
    IdRange,
    TickResult,
    AclDeleted,
    TenantTable,
    RequestReply,
)


def encode_command(command: Command) -> bytes:
    """`command` as the bytes of a Raft proposal."""
    return CODEC.encode(command)


def decode_command(data: bytes) -> Command:
    """The command `encode_command` wrote; `DecodeError` for anything else."""
    value = CODEC.decode(data)
    if not isinstance(value, _COMMANDS_ALL):
        raise DecodeError(f"not a placement command: {type(value).__name__}")
    return value


def encode_step(step: Step) -> bytes:
    """`step` as bytes for a heartbeat reply."""
    return CODEC.encode(step)


def decode_step(data: bytes) -> Step:
    """The step `encode_step` wrote; `DecodeError` for anything else."""
    value = CODEC.decode(data)
    if not isinstance(value, _STEPS):
        raise DecodeError(f"not an operator step: {type(value).__name__}")
    return value


def encode_result(result: Result) -> bytes:
    """`result` as bytes (for a proposer on another node than the applier)."""
    return CODEC.encode(result)


def decode_result(data: bytes) -> Result:
    """The result `encode_result` wrote; `DecodeError` for anything else."""
    value = CODEC.decode(data)
    if not isinstance(value, _RESULTS):
        raise DecodeError(f"not a placement result: {type(value).__name__}")
    return value
