"""Lua scripts on a real 3-node cluster of 4 regions, through redis-py: `register_script`
from any node (followers included), scripts routed by their keys (CROSSSLOT across
regions, keyless ones in slot 0's region), and a script that never ends stopped by the
instruction budget, with its writes discarded on every replica, while other clients are
served."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from cluster_fixture import client, running_cluster

from cairn.meta.region import range_key
from cairn.runtime.local_cluster import LocalCluster
from cairn.runtime.region_layout import initial_layout

REGIONS = 4
LAYOUT = initial_layout([1, 2, 3], REGIONS)


def region_of(key: str) -> int:
    return next(r.id for r in LAYOUT if r.contains(range_key(key.encode())))


def key_in(region_id: int, prefix: str) -> str:
    return next(f"{prefix}{i}" for i in range(10_000) if region_of(f"{prefix}{i}") == region_id)


def region_leader(cluster: LocalCluster, region_id: int) -> int:
    """The node leading `region_id` (waiting for one)."""
    c = client(cluster, 1, socket_timeout=2)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            leader = int(c.info("raft")[f"raft_region{region_id}"]["leader"])
            if leader in (1, 2, 3):
                return leader
            time.sleep(0.1)
    finally:
        c.close()
    raise TimeoutError(f"region {region_id} has no leader")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root = tmp_path_factory.mktemp("scripting")
    with running_cluster(root, settings={"initial_regions": REGIONS}) as cluster:
        for region_id in range(1, REGIONS + 1):
            region_leader(cluster, region_id)
        yield cluster


def test_register_script_works_from_every_node(cluster: LocalCluster) -> None:
    key = key_in(2, "counter:")
    follower = next(n for n in (1, 2, 3) if n != region_leader(cluster, 2))
    order = [follower, *(n for n in (1, 2, 3) if n != follower)]
    for expected, node in enumerate(order, start=1):
        c = client(cluster, node, decode_responses=True)
        bump = c.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        assert bump(keys=[key], args=[1]) == expected  # NOSCRIPT, SCRIPT LOAD, EVALSHA
        assert c.script_exists(bump.sha) == [True]
        c.close()
    reader = client(cluster, order[-1], decode_responses=True)
    assert reader.get(key) == "3"
    reader.close()


def test_scripts_are_routed_by_their_keys(cluster: LocalCluster) -> None:
    c = client(cluster, 3, decode_responses=True)
    a, b = key_in(1, "a:"), key_in(4, "b:")
    body = "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])"
    assert c.eval(body, 1, a, "one") == "one"
    with pytest.raises(redis.ResponseError, match="hash to the same slot"):
        c.eval("return 1", 2, a, b)
    assert c.eval("return {ARGV[1], #KEYS}", 0, "keyless") == ["keyless", 0]
    with pytest.raises(redis.ResponseError, match="non local key"):
        c.eval("return redis.call('GET', ARGV[1])", 1, a, b)
    assert c.eval_ro("return redis.call('GET', KEYS[1])", 1, a) == "one"
    with pytest.raises(redis.ResponseError, match="read-only scripts"):
        c.eval_ro("return redis.call('DEL', KEYS[1])", 1, a)
    sha = c.script_load("return redis.call('INCR', KEYS[1])")
    pipe = c.pipeline(transaction=True)  # inside MULTI: EVALSHA queued as EVAL
    pipe.evalsha(sha, 1, f"{{{a}}}:n")
    pipe.eval("return redis.call('INCR', KEYS[1])", 1, f"{{{a}}}:n")
    assert pipe.execute() == [1, 2]
    c.close()


def test_a_script_that_never_ends_is_stopped_and_others_are_served(
    cluster: LocalCluster,
) -> None:
    key = key_in(3, "loop:")
    other = key_in(1, "other:")
    served: list[float] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def keep_serving() -> None:
        c = client(cluster, 2, socket_timeout=4)
        try:
            while not stop.is_set():
                started = time.monotonic()
                c.incr(other)
                served.append(time.monotonic() - started)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
        finally:
            c.close()

    worker = threading.Thread(target=keep_serving)
    worker.start()
    c = client(cluster, 1, socket_timeout=4)
    try:
        for _ in range(3):
            with pytest.raises(redis.ResponseError, match="instruction budget"):
                c.eval("redis.call('SET', KEYS[1], 'partial') while true do end", 1, key)
    finally:
        time.sleep(0.2)
        stop.set()
        worker.join()
        c.close()
    assert not errors
    assert len(served) > 3 and max(served) < 3
    for node in (1, 2, 3):  # the writes before the loop were discarded everywhere
        reader = client(cluster, node)
        assert reader.eval_ro("return redis.call('EXISTS', KEYS[1])", 1, key) == 0
        reader.close()


def _until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


LIBRARY = """#!lua name=counters
redis.register_function('bump', function(keys, args)
  return redis.call('INCRBY', keys[1], args[1])
end)
redis.register_function{function_name='peek', flags={'no-writes'},
  callback=function(keys) return redis.call('GET', keys[1]) end}
"""


def test_a_function_loaded_on_node_1_runs_on_node_3(cluster: LocalCluster) -> None:
    """Libraries are cluster state: loaded through node 1, callable through node 3 once
    the placement leader's push arrives; deleted the same way (their survival across
    restarts is the placement metadata's: `tests/store/test_functions.py`)."""
    key = key_in(2, "fn:")
    one = client(cluster, 1, decode_responses=True)
    assert one.function_load(LIBRARY, replace=True) == "counters"
    assert one.fcall("bump", 1, key, 5) == 5  # the loading node knows it at once
    three = client(cluster, 3, decode_responses=True)

    def known_on_3() -> bool:
        return bool(three.function_list(library="counters"))

    _until(known_on_3, "the library reaches node 3")
    assert three.fcall("bump", 1, key, 2) == 7
    assert three.fcall_ro("peek", 1, key) == "7"
    assert three.execute_command("IDEMPOTENT", "fn-1", "FCALL", "bump", 1, key, 1) == 8
    assert three.execute_command("IDEMPOTENT", "fn-1", "FCALL", "bump", 1, key, 1) == 8
    sha = three.script_load("return redis.call('GET', KEYS[1])")
    assert three.execute_command("IDEMPOTENT", "fn-2", "EVALSHA", sha, 1, key) == "8"
    with pytest.raises(redis.ResponseError, match="write flag using"):
        three.fcall_ro("bump", 1, key, 1)
    with pytest.raises(redis.ResponseError, match="already exists"):
        three.function_load(LIBRARY)
    assert one.function_delete("counters") is True
    _until(lambda: not known_on_3(), "the deletion reaches node 3")
    with pytest.raises(redis.ResponseError, match="Function not found"):
        three.fcall("bump", 1, key, 1)
    one.close()
    three.close()


def test_a_confined_user_runs_scripts_checked_per_call(cluster: LocalCluster) -> None:
    """A script of a user confined to app:* may touch app:* keys; any other key or a
    command it may not run fails that redis.call with Redis 7.0's error, on any node."""
    admin = client(cluster, 1, decode_responses=True)
    assert admin.execute_command("ACL", "SETUSER", "lua", "on", ">pw", "~app:*", "+@all", "-get")
    mine, other = key_in(1, "app:"), key_in(1, "zz:")
    two = _as_lua(cluster, 2, decode_responses=True)
    _until(lambda: _auth_ok(cluster, 2), "the user reaches node 2")
    assert two.eval("return redis.call('SET', KEYS[1], 'v')", 1, mine) == "OK"
    with pytest.raises(redis.ResponseError, match="can't access at least one of the keys"):
        two.eval("return redis.call('SET', ARGV[1], 'v')", 1, mine, other)
    with pytest.raises(redis.ResponseError, match="can't run this command or subcommand"):
        two.eval("return redis.call('GET', KEYS[1])", 1, mine)
    assert admin.exists(other) == 0
    admin.function_load(LIBRARY, replace=True)
    _until(lambda: bool(two.function_list(library="counters")), "the library reaches node 2")
    with pytest.raises(redis.ResponseError, match="can't run this command or subcommand"):
        two.fcall("peek", 1, mine)
    assert two.fcall("bump", 1, f"{mine}:n", 3) == 3
    two.close()
    admin.execute_command("ACL", "DELUSER", "lua")
    admin.function_delete("counters")
    admin.close()


def _as_lua(cluster: LocalCluster, node: int, **kwargs: Any) -> redis.Redis:
    port = cluster.spec(node).client_port
    return redis.Redis(host="127.0.0.1", port=port, username="lua", password="pw", **kwargs)


def _auth_ok(cluster: LocalCluster, node: int) -> bool:
    try:
        c = _as_lua(cluster, node)
        c.ping()
        c.close()
        return True
    except redis.RedisError:
        return False
