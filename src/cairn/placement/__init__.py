"""The placement driver: cluster metadata and the reconcile loops that keep regions placed.

Desired state is declared (`PlacementRules`), nodes and region leaders report observed
state in heartbeats, and checkers and schedulers (`scheduler`) compare the two and start
idempotent `Operator`s whose steps the region leaders execute, returned in heartbeat
replies (TiKV's PD, with Kubernetes-style reconcile loops). All of it is a deterministic
state machine (`ClusterMetadata`) driven by commands, so it can live in its own Raft group;
`PlacementDriver` is the typed facade. See docs/placement.md.
"""

from cairn.placement.commands import (
    Command,
    Result,
    decode_command,
    decode_result,
    decode_step,
    encode_command,
    encode_result,
    encode_step,
)
from cairn.placement.config import PlacementConfig
from cairn.placement.driver import ClusterStatus, NodeRow, PlacementDriver, RegionRow
from cairn.placement.metadata import ClusterMetadata
from cairn.placement.model import (
    EventKind,
    NodeAdmin,
    NodeState,
    PlacementRules,
    RangeRule,
    RegionReport,
)
from cairn.placement.operators import Operator, OperatorKind, OperatorStatus
from cairn.placement.steps import Step

__all__ = [
    "ClusterMetadata",
    "ClusterStatus",
    "Command",
    "EventKind",
    "NodeAdmin",
    "NodeRow",
    "NodeState",
    "Operator",
    "OperatorKind",
    "OperatorStatus",
    "PlacementConfig",
    "PlacementDriver",
    "PlacementRules",
    "RangeRule",
    "RegionReport",
    "RegionRow",
    "Result",
    "Step",
    "decode_command",
    "decode_result",
    "decode_step",
    "encode_command",
    "encode_result",
    "encode_step",
]
