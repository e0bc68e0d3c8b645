"""Redis's data types through redis-py (sync and asyncio) on a real 3-node cluster with three
regions, every test run against a real redis-server too, so the expectations are Redis's.

The byte-for-byte replies (errors included) are checked by the scripts in
tests/store/scripts/ (test_node_vs_redis.py replays them on a cluster); this module checks
what an application sees through the client library, on the leader and on followers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
from cluster_fixture import client, running_cluster

from cairn.runtime.local_cluster import HOST, LocalCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(
        tmp_path_factory.mktemp("datatypes"), settings={"initial_regions": 3}
    ) as c:
        yield c


@pytest.fixture(params=["redis", "node1", "node2", "node3"])
def r(
    request: pytest.FixtureRequest, cluster: LocalCluster, redis_server_port: int
) -> Iterator[redis.Redis]:
    """A client of redis-server or of one Cairn node, on a clean keyspace."""
    if request.param == "redis":
        c = redis.Redis(host=HOST, port=redis_server_port, decode_responses=True)
    else:
        c = client(cluster, int(request.param[-1]), decode_responses=True)
    c.flushall()
    yield c
    c.close()


def test_lists(r: redis.Redis) -> None:
    assert r.rpush("l", "a", "b", "c") == 3
    assert r.lpush("l", "z") == 4
    assert r.lrange("l", 0, -1) == ["z", "a", "b", "c"]
    assert r.lindex("l", -1) == "c"
    assert r.lset("l", 1, "A") is True
    assert r.linsert("l", "before", "b", "x") == 5
    assert r.lpos("l", "b") == 3
    assert r.lrem("l", 0, "x") == 1
    assert r.ltrim("l", 1, -1) is True
    assert r.lrange("l", 0, -1) == ["A", "b", "c"]
    assert r.lmove("l", "l", "LEFT", "RIGHT") == "A"
    assert r.lpop("l", 2) == ["b", "c"]
    assert r.rpop("l") == "A"
    assert r.exists("l") == 0
    assert r.lpushx("l", "v") == 0
    r.set("s", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.lpush("s", "v")


def test_sets(r: redis.Redis) -> None:
    assert r.sadd("{s}a", "1", "2", "3") == 3
    assert r.sadd("{s}b", "2", "3", "4") == 3
    assert r.smembers("{s}a") == {"1", "2", "3"}
    assert r.sismember("{s}a", "2") == 1
    assert r.smismember("{s}a", ["1", "9"]) == [1, 0]
    assert r.sinter("{s}a", "{s}b") == {"2", "3"}
    assert r.sunion("{s}a", "{s}b") == {"1", "2", "3", "4"}
    assert r.sdiff("{s}a", "{s}b") == {"1"}
    assert r.sintercard(2, ["{s}a", "{s}b"]) == 2
    assert r.sinterstore("{s}c", ["{s}a", "{s}b"]) == 2
    assert r.smove("{s}a", "{s}c", "1") is True
    assert r.scard("{s}c") == 3
    assert r.srem("{s}c", "1", "9") == 1
    assert r.srandmember("{s}c") in {"2", "3"}
    assert len(r.srandmember("{s}c", -5)) == 5
    popped = r.spop("{s}c", 5)
    assert sorted(popped) == ["2", "3"]
    assert r.exists("{s}c") == 0


def test_sorted_sets(r: redis.Redis) -> None:
    assert r.zadd("z", {"a": 1, "b": 2, "c": 3}) == 3
    assert r.zadd("z", {"a": 5}, xx=True, ch=True) == 1
    assert r.zincrby("z", 0.5, "b") == 2.5
    assert r.zrange("z", 0, -1, withscores=True) == [("b", 2.5), ("c", 3.0), ("a", 5.0)]
    assert r.zrangebyscore("z", "(2.5", "+inf") == ["c", "a"]
    assert r.zrevrange("z", 0, 0) == ["a"]
    assert r.zrank("z", "c") == 1
    assert r.zrevrank("z", "c") == 1
    assert r.zscore("z", "a") == 5.0
    assert r.zmscore("z", ["a", "nope"]) == [5.0, None]
    assert r.zcount("z", 2, 3) == 2
    assert r.zpopmin("z") == [("b", 2.5)]
    assert r.zpopmax("z") == [("a", 5.0)]
    assert r.zadd("lex", {"x": 0, "y": 0, "w": 0}) == 3
    assert r.zrangebylex("lex", "[x", "+") == ["x", "y"]
    assert r.zlexcount("lex", "-", "(y") == 2
    assert r.zadd("{z}1", {"a": 1, "b": 2}) == 2
    assert r.zadd("{z}2", {"b": 3, "c": 4}) == 2
    assert r.zinterstore("{z}i", ["{z}1", "{z}2"], aggregate="MAX") == 1
    assert r.zrange("{z}i", 0, -1, withscores=True) == [("b", 3.0)]
    assert r.zunion(["{z}1", "{z}2"], withscores=True) == [
        ("a", 1.0),
        ("c", 4.0),
        ("b", 5.0),
    ]
    assert r.zremrangebyscore("{z}1", "-inf", "+inf") == 2


def test_bitmaps_and_hyperloglog(r: redis.Redis) -> None:
    assert r.setbit("b", 7, 1) == 0
    assert r.getbit("b", 7) == 1
    assert r.bitcount("b") == 1
    assert r.bitpos("b", 1) == 7
    assert r.get("b") == "\x01"
    assert r.bitfield("bf").set("u8", 0, 200).incrby("u8", 0, 100).execute() == [0, 44]
    assert r.pfadd("h", *[f"e{i}" for i in range(1000)]) == 1
    assert 990 <= r.pfcount("h") <= 1010


def test_geo(r: redis.Redis) -> None:
    assert r.geoadd("g", [13.361389, 38.115556, "Palermo", 15.087269, 37.502669, "Catania"]) == 2
    assert round(r.geodist("g", "Palermo", "Catania", "km"), 2) == 166.27
    assert r.geosearch("g", longitude=15, latitude=37, radius=200, unit="km", sort="ASC") == [
        "Catania",
        "Palermo",
    ]
    assert r.geohash("g", "Palermo") == ["sqc8b49rny0"]


def test_keys_of_every_type(r: redis.Redis) -> None:
    r.rpush("{k}l", "1", "3", "2")
    r.sadd("{k}s", "x")
    r.zadd("{k}z", {"m": 1})
    assert [r.type(k) for k in ("{k}l", "{k}s", "{k}z")] == ["list", "set", "zset"]
    assert r.sort("{k}l") == ["1", "2", "3"]
    assert r.copy("{k}l", "{k}l2") is True
    assert r.lrange("{k}l2", 0, -1) == ["1", "3", "2"]
    assert r.rename("{k}z", "{k}z2") is True
    assert r.zscore("{k}z2", "m") == 1.0
    assert r.object("encoding", "{k}l") == "quicklist"
    assert r.expire("{k}s", 100) is True
    assert 0 < r.ttl("{k}s") <= 100
    assert sorted(r.scan_iter(match="{k}*", _type="list")) == ["{k}l", "{k}l2"]


def test_streams_and_consumer_groups(r: redis.Redis) -> None:
    """Every stream command through redis-py's own helpers (explicit ids, so the replies
    are the same on Redis and on every Cairn node); errors included."""
    assert r.xadd("st", {"f": "1"}, id="1-1") == "1-1"
    assert r.xadd("st", {"f": "2"}, id="2-1") == "2-1"
    assert r.xadd("st", {"f": "3"}, id="3-*") == "3-0"
    assert r.xadd("nost", {"f": "1"}, nomkstream=True) is None
    with pytest.raises(redis.ResponseError, match="equal or smaller than the target stream top"):
        r.xadd("st", {"f": "0"}, id="1-1")
    assert r.xlen("st") == 3
    assert r.xrange("st", "-", "+", count=2) == [("1-1", {"f": "1"}), ("2-1", {"f": "2"})]
    assert r.xrevrange("st", "+", "(2-1") == [("3-0", {"f": "3"})]
    assert r.xread({"st": "2-1"}) == [["st", [("3-0", {"f": "3"})]]]
    assert r.xread({"st": "$"}, block=100) == []
    assert r.xgroup_create("st", "g", id="0") is True
    with pytest.raises(redis.ResponseError, match="BUSYGROUP"):
        r.xgroup_create("st", "g", id="0")
    assert r.xgroup_create("new", "g2", id="$", mkstream=True) is True
    assert r.xgroup_createconsumer("st", "g", "c2") == 1
    got = r.xreadgroup("g", "c1", {"st": ">"}, count=2)
    assert got == [["st", [("1-1", {"f": "1"}), ("2-1", {"f": "2"})]]]
    assert r.xreadgroup("g", "c1", {"st": "0"}) == got  # its pending history
    assert r.xack("st", "g", "1-1", "9-9") == 1
    summary = r.xpending("st", "g")
    assert (summary["pending"], summary["min"], summary["max"]) == (1, "2-1", "2-1")
    assert summary["consumers"] == [{"name": "c1", "pending": 1}]
    [entry] = r.xpending_range("st", "g", "-", "+", 10)
    assert (entry["message_id"], entry["consumer"], entry["times_delivered"]) == ("2-1", "c1", 2)
    assert r.xclaim("st", "g", "c2", 0, ["2-1"], justid=True) == ["2-1"]
    claimed = r.xautoclaim("st", "g", "c1", 0, start_id="0-0", count=5)
    assert claimed[0] == "0-0" and claimed[1] == [("2-1", {"f": "2"})]
    groups = r.xinfo_groups("st")
    assert [(g["name"], g["consumers"], g["pending"], g["last-delivered-id"]) for g in groups] == [
        ("g", 2, 1, "2-1")
    ]
    consumers = {c["name"]: c["pending"] for c in r.xinfo_consumers("st", "g")}
    assert consumers == {"c1": 1, "c2": 0}
    info = r.xinfo_stream("st")
    assert (info["length"], info["last-generated-id"], info["groups"]) == (3, "3-0", 1)
    assert info["first-entry"] == ("1-1", {"f": "1"})
    assert r.xgroup_setid("st", "g", "3-0") is True
    assert r.xreadgroup("g", "c1", {"st": ">"}) == []
    assert r.xgroup_delconsumer("st", "g", "c2") == 0
    assert r.xdel("st", "1-1", "8-8") == 1
    assert r.xtrim("st", maxlen=1, approximate=False) == 1
    assert r.xrange("st") == [("3-0", {"f": "3"})]
    assert r.execute_command("XSETID", "st", "5-0") == "OK"
    assert r.xadd("st", {"f": "6"}, id="6-0", maxlen=1, approximate=False) == "6-0"
    assert r.xlen("st") == 1
    assert r.xgroup_destroy("st", "g") == 1
    with pytest.raises(redis.ResponseError, match="NOGROUP"):
        r.xreadgroup("g", "c1", {"st": ">"})
    r.set("str", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.xadd("str", {"f": "1"})


def test_asyncio_client(r: redis.Redis) -> None:
    kwargs = r.connection_pool.connection_kwargs

    async def main() -> list[object]:
        a = redis.asyncio.Redis(
            host=kwargs["host"],
            port=kwargs["port"],
            password=kwargs.get("password"),
            decode_responses=True,
        )
        try:
            await a.rpush("al", "x", "y")
            await a.sadd("as", "m")
            await a.zadd("az", {"m": 2})
            return [
                await a.lrange("al", 0, -1),
                await a.smembers("as"),
                await a.zrange("az", 0, -1, withscores=True),
                await a.blpop(["al"], timeout=1),
            ]
        finally:
            await a.aclose()

    assert asyncio.run(main()) == [["x", "y"], {"m"}, [("m", 2.0)], ("al", "x")]


def _pending(cluster: LocalCluster, node: int) -> int:
    return int(client(cluster, node).info("memory")["lazyfree_pending_objects"])


def test_unlink_of_large_values_is_reclaimed_on_every_replica(cluster: LocalCluster) -> None:
    """UNLINK of a 20,000-element list and a 2,000-member set answers at once and the keys
    are gone; their records are reclaimed in the background through Raft, on every
    replica (INFO's lazyfree_pending_objects drops to 0 on all three nodes)."""

    c = client(cluster, cluster.wait_for_leader(), socket_timeout=10)
    c.flushall()
    for start in range(0, 20_000, 5_000):
        c.rpush("big", *range(start, start + 5_000))
    c.sadd("bigset", *range(2_000))
    started = time.monotonic()
    assert c.unlink("big", "bigset") == 2
    assert time.monotonic() - started < 1
    assert c.exists("big", "bigset") == 0
    assert c.rpush("big", "new") == 1
    deadline = time.monotonic() + 20
    while any(_pending(cluster, n) for n in (1, 2, 3)):
        assert time.monotonic() < deadline, "the deleted values were not reclaimed"
        time.sleep(0.2)
    assert c.lrange("big", 0, -1) == [b"new"]
    assert c.dbsize() == 1
