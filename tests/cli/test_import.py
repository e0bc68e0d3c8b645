"""`cairn import` from a real redis-server 7.0 into a 1-node Cairn cluster, its verify
pass, and DUMP payloads going Redis -> Cairn -> Redis byte for byte."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from cairn.cli.import_cmd import ImportReport, verify_batch
from cairn.cli.main import main
from cairn.runtime.local_cluster import HOST, LocalCluster, free_ports

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from cluster_fixture import client, running_cluster

HOUR_MS = 3_600_000

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[redis.Redis]:
    (port,) = free_ports(1)
    subprocess.run(
        ["redis-server", "--port", str(port), "--save", "", "--daemonize", "yes"], check=True
    )
    r = redis.Redis(host=HOST, port=port)
    for _ in range(100):
        try:
            r.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    try:
        yield r
    finally:  # redis-cli: redis-py's SHUTDOWN retries for seconds on the closed socket
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], check=False)


@pytest.fixture(scope="module")
def cairn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("cairn"), nodes=1) as c:
        yield c


def _fill(r: redis.Redis) -> None:
    """Every type Redis and Cairn share, in each of Redis' encodings, some with TTLs."""
    r.flushall()
    r.set("str:raw", "v" * 100)
    r.set("str:int", 123456789)
    r.set("str:ttl", "short", px=HOUR_MS)
    r.set("str:bin", bytes(range(256)))
    r.hset("hash:listpack", mapping={"a": "1", "b": "2", "c": "3"})
    r.hset("hash:table", mapping={f"field{i}": f"value{i}" for i in range(300)})
    r.pexpire("hash:table", HOUR_MS)
    r.rpush("list:small", *[f"e{i}" for i in range(10)])
    r.rpush("list:big", *[f"element-{i}" * 20 for i in range(2000)])
    r.sadd("set:intset", *range(100))
    r.sadd("set:table", *[f"member{i}" for i in range(200)])
    r.pexpire("set:table", 2 * HOUR_MS)
    r.zadd("zset:listpack", {"a": 1.5, "b": -2, "c": 3e10})
    r.zadd("zset:skiplist", {f"m{i}": i * 0.25 for i in range(500)})
    for i in range(30):
        r.xadd("stream", {"f": f"v{i}", "n": i})
    r.xgroup_create("stream", "g", id="0")
    r.xreadgroup("g", "consumer", {"stream": ">"}, count=5)
    for i in range(1200):  # more than one SCAN batch
        r.set(f"many:{i}", i)


def _cairn_address(cluster: LocalCluster) -> list[str]:
    args = ["--to", f"{HOST}:{cluster.spec(1).client_port}"]
    return args + (["--password", cluster.password] if cluster.password else [])


def test_import_copies_every_type_with_ttls_and_verifies(
    redis_server: redis.Redis, cairn: LocalCluster
) -> None:
    _fill(redis_server)
    url = f"redis://{HOST}:{redis_server.connection_pool.connection_kwargs['port']}/0"
    result = CliRunner().invoke(main, ["import", url, *_cairn_address(cairn)])
    c = client(cairn, 1)
    assert result.exit_code == 0, result.output
    assert c.xlen("stream") == 30
    assert c.xpending("stream", "g")["pending"] == 5
    assert "verify: 0 differences" in result.output, result.output
    assert set(c.keys("*")) == set(redis_server.keys("*"))
    for key in ("hash:table", "set:table", "str:ttl"):
        assert abs(c.pttl(key) - redis_server.pttl(key)) < 5000
    assert c.pttl("str:raw") == -1
    assert c.hgetall("hash:table") == redis_server.hgetall("hash:table")
    assert c.zrange("zset:skiplist", 0, -1, withscores=True) == redis_server.zrange(
        "zset:skiplist", 0, -1, withscores=True
    )
    # a second import without --replace: every key exists already, each one said so
    again = CliRunner().invoke(main, ["import", url, "--no-verify", *_cairn_address(cairn)])
    assert again.exit_code == 1
    assert "exists on Cairn already (give --replace" in again.output
    # the verify pass finds a value changed on the source since the copy
    redis_server.hset("hash:listpack", "a", "changed")
    report = ImportReport()
    verify_batch(redis_server, c, [b"hash:listpack", b"hash:table", b"str:ttl"], report)
    assert report.differences == [(b"hash:listpack", "the values differ")]


BYTE_EXACT = ("str:raw", "str:int", "str:bin", "hash:listpack", "list:small", "list:big")
BYTE_EXACT += ("set:intset", "zset:listpack", "zset:skiplist", "stream")


def test_dump_goes_redis_to_cairn_and_back_byte_for_byte(
    redis_server: redis.Redis, cairn: LocalCluster
) -> None:
    """Strings, listpack hashes (fields sent in byte order), lists, intsets, sorted sets in
    both encodings and streams (entries and a consumer group) come back exactly; hashtable
    hashes and sets hold the same values in Cairn's byte order (Redis' is its dict's)."""
    _fill(redis_server)
    c = client(cairn, 1)
    for key in (*BYTE_EXACT, "hash:table", "set:table"):
        original = redis_server.dump(key)
        c.restore(f"rt:{key}", 0, original, replace=True)
        back = c.dump(f"rt:{key}")
        redis_server.restore(f"rt:{key}", 0, back, replace=True)
        if key in BYTE_EXACT:
            assert back == original, key
            assert redis_server.dump(f"rt:{key}") == original, key
        else:
            assert redis_server.dump(f"rt:{key}") is not None
        kind = redis_server.type(key)
        if kind == b"hash":
            assert redis_server.hgetall(f"rt:{key}") == redis_server.hgetall(key)
        elif kind == b"set":
            assert redis_server.smembers(f"rt:{key}") == redis_server.smembers(key)
