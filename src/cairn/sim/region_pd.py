"""The placement driver of a multi-region run: its own Raft group on the first nodes, and an
agent on every node, all through the simulated network and clocks.

Theory of operation. `PlacementCluster` is a `MultiCluster` whose nodes run, besides their
`RegionHost`, a `PlacementAgent` (`cairn.placement.agent`) and — on the placement group's
members, the first three nodes — a `PlacementMember` (`cairn.placement.service`): the
cluster metadata's Raft replica, hosted in a second `RegionHost` over a `SimNodeDisk` of its
own (`placement_host_for`, `cairn.placement.group_host`), which loses unsynced writes when
its node crashes like the node's disk does. Both are built for each incarnation of a node
on that incarnation's clock, so a crash kills their timers, and they die with the node.
One network handler per node routes what arrives: envelopes to the node's host, those of
the placement region to the placement host (`deliver_to`), requests to the member and
replies to the agent. So
placement traffic is dropped, delayed, duplicated, reordered and partitioned like any
other, and a paused node's placement timers are held back with the rest of its events.

`RangeKVInspector` tells an agent what only the data knows: a region's size and key count
for its report, and where its leader cuts it. `crash_leader` is the placement group's own
fault: it crashes whichever node leads the group, so every run with crashes exercises a
failover of the placement driver with operators in flight.

Every node also runs a `TsoClient` (`tso_clients`) of the group's timestamp oracle; a
member's wall clock (the TSO's physical time) is its simulated clock from `WALL_EPOCH_MS`
plus `wall_skew_ms[node]`, which a test moves to skew it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from cairn.env import Clock
from cairn.meta.region import PLACEMENT_REGION_ID, bound_slot, slot_bound
from cairn.placement import PlacementConfig, PlacementRules, RegionReport
from cairn.placement.agent import AgentSettings, AgentStats, PlacementAgent
from cairn.placement.group_host import (
    HostFactory,
    KeylessMachine,
    machine_for_region,
    placement_host_config,
)
from cairn.placement.service import (
    PlacementMember,
    PlacementMessage,
    PlacementReply,
    PlacementRequest,
    ServiceSettings,
)
from cairn.placement.tso import TsoReply, TsoRequest, TsoSettings
from cairn.placement.tso_client import TsoClient, TsoClientSettings
from cairn.raft.types import NodeId
from cairn.shard.envelope import Envelope, EnvelopeKind
from cairn.shard.host import EnvelopeHandler, RegionHost, RegionPeer
from cairn.shard.replica import ReplicaConfig, ReplicaObserver
from cairn.sim.env import SimClock
from cairn.sim.loop import HARNESS, EventLoop
from cairn.sim.multiraft import MultiCluster, SimHostTransport
from cairn.sim.network import NetworkFaults, Payload, SimNetwork
from cairn.sim.node_disk import SimNodeDisk
from cairn.sim.store_range import machine_layout
from cairn.store.slot import SLOT_COUNT

MS = 1_000_000

PLACEMENT_MEMBERS = 3
"""The placement group's size: the first nodes host it."""


WALL_EPOCH_MS = 1_700_000_000_000
"""A member's wall clock at virtual time 0 (before any skew)."""

STEP_DELAY = (100 * MS, 600 * MS)
"""How long a held-back placement message waits (buggify `placement.step_delayed`)."""


class PlacementNetwork(SimNetwork):
    """The simulated network, also carrying placement requests and replies (delayed,
    dropped, duplicated and partitioned like everything else, never kept in order).

    Buggify site `placement.step_delayed`: a request or reply (the heartbeats that carry
    the driver's operator steps to the agents, and their answers) is held back for 100 to
    600 ms before it leaves, so a step arrives after the driver may have moved on."""

    def __init__(
        self,
        loop: EventLoop,
        rng: random.Random,
        faults: NetworkFaults,
        buggify: Callable[[str], bool] = lambda site: False,
    ) -> None:
        super().__init__(loop, rng, faults)
        self.buggify = buggify

    def _schedule(self, frm: NodeId, to: NodeId, msg: Payload) -> None:
        if not isinstance(msg, PlacementRequest | PlacementReply | TsoRequest | TsoReply):
            SimNetwork._schedule(self, frm, to, msg)
            return
        at = self.loop.now + self._delay()
        label = f"deliver {msg.describe()}"
        self.loop.call_at(at, to, label, lambda: self._deliver(frm, to, msg))

    def send_placement(self, frm: NodeId, to: NodeId, msg: PlacementMessage) -> None:
        """Send a placement request or reply (with the fate of any other message). The
        site holds back only the driver's messages: a timestamp request held for 100 to
        600 ms outlived its caller's wait (`TSO_TIMEOUT_S`) and failed most transactions
        of a buggified run, exercising nothing but that timeout."""
        driver = isinstance(msg, PlacementRequest | PlacementReply)
        if driver and self.buggify("placement.step_delayed"):
            delay = self.rng.randint(*STEP_DELAY)
            label = f"buggify step delayed n{frm}->n{to}"
            self.loop.call_later(
                delay, frm, label, lambda: self.send(frm, to, cast(Sequence[Payload], (msg,)))
            )
            return
        self.send(frm, to, cast(Sequence[Payload], (msg,)))


class PlacementHostTransport(SimHostTransport):
    """A placement host's `HostTransport` onto the simulated network: its envelopes travel
    (faulted and buggified) like the node host's; what arrives reaches it through the
    node's handler (`SimPlacement._handler`), so registering one is a no-op; and it sends
    no `LIVENESS` (the node's host tells the other nodes it lives)."""

    def send(self, to: NodeId, envelopes: Sequence[Envelope]) -> None:
        """See `HostTransport.send`."""
        kept = [e for e in envelopes if e.kind is not EnvelopeKind.LIVENESS]
        if kept:
            SimHostTransport.send(self, to, kept)

    def set_handler(self, handler: EnvelopeHandler | None) -> None:
        """See the class docstring."""


def placement_host_for(
    node_id: NodeId,
    clock: Clock,
    network: SimNetwork,
    disk: SimNodeDisk,
    rng: random.Random,
    replica: ReplicaConfig,
    buggify: Callable[[str], bool] = lambda site: False,
    observer: ReplicaObserver | None = None,
) -> HostFactory:
    """How one incarnation of a simulated member builds its placement host: a
    `RegionHost` over the member's own node disk, on the node's clock and network."""

    def build(machine: KeylessMachine) -> RegionHost:
        return RegionHost(
            node_id,
            clock,
            PlacementHostTransport(network, node_id, buggify),
            disk,
            rng,
            placement_host_config(replica),
            lambda: machine,
            buggify=buggify,
            observers=lambda node, region: observer,
            machine_for=machine_for_region(machine),
        )

    return build


def deliver_to(host: RegionHost, member: PlacementMember | None, envelope: Envelope) -> None:
    """Hand an envelope that reached a node to the host it is for: the placement region's
    to the member's placement host (dropped on a node that hosts no member), any other to
    the node's region host."""
    if envelope.region_id != PLACEMENT_REGION_ID:
        host.on_envelopes((envelope,))
    elif member is not None:
        member.host.on_envelopes((envelope,))


class RangeKVInspector:
    """The `RegionInspector` of the simulator's regions (`machine_layout`)."""

    def report(self, peer: RegionPeer) -> RegionReport:
        """See `report_of`."""
        return report_of(peer)

    def split_key(self, peer: RegionPeer) -> bytes | None:
        """See `split_key`."""
        return split_key(peer)


@dataclass(slots=True)
class PlacementSetup:
    """What the placement group and agents of a run are made of."""

    members: tuple[NodeId, ...]
    replica: ReplicaConfig
    config: PlacementConfig
    rules: PlacementRules
    first_id: int
    """Ids below it belong to the founding layout."""
    service: ServiceSettings = ServiceSettings()  # noqa: RUF009 (frozen)
    agent: AgentSettings = AgentSettings()  # noqa: RUF009 (frozen)
    tso: TsoSettings = TsoSettings()  # noqa: RUF009 (frozen)
    tso_client: TsoClientSettings = TsoClientSettings()  # noqa: RUF009 (frozen)


class SimPlacement:
    """The placement members and agents of one run, across the nodes' incarnations."""

    def __init__(
        self,
        cluster: MultiCluster,
        setup: PlacementSetup,
        rng: random.Random,
        observer: Callable[[NodeId], ReplicaObserver | None] = lambda node: None,
    ) -> None:
        if not isinstance(cluster.network, PlacementNetwork):
            raise TypeError("placement needs a PlacementNetwork")
        self.cluster = cluster
        self.network = cluster.network
        self.loop = cluster.loop
        self.setup = setup
        self.rng = rng
        self.observer = observer
        self.disks = {n: SimNodeDisk(random.Random(rng.getrandbits(64))) for n in setup.members}
        self.members: dict[NodeId, PlacementMember] = {}
        self.agents: dict[NodeId, PlacementAgent] = {}
        self.agent_stats = AgentStats()
        self.leader_crashes = 0
        self.tso_clients: dict[NodeId, TsoClient] = {}
        """Each live node's client of the timestamp oracle."""
        self.wall_skew_ms: dict[NodeId, int] = {}
        """Milliseconds added to a member's wall clock (clock skew; set by tests)."""

    def on_start(self, node_id: NodeId, host: RegionHost) -> None:
        """A node's incarnation started: build its member (if any) and agent on its clock."""
        node = self.cluster.nodes[node_id]
        incarnation = node.incarnation

        def alive() -> bool:
            return node.up and node.incarnation == incarnation

        clock = SimClock(self.loop, node_id, node.clock_rate, alive)
        network = self.network
        member = None
        if node_id in self.setup.members:
            member = self._member(node_id, clock)
        agent = PlacementAgent(
            host,
            clock,
            lambda to, request: network.send_placement(node_id, to, request),
            self.setup.members,
            RangeKVInspector(),
            settings=self.setup.agent,
            stats=self.agent_stats,
            log=self.loop.record,
        )
        self.agents[node_id] = agent
        tso = TsoClient(
            node_id,
            clock,
            lambda to, request: network.send_placement(node_id, to, request),
            lambda: self.setup.members,
            self.setup.tso_client,
        )
        self.tso_clients[node_id] = tso
        network.register(node_id, self._handler(host, member, agent, tso))
        agent.start()

    def _member(self, node_id: NodeId, clock: SimClock) -> PlacementMember:
        setup = self.setup
        network = self.network
        host_for = placement_host_for(
            node_id,
            clock,
            network,
            self.disks[node_id],
            random.Random(self.rng.getrandbits(64)),
            setup.replica,
            self.cluster.buggify,
            self.observer(node_id),
        )
        member = PlacementMember(
            host_for,
            setup.members,
            lambda to, reply: network.send_placement(node_id, to, reply),
            config=setup.config,
            rules=setup.rules,
            first_id=setup.first_id,
            settings=setup.service,
            wall_ms=lambda: WALL_EPOCH_MS + int(clock.now() * 1000) + self.wall_skew(node_id),
            tso=setup.tso,
        )
        self.members[node_id] = member
        return member

    def wall_skew(self, node_id: NodeId) -> int:
        """How far member `node_id`'s wall clock is off (milliseconds)."""
        return self.wall_skew_ms.get(node_id, 0)

    @staticmethod
    def _handler(
        host: RegionHost, member: PlacementMember | None, agent: PlacementAgent, tso: TsoClient
    ) -> Callable[[Sequence[object]], None]:
        def handle(msgs: Sequence[object]) -> None:
            for msg in msgs:
                if isinstance(msg, Envelope):
                    deliver_to(host, member, msg)
                elif isinstance(msg, PlacementReply):
                    agent.on_reply(msg)
                elif isinstance(msg, TsoReply):
                    tso.on_reply(msg)
                elif member is None:
                    continue
                elif isinstance(msg, PlacementRequest):
                    member.on_request(msg)
                elif isinstance(msg, TsoRequest):
                    member.on_tso_request(msg)

        return handle

    def on_crash(self, node_id: NodeId) -> None:
        """A node crashed: its member and agent die, its placement disk loses its cache."""
        agent = self.agents.pop(node_id, None)
        if agent is not None:
            agent.stop()
        tso = self.tso_clients.pop(node_id, None)
        if tso is not None:
            tso.stop()
        member = self.members.pop(node_id, None)
        if member is not None:
            member.stop()
            self.disks[node_id].crash()

    # -- views and faults ---------------------------------------------------------------

    def leader(self) -> PlacementMember | None:
        """The serving leader of the highest term among live members, if any."""
        best = None
        for node_id in sorted(self.members):
            member = self.members[node_id]
            if member.serving() and (best is None or member.replica.term > best.replica.term):
                best = member
        return best

    def failures(self) -> list[tuple[NodeId, Exception]]:
        """Members whose replica driver failed."""
        return [
            (n, m.replica.failure)
            for n, m in sorted(self.members.items())
            if m.replica.failure is not None
        ]

    def crash_leader(self, down_for: int, count: Callable[[str], None]) -> None:
        """Crash the node leading the placement group; restart it `down_for` later."""
        leader = self.leader()
        if leader is None:
            return
        victim = leader.node_id
        self.leader_crashes += 1
        count("crash:pd-leader")
        self.cluster.crash(victim)

        def restart() -> None:
            node = self.cluster.nodes[victim]
            if not node.up and not node.lost:
                self.cluster.start(victim)
                count("restart")

        self.loop.call_later(down_for, HARNESS, f"pd restart n{victim}", restart)


@dataclass(slots=True)
class PlacementCluster(MultiCluster):
    """A `MultiCluster` whose nodes also run the placement group and agents."""

    placement: SimPlacement | None = None

    def start(self, node_id: NodeId) -> RegionHost:
        """See `MultiCluster.start`; the node's placement member and agent start too."""
        host = MultiCluster.start(self, node_id)
        if self.placement is not None:
            self.placement.on_start(node_id, host)
        return host

    def crash(self, node_id: NodeId) -> None:
        """See `MultiCluster.crash`; the node's placement member and agent die too."""
        if self.placement is not None:
            self.placement.on_crash(node_id)
        MultiCluster.crash(self, node_id)


def report_of(peer: RegionPeer) -> RegionReport:
    """What the leader `peer` tells the driver about its region."""
    keys, size = machine_layout(peer.machine.inner)
    raw = peer.replica.raw
    behind = raw.log.committed - 10
    pending = tuple(
        sorted(i for i, match in raw.peer_matches().items() if i != peer.peer_id and match < behind)
    )
    return RegionReport(
        peer.region,
        peer.peer_id,
        approximate_size=size,
        approximate_keys=len(keys),
        pending_peers=pending,
        term=raw.term,
    )


def split_key(peer: RegionPeer) -> bytes | None:
    """Where the leader cuts its region: at the median key, moved to a slot boundary when
    the region spans several slots; None when no valid key exists."""
    region = peer.region
    keys, _ = machine_layout(peer.machine.inner)
    first = bound_slot(region.start)
    last = bound_slot(region.end, end=True)
    if last - first >= 2:
        mid = bound_slot(keys[len(keys) // 2]) if keys else (first + last) // 2
        for slot in (mid, mid + 1, (first + last) // 2):
            at = slot_bound(min(slot, SLOT_COUNT - 1))
            if region.start < at and (not region.end or at < region.end):
                return at
        return None
    inside = [k for k in keys if k > region.start]
    return inside[len(inside) // 2] if inside else None
