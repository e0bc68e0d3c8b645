"""A real 3-node cluster founded with 8 regions: the layout clients see, routing across
regions (forwarding, fan-out, CROSSSLOT), redis-py's `RedisCluster` through the kill of a
node leading regions, and a restart of every node keeping every acknowledged key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from cluster_fixture import client, running_cluster
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from cairn.meta.region import range_key
from cairn.runtime.local_cluster import HOST, LocalCluster
from cairn.runtime.region_layout import initial_layout
from cairn.store.slot import key_slot

REGIONS = 8
LAYOUT = initial_layout([1, 2, 3], REGIONS)


def region_of(key: str) -> int:
    return next(r.id for r in LAYOUT if r.contains(range_key(key.encode())))


def keys_in(region_id: int, count: int, prefix: str = "k") -> list[str]:
    found = []
    i = 0
    while len(found) < count:
        if region_of(f"{prefix}{i}") == region_id:
            found.append(f"{prefix}{i}")
        i += 1
    return found


def raft_info(cluster: LocalCluster, node_id: int) -> dict[str, Any]:
    c = client(cluster, node_id, socket_timeout=2)
    try:
        return dict(c.info("raft"))
    finally:
        c.close()


def wait_for_region_leaders(cluster: LocalCluster, nodes: list[int], timeout: float = 30) -> None:
    """Until every node of `nodes` knows a leader of every region, among `nodes`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            infos = [raft_info(cluster, n) for n in nodes]
        except redis.RedisError:
            infos = []
        if infos and all(
            i["raft_regions_without_leader"] == 0
            and all(i[f"raft_region{r}"]["leader"] in nodes for r in range(1, REGIONS + 1))
            for i in infos
        ):
            return
        time.sleep(0.1)
    raise TimeoutError("some region has no leader")


def leaders(cluster: LocalCluster, node_id: int) -> dict[int, int]:
    info = raft_info(cluster, node_id)
    return {r: int(info[f"raft_region{r}"]["leader"]) for r in range(1, REGIONS + 1)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root = tmp_path_factory.mktemp("regions")
    with running_cluster(root, settings={"initial_regions": REGIONS}) as cluster:
        wait_for_region_leaders(cluster, [1, 2, 3])
        yield cluster


def test_info_regions_lists_what_the_node_holds(cluster: LocalCluster) -> None:
    c = client(cluster, 3)
    c.set("{a}regions", "v")  # slot 15495: the last region's
    deadline = time.monotonic() + 10
    while True:  # this node's replica may apply the write a moment after the leader
        regions = c.info("regions")
        if regions[f"region{REGIONS}"]["keys"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert regions["regions_hosted"] == REGIONS
    first, last = regions["region1"], regions[f"region{REGIONS}"]
    assert first["slots"] == "0-2047" and last["slots"] == "14336-16383"
    assert last["keys"] >= 1
    assert first["voters"] == "1|2|3" and first["learners"] == ""
    assert first["role"] in ("leader", "follower")
    assert first["leader"] in (1, 2, 3)
    assert "region1" not in c.info("raft")  # the raft section keeps its own names
    c.close()


def test_info_raft_and_cluster_slots_show_every_region_and_its_leader(
    cluster: LocalCluster,
) -> None:
    info = raft_info(cluster, 1)
    assert info["raft_regions"] == REGIONS
    led = sum(raft_info(cluster, n)["raft_regions_leading"] for n in (1, 2, 3))
    assert led == REGIONS
    for n in (1, 2, 3):  # the node-level fields describe the node, not its lowest region
        node = raft_info(cluster, n)
        got = node["raft_regions_led"]  # redis-py turns "1,4" into [1, 4] and "4" into 4
        regions_led = got if isinstance(got, list) else [got] if got != "" else []
        mine = [r for r in range(1, REGIONS + 1) if node[f"raft_region{r}"]["role"] == "leader"]
        assert regions_led == mine and node["raft_regions_leading"] == len(mine)
        assert node["raft_role"] == ("leader" if mine else "follower")
        terms = [node[f"raft_region{r}"]["term"] for r in range(1, REGIONS + 1)]
        assert node["raft_term"] == max(terms)
    assert info["raft_region1"]["slots"] == "0-2047"
    assert info["raft_region8"]["slots"] == "14336-16383"
    by_region = leaders(cluster, 1)
    port_of = {s.client_port: s.node_id for s in cluster.specs}
    c = client(cluster, 2)
    deadline = time.monotonic() + 10
    while True:  # peers' client addresses arrive with their handshakes
        slots = sorted(c.execute_command("CLUSTER SLOTS"))
        if all(len(e) == 5 for e in slots) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [(e[0], e[1]) for e in slots] == [(i * 2048, i * 2048 + 2047) for i in range(REGIONS)]
    for i, entry in enumerate(slots):
        master = port_of[entry[2][1]]
        assert master == by_region[i + 1]
        assert {port_of[n[1]] for n in entry[2:]} == {1, 2, 3}
    shards = c.execute_command("CLUSTER SHARDS")
    assert len(shards) == REGIONS
    c.close()


def test_plain_clients_on_any_node_reach_every_region(cluster: LocalCluster) -> None:
    per_region = {r: keys_in(r, 3, "plain:") for r in range(1, REGIONS + 1)}
    writer = client(cluster, 1, decode_responses=True)
    for keys in per_region.values():
        for key in keys:
            assert writer.set(key, key.upper()) is True
    writer.close()
    for node in (1, 2, 3):
        reader = client(cluster, node, decode_responses=True)
        for keys in per_region.values():
            for key in keys:
                assert reader.get(key) == key.upper()
                assert reader.incr(f"{{{key}}}:count") >= 1  # a write in the same slot
        reader.close()


def test_multi_key_commands_fan_out_run_as_transactions_or_answer_crossslot(
    cluster: LocalCluster,
) -> None:
    c = client(cluster, 3, decode_responses=True)
    spread = [keys_in(r, 1, "multi:")[0] for r in range(1, REGIONS + 1)]
    for key in spread:
        c.set(key, f"v-{key}")
    assert c.mget([*spread, "multi:absent"]) == [f"v-{k}" for k in spread] + [None]
    assert c.exists(*spread, "multi:absent") == REGIONS
    assert c.mset({spread[0]: "x", spread[1]: "y"}) is True  # a cross-region transaction
    aware = client(cluster, 3, single_connection_client=True)
    aware.execute_command("READWRITE")  # it can follow MOVED: answered as by Redis Cluster
    with pytest.raises(redis.ResponseError, match="hash to the same slot"):  # CROSSSLOT
        aware.mset({spread[0]: "x", spread[1]: "y"})
    aware.close()
    a, b = keys_in(5, 2, "same:")
    assert key_slot(a.encode()) != key_slot(b.encode())  # two slots, one region
    assert c.mset({a: "1", b: "2"}) is True
    assert c.mget([a, b]) == ["1", "2"]
    assert c.delete(*spread, a, "multi:absent") == REGIONS + 1
    assert c.mget(spread) == [None] * REGIONS
    assert c.dbsize() >= 1  # summed over the regions
    c.close()


def test_redis_cluster_client_through_a_leader_kill_then_a_full_restart(
    cluster: LocalCluster,
) -> None:
    rc = RedisCluster(
        startup_nodes=[ClusterNode(HOST, cluster.spec(1).client_port)],
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 20),
        socket_timeout=5,
    )
    acked: dict[str, str] = {}

    def write(key: str, value: str) -> None:
        for _ in range(100):
            try:
                assert rc.set(key, value)
                acked[key] = value
                return
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                time.sleep(0.1)
        pytest.fail(f"{key} was never written")

    try:
        for i in range(250):
            write(f"rc:{i}", str(i))
        assert len({region_of(k) for k in acked}) == REGIONS
        victim = max((1, 2, 3), key=lambda n: raft_info(cluster, n)["raft_regions_leading"])
        assert raft_info(cluster, victim)["raft_regions_leading"] >= 1
        cluster.kill(victim)
        for i in range(250, 500):
            write(f"rc:{i}", str(i))
        survivors = [n for n in (1, 2, 3) if n != victim]
        wait_for_region_leaders(cluster, survivors)
        for key, value in acked.items():
            assert rc.get(key) == value.encode(), key
    finally:
        rc.close()
    cluster.start(victim)
    wait_for_region_leaders(cluster, [1, 2, 3])
    cluster.stop()
    cluster.start()
    wait_for_region_leaders(cluster, [1, 2, 3])
    for node in (1, 2, 3):
        c = client(cluster, node, decode_responses=True)
        keys = list(acked)
        assert c.mget(keys) == [acked[k] for k in keys]
        c.close()
