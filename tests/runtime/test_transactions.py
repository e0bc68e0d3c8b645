"""MULTI/EXEC/DISCARD/WATCH/UNWATCH on a real 3-node cluster with 3 regions: raw replies
byte for byte against redis-server (from the leader and from a follower, which forwards),
redis-py's transactional pipeline and its WATCH-retry `transaction()` helper under
concurrent writers, CROSSSLOT across regions, RESP3's null, and the limits."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import redis
from cluster_fixture import client, running_cluster
from store_harness import RawRedis

from cairn.runtime.local_cluster import LocalCluster
from cairn.runtime.transactions import _skip

MAX_COMMANDS = 50
MAX_WATCHED = 20


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(
        tmp_path_factory.mktemp("multi"),
        settings={"initial_regions": 3},
        limits={"max_transaction_commands": MAX_COMMANDS, "max_watched_keys": MAX_WATCHED},
    ) as c:
        yield c


def _follower(cluster: LocalCluster) -> int:
    leader = cluster.wait_for_leader()
    return next(n.node_id for n in cluster.specs if n.node_id != leader)


SCRIPT: list[list[str]] = [
    ["del", "{t}a", "{t}l", "{t}m", "{t}s", "{t}w"],
    ["exec"],
    ["discard"],
    ["multi"],
    ["multi"],
    ["watch", "{t}a"],
    ["set", "{t}a", "1"],
    ["incr", "{t}a"],
    ["ping"],
    ["echo", "hi"],
    ["lpush", "{t}a", "x"],  # WRONGTYPE at run time: its own error, no rollback
    ["set", "{t}s", "v"],
    ["blpop", "{t}l", "0"],  # runs without blocking: nil at once
    ["blmove", "{t}l", "{t}m", "left", "left", "0"],
    ["exec"],
    ["get", "{t}a"],
    ["get", "{t}s"],
    ["multi"],
    ["nosuchcommand", "x"],
    ["get"],
    ["set", "{t}a", "never"],
    ["exec"],
    ["get", "{t}a"],
    ["multi"],
    ["set", "{t}a", "discarded"],
    ["discard"],
    ["get", "{t}a"],
    ["watch", "{t}w", "{t}a"],
    ["set", "{t}w", "changed"],  # the watching connection's own write counts too
    ["multi"],
    ["set", "{t}a", "aborted"],
    ["exec"],
    ["get", "{t}a"],
    ["watch", "{t}w"],
    ["unwatch"],
    ["set", "{t}w", "again"],
    ["multi"],
    ["get", "{t}w"],
    ["exec"],
    ["watch", "{t}w"],
    ["multi"],
    ["get", "{t}w"],
    ["exec"],
    ["multi"],
    ["exec"],
    ["watch"],
    ["multi", "extra"],
    ["exec", "extra"],
]


@pytest.mark.parametrize("where", ["leader", "follower"])
def test_replies_match_redis_byte_for_byte(
    where: str, cluster: LocalCluster, redis_server_port: int
) -> None:
    node = cluster.wait_for_leader() if where == "leader" else _follower(cluster)
    theirs, ours = RawRedis(redis_server_port), RawRedis(cluster.spec(node).client_port)
    mismatches = []
    for argv in SCRIPT:
        args = [a.encode() for a in argv]
        want, got = theirs.call(args), ours.call(args)
        if want != got:
            mismatches.append(f"{argv}: redis {want!r} cairn {got!r}")
    theirs.close()
    ours.close()
    assert not mismatches, "\n".join(mismatches)


def test_pipeline_transaction_is_atomic(cluster: LocalCluster) -> None:
    r = client(cluster, _follower(cluster))
    r.delete("{p}n", "{p}l")
    pipe = r.pipeline(transaction=True)
    pipe.incr("{p}n").incrby("{p}n", 5).rpush("{p}l", "a", "b").lrange("{p}l", 0, -1)
    assert pipe.execute() == [1, 6, 2, [b"a", b"b"]]
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.pipeline(transaction=True).set("{p}s", "1").lpush("{p}s", "x").execute()
    assert r.get("{p}s") == b"1"


def test_watch_retry_counts_every_increment(cluster: LocalCluster) -> None:
    """Concurrent read-modify-write loops through WATCH: no update is lost."""
    key, workers, rounds = "{c}counter", 4, 15
    nodes = [n.node_id for n in cluster.specs]
    client(cluster, nodes[0]).set(key, 0)
    retries = [0]

    def work(node: int) -> None:
        r = client(cluster, node)

        def bump(pipe: redis.client.Pipeline) -> None:  # type: ignore[type-arg]
            value = int(pipe.get(key) or 0)
            pipe.multi()
            pipe.set(key, value + 1)

        for _ in range(rounds):
            with r.pipeline() as probe:
                while True:
                    try:
                        probe.watch(key)
                        bump(probe)
                        probe.execute()
                        break
                    except redis.WatchError:
                        retries[0] += 1
                        probe.reset()

    threads = [threading.Thread(target=work, args=(nodes[i % 3],)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert client(cluster, nodes[1]).get(key) == str(workers * rounds).encode()
    assert retries[0] > 0  # the workers did collide, and WATCH caught it


def test_transaction_helper_retries(cluster: LocalCluster) -> None:
    r = client(cluster, cluster.wait_for_leader())
    r.set("{h}x", 10)
    calls = [0]

    def move(pipe: redis.client.Pipeline) -> None:  # type: ignore[type-arg]
        calls[0] += 1
        value = int(pipe.get("{h}x") or 0)
        if calls[0] == 1:
            client(cluster, _follower(cluster)).incr("{h}x")  # someone else writes
        pipe.multi()
        pipe.set("{h}x", value * 2)

    assert r.transaction(move, "{h}x") == [True]
    assert calls[0] == 2 and r.get("{h}x") == b"22"


def test_keys_in_several_regions_are_crossslot_for_a_cluster_aware_connection(
    cluster: LocalCluster,
) -> None:
    """A plain connection's EXEC over several regions is a cross-region transaction
    (tests/runtime/test_txn_cross_region.py); one that can follow MOVED gets CROSSSLOT."""
    raw = RawRedis(cluster.spec(cluster.wait_for_leader()).client_port)
    keys = [b"spread:%d" % i for i in range(16)]  # three regions: some fall in different ones
    assert raw.call([b"readwrite"]) == b"+OK\r\n"
    assert raw.call([b"multi"]) == b"+OK\r\n"
    for key in keys:
        assert raw.call([b"set", key, b"1"]) == b"+QUEUED\r\n"
    assert raw.call([b"exec"]) == b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    assert raw.call([b"exists", *keys]) == b":0\r\n"
    raw.close()


def test_watch_abort_is_resp3_null(cluster: LocalCluster) -> None:
    port = cluster.spec(_follower(cluster)).client_port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        replies = _raw(sock, [["hello", "3"], ["watch", "{r}k"], ["set", "{r}k", "1"],
                              ["multi"], ["get", "{r}k"], ["exec"]])  # fmt: skip
    assert replies[1:] == [b"+OK\r\n", b"+OK\r\n", b"+OK\r\n", b"+QUEUED\r\n", b"_\r\n"]


def test_limits_give_errors_not_memory(cluster: LocalCluster) -> None:
    r = RawRedis(cluster.spec(cluster.wait_for_leader()).client_port)
    assert r.call([b"multi"]) == b"+OK\r\n"
    for _ in range(MAX_COMMANDS):
        assert r.call([b"ping"]) == b"+QUEUED\r\n"
    assert r.call([b"ping"]).startswith(b"-ERR transaction too long")
    assert r.call([b"exec"]).startswith(b"-EXECABORT")
    keys = [b"{w}%d" % i for i in range(MAX_WATCHED + 1)]
    assert r.call([b"watch", *keys]).startswith(b"-ERR too many watched keys")
    assert r.call([b"watch", *keys[:MAX_WATCHED]]) == b"+OK\r\n"
    r.close()


def _raw(sock: socket.socket, commands: list[list[str]]) -> list[bytes]:
    data = b""
    for argv in commands:
        data += b"*%d\r\n" % len(argv)
        data += b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in argv)
    sock.sendall(data)
    buf, replies = b"", []
    while len(replies) < len(commands):
        buf += sock.recv(65536)
        while buf and len(replies) < len(commands):
            try:
                end = _skip(buf, 0, 0)
            except (ValueError, IndexError):
                break
            replies.append(buf[:end])
            buf = buf[end:]
    return replies
