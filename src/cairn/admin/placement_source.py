"""The admin API over a placement driver: its views as API values, its calls as actions.

`PlacementSource` implements `AdminSource` on a `PlacementDriver` whose state is at hand
(the simulator's toy cluster, the tests, and a node holding a replica of the placement
group). When the driver runs in its own Raft group, its actions become proposals: the
node passes an `apply` function that proposes the command through the group and waits
for its result, and the views read the local replica; the values the API shows do not
change.

The conversions (`node_view`, `region_view`, `event_view`) are plain functions, so any
other source built on the driver shows exactly the same thing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from cairn.admin.health import gone_nodes, node_counts, problems, region_health
from cairn.admin.metrics import MetricsSnapshot
from cairn.admin.source import BadRequestError, NotFoundError
from cairn.admin.views import (
    ActionResult,
    EventPage,
    EventView,
    NodeStatus,
    NodeView,
    PeerView,
    RegionView,
    StatusView,
)
from cairn.meta.region import Peer, PeerRole
from cairn.placement.commands import Ack, Command, Result, SetNodeAdmin, SetRules
from cairn.placement.driver import NodeRow, PlacementDriver, RegionRow
from cairn.placement.model import Event, InvalidRulesError, NodeAdmin, NodeState, PlacementRules

_STATUS = {
    NodeState.UP: NodeStatus.UP,
    NodeState.DOWN: NodeStatus.DOWN,
    NodeState.DRAINING: NodeStatus.DRAINING,
    NodeState.REMOVED: NodeStatus.REMOVED,
}


def node_view(row: NodeRow) -> NodeView:
    """One node as the API shows it (a capacity of 0 means the node has not said)."""
    return NodeView(
        id=row.id,
        status=_STATUS[row.state],
        client_address=row.client_address or None,
        peer_address=row.peer_address or None,
        labels=row.labels,
        regions=row.region_count,
        leaders=row.leader_count,
        silent_ms=max(0, row.silent_ms),
        capacity_bytes=row.capacity_bytes or None,
        used_bytes=row.used_bytes if row.capacity_bytes else None,
    )


def region_view(row: RegionRow, peers: tuple[Peer, ...], gone: frozenset[int]) -> RegionView:
    """One region as the API shows it: `peers` its replicas (voters first), `gone` the
    nodes down or removed."""
    ordered = sorted(peers, key=lambda p: (p.role, p.node_id))
    return RegionView(
        id=row.id,
        start=row.start,
        end=row.end,
        version=row.version,
        conf_ver=row.conf_ver,
        peers=tuple(PeerView(p.id, p.node_id, _ROLE[p.role]) for p in ordered),
        leader=row.leader_node,
        health=region_health(row.voter_nodes, row.leader_node, gone),
        approximate_size=row.approximate_size,
        approximate_keys=row.approximate_keys,
        operator=row.operator,
    )


_ROLE = {PeerRole.VOTER: "voter", PeerRole.LEARNER: "learner"}


def event_view(event: Event) -> EventView:
    """One event as the API shows it."""
    return EventView(
        event.seq,
        event.time_ms,
        event.kind.value,
        event.reason,
        event.region_id,
        event.node_id,
        event.operator_id,
    )


Clock = Callable[[], int]
"""Milliseconds of wall-clock time, stamped on the commands an action issues."""

Apply = Callable[[Command], Awaitable[Result]]
"""Applies one placement command and returns its result (raising an `AdminError` when it
cannot be applied, e.g. the placement group lost its leader)."""


class PlacementSource:
    """`AdminSource` over a `PlacementDriver` (see the module docstring).

    `apply` runs an action's command; by default on the driver directly, a node running
    the placement group passes one that proposes it and awaits the commit.
    """

    def __init__(
        self,
        driver: PlacementDriver,
        cluster_id: str,
        node_id: int,
        clock: Clock,
        metrics: Callable[[], MetricsSnapshot],
        apply: Apply | None = None,
    ) -> None:
        self.driver = driver
        self.cluster_id = cluster_id
        self.node_id = node_id
        self.clock = clock
        self._metrics = metrics
        self._apply = apply or self._apply_here

    async def status(self) -> StatusView:
        """The summary, with health judged from the same nodes and regions the API shows."""
        summary = self.driver.status()
        nodes = await self.nodes()
        regions = await self.regions()
        health, found = problems(
            nodes, regions, under_replicated=summary.under_replicated, gaps=summary.gaps
        )
        return StatusView(
            cluster_id=self.cluster_id,
            answered_by=self.node_id,
            placement_running=True,
            nodes=node_counts(nodes),
            regions=summary.regions,
            regions_with_leader=sum(1 for r in regions if r.leader is not None),
            health=health,
            problems=found,
            under_replicated=summary.under_replicated,
            operators_running=summary.operators_running,
            last_event_seq=summary.last_event_seq,
            rules=summary.rules,
        )

    async def nodes(self) -> list[NodeView]:
        """Every node, by id."""
        return [node_view(row) for row in self.driver.nodes()]

    async def regions(self) -> list[RegionView]:
        """Every region, in key order."""
        gone = gone_nodes(await self.nodes())
        infos = self.driver.metadata.region_infos
        return [region_view(r, infos[r.id].region.peers, gone) for r in self.driver.regions()]

    async def events(self, since: int, limit: int) -> EventPage:
        """Events after `since` (the newest `limit` of them)."""
        found = self.driver.events(since, limit)
        last = self.driver.metadata.event_seq
        return EventPage(tuple(event_view(e) for e in found), last, placement_running=True)

    async def drain_node(self, node_id: int, reason: str) -> ActionResult:
        """Mark `node_id` draining: its replicas and leaders move elsewhere."""
        if node_id not in self.driver.metadata.nodes:
            raise NotFoundError(f"node {node_id} is not a member of the cluster")
        why = reason or "drain requested through the admin API"
        await self._act(SetNodeAdmin(node_id, NodeAdmin.DRAINING, self.clock(), why))
        return ActionResult(f"node {node_id} is draining: its regions and leaders move away")

    async def set_placement(self, rules: PlacementRules) -> ActionResult:
        """Declare `rules`; the reconcile loops move replicas to match."""
        try:
            rules.validate()
        except InvalidRulesError as exc:
            raise BadRequestError(str(exc)) from None
        await self._act(SetRules(rules, self.clock()))
        ranges = f" and {len(rules.ranges)} range rule(s)" if rules.ranges else ""
        label = rules.location_label
        return ActionResult(f"placement set: {rules.replicas} replicas across {label!r}{ranges}")

    def metrics(self) -> MetricsSnapshot:
        """This node's figures."""
        return self._metrics()

    async def _act(self, command: Command) -> None:
        result = await self._apply(command)
        if isinstance(result, Ack) and not result.ok:
            raise BadRequestError(result.reason or "the placement driver refused the action")

    async def _apply_here(self, command: Command) -> Result:
        return self.driver.apply(command)
