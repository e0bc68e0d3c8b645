"""`/metrics`: a node's figures in the Prometheus text format.

A source hands over a `MetricsSnapshot` of plain numbers; `render` turns one into the
exposition text through prometheus-client, with a registry of its own per call, so any
number of admin servers can live in one process (the tests run several) and nothing is
registered globally. Per-region figures carry a `region` label, so a node hosting many
regions exposes more series, not different names. A figure a source cannot provide is
None and is left out rather than reported as zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The media type of the Prometheus text format."""

ROLES = ("follower", "candidate", "precandidate", "leader")
"""The values of `cairn_raft_role`'s `role` label (the one set is 1, the others 0)."""


@dataclass(frozen=True, slots=True)
class RegionMetrics:
    """One replica's figures (a node hosts one per region it serves)."""

    region_id: int
    role: str
    term: int
    commit_index: int
    applied_index: int
    leader_node: int | None
    lease_reads: int
    snapshots_taken: int
    snapshots_restored: int
    readies: int
    proposals: int | None = None
    """Proposals made by this replica, where the replica counts them."""


@dataclass(frozen=True, slots=True)
class TenantMetrics:
    """One tenant: cluster-wide usage as this node last learned it, quotas (0: none),
    and this node's operations and refusals by quota."""

    name: str
    keys: int
    bytes: int
    quotas: tuple[tuple[str, int], ...]
    ops: int
    refusals: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Everything `/metrics` reports for one node, read at one moment."""

    node_id: int
    uptime_seconds: float
    clients_connected: int
    connections_received: int
    connections_rejected: int
    regions: tuple[RegionMetrics, ...] = ()
    commands: Mapping[str, int] = field(default_factory=dict)
    """Commands served, by name (empty where the server does not count them)."""
    tenants: tuple[TenantMetrics, ...] = ()


_RegionFigure = tuple[str, str, Callable[[RegionMetrics], int | None]]

_REGION_GAUGES: tuple[_RegionFigure, ...] = (
    ("cairn_raft_term", "The replica's current Raft term.", lambda r: r.term),
    ("cairn_raft_commit_index", "The highest log index known committed.", lambda r: r.commit_index),
    ("cairn_raft_applied_index", "The highest log index applied.", lambda r: r.applied_index),
    (
        "cairn_raft_leader_node",
        "The node id of the region's leader (0: none known).",
        lambda r: r.leader_node or 0,
    ),
)

_REGION_COUNTERS: tuple[_RegionFigure, ...] = (
    ("cairn_raft_lease_reads", "Reads served under the leader lease.", lambda r: r.lease_reads),
    ("cairn_raft_snapshots_taken", "Log compactions by snapshot.", lambda r: r.snapshots_taken),
    (
        "cairn_raft_snapshots_restored",
        "Snapshots received and installed.",
        lambda r: r.snapshots_restored,
    ),
    ("cairn_raft_readies", "Ready batches handled.", lambda r: r.readies),
    ("cairn_raft_proposals", "Proposals made by this replica.", lambda r: r.proposals),
)


class SnapshotCollector(Collector):
    """A prometheus-client collector over one `MetricsSnapshot`."""

    def __init__(self, snapshot: MetricsSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        """Every family, node-wide figures first."""
        s = self.snapshot
        node = str(s.node_id)
        yield _gauge(
            "cairn_uptime_seconds", "Seconds since the node started.", node, s.uptime_seconds
        )
        yield _gauge(
            "cairn_clients_connected", "Client connections open.", node, s.clients_connected
        )
        yield _counter(
            "cairn_connections_received",
            "Client connections accepted.",
            node,
            s.connections_received,
        )
        yield _counter(
            "cairn_connections_rejected",
            "Client connections refused (client limit).",
            node,
            s.connections_rejected,
        )
        yield from self._regions(node)
        if s.commands:
            family = CounterMetricFamily(
                "cairn_commands", "Commands served, by name.", labels=("node", "command")
            )
            for name in sorted(s.commands):
                family.add_metric((node, name), s.commands[name])
            yield family
        if s.tenants:
            yield from _tenants(node, s.tenants)

    def _regions(self, node: str) -> Iterator[Metric]:
        regions = self.snapshot.regions
        role = GaugeMetricFamily(
            "cairn_raft_role", "1 for the replica's Raft role.", labels=("node", "region", "role")
        )
        for r in regions:
            for name in ROLES:
                role.add_metric((node, str(r.region_id), name), 1.0 if r.role == name else 0.0)
        yield role
        for name, doc, figure in _REGION_GAUGES:
            yield from _per_region(
                GaugeMetricFamily(name, doc, labels=_LABELS), node, regions, figure
            )
        for name, doc, figure in _REGION_COUNTERS:
            yield from _per_region(
                CounterMetricFamily(name, doc, labels=_LABELS), node, regions, figure
            )


_LABELS = ("node", "region")


def _tenants(node: str, tenants: tuple[TenantMetrics, ...]) -> Iterator[Metric]:
    """The tenant families (`cairn.runtime.tenants`)."""
    labels = ("node", "tenant")
    keys = GaugeMetricFamily("cairn_tenant_keys", "A tenant's keys, cluster-wide.", labels=labels)
    size = GaugeMetricFamily(
        "cairn_tenant_bytes", "A tenant's bytes (keys and values), cluster-wide.", labels=labels
    )
    quota = GaugeMetricFamily(
        "cairn_tenant_quota", "A tenant's quota (0: none).", labels=(*labels, "quota")
    )
    ops = CounterMetricFamily(
        "cairn_tenant_ops", "Commands of a tenant's user on this node.", labels=labels
    )
    refusals = CounterMetricFamily(
        "cairn_tenant_refusals",
        "Commands of a tenant refused on this node, by quota.",
        labels=(*labels, "quota"),
    )
    for t in tenants:
        keys.add_metric((node, t.name), t.keys)
        size.add_metric((node, t.name), t.bytes)
        ops.add_metric((node, t.name), t.ops)
        for name, value in t.quotas:
            quota.add_metric((node, t.name, name), value)
        for name, value in t.refusals:
            refusals.add_metric((node, t.name, name), value)
    yield from (keys, size, quota, ops, refusals)


def _per_region(
    family: GaugeMetricFamily | CounterMetricFamily,
    node: str,
    regions: tuple[RegionMetrics, ...],
    figure: Callable[[RegionMetrics], int | None],
) -> Iterator[Metric]:
    """`family` filled with `figure` of each region that has it (nothing if none has)."""
    found = False
    for r in regions:
        value = figure(r)
        if value is not None:
            family.add_metric((node, str(r.region_id)), value)
            found = True
    if found:
        yield family


def _gauge(name: str, doc: str, node: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=("node",))
    family.add_metric((node,), value)
    return family


def _counter(name: str, doc: str, node: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=("node",))
    family.add_metric((node,), value)
    return family


def render(snapshot: MetricsSnapshot) -> bytes:
    """The Prometheus text exposition of `snapshot`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return generate_latest(registry)
