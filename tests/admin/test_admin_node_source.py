"""The admin view of a single-group node: from a `Topology`, and from a real running node."""

from __future__ import annotations

import asyncio
from pathlib import Path

from admin_support import ADMIN_TOKEN, region, write_test_tokens

from cairn.admin import AdminClient, AdminServer, NodeAdminSource
from cairn.admin.access import Access
from cairn.admin.client import ApiError
from cairn.admin.health import problems, region_health
from cairn.admin.node_source import topology_views
from cairn.admin.views import Health, NodeStatus
from cairn.meta.region import slot_bound
from cairn.runtime.config import NodeConfig, RaftSettings
from cairn.runtime.node import Node
from cairn.shard.topology import NodeAddress, Topology


def addresses(*ids: int) -> dict[int, NodeAddress]:
    return {n: NodeAddress("127.0.0.1", 7000 + n, 17000 + n) for n in ids}


def test_nodes_and_regions_of_a_topology() -> None:
    mid = slot_bound(8192)
    regions = [region(1, [1, 2, 3], b"", mid), region(2, [2, 3, 4], mid, b"", learners=(4,))]
    topology = Topology(regions, {1: 1, 2: 3}, addresses(1, 2, 3), 1, "c", down=[2])
    peers = {n: f"10.0.0.{n}:17000" for n in (1, 2, 3, 4)}
    nodes, views = topology_views(topology, peers, lambda r: 10 * r.id)
    assert [n.id for n in nodes] == [1, 2, 3, 4]
    by = {n.id: n for n in nodes}
    assert by[2].status is NodeStatus.DOWN and by[1].status is NodeStatus.UP
    assert by[4].client_address is None and by[4].peer_address == "10.0.0.4:17000"
    assert by[1].client_address == "127.0.0.1:7001"
    assert (by[3].regions, by[3].leaders) == (2, 1)
    assert (by[2].regions, by[2].leaders) == (2, 0)
    first, second = views
    assert (first.leader, second.leader) == (1, 3)
    assert first.approximate_keys == 10 and second.approximate_keys == 20
    assert [p.role for p in second.peers] == ["voter", "voter", "learner"]
    assert first.health is Health.DEGRADED, "a voter on node 2, which is down"
    assert second.health is Health.UNAVAILABLE, "voters on 2 (down) and 3: half are gone"
    health, found = problems(nodes, views)
    assert health is Health.UNAVAILABLE
    assert found == (
        "region(s) 2 lost their quorum",
        "region(s) 1 have a replica on a node down or removed",
        "node(s) 2 down",
    )


def test_a_region_with_a_voter_on_a_node_gone_is_degraded_not_ok() -> None:
    # the dashboard's repair screenshot showed r2 and r3 "ok" with a replica on down node 4
    assert region_health([1, 2, 3], 1, frozenset()) is Health.OK
    assert region_health([1, 2, 3], 1, frozenset({3})) is Health.DEGRADED
    assert region_health([1, 2, 3, 4, 5], 1, frozenset({4})) is Health.DEGRADED
    assert region_health([1, 2, 3], 1, frozenset({2, 3})) is Health.UNAVAILABLE
    assert region_health([1, 2, 3], None, frozenset()) is Health.DEGRADED
    assert region_health([1, 2, 3], 1, frozenset({7})) is Health.OK, "not its node"


def test_a_leaderless_region_is_degraded() -> None:
    topology = Topology([region(1, [1, 2, 3], b"", b"")], {}, addresses(1, 2, 3), 1, "c")
    nodes, views = topology_views(topology, {}, lambda r: None)
    assert views[0].health is Health.DEGRADED and views[0].leader is None
    assert problems(nodes, views) == (Health.DEGRADED, ("region(s) 1 have no leader",))


def one_node_config(tmp_path: Path) -> NodeConfig:
    raft = RaftSettings(tick_ms=5, election_ticks=10, heartbeat_ticks=2, max_clock_drift_ticks=2)
    return NodeConfig(
        node_id=1,
        data_dir=tmp_path,
        client_addr=("127.0.0.1", 0),
        peer_addr=("127.0.0.1", 0),
        peers={1: ("127.0.0.1", 0)},
        cluster_id="solo",
        raft=raft,
        cluster_secret=b"a-test-secret-of-enough-bytes",
    ).validate()


def test_a_running_node_through_its_admin_server(tmp_path: Path) -> None:
    async def main() -> None:
        node = Node(one_node_config(tmp_path))
        await node.start()
        access = Access.open(write_test_tokens(tmp_path / "tokens.json"))
        server = AdminServer(NodeAdminSource(node), "127.0.0.1", 0, access=access)
        try:
            while not any(p.replica.is_leader for p in node.host.peers.values()):
                await asyncio.sleep(0.01)
            await server.start()
            client = AdminClient(["{}:{}".format(*server.address)], token=ADMIN_TOKEN)
            status = await asyncio.to_thread(client.status)
            assert (status.cluster_id, status.answered_by) == ("solo", 1)
            assert status.placement_running is False and status.health is Health.OK
            assert (status.regions, status.regions_with_leader) == (1, 1)
            (only,) = await asyncio.to_thread(client.regions)
            assert only.leader == 1 and only.slots() == range(0, 16384)
            assert only.approximate_keys == 0
            (me,) = await asyncio.to_thread(client.nodes)
            assert me.status is NodeStatus.UP and (me.regions, me.leaders) == (1, 1)
            text = await asyncio.to_thread(client.metrics)
            assert 'cairn_raft_role{node="1",region="1",role="leader"} 1.0' in text
            assert 'cairn_raft_applied_index{node="1",region="1"}' in text
            try:
                await asyncio.to_thread(client.drain_node, 1)
            except ApiError as exc:
                assert exc.status == 501
            else:
                raise AssertionError("drain must be refused without a placement driver")
        finally:
            await server.stop()
            await node.stop()

    asyncio.run(main())
