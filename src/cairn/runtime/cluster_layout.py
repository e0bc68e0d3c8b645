"""The cluster's layout as this node sees it, as Redis Cluster clients are shown it.

A node hosts many regions (`cairn.shard.host.RegionHost`); the layout is every region it
hosts, each led by the node its replica believes leads it, plus an address book: this
node's advertised client address and the one each peer announced in its handshake. The
`Topology` built from it answers CLUSTER SLOTS/SHARDS/NODES/INFO and routes every command
(`cairn.shard.routing.route`). The node rebuilds it only when something it shows changes
(`ClusterLayout.topology` is given a version that the node bumps on a change of leader
or description, plus which peers are connected and their announced addresses).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cairn.meta.region import Region
from cairn.runtime.config import ConfigError, NodeConfig, parse_address
from cairn.shard.topology import NodeAddress, Topology

WHOLE_KEYSPACE_REGION = 1
"""The id of the first founding region (the whole keyspace with `initial_regions = 1`)."""


class ClusterLayout:
    """Builds and caches a node's `Topology`."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self._key: object = None
        self._topology: Topology | None = None

    def cached(self, version: object) -> Topology | None:
        """The topology built last, if `version` (of everything it shows: leaders,
        descriptions, peer links) is the one it was built at (else None). Checked on every
        command, so it must cost next to nothing."""
        if self._topology is not None and version == self._key:
            return self._topology
        self._key = version
        return None

    def build(
        self,
        regions: Iterable[Region],
        leaders: Mapping[int, int],
        client_addrs: Mapping[int, str],
        connected: frozenset[int],
    ) -> Topology:
        """The layout of `regions` led by `leaders` (region id -> node id); cached."""
        cfg = self.config
        host, port = cfg.advertised_client_addr
        nodes = {cfg.node_id: NodeAddress(host, port, cfg.peer_addr[1])}
        for node_id, text in client_addrs.items():
            try:
                peer_host, peer_port = parse_address(f"node {node_id}", text)
            except ConfigError:
                continue  # a peer announcing nonsense is left out of the layout
            bus = cfg.peers.get(node_id, ("", 0))[1]
            nodes[node_id] = NodeAddress(peer_host, peer_port, bus)
        down = [n for n in cfg.peers if n != cfg.node_id and n not in connected]
        self._topology = Topology(regions, leaders, nodes, cfg.node_id, cfg.cluster_id, down=down)
        return self._topology
