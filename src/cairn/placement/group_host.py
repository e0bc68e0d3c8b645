"""The placement group as a hosted region: its Raft group runs on a `RegionHost` of its own.

Theory of operation. A placement member's replica is a hosted `Replica` like any region's:
the same drain, the same envelopes on the wire (`ENVELOPES`, `ENVELOPE_CHUNK` for a large
snapshot), the same `HostStore` contract for its log. It is not one of the node's data
regions, though: it lives in a second `RegionHost` on each member node, over a store of its
own (the real node: the LMDB environment in `<data_dir>/placement`; the simulator: a node
disk of its own), holding exactly one region, `PLACEMENT_REGION_ID`.

Why a second host rather than a reserved region in the node's host: everything that walks
a node's regions (key routing, MOVED, CLUSTER SLOTS, INFO, the placement agent's region
heartbeats, the balance and split/merge schedulers, the reclaimer, the leader hand-over on
stop) would have to be taught to skip it, and a miss would be a real bug (the driver
moving its own group, a slot routed to it). In a host of its own it is invisible to all of
them by construction. The two hosts share the node's clock and peer links; the envelope
transport hands envelopes of `PLACEMENT_REGION_ID` to the placement host and nothing else
to it (`cairn.runtime.envelope_codec`, `cairn.sim.region_pd`), and no host creates a peer
of that region from a message (`RegionHost._maybe_create`).

The region: peer ids are the members' node ids (a peer id is unique within its host, and
this keeps the Raft state of a group founded before it was hosted valid as it is); the
range is the whole keyspace, which means nothing, as its machine holds no key
(`KeylessMachine`). The host never quiesces it (`hibernate` off): the group has a leader
loop ticking anyway, and a sleeping placement leader would stop serving. Nothing ever
splits, merges or changes its membership.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from cairn.env.host_store import RegionRecord
from cairn.meta.region import PLACEMENT_REGION_ID, Peer, Region, RegionEpoch
from cairn.raft.types import NodeId
from cairn.shard.host import HostConfig, RegionHost
from cairn.shard.replica import ReplicaConfig


class VolatileMachine(Protocol):
    """A state machine rebuilt from snapshots and the log (`StateMachine`)."""

    @property
    def applied_index(self) -> int:
        """See `StateMachine.applied_index`."""
        ...

    def apply(self, index: int, data: bytes) -> object:
        """See `StateMachine.apply`."""
        ...

    def snapshot(self) -> bytes:
        """See `StateMachine.snapshot`."""
        ...

    def restore(self, data: bytes) -> None:
        """See `StateMachine.restore`."""
        ...


class KeylessMachine:
    """A machine that owns no Redis key (the placement metadata) as the `RangeMachine` a
    region host drives: every command applies (it touches no key outside the range), and
    it is never cut or grown (its region never splits or merges)."""

    def __init__(self, machine: VolatileMachine) -> None:
        self.machine = machine

    @property
    def applied_index(self) -> int:
        """See `StateMachine.applied_index`."""
        return self.machine.applied_index

    def apply(self, index: int, data: bytes) -> object:
        """See `StateMachine.apply`."""
        return self.machine.apply(index, data)

    def snapshot(self) -> bytes:
        """See `StateMachine.snapshot`."""
        return self.machine.snapshot()

    def restore(self, data: bytes) -> None:
        """See `StateMachine.restore`."""
        self.machine.restore(data)

    def keys_of(self, data: bytes) -> Sequence[bytes]:
        """No key: the commands are metadata."""
        return ()

    def split_off(self, moves: Callable[[bytes], bool], applied: int) -> bytes:
        """Never called: the placement region does not split."""
        raise ValueError("the placement group's region never splits")

    def absorb(self, image: bytes) -> None:
        """Never called: the placement region does not merge."""
        raise ValueError("the placement group's region never merges")


HostFactory = Callable[[KeylessMachine], RegionHost]
"""Builds a member's placement host (its clock, links and store), whose every peer runs
over the given machine; the host holds the placement region, or nothing yet."""


def placement_region(members: Sequence[NodeId]) -> Region:
    """The placement group's region: one voter per member, its peer id the node id."""
    peers = tuple(Peer(node, node) for node in sorted(members))
    return Region(PLACEMENT_REGION_ID, epoch=RegionEpoch(1, 1), peers=peers)


def placement_host_config(replica: ReplicaConfig) -> HostConfig:
    """A placement host's config: never quiescent, catching up as the replica says."""
    return HostConfig(
        replica=replica, hibernate=False, max_catch_up_ticks=replica.max_catch_up_ticks
    )


def machine_for_region(machine: KeylessMachine) -> Callable[[RegionRecord], KeylessMachine]:
    """The `machine_for` of a placement host: `machine` for the placement region, and a
    `ValueError` for any other (such a record means the store is not a placement store)."""

    def make(record: RegionRecord) -> KeylessMachine:
        if record.region_id != PLACEMENT_REGION_ID:
            raise ValueError(
                f"a placement store holds region {record.region_id}, not the placement's"
            )
        return machine

    return make
