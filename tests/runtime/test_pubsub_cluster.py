"""Pub/sub on a real 3-node cluster: a message published on any node reaches subscribers on
every node, in the publisher's order, after the publisher's earlier writes; PUBLISH counts
the receivers on its own node (as Redis Cluster); subscriber mode answers byte for byte
as redis-server 7.0.15; a subscriber that stops reading is disconnected."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import redis
from cluster_fixture import client, running_cluster

from cairn.runtime.local_cluster import HOST, LocalCluster

HARD_LIMIT = 1 << 20


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    limits = {"pubsub_output_hard_limit_bytes": HARD_LIMIT}
    with running_cluster(tmp_path_factory.mktemp("pubsub"), limits=limits) as c:
        yield c


def subscriber(
    cluster: LocalCluster, node: int, *channels: str, patterns: tuple[str, ...] = ()
) -> redis.client.PubSub:
    """A redis-py PubSub of node `node`, its confirmations consumed."""
    ps = client(cluster, node).pubsub()
    if channels:
        ps.subscribe(*channels)
    if patterns:
        ps.psubscribe(*patterns)
    for _ in range(len(channels) + len(patterns)):
        assert ps.get_message(timeout=5)["type"] in ("subscribe", "psubscribe")
    return ps


def wait_numsub(cluster: LocalCluster, node: int, channel: str, want: int) -> None:
    deadline = time.monotonic() + 10
    c = client(cluster, node)
    while c.pubsub_numsub(channel) != [(channel.encode(), want)]:
        assert time.monotonic() < deadline, c.pubsub_numsub(channel)
        time.sleep(0.05)


def wait_linked(cluster: LocalCluster, node: int) -> None:
    """Until `node` holds a peer link to every other node: a PUBLISH frame goes only over
    the links up at that moment (at most once, as Redis Cluster's bus), and just after
    the cluster starts some may still be connecting."""
    deadline = time.monotonic() + 30
    c = client(cluster, node)
    others = len(cluster.specs) - 1
    while c.info("clients")["cluster_connections"] != others:
        assert time.monotonic() < deadline, c.info("clients")
        time.sleep(0.05)


def messages(ps: redis.client.PubSub, count: int) -> list[dict[str, object]]:
    """Up to `count` messages; the deadline is generous for a loaded CI machine (a
    passing run returns as soon as the last one arrives)."""
    out = []
    deadline = time.monotonic() + 30
    while len(out) < count and time.monotonic() < deadline:
        m = ps.get_message(timeout=1)
        if m is not None:
            out.append(m)
    return out


class Raw:
    """A raw socket to one node: send commands, read exactly the bytes that come back."""

    def __init__(self, cluster: LocalCluster, node: int) -> None:
        self.sock = socket.create_connection((HOST, cluster.spec(node).client_port), timeout=5)
        if cluster.password:
            self.call("AUTH", cluster.password)

    def send(self, *args: str) -> None:
        parts = [a.encode() for a in args]
        head = b"*%d\r\n" % len(parts)
        self.sock.sendall(head + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))

    def read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            assert chunk, f"closed after {data!r}"
            data += chunk
        return data

    def call(self, *args: str, expect: bytes | None = None) -> bytes:
        self.send(*args)
        if expect is None:
            return self.read(1)  # callers that do not check the reply read its first byte
        got = self.read(len(expect))
        assert got == expect, (args, got)
        return got


def test_a_message_reaches_subscribers_on_every_node(cluster: LocalCluster) -> None:
    subs = [subscriber(cluster, n, "news", patterns=("n*",)) for n in (1, 2, 3)]
    for n in (1, 2, 3):
        wait_numsub(cluster, n, "news", 1)
    wait_linked(cluster, 2)
    # Redis Cluster counts the receivers on the publishing node only.
    assert client(cluster, 2).publish("news", "hello") == 2
    for ps in subs:
        got = messages(ps, 2)
        assert [(m["type"], m["channel"], m["data"]) for m in got] == [
            ("message", b"news", b"hello"),
            ("pmessage", b"news", b"hello"),
        ]
        ps.close()
    for n in (1, 2, 3):
        wait_numsub(cluster, n, "news", 0)  # a closed connection leaves its channels
    assert client(cluster, 1).publish("news", "nobody") == 0


def test_each_publishers_order_holds_on_every_node(cluster: LocalCluster) -> None:
    subs = {n: subscriber(cluster, n, "seq") for n in (1, 3)}
    for n in (1, 3):
        wait_numsub(cluster, n, "seq", 1)
    pipe = client(cluster, 1).pipeline(transaction=False)
    for i in range(300):
        pipe.publish("seq", str(i))
    pipe.execute()
    for ps in subs.values():
        got = [m["data"] for m in messages(ps, 300)]
        assert got == [str(i).encode() for i in range(300)]
        ps.close()


def test_a_subscriber_sees_what_the_publisher_wrote_before(cluster: LocalCluster) -> None:
    ps = subscriber(cluster, 3, "written")
    wait_numsub(cluster, 3, "written", 1)
    reader = client(cluster, 3)
    for i in range(20):
        pipe = client(cluster, 2).pipeline(transaction=False)
        pipe.set(f"ps:key:{i}", i).publish("written", f"ps:key:{i}")
        pipe.execute()
        (m,) = messages(ps, 1)
        assert reader.get(m["data"]) == str(i).encode()
    ps.close()


def test_subscriber_mode_bytes_are_redis_7(cluster: LocalCluster) -> None:
    raw = Raw(cluster, 2)
    raw.call("UNSUBSCRIBE", expect=b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n")
    raw.call("SUBSCRIBE", "a", "a", expect=b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n" * 2)
    raw.call("PING", expect=b"*2\r\n$4\r\npong\r\n$0\r\n\r\n")
    raw.call(
        "GET",
        "k",
        expect=b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
        b"QUIT / RESET are allowed in this context\r\n",
    )
    raw.call("GET", expect=b"-ERR wrong number of arguments for 'get' command\r\n")
    raw.call("PSUBSCRIBE", "h*", expect=b"*3\r\n$10\r\npsubscribe\r\n$2\r\nh*\r\n:2\r\n")
    client(cluster, 1).publish("hat", "x")
    raw.read(len(b"*4\r\n$8\r\npmessage\r\n$2\r\nh*\r\n$3\r\nhat\r\n$1\r\nx\r\n"))
    raw.call("RESET", expect=b"+RESET\r\n")
    raw.call("PING", expect=b"+PONG\r\n")
    raw.call("HELLO", "3")
    raw.sock.settimeout(0.5)
    try:  # the rest of HELLO's map
        while raw.sock.recv(4096):
            pass
    except TimeoutError:
        pass
    raw.sock.settimeout(5)
    raw.call("SUBSCRIBE", "r3", expect=b">3\r\n$9\r\nsubscribe\r\n$2\r\nr3\r\n:1\r\n")
    raw.call("SET", "ps:r3", "v", expect=b"+OK\r\n")  # any command is allowed in RESP3
    client(cluster, 3).publish("r3", "pushed")
    raw.read(len(b">3\r\n$7\r\nmessage\r\n$2\r\nr3\r\n$6\r\npushed\r\n"))
    raw.call("UNSUBSCRIBE", expect=b">3\r\n$11\r\nunsubscribe\r\n$2\r\nr3\r\n:0\r\n")


def test_a_subscriber_that_does_not_read_is_disconnected(cluster: LocalCluster) -> None:
    slow = socket.create_connection((HOST, cluster.spec(1).client_port))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nslow\r\n")
    healthy = subscriber(cluster, 1, "slow")
    wait_numsub(cluster, 1, "slow", 2)
    publisher = client(cluster, 2)
    message = b"x" * 100_000
    received = 0
    for _ in range(300):  # 30 MB, far past the hard limit plus the sockets' buffers
        publisher.publish("slow", message)
        # The healthy one reads each message before the next is published: on a loaded
        # machine a test process that falls 1 MiB behind is itself a slow subscriber.
        received += sum(m["type"] == "message" for m in messages(healthy, 1))
    wait_numsub(cluster, 1, "slow", 1)  # the slow one is gone, the healthy one stays
    assert received == 300
    assert client(cluster, 1).ping()
    log = cluster.spec(1).log_path.read_text()
    assert "over the pubsub output buffer limit" in log
    slow.close()  # what the node had sent drains from the kernel's buffers, not the node's
    healthy.close()


def test_sharded_messages_reach_shard_subscribers_on_every_node(cluster: LocalCluster) -> None:
    subs = {}
    for n in (1, 2, 3):
        ps = client(cluster, n).pubsub()
        ps.ssubscribe("orders{7}")
        assert ps.get_sharded_message(timeout=5)["type"] == "ssubscribe"
        subs[n] = ps
    plain = subscriber(cluster, 1, "orders{7}")
    wait_numsub(cluster, 1, "orders{7}", 1)
    publisher = client(cluster, 2)
    assert publisher.execute_command("PUBSUB SHARDNUMSUB", "orders{7}") == [(b"orders{7}", 1)]
    assert publisher.spublish("orders{7}", "one") == 1  # the receivers on node 2 only
    for ps in subs.values():
        m = ps.get_sharded_message(timeout=5)
        assert (m["type"], m["channel"], m["data"]) == ("smessage", b"orders{7}", b"one")
        ps.close()
    assert plain.get_message(timeout=0.3) is None  # a channel is not a shard channel
    plain.close()


def test_sharded_commands_answer_crossslot_and_moved_as_redis_cluster(
    cluster: LocalCluster,
) -> None:
    leader = cluster.leader()
    assert leader is not None
    other = 1 if leader != 1 else 2
    raw = Raw(cluster, other)
    raw.call(
        "SSUBSCRIBE", "a", "b", expect=b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    )
    raw.call(
        "SSUBSCRIBE",
        "a{x}",
        "b{x}",
        expect=b"*3\r\n$10\r\nssubscribe\r\n$4\r\na{x}\r\n:1\r\n"
        b"*3\r\n$10\r\nssubscribe\r\n$4\r\nb{x}\r\n:2\r\n",
    )
    raw.call(
        "GET",
        "k",
        expect=b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
        b"QUIT / RESET are allowed in this context\r\n",
    )
    aware = Raw(cluster, other)
    aware.send("CLUSTER", "SLOTS")
    aware.sock.recv(65536)
    endpoint = f"{HOST}:{cluster.spec(leader).client_port}".encode()
    moved = b"-MOVED 13271 " + endpoint + b"\r\n"  # CLUSTER KEYSLOT ch = 13271
    aware.call("SSUBSCRIBE", "ch", expect=moved)
    aware.call("SPUBLISH", "ch", "x", expect=moved)
    aware.call("READONLY", expect=b"+OK\r\n")  # as on a Redis replica: served here
    aware.call("SPUBLISH", "ch", "x", expect=b":0\r\n")
