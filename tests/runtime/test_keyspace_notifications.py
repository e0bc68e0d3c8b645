"""Keyspace notifications on a real 3-node cluster, against redis-server 7.0.15: the event
stream of the command script (every family) is the same, byte for byte and in order, for a
subscriber on another node than the writer; expiry publishes `expired`; a transaction's
events come in its commands' order; CONFIG SET validates and shows the flags as Redis."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
import redis
from cluster_fixture import client, running_cluster
from store_script import split_args
from test_store_notifications import script_lines

from cairn.runtime.local_cluster import LocalCluster

Pairs = list[tuple[bytes, bytes]]
WRITER, SUBSCRIBER = 1, 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("keyspace-events")) as c:
        yield c


def configure(clients: list[redis.Redis], flags: str) -> None:
    for c in clients:
        c.config_set("notify-keyspace-events", flags)


def subscribe(c: redis.Redis) -> redis.client.PubSub:
    sub = c.pubsub()
    sub.psubscribe("__key*__:*")
    assert sub.get_message(timeout=5) is not None  # the psubscribe confirmation
    return sub


def collect(sub: redis.client.PubSub, count: int, quiet: float = 0.3) -> Pairs:
    """`count` messages (or what came within 10 s), then whatever else comes while the
    subscriber stays `quiet` seconds longer: a duplicate would show there."""
    got: Pairs = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(got) < count:
        message = sub.get_message(timeout=0.5)
        if message is not None and message["type"] == "pmessage":
            got.append((message["channel"], message["data"]))
    end = time.monotonic() + quiet
    while time.monotonic() < end:
        message = sub.get_message(timeout=0.05)
        if message is not None and message["type"] == "pmessage":
            got.append((message["channel"], message["data"]))
    return got


def run_script(c: redis.Redis, lines: list[str]) -> None:
    for line in lines:
        with contextlib.suppress(redis.ResponseError):
            c.execute_command(*split_args(line))


def stream_of(c: redis.Redis, sub_client: redis.Redis, nodes: list[redis.Redis]) -> Pairs:
    """Every event the script publishes: the subscriber on `sub_client`, the writer `c`."""
    c.flushall()
    configure(nodes, "KEA")
    sub = subscribe(sub_client)
    try:
        run_script(c, script_lines())
        c.set("cairn:end", "1")  # the last event: everything before it has arrived
        got: Pairs = []
        while not got or got[-1] != (b"__keyevent@0__:set", b"cairn:end"):
            more = collect(sub, 1, quiet=0)
            assert more, f"the stream stopped after {len(got)} messages"
            got += more
        got += collect(sub, 0)
    finally:
        sub.close()
        configure(nodes, "")
    return got


def test_the_script_publishes_what_redis_publishes(
    cluster: LocalCluster, redis_server_port: int
) -> None:
    real = redis.Redis(port=redis_server_port)
    expected = stream_of(real, redis.Redis(port=redis_server_port), [real])
    nodes = [client(cluster, n) for n in (1, 2, 3)]
    got = stream_of(nodes[WRITER - 1], nodes[SUBSCRIBER - 1], nodes)
    assert len(expected) > 300
    assert got == expected


def test_expiry_publishes_expired_from_the_leader(cluster: LocalCluster) -> None:
    nodes = [client(cluster, n) for n in (1, 2, 3)]
    configure(nodes, "Ex")
    sub = subscribe(nodes[SUBSCRIBER - 1])
    try:
        nodes[WRITER - 1].set("soon", "v", px=50)
        got = collect(sub, 1, quiet=0.5)
    finally:
        sub.close()
        configure(nodes, "")
    assert got == [(b"__keyevent@0__:expired", b"soon")]


def test_a_transaction_publishes_its_commands_events_in_order(cluster: LocalCluster) -> None:
    nodes = [client(cluster, n) for n in (1, 2, 3)]
    configure(nodes, "KE$l")
    sub = subscribe(nodes[SUBSCRIBER - 1])
    try:
        pipe = nodes[WRITER - 1].pipeline(transaction=True)
        pipe.set("tx:a", "1").rpush("tx:b", "x").incr("tx:a").execute()
        got = collect(sub, 6)
    finally:
        sub.close()
        configure(nodes, "")
    assert got == [
        (b"__keyspace@0__:tx:a", b"set"),
        (b"__keyevent@0__:set", b"tx:a"),
        (b"__keyspace@0__:tx:b", b"rpush"),
        (b"__keyevent@0__:rpush", b"tx:b"),
        (b"__keyspace@0__:tx:a", b"incrby"),
        (b"__keyevent@0__:incrby", b"tx:a"),
    ]


def test_config_set_answers_as_redis(cluster: LocalCluster, redis_server_port: int) -> None:
    real, node = redis.Redis(port=redis_server_port), client(cluster, 2)
    for value in ("KEA", "AKEmn", "Ex", "n", "x E", "q", ""):
        replies = []
        for c in (real, node):
            try:
                c.config_set("notify-keyspace-events", value)
                replies.append(c.config_get("notify-keyspace-events"))
            except redis.ResponseError as err:
                replies.append(str(err))
        assert replies[0] == replies[1], value
