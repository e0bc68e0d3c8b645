"""The cluster's layout as this node sees it, as Redis Cluster clients are shown it.

Today a node runs one Raft group, so the layout is one region over the whole keyspace,
replicated on the group's members and led by its leader. The `Topology` built from it
answers CLUSTER SLOTS/SHARDS/NODES/INFO and decides MOVED (`cairn.shard.routing`); it is
rebuilt only when something it shows changes: the leader, the membership, which peers are
connected, or the client address a peer announced in its handshake.
"""

from __future__ import annotations

from collections.abc import Mapping

from cairn.raft.types import NONE, ConfState
from cairn.runtime.config import ConfigError, NodeConfig, parse_address
from cairn.shard.region import Peer, PeerRole, Region
from cairn.shard.topology import NodeAddress, Topology

WHOLE_KEYSPACE_REGION = 1
"""The id of the one region a single-group node serves."""


class ClusterLayout:
    """Builds and caches the `Topology` of a single-group node."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self._key: object = None
        self._topology: Topology | None = None

    def topology(
        self,
        lead: int,
        conf_state: ConfState,
        client_addrs: Mapping[int, str],
        connected: frozenset[int],
    ) -> Topology:
        """The layout given the group's state and what the transport knows of its peers."""
        key = (lead, conf_state, tuple(sorted(client_addrs.items())), connected)
        if self._topology is None or key != self._key:
            self._topology = self._build(lead, conf_state, client_addrs, connected)
            self._key = key
        return self._topology

    def _build(
        self,
        lead: int,
        conf_state: ConfState,
        client_addrs: Mapping[int, str],
        connected: frozenset[int],
    ) -> Topology:
        cfg = self.config
        voters = sorted(set(conf_state.voters) | set(conf_state.voters_outgoing))
        learners = sorted(set(conf_state.learners) | set(conf_state.learners_next))
        peers = tuple(Peer(n, n) for n in voters) + tuple(
            Peer(n, n, PeerRole.LEARNER) for n in learners if n not in voters
        )
        region = Region(WHOLE_KEYSPACE_REGION, peers=peers)
        host, port = cfg.advertised_client_addr
        nodes = {cfg.node_id: NodeAddress(host, port, cfg.peer_addr[1])}
        for node_id, text in client_addrs.items():
            try:
                peer_host, peer_port = parse_address(f"node {node_id}", text)
            except ConfigError:
                continue  # a peer announcing nonsense is left out of the layout
            bus = cfg.peers.get(node_id, ("", 0))[1]
            nodes[node_id] = NodeAddress(peer_host, peer_port, bus)
        leaders = {} if lead == NONE else {WHOLE_KEYSPACE_REGION: lead}
        down = [p.node_id for p in peers if p.node_id != cfg.node_id and p.node_id not in connected]
        return Topology([region], leaders, nodes, cfg.node_id, cfg.cluster_id, down=down)
