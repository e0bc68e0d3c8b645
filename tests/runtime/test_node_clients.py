"""Real clients against a real 3-node cluster: redis-py (sync and asyncio), redis-cli, RESP3,
AUTH, errors, and commands sent to followers (forwarded to the leader)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio
from cluster_fixture import client, running_cluster
from store_harness import RawRedis, parse_resp2

from cairn.runtime.local_cluster import HOST, LocalCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("clients")) as c:
        yield c


@pytest.fixture(params=[1, 2, 3], ids=lambda n: f"node{n}")
def r(request: pytest.FixtureRequest, cluster: LocalCluster) -> Iterator[redis.Redis]:
    c = client(cluster, request.param, decode_responses=True)
    yield c
    c.close()


def test_strings_on_every_node(r: redis.Redis) -> None:
    port = r.connection_pool.connection_kwargs["port"]
    k = f"s:{port}"
    assert r.set(k, "v1") is True
    assert r.get(k) == "v1"
    assert r.set(k, "v2", nx=True) is None
    assert r.set(k, "v2", xx=True, get=True) == "v1"
    assert r.append(k, "!") == 3
    assert r.strlen(k) == 3
    assert r.getrange(k, 0, 1) == "v2"
    assert r.setrange(k, 1, "X") == 3
    assert r.getdel(k) == "vX!"
    assert r.exists(k) == 0
    assert r.mset({f"{k}a": "1", f"{k}b": "2"}) is True
    assert r.mget(f"{k}a", f"{k}b", f"{k}c") == ["1", "2", None]
    assert r.msetnx({f"{k}a": "9", f"{k}z": "9"}) is False
    assert r.incr(f"{k}a") == 2
    assert r.incrby(f"{k}a", 5) == 7
    assert r.decr(f"{k}a") == 6
    assert r.decrby(f"{k}a", 6) == 0
    assert r.incrbyfloat(f"{k}b", 0.5) == 2.5
    assert r.getset(f"{k}b", "x") == "2.5"
    assert r.setnx(f"{k}n", "1") is True
    assert r.delete(f"{k}a", f"{k}b", f"{k}n", f"{k}missing") == 3
    assert r.unlink(f"{k}z") == 0


def test_expiry(r: redis.Redis) -> None:
    port = r.connection_pool.connection_kwargs["port"]
    k = f"e:{port}"
    assert r.execute_command("SETEX", k, 100, "v") is True
    assert 98 <= r.ttl(k) <= 100
    assert 90_000 <= r.pttl(k) <= 100_000
    assert r.persist(k) is True
    assert r.ttl(k) == -1
    assert r.expire(k, 50) is True
    assert r.expiretime(k) > 0
    assert r.psetex(f"{k}p", 40, "v")
    assert r.pexpire(k, 40) is True
    assert r.getex(f"{k}x") is None
    r.set(f"{k}x", "v", px=30)
    time.sleep(0.15)
    assert r.get(k) is None
    assert r.get(f"{k}p") is None
    assert r.exists(f"{k}x") == 0
    assert r.ttl(k) == -2


def test_hashes(r: redis.Redis) -> None:
    port = r.connection_pool.connection_kwargs["port"]
    k = f"h:{port}"
    assert r.hset(k, mapping={"a": "1", "b": "2"}) == 2
    assert r.hsetnx(k, "a", "x") == 0
    assert r.hget(k, "a") == "1"
    assert r.hmget(k, ["a", "c"]) == ["1", None]
    assert r.hgetall(k) == {"a": "1", "b": "2"}
    assert r.hincrby(k, "a", 10) == 11
    assert r.hincrbyfloat(k, "b", 0.25) == 2.25
    assert r.hlen(k) == 2
    assert sorted(r.hkeys(k)) == ["a", "b"]
    assert sorted(r.hvals(k)) == ["11", "2.25"]
    assert r.hstrlen(k, "a") == 2
    assert r.hexists(k, "z") is False
    cursor, fields = r.hscan(k, 0)
    assert cursor == 0 and fields == {"a": "11", "b": "2.25"}
    assert r.hdel(k, "a", "z") == 1
    assert r.type(k) == "hash"


def test_keys_scan_rename(r: redis.Redis) -> None:
    port = r.connection_pool.connection_kwargs["port"]
    prefix = f"k{port}:"
    for i in range(30):
        r.set(f"{prefix}{i}", i)
    assert sorted(r.keys(f"{prefix}*"), key=lambda s: int(s.split(":")[1])) == [
        f"{prefix}{i}" for i in range(30)
    ]
    seen = set(r.scan_iter(match=f"{prefix}*", count=7))
    assert seen == {f"{prefix}{i}" for i in range(30)}
    assert r.rename(f"{prefix}0", f"{prefix}x") is True
    assert r.renamenx(f"{prefix}1", f"{prefix}x") is False
    assert r.touch(f"{prefix}2", f"{prefix}3", f"{prefix}nope") == 2
    assert r.dbsize() >= 30
    assert r.randomkey() is not None


def test_errors_are_redis_errors(r: redis.Redis) -> None:
    with pytest.raises(
        redis.ResponseError, match="unknown command 'NOSUCHCMD', with args beginning with: 'a' "
    ):
        r.execute_command("NOSUCHCMD", "a")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'get' command"):
        r.execute_command("GET")
    r.hset("wt", "f", "v")
    with pytest.raises(redis.ResponseError, match=r"^WRONGTYPE"):
        r.get("wt")
    r.set("notint", "abc")
    with pytest.raises(redis.ResponseError, match="value is not an integer or out of range"):
        r.incr("notint")
    r.set("big", str(2**63 - 1))
    with pytest.raises(redis.ResponseError, match="increment or decrement would overflow"):
        r.incr("big")
    with pytest.raises(redis.ResponseError, match="DB index is out of range"):
        r.execute_command("SELECT", 1)


def test_connection_commands(r: redis.Redis) -> None:
    assert r.ping() is True
    assert r.echo("hi") == "hi"
    assert r.execute_command("SELECT", 0) is True
    assert r.client_setname("tester") is True
    assert r.client_getname() == "tester"
    assert isinstance(r.client_id(), int)
    assert any(c["name"] == "tester" for c in r.client_list())
    assert r.client_info()["name"] == "tester"
    seconds, micros = r.time()
    assert seconds > 1_700_000_000 and 0 <= micros < 1_000_000
    info = r.info()
    assert info["raft_term"] >= 1 and info["role"] in ("master", "slave")
    assert r.info("keyspace") is not None
    assert r.command_count() > 60
    assert "get" in r.command()
    raw = RawRedis(r.connection_pool.connection_kwargs["port"])
    docs = parse_resp2(raw.call([b"COMMAND", b"DOCS", b"GET"]))
    raw.close()
    assert isinstance(docs, list) and docs[0] == b"get"
    assert docs[1][:2] == [b"summary", b"Read a string value."]


def test_resp3_hello(cluster: LocalCluster) -> None:
    c = client(cluster, 2, protocol=3, decode_responses=True)
    hello = c.execute_command("HELLO", "3")
    assert hello["proto"] == 3
    c.hset("r3", mapping={"a": "1"})
    assert c.hgetall("r3") == {"a": "1"}
    assert c.get("r3-missing") is None
    assert c.incrbyfloat("r3f", 1.5) == 1.5
    c.close()


def test_asyncio_client(cluster: LocalCluster) -> None:
    async def main() -> None:
        port = cluster.spec(3).client_port
        c = redis.asyncio.Redis(host=HOST, port=port, decode_responses=True, max_connections=256)
        await asyncio.gather(*(c.set(f"async:{i}", i) for i in range(200)))
        values = await asyncio.gather(*(c.get(f"async:{i}") for i in range(200)))
        assert values == [str(i) for i in range(200)]
        async with c.pipeline(transaction=False) as pipe:
            for _ in range(100):
                pipe.incr("async:counter")
            results = await pipe.execute()
        assert results == list(range(1, 101))
        await c.aclose()

    asyncio.run(main())


def test_redis_cli(cluster: LocalCluster, tmp_path: Path) -> None:
    port = str(cluster.spec(1).client_port)

    def cli(*args: str) -> str:
        out = subprocess.run(
            ["redis-cli", "-h", HOST, "-p", port, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return out.stdout.strip()

    assert cli("ping") == "PONG"
    assert cli("set", "cli:k", "hello world") == "OK"
    assert cli("get", "cli:k") == "hello world"
    assert cli("incr", "cli:n") == "1"
    assert cli("hset", "cli:h", "f", "v") == "1"
    assert cli("--no-raw", "hgetall", "cli:h") == '1) "f"\n2) "v"'
    assert "ERR unknown command" in cli("nosuch")
    script = tmp_path / "cmds.txt"
    script.write_text("set cli:a 1\nincr cli:a\nget cli:a\n")
    out = subprocess.run(
        ["redis-cli", "-h", HOST, "-p", port],
        input=script.read_text(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout.split() == ["OK", "2", "2"]


AUTH_SEQUENCE = [
    [b"GET", b"x"],
    [b"AUTH", b"wrong"],
    [b"AUTH", b"someone", b"s3cret"],
    [b"HELLO", b"3"],
    [b"PING"],
    [b"AUTH", b"s3cret"],
    [b"SET", b"x", b"1"],
    [b"AUTH", b"default", b"s3cret"],
    [b"RESET"],
    [b"GET", b"x"],
    [b"HELLO", b"2", b"AUTH", b"default", b"s3cret", b"SETNAME", b"me"],
]


def test_auth_replies_match_redis(tmp_path: Path) -> None:
    redis_port = _start_redis(tmp_path, "s3cret")
    try:
        with running_cluster(tmp_path / "cairn", nodes=1, password="s3cret") as c:
            ours, theirs = RawRedis(c.spec(1).client_port), RawRedis(redis_port)
            for argv in AUTH_SEQUENCE:
                got, want = ours.call(argv), theirs.call(argv)
                if argv[0] == b"HELLO" and want.startswith(b"*"):
                    assert got.startswith(b"*14\r\n$6\r\nserver\r\n"), argv
                else:
                    assert got == want, argv
            good = client(c, 1)
            assert good.ping() is True
            good.close()
    finally:
        _stop_redis(tmp_path)


def _start_redis(tmp_path: Path, password: str) -> int:
    from cairn.runtime.local_cluster import free_ports

    port = free_ports(1)[0]
    pidfile = tmp_path / "redis.pid"
    subprocess.run(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            HOST,
            "--requirepass",
            password,
            "--save",
            "",
            "--daemonize",
            "yes",
            "--pidfile",
            str(pidfile),
        ],
        check=True,
        capture_output=True,
    )
    for _ in range(100):
        if pidfile.exists():
            break
        time.sleep(0.05)
    return port


def _stop_redis(tmp_path: Path) -> None:
    pidfile = tmp_path / "redis.pid"
    if pidfile.exists():
        os.kill(int(pidfile.read_text()), signal.SIGTERM)


def test_the_leader_expires_keys_for_every_replica(cluster: LocalCluster) -> None:
    c = client(cluster, cluster.wait_for_leader(), decode_responses=True)
    before = c.dbsize()
    pipe = c.pipeline(transaction=False)
    for i in range(20):
        pipe.set(f"exp:{i}", "v", px=1500)
    pipe.dbsize()
    assert pipe.execute()[-1] == before + 20
    deadline = time.monotonic() + 10
    while c.dbsize() != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert c.dbsize() == before, "active expiry should delete expired keys"
    c.close()
    for n in cluster.specs:
        # INFO is answered from each node's own state: the deletions were replicated.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            keys = client(cluster, n.node_id).info("keyspace").get("db0", {}).get("keys", 0)
            if keys == before:
                break
            time.sleep(0.1)
        assert keys == before


def test_a_pipeline_runs_in_program_order(r: redis.Redis) -> None:
    port = r.connection_pool.connection_kwargs["port"]
    pipe = r.pipeline(transaction=False)
    for i in range(50):
        pipe.set(f"po:{port}", i)
        pipe.get(f"po:{port}")
        pipe.append(f"po:{port}", "x")
    results = pipe.execute()
    assert results[1::3] == [str(i) for i in range(50)]
    assert results[2::3] == [len(str(i)) + 1 for i in range(50)]
