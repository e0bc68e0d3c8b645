"""A placement group of three members on the simulated network, and nodes that talk to it.

The members are real `PlacementMember`s (the metadata's Raft replicas, each hosted in a
placement host over its own `SimNodeDisk`); "nodes" are plain ids whose replies are
collected, so tests can send exactly the requests they mean and read exactly what came
back.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cairn.env import TimerHandle
from cairn.placement import PlacementConfig, PlacementRules
from cairn.placement.commands import Command
from cairn.placement.service import (
    PlacementMember,
    PlacementReply,
    PlacementRequest,
    ServiceSettings,
)
from cairn.raft.config import Config
from cairn.raft.types import NodeId
from cairn.shard.envelope import Envelope
from cairn.shard.replica import ReplicaConfig
from cairn.sim.env import SimClock
from cairn.sim.loop import EventLoop
from cairn.sim.network import NetworkFaults
from cairn.sim.node_disk import SimNodeDisk
from cairn.sim.region_pd import PlacementNetwork, placement_host_for

MS = 1_000_000
MEMBERS = (1, 2, 3)
CONFIG = PlacementConfig(
    down_after_ms=1200,
    disconnected_after_ms=600,
    operator_timeout_ms=3000,
    snapshot_operator_timeout_ms=6000,
)
REPLICA = ReplicaConfig(
    Config(id=1, election_tick=10, heartbeat_tick=2, check_quorum=True, pre_vote=True),
    tick_interval=0.01,
    snapshot_threshold=20,
)


class OffsetClock:
    """A node's clock whose origin is `offset` seconds away from the others' (processes'
    monotonic clocks share no origin)."""

    def __init__(self, inner: SimClock, offset: float) -> None:
        self.inner = inner
        self.offset = offset

    def now(self) -> float:
        return self.inner.now() + self.offset

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return self.inner.call_later(delay, callback)


@dataclass
class Group:
    """Three members, their disks, and the replies each node received."""

    loop: EventLoop
    network: PlacementNetwork
    offsets: dict[NodeId, float]
    disks: dict[NodeId, SimNodeDisk] = field(default_factory=dict)
    members: dict[NodeId, PlacementMember] = field(default_factory=dict)
    up: dict[NodeId, int] = field(default_factory=dict)
    """Node id -> its incarnation while up."""
    replies: dict[NodeId, list[PlacementReply]] = field(default_factory=dict)
    seq: int = 0

    def start(self, node_id: NodeId) -> PlacementMember:
        incarnation = self.up.get(node_id, 0) + 1
        self.up[node_id] = incarnation

        def alive() -> bool:
            return self.up.get(node_id) == incarnation

        clock = OffsetClock(SimClock(self.loop, node_id, 1.0, alive), self.offsets.get(node_id, 0))
        disk = self.disks.setdefault(node_id, SimNodeDisk(random.Random(node_id)))
        host_for = placement_host_for(
            node_id, clock, self.network, disk, random.Random(node_id * 7), REPLICA
        )
        member = PlacementMember(
            host_for,
            MEMBERS,
            lambda to, reply: self.network.send_placement(node_id, to, reply),
            config=CONFIG,
            rules=PlacementRules(replicas=3),
            first_id=100,
            settings=ServiceSettings(),
        )
        self.members[node_id] = member
        self.network.register(node_id, self._handler(node_id, member))
        return member

    def _handler(
        self, node_id: NodeId, member: PlacementMember
    ) -> Callable[[Sequence[object]], None]:
        def handle(msgs: Sequence[object]) -> None:
            for msg in msgs:
                if isinstance(msg, PlacementReply):
                    self.replies.setdefault(node_id, []).append(msg)
                elif isinstance(msg, PlacementRequest):
                    member.on_request(msg)
                elif isinstance(msg, Envelope):
                    member.host.on_envelopes((msg,))

        return handle

    def crash(self, node_id: NodeId) -> None:
        self.members.pop(node_id).stop()
        self.up.pop(node_id)
        self.network.register(node_id, None)
        self.disks[node_id].crash()

    def register_client(self, node_id: NodeId) -> None:
        """A node that hosts no member but receives replies."""

        def handle(msgs: Sequence[object]) -> None:
            for msg in msgs:
                if isinstance(msg, PlacementReply):
                    self.replies.setdefault(node_id, []).append(msg)

        self.network.register(node_id, handle)

    def run(self, seconds: float) -> None:
        deadline = self.loop.now + int(seconds * 1000) * MS
        while self.loop.now < deadline and self.loop.run_one():
            pass

    def leader(self) -> PlacementMember | None:
        serving = [m for _, m in sorted(self.members.items()) if m.serving()]
        return max(serving, key=lambda m: m.replica.term) if serving else None

    def wait_leader(self, within: float = 3.0) -> PlacementMember:
        for _ in range(int(within / 0.05)):
            leader = self.leader()
            if leader is not None:
                return leader
            self.run(0.05)
        raise AssertionError("no placement leader")

    def request(
        self, frm: NodeId, to: NodeId, commands: Sequence[Command], settle: float = 0.1
    ) -> PlacementReply:
        """Send `commands` from `frm` to member `to`; the reply (after `settle` seconds)."""
        self.seq += 1
        seq = self.seq
        self.network.send_placement(frm, to, PlacementRequest(frm, seq, tuple(commands)))
        self.run(settle)
        found = [r for r in self.replies.get(frm, []) if r.request_id == seq]
        assert found, f"no reply to request {seq}"
        return found[0]

    def ask_leader(self, frm: NodeId, commands: Sequence[Command]) -> PlacementReply:
        """`commands` served by whichever member leads now."""
        leader = self.wait_leader()
        reply = self.request(frm, leader.node_id, commands)
        assert reply.served, reply
        return reply


def new_group(offsets: dict[NodeId, float] | None = None, seed: int = 0) -> Group:
    """Members 1..3 started on a perfect network; nodes 4 and 5 receive replies."""
    loop = EventLoop()
    network = PlacementNetwork(loop, random.Random(seed), NetworkFaults())
    group = Group(loop, network, offsets or {})
    for node_id in MEMBERS:
        group.start(node_id)
    for node_id in (4, 5):
        group.register_client(node_id)
    return group
