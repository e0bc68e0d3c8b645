"""The admin API of a node: the placement driver's views, or its own layout and figures.

Today a node runs one Raft group, and nothing decides placement: the layout is the
`Topology` the node already builds for CLUSTER SLOTS (one region over the whole keyspace,
led by the group's leader, on the configured peers). `NodeAdminSource` shows that layout
through the same values the placement driver's source shows, so `cairn ctl` and scripts
see one shape either way; there are no events, and the actions answer 501 (HTTP "not
implemented") with the reason.

`topology_views` is the pure part, the conversion of a `Topology` into API values;
`StaticLayoutSource` answers every read and action of a source without a placement driver
from those values; `NodeAdminSource` only gathers what it needs from the running node.
`ClusterAdminSource`, what `cairn server` serves, answers with the placement driver's
views on the placement group's leader and falls back to `NodeAdminSource` elsewhere.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from cairn.admin.health import gone_nodes, node_counts, problems, region_health
from cairn.admin.metrics import MetricsSnapshot, RegionMetrics
from cairn.admin.placement_source import PlacementSource
from cairn.admin.source import (
    PLACEMENT_NOT_RUNNING,
    AdminSource,
    LeaderElsewhereError,
    PlacementUnavailableError,
    SourceUnavailableError,
)
from cairn.admin.tenants_api import tenant_metrics
from cairn.admin.views import (
    ActionResult,
    EventPage,
    NodeStatus,
    NodeView,
    PeerView,
    RegionView,
    StatusView,
)
from cairn.meta.region import PeerRole, Region
from cairn.placement.commands import Command, Result
from cairn.placement.driver import PlacementDriver
from cairn.placement.model import PlacementRules
from cairn.resp.reply import Integer
from cairn.shard.topology import Topology

if TYPE_CHECKING:
    from cairn.runtime.node import Node

KeyCount = Callable[[Region], int | None]
"""The number of keys of a region, if this node can tell (it hosts a replica)."""


def topology_views(
    topology: Topology, peer_addresses: Mapping[int, str], keys: KeyCount
) -> tuple[list[NodeView], list[RegionView]]:
    """The nodes and regions of `topology`; `peer_addresses` are the configured peers'."""
    ids = set(peer_addresses) | set(topology.nodes)
    ids |= {p.node_id for r in topology.regions for p in r.peers}
    hosted = {n: [r for r in topology.regions if r.peer_on(n)] for n in ids}
    nodes = []
    for n in sorted(ids):
        address = topology.nodes.get(n)
        nodes.append(
            NodeView(
                id=n,
                status=NodeStatus.DOWN if n in topology.down else NodeStatus.UP,
                client_address=None if address is None else address.endpoint,
                peer_address=peer_addresses.get(n),
                labels=(),
                regions=len(hosted[n]),
                leaders=sum(1 for r in hosted[n] if topology.leader(r) == n),
                silent_ms=None,
            )
        )
    gone = gone_nodes(nodes)
    regions = [_region(r, topology.leader(r), gone, keys(r)) for r in topology.regions]
    return nodes, regions


def _region(
    region: Region, leader: int | None, gone: frozenset[int], keys: int | None
) -> RegionView:
    voters = [p.node_id for p in region.voters()]
    peers = [*region.voters(), *region.learners()]
    return RegionView(
        id=region.id,
        start=region.start,
        end=region.end,
        version=region.epoch.version,
        conf_ver=region.epoch.conf_ver,
        peers=tuple(
            PeerView(p.id, p.node_id, "voter" if p.role is PeerRole.VOTER else "learner")
            for p in peers
        ),
        leader=leader,
        health=region_health(voters, leader, gone),
        approximate_keys=keys,
    )


class StaticLayoutSource(ABC):
    """The reads and refusals of an `AdminSource` without a placement driver.

    The layout is whatever `_views` returns (a subclass says where it comes from); there
    are no events, no operators and no rules, and the actions answer 501 with the reason.
    """

    @property
    @abstractmethod
    def cluster_id(self) -> str:
        """The cluster this source reports on."""

    @property
    @abstractmethod
    def node_id(self) -> int:
        """The node answering."""

    @abstractmethod
    def _views(self) -> tuple[list[NodeView], list[RegionView]]:
        """The layout's nodes and regions (`topology_views`)."""

    async def status(self) -> StatusView:
        """The layout's summary: nodes up and down, the regions, their leaders."""
        nodes, regions = self._views()
        health, found = problems(nodes, regions)
        return StatusView(
            cluster_id=self.cluster_id,
            answered_by=self.node_id,
            placement_running=False,
            nodes=node_counts(nodes),
            regions=len(regions),
            regions_with_leader=sum(1 for r in regions if r.leader is not None),
            health=health,
            problems=found,
            under_replicated=0,
            operators_running=0,
            last_event_seq=0,
            rules=None,
        )

    async def nodes(self) -> list[NodeView]:
        """The layout's nodes, by id."""
        return self._views()[0]

    async def regions(self) -> list[RegionView]:
        """The layout's regions, in key order."""
        return self._views()[1]

    async def events(self, since: int, limit: int) -> EventPage:
        """None: events are the placement driver's, and it does not run here yet."""
        return EventPage((), 0, placement_running=False)

    async def drain_node(self, node_id: int, reason: str) -> ActionResult:
        """Refused (501): draining needs the placement driver."""
        raise PlacementUnavailableError(PLACEMENT_NOT_RUNNING)

    async def set_placement(self, rules: PlacementRules) -> ActionResult:
        """Refused (501): placement rules need the placement driver."""
        raise PlacementUnavailableError(PLACEMENT_NOT_RUNNING)


class NodeAdminSource(StaticLayoutSource):
    """`AdminSource` over a running single-group `Node` (see the module docstring): the
    configured peers, up when connected to this node, and the one region over the whole
    keyspace."""

    def __init__(self, node: Node) -> None:
        self.node = node

    @property
    def cluster_id(self) -> str:
        """The node's configured cluster."""
        return self.node.config.cluster_id

    @property
    def node_id(self) -> int:
        """This node's id."""
        return self.node.config.node_id

    def _views(self) -> tuple[list[NodeView], list[RegionView]]:
        node = self.node
        if node.stopping or not hasattr(node, "host"):
            raise SourceUnavailableError("the node is starting or stopping")
        peers = {n: f"{host}:{port}" for n, (host, port) in node.config.peers.items()}
        return topology_views(node.topology(), peers, self._keys)

    def _keys(self, region: Region) -> int | None:
        if region.peer_on(self.node.config.node_id) is None:
            return None
        reply = self.node.machine.execute_read("dbsize", [], 0)
        return reply.value if isinstance(reply, Integer) else None

    def metrics(self) -> MetricsSnapshot:
        """The node's client figures and the Raft figures of every region it hosts."""
        node = self.node
        regions = []
        for region_id in sorted(node.host.peers):
            peer = node.host.peers[region_id]
            status = peer.replica.raw.status()
            counters = peer.replica.counters
            regions.append(
                RegionMetrics(
                    region_id=region_id,
                    role=status.role.value.removeprefix("State").lower(),
                    term=status.term,
                    commit_index=status.commit,
                    applied_index=status.applied,
                    leader_node=node.leader_node(peer),
                    lease_reads=counters.lease_reads,
                    snapshots_taken=counters.snapshots_taken,
                    snapshots_restored=counters.snapshots_restored,
                    readies=counters.readies,
                )
            )
        stats = node.server.stats
        return MetricsSnapshot(
            node_id=node.config.node_id,
            uptime_seconds=max(0.0, time.time() - node.started_at),
            clients_connected=len(node.server.clients),
            connections_received=stats["total_connections_received"],
            connections_rejected=stats["rejected_connections"],
            regions=tuple(regions),
            tenants=tenant_metrics(node.tenants),
        )


class ClusterAdminSource:
    """`AdminSource` of a node running the placement group's agent (`cairn server`).

    The placement driver's views live on the group's leader. This node answers with them
    when it is that leader (a `PlacementSource` over its replica's driver, whose actions
    are proposed through the group) and the driver's region map covers the keyspace.
    When another node leads the group and is reachable from here, it raises
    `LeaderElsewhereError` naming that node: the admin server asks that node over the
    peer transport (`cairn.admin.forward`), or answers 503 naming it without one. When no
    leader can be told (the group is electing, or the driver has not heard from every
    region yet) it shows this node's own layout (`NodeAdminSource`), as a cluster without
    a driver would.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self.local = NodeAdminSource(node)

    def _source(self, action: bool = False) -> AdminSource:
        node = self.node
        placement = node.placement
        if node.stopping or placement is None:
            raise SourceUnavailableError("the node is starting or stopping")
        member = placement.serving_member()
        if member is not None and (action or _covers_keyspace(member.driver)):
            return PlacementSource(
                member.driver,
                node.config.cluster_id,
                node.config.node_id,
                lambda: int(time.time() * 1000),
                self.local.metrics,
                apply=self._apply,
            )
        leader = placement.leader()
        if (
            leader is not None
            and leader != node.config.node_id
            and node.transport.connected(leader)
        ):
            address = node.transport.client_addrs.get(leader, "?")
            raise LeaderElsewhereError(
                leader, f"node {leader} ({address}) leads the placement group: ask its admin API"
            )
        if action:
            raise SourceUnavailableError("the placement group has no leader right now")
        return self.local

    async def _apply(self, command: Command) -> Result:
        placement = self.node.placement
        results = None if placement is None else await placement.submit((command,))
        if not results:
            raise SourceUnavailableError("the placement group lost its leader; try again")
        return results[0]

    async def status(self) -> StatusView:
        """See `AdminSource.status`."""
        return await self._source().status()

    async def nodes(self) -> list[NodeView]:
        """See `AdminSource.nodes`."""
        return await self._source().nodes()

    async def regions(self) -> list[RegionView]:
        """See `AdminSource.regions`."""
        return await self._source().regions()

    async def events(self, since: int, limit: int) -> EventPage:
        """See `AdminSource.events`."""
        return await self._source().events(since, limit)

    async def drain_node(self, node_id: int, reason: str) -> ActionResult:
        """See `AdminSource.drain_node` (only the placement leader can)."""
        return await self._source(action=True).drain_node(node_id, reason)

    async def set_placement(self, rules: PlacementRules) -> ActionResult:
        """See `AdminSource.set_placement` (only the placement leader can)."""
        return await self._source(action=True).set_placement(rules)

    def metrics(self) -> MetricsSnapshot:
        """This node's own figures."""
        return self.local.metrics()


def _covers_keyspace(driver: PlacementDriver) -> bool:
    """Whether the driver knows a region for every part of the keyspace, and every node
    holding a replica of one."""
    status = driver.status()
    nodes = driver.metadata.nodes
    return (
        status.regions > 0
        and status.gaps == 0
        and all(
            p.node_id in nodes
            for info in driver.metadata.region_infos.values()
            for p in info.report.region.peers
        )
    )
