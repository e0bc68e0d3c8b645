"""Scripts replicated by their effects on a real 3-node cluster of 2 regions: a script whose
writes differ on every run (math.random, TIME) leaves the same value on every replica
(followers apply the leader's records, they never run Lua; inside MULTI too), concurrent
read-modify-write scripts on one key lose no update, a script whose effects pass the entry
limit writes nothing, and a script that cannot be tracked (it calls DBSIZE) is replicated as itself.

Each node's own applied state is read through the planted `stale-follower-read` bug: a
follower answers a read from its state at once, without asking the leader."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis
from cluster_fixture import client, running_cluster
from store_harness import RawRedis, parse_resp2

from cairn.runtime.local_cluster import LocalCluster
from cairn.runtime.plants import PLANT_ENV, STALE_FOLLOWER_READ

REGIONS = 2
ENTRY_LIMIT = 256 << 10


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root = tmp_path_factory.mktemp("effects")
    with running_cluster(
        root,
        settings={"initial_regions": REGIONS},
        limits={"max_entry_bytes": ENTRY_LIMIT},
        env={PLANT_ENV: STALE_FOLLOWER_READ},
    ) as cluster:
        yield cluster


def _on_every_node(cluster: LocalCluster, key: str, expected: bytes, timeout: float = 15) -> None:
    """Wait until every node's own state holds `expected` at `key`."""
    clients = [client(cluster, n, socket_timeout=4) for n in (1, 2, 3)]
    deadline = time.monotonic() + timeout
    try:
        while True:
            seen = [c.get(key) for c in clients]
            if all(v == expected for v in seen):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{key}: nodes hold {seen}, expected {expected!r}")
            time.sleep(0.05)
    finally:
        for c in clients:
            c.close()


def _logged(cluster: LocalCluster, marker: str) -> list[int]:
    """The nodes whose log holds `marker` (`redis.log` writes to the node's log)."""
    return [
        n for n in (1, 2, 3) if marker in cluster.spec(n).log_path.read_text("utf-8", "replace")
    ]


def test_random_writes_are_the_same_on_every_replica(cluster: LocalCluster) -> None:
    c = client(cluster, 2, socket_timeout=4)
    body = (
        "redis.log(redis.LOG_WARNING, 'effects-run-' .. KEYS[1]) "
        "local v = math.random(1000000000) .. ':' .. redis.call('TIME')[2] "
        "redis.call('SET', KEYS[1], v) redis.call('RPUSH', KEYS[2], v) return v"
    )
    values = [c.eval(body, 2, "{r}value", "{r}history") for _ in range(6)]
    assert len(set(values)) == 6  # a new draw on every run, as in Redis 7.0
    _on_every_node(cluster, "{r}value", values[-1])
    for node in (1, 2, 3):
        reader = client(cluster, node)
        assert reader.lrange("{r}history", 0, -1) == values
        reader.close()
    assert len(_logged(cluster, "effects-run-{r}value")) == 1  # only the leader ran Lua
    c.close()


def test_a_script_inside_multi_is_replicated_by_its_effects(cluster: LocalCluster) -> None:
    """EXEC of a transaction queueing a script is run once, by the region's leader: its
    random draw is the same on every replica and only one node's log holds its line."""
    c = client(cluster, 1, socket_timeout=4)
    body = (
        "redis.log(redis.LOG_WARNING, 'multi-run-' .. ARGV[1]) "
        "local v = math.random(1000000000) redis.call('SET', KEYS[1], v) return v"
    )
    c.set("{m}n", 1)
    pipe = c.pipeline(transaction=True)
    pipe.incr("{m}n").eval(body, 1, "{m}value", "once").get("{m}n")
    bumped, value, read = pipe.execute()
    assert (bumped, read) == (2, b"2")
    _on_every_node(cluster, "{m}value", b"%d" % value)
    assert len(_logged(cluster, "multi-run-once")) == 1  # no replica ran it again
    c.close()


def test_concurrent_read_modify_write_scripts_lose_no_update(cluster: LocalCluster) -> None:
    body = (
        "local v = tonumber(redis.call('GET', KEYS[1]) or '0') + 1 "
        "redis.call('SET', KEYS[1], v) return v"
    )
    rounds, errors = 40, []

    def bump(node: int) -> None:
        c = client(cluster, node, socket_timeout=4)
        sha = c.script_load(body)
        try:
            for _ in range(rounds):
                c.evalsha(sha, 1, "shared-counter")
        except redis.RedisError as exc:  # reported below
            errors.append(exc)
        finally:
            c.close()

    workers = [threading.Thread(target=bump, args=(n,)) for n in (1, 2, 3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    _on_every_node(cluster, "shared-counter", b"%d" % (3 * rounds))


def test_effects_past_the_entry_limit_are_refused_whole(cluster: LocalCluster) -> None:
    c = client(cluster, 1, socket_timeout=4)
    big = (
        "for i = 1, 3000 do redis.call('RPUSH', KEYS[1], string.rep('x', 120) .. i) end "
        "return redis.call('LLEN', KEYS[1])"
    )
    with pytest.raises(redis.ResponseError, match="effects are too large"):
        c.eval(big, 1, "too-big")
    assert c.exists("too-big") == 0
    for chunk in range(8):  # a list larger than one entry may hold
        c.rpush("long", *[b"%0100d" % (chunk * 500 + i) for i in range(500)])
    assert c.eval("return redis.call('RPUSH', KEYS[1], 'tail')", 1, "long") == 4001
    assert c.lindex("long", -1) == b"tail"
    c.close()


def test_an_untrackable_script_is_replicated_as_itself(cluster: LocalCluster) -> None:
    c = client(cluster, 3, socket_timeout=4)
    body = "redis.call('SET', KEYS[1], redis.call('DBSIZE')) return redis.call('GET', KEYS[1])"
    value = c.eval(body, 1, "{u}size")
    assert int(value) >= 1
    _on_every_node(cluster, "{u}size", value)
    c.close()


def test_function_and_script_subcommands_are_described_as_redis_does(
    cluster: LocalCluster, redis_server_port: int
) -> None:
    """COMMAND INFO/DOCS of FUNCTION's and SCRIPT's subcommands and ACL CAT scripting, as
    redis-server 7.0.15 answers them (its subcommands come in hash order: sorted here)."""
    theirs, ours = RawRedis(redis_server_port), RawRedis(cluster.spec(1).client_port)
    if cluster.password:
        assert ours.call([b"AUTH", cluster.password.encode()]) == b"+OK\r\n"
    subs = [f"{c}|{s}".encode() for c in ("function", "script") for s in SUBS[c]]
    for name in subs:
        command = [b"COMMAND", b"INFO", name]
        assert ours.call(command) == theirs.call(command), command
        command = [b"COMMAND", b"DOCS", name]  # Cairn leaves out argument descriptions
        assert _docs(ours.call(command)) == _docs(theirs.call(command)), command
    for container in (b"function", b"script"):
        command = [b"COMMAND", b"INFO", container]
        assert _sorted_subs(ours.call(command)) == _sorted_subs(theirs.call(command))
    cat = [b"ACL", b"CAT", b"scripting"]
    assert sorted(parse_resp2(ours.call(cat))) == sorted(parse_resp2(theirs.call(cat)))  # type: ignore[arg-type]
    theirs.close()
    ours.close()


SUBS = {
    "function": ("delete", "dump", "flush", "help", "kill", "list", "load", "restore", "stats"),
    "script": ("debug", "exists", "flush", "help", "kill", "load"),
}


def _docs(raw: bytes) -> dict[object, object]:
    fields = parse_resp2(raw)[1]  # type: ignore[index]
    pairs = dict(zip(fields[::2], fields[1::2], strict=True))
    return {k: v for k, v in pairs.items() if k in (b"summary", b"since", b"group", b"complexity")}


def _sorted_subs(raw: bytes) -> object:
    entry = parse_resp2(raw)[0]  # type: ignore[index]
    return [*entry[:9], sorted(entry[9], key=repr)]


def test_a_scripts_writes_notify_and_wake_blocked_clients(cluster: LocalCluster) -> None:
    """The effects entry carries the script's keyspace notifications (published by the
    leader) and the keys it wrote (every node wakes the clients blocked on them)."""
    nodes = [client(cluster, n, socket_timeout=4) for n in (1, 2, 3)]
    for c in nodes:
        c.config_set("notify-keyspace-events", "KEA")
    sub = nodes[2].pubsub()
    sub.psubscribe("__keyspace@0__:{e}*")
    assert sub.get_message(timeout=4) is not None
    popped: list[object] = []
    waiter = threading.Thread(target=lambda: popped.append(nodes[1].blpop(["{e}w"], 3)))
    waiter.start()
    time.sleep(0.3)  # BLPOP is parked on node 2
    script = "redis.call('SET', KEYS[1], 1) return redis.call('LPUSH', KEYS[2], 'x')"
    assert nodes[0].eval(script, 2, "{e}a", "{e}w") == 1
    waiter.join()
    assert popped == [(b"{e}w", b"x")]
    got = []
    while len(got) < 4 and (message := sub.get_message(timeout=4)) is not None:
        if message["type"] == "pmessage":
            got.append((message["channel"], message["data"]))
    assert got == [  # the script's two events, then the served BLPOP's
        (b"__keyspace@0__:{e}a", b"set"),
        (b"__keyspace@0__:{e}w", b"lpush"),
        (b"__keyspace@0__:{e}w", b"lpop"),
        (b"__keyspace@0__:{e}w", b"del"),
    ]
    sub.close()
    for c in nodes:
        c.config_set("notify-keyspace-events", "")
        c.close()


def test_a_tagged_script_runs_once_and_a_retry_gets_its_first_reply(
    cluster: LocalCluster,
) -> None:
    """IDEMPOTENT <id> EVAL of a non-deterministic script: the leader runs it once, its
    effects and its request id are one entry, every replica holds the same value, and a
    retry (from another node) is answered the first reply without running it again."""
    body = (
        "redis.log(redis.LOG_WARNING, 'tagged-run-' .. ARGV[1]) "
        "local v = math.random(1000000000) .. ':' .. redis.call('TIME')[2] "
        "redis.call('SET', KEYS[1], v) redis.call('INCR', KEYS[2]) return v"
    )
    args = ("IDEMPOTENT", "tag-1", "EVAL", body, 2, "{t}value", "{t}count", "tagged-once")
    first = client(cluster, 1, socket_timeout=4)
    reply = first.execute_command(*args)
    retry = client(cluster, 3, socket_timeout=4)
    assert retry.execute_command(*args) == reply
    _on_every_node(cluster, "{t}value", reply)
    _on_every_node(cluster, "{t}count", b"1")  # applied once
    logs = [cluster.spec(n).log_path.read_text("utf-8", "replace") for n in (1, 2, 3)]
    assert sum(log.count("tagged-run-tagged-once") for log in logs) == 1  # ran once
    first.close()
    retry.close()
