"""Lua scripts on a real 3-node cluster of 4 regions, through redis-py: `register_script`
from any node (followers included), scripts routed by their keys (keyless ones in slot 0's
region), and a script that never ends stopped by the instruction budget, with its writes
discarded on every replica, while other clients are served.

Scripts whose declared keys lie in several regions run as cross-region transactions
(`cairn.store.scripting.confine`): a transfer script under concurrent use from every node
(the total conserved, audited by EVAL_RO over every account), `register_script` and
FCALL across regions, a script using an undeclared key (refused, nothing applied), EVAL
inside MULTI across regions, and a cluster-aware connection still answered CROSSSLOT."""

from __future__ import annotations

import contextlib
import random
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
    assert c.eval("return #KEYS", 2, a, b) == 2  # across regions: a transaction
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


# -- scripts across regions ------------------------------------------------------------

TRANSFER = """
local from = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
if from < amount then return 0 end
redis.call('DECRBY', KEYS[1], amount)
redis.call('INCRBY', KEYS[2], amount)
return 1
"""
TOTAL = """#!lua flags=no-writes
local total = 0
for _, key in ipairs(KEYS) do total = total + tonumber(redis.call('GET', key) or '0') end
return total
"""


def test_a_transfer_script_across_regions_conserves_the_total(cluster: LocalCluster) -> None:
    """Transfers between accounts of all four regions by `register_script` (EVALSHA) from
    every node at once, while an auditor sums every account with EVAL_RO: every sum is
    the total, and no balance goes negative."""
    accounts = [key_in(region, "acct:") for region in (1, 2, 3, 4)]
    setup = client(cluster, 1)
    setup.mset(dict.fromkeys(accounts, 100))
    moved: list[int] = []
    sums: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def transfers(node: int, seed: int) -> None:
        rng = random.Random(seed)
        c = client(cluster, node, socket_timeout=4)
        transfer = c.register_script(TRANSFER)
        try:
            for _ in range(8):
                src, dst = rng.sample(accounts, 2)
                with contextlib.suppress(redis.exceptions.TryAgainError):  # none applied
                    moved.append(transfer(keys=[src, dst], args=[rng.randint(1, 80)]))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            c.close()

    def audit() -> None:
        c = client(cluster, 2, socket_timeout=4)
        try:
            while not stop.is_set():
                with contextlib.suppress(redis.exceptions.TryAgainError):  # contention
                    sums.append(c.eval_ro(TOTAL, len(accounts), *accounts))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            c.close()

    auditor = threading.Thread(target=audit)
    auditor.start()
    workers = [threading.Thread(target=transfers, args=(n, n)) for n in (1, 2, 3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    auditor.join()
    assert not errors, errors
    assert sum(moved) > 0 and sums and set(sums) == {400}
    balances = [int(v) for v in setup.mget(accounts)]
    assert sum(balances) == 400 and min(balances) >= 0
    setup.close()


def test_an_undeclared_key_across_regions_is_refused_and_nothing_applied(
    cluster: LocalCluster,
) -> None:
    a, b, other = key_in(1, "ud:"), key_in(2, "ud:"), key_in(3, "ud:")
    c = client(cluster, 3, decode_responses=True)
    c.set(other, "secret")
    body = (
        "redis.call('SET', KEYS[1], 'x') redis.call('SET', KEYS[2], 'y') "
        "return redis.pcall('GET', ARGV[1])"
    )
    with pytest.raises(redis.ResponseError) as refused:
        c.eval(body, 2, a, b, other)
    assert str(refused.value) == (
        "Script attempted to access a key it did not declare: a script whose keys lie in "
        "several regions may use only its declared keys (its writes were discarded)"
    )
    with pytest.raises(redis.ResponseError, match="names no key"):
        c.eval("redis.call('SET', KEYS[1], 'x') return redis.call('DBSIZE')", 2, a, b)
    assert c.mget(a, b, other) == [None, None, "secret"]
    same = key_in(1, "ud2:")  # in one region an undeclared key is fine, as in Redis
    assert c.eval("return redis.call('SET', ARGV[1], 'z')", 1, a, same) == "OK"
    c.close()


def test_scripts_inside_multi_across_regions(cluster: LocalCluster) -> None:
    a, b, d = key_in(1, "mx:"), key_in(3, "mx:"), key_in(4, "mx:")
    c = client(cluster, 2, decode_responses=True)
    sha = c.script_load(TRANSFER)
    pipe = c.pipeline(transaction=True)
    pipe.set(a, 10).evalsha(sha, 2, a, b, 4).eval(TRANSFER, 2, b, d, 1).mget(a, b, d)
    assert pipe.execute() == [True, 1, 1, ["6", "3", "1"]]
    pipe = c.pipeline(transaction=True)
    pipe.incr(d).eval("return redis.call('GET', ARGV[1])", 1, a, b)
    first, refused = pipe.execute(raise_on_error=False)
    assert first == 2 and "did not declare" in str(refused)
    assert c.mget(a, b, d) == ["6", "3", "2"]
    c.close()


def test_functions_and_read_only_scripts_across_regions(cluster: LocalCluster) -> None:
    a, b = key_in(2, "fx:"), key_in(4, "fx:")
    c = client(cluster, 1, decode_responses=True)
    c.mset({a: 7, b: 0})
    library = (
        "#!lua name=bank\n"
        f"redis.register_function('move', function(keys, args) {TRANSFER_BODY} end)\n"
        "redis.register_function{function_name='both', flags={'no-writes'}, callback="
        "function(keys) return {redis.call('GET', keys[1]), redis.call('GET', keys[2])} end}"
    )
    assert c.function_load(library, replace=True) == "bank"
    assert c.fcall("move", 2, a, b, 5) == 1
    assert c.fcall_ro("both", 2, a, b) == ["2", "5"]
    assert c.eval_ro("return redis.call('GET', KEYS[2])", 2, a, b) == "5"
    with pytest.raises(redis.ResponseError, match="read-only scripts"):
        c.eval_ro("return redis.call('SET', KEYS[2], 1)", 2, a, b)
    assert c.mget(a, b) == ["2", "5"]
    c.function_delete("bank")
    c.close()


TRANSFER_BODY = (
    "local from = tonumber(redis.call('GET', keys[1]) or '0') "
    "if from < tonumber(args[1]) then return 0 end "
    "redis.call('DECRBY', keys[1], args[1]) redis.call('INCRBY', keys[2], args[1]) return 1"
)


def test_a_cluster_aware_connection_gets_crossslot_for_a_script(cluster: LocalCluster) -> None:
    a, b = key_in(1, "ca:"), key_in(2, "ca:")
    c = client(cluster, 1, single_connection_client=True)
    c.execute_command("READWRITE")  # it can follow MOVED: served as by Redis Cluster
    with pytest.raises(redis.exceptions.ClusterCrossSlotError):
        c.eval("return 1", 2, a, b)
    c.close()


def test_redis_py_lock_built_on_lua_works_across_nodes_and_regions(cluster: LocalCluster) -> None:
    """redis-py's `Lock` (SET NX PX to acquire; Lua scripts through `register_script` to
    release, extend and reacquire, each checking the owner's token) on locks in every
    region, taken and contested from different nodes."""
    for region_id in range(1, REGIONS + 1):
        name = key_in(region_id, "lock:")
        mine, theirs = client(cluster, 1), client(cluster, 1 + region_id % 3)
        held = mine.lock(name, timeout=10)
        assert held.acquire(blocking=False)
        rival = theirs.lock(name, timeout=10)
        assert not rival.acquire(blocking=False)  # SET NX: taken
        assert held.owned() and not rival.owned()
        assert held.extend(20)  # Lua: adds to the TTL only for the owner's token
        assert 20_000 < theirs.pttl(name) <= 30_000
        assert held.reacquire()  # Lua: TTL back to the lock's timeout
        assert 9_000 < theirs.pttl(name) <= 10_000
        rival.local.token = b"forged"  # the scripts check the token on the server
        with pytest.raises(redis.exceptions.LockNotOwnedError):
            rival.release()
        rival.local.token = b"forged"  # release() dropped it
        with pytest.raises(redis.exceptions.LockNotOwnedError):
            rival.extend(5)
        rival.local.token = None
        held.release()  # Lua: the owner's token deletes the key
        assert theirs.exists(name) == 0
        with rival:  # free now: the context manager acquires and releases it
            assert rival.owned() and not held.owned()
            assert not held.acquire(blocking=False)
        assert mine.exists(name) == 0
        mine.close()
        theirs.close()
