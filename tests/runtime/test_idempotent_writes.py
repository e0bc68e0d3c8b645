"""IDEMPOTENT on a real 3-node cluster: a tagged write is applied at most once although the
client retries it through other nodes after the leader is killed (kill -9) and after every
node restarts; the redis-py recipe of docs/transactions.md is run as written."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from cluster_fixture import client, running_cluster

from cairn.runtime.local_cluster import LocalCluster
from cairn.runtime.transactions import applied_parts
from cairn.store import encode_command
from cairn.store.transaction import encode_transaction

DOCS = Path(__file__).resolve().parents[2] / "docs" / "transactions.md"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("idem")) as running:
        yield running


@pytest.fixture(scope="module")
def recipe() -> dict[str, Any]:
    """The redis-py recipe of docs/transactions.md, executed as written."""
    text = DOCS.read_text()
    block = r"<!-- recipe:begin -->\n```python\n(.*?)```\n<!-- recipe:end -->"
    found = re.search(block, text, re.S)
    assert found is not None, "the recipe block is missing from docs/transactions.md"
    namespace: dict[str, Any] = {}
    exec(compile(found.group(1), str(DOCS), "exec"), namespace)  # our own docs' code
    return namespace


def _clients(cluster: LocalCluster, order: list[int]) -> list[redis.Redis]:
    return [client(cluster, n, socket_timeout=4.0) for n in order]


def _others(cluster: LocalCluster, leader: int) -> list[int]:
    return [n.node_id for n in cluster.specs if n.node_id != leader]


def test_blocked_clients_see_the_wrapped_command() -> None:
    tagged = encode_command("cairn.idem", [b"id", b"1000", b"10", b"LPUSH", b"q", b"x"], 5)
    assert applied_parts(tagged) == [encode_command("lpush", [b"q", b"x"], 5)]
    payload = encode_transaction([], [[b"RPUSH", b"q", b"y"], [b"INCR", b"n"]])
    exec_entry = encode_command("cairn.idem", [b"id", b"1000", b"10", b"cairn.exec", payload], 5)
    assert applied_parts(exec_entry) == [
        encode_command("rpush", [b"q", b"y"], 5),
        encode_command("incr", [b"n"], 5),
    ]


def test_the_prefix_over_the_wire(cluster: LocalCluster) -> None:
    follower = _others(cluster, cluster.wait_for_leader())[0]
    c = client(cluster, follower)
    assert c.execute_command("IDEMPOTENT", "w1", "INCRBY", "wire", "5") == 5
    assert c.execute_command("IDEMPOTENT", "w1", "INCRBY", "wire", "5") == 5
    assert c.get("wire") == b"5"
    with pytest.raises(redis.ResponseError, match="already used for a different command"):
        c.execute_command("IDEMPOTENT", "w1", "INCRBY", "wire", "6")
    with pytest.raises(redis.ResponseError, match="request id must be 1 to 64 bytes"):
        c.execute_command("IDEMPOTENT", "x" * 65, "INCR", "wire")
    with pytest.raises(redis.ResponseError, match="cannot wrap 'get': not a write command"):
        c.execute_command("IDEMPOTENT", "w2", "GET", "wire")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'idempotent'"):
        c.execute_command("IDEMPOTENT", "w2")
    pipe = c.pipeline(transaction=True)
    pipe.execute_command("IDEMPOTENT", "w3", "INCR", "wire")
    with pytest.raises(redis.ResponseError, match="not allowed inside MULTI"):
        pipe.execute()
    assert c.get("wire") == b"5"
    resp3 = client(cluster, follower, protocol=3)
    assert resp3.execute_command("IDEMPOTENT", "z1", "ZINCRBY", "board", "1.5", "m") == 1.5
    assert resp3.execute_command("IDEMPOTENT", "z1", "ZINCRBY", "board", "1.5", "m") == 1.5
    resp2 = client(cluster, follower, protocol=2)  # the same first reply, in RESP2's form
    assert resp2.execute_command("IDEMPOTENT", "z1", "ZINCRBY", "board", "1.5", "m") == b"1.5"
    assert c.zscore("board", "m") == 1.5
    waiting = client(cluster, follower, socket_timeout=4.0).connection_pool.get_connection()
    waiting.send_command("BLPOP", "queue", "3")
    assert c.execute_command("IDEMPOTENT", "q1", "LPUSH", "queue", "job") == 1
    assert waiting.read_response() == [b"queue", b"job"]  # woken, not timed out
    for each in (c, resp2, resp3):
        each.close()


def test_command_introspection_knows_the_prefix(cluster: LocalCluster) -> None:
    """COMMAND INFO/DOCS/GETKEYS/LIST describe IDEMPOTENT (cluster clients and redis-cli
    read them); its keys are the wrapped command's."""
    c = client(cluster, 1)
    raw = c.connection_pool.get_connection()  # replies as sent: redis-py digests COMMAND's

    def call(*args: str) -> Any:
        raw.send_command(*args)
        return raw.read_response()

    (info,) = call("COMMAND", "INFO", "idempotent")
    assert info[:6] == [b"idempotent", -3, [b"write", b"movablekeys"], 0, 0, 0]
    assert call("COMMAND", "GETKEYS", "IDEMPOTENT", "r1", "MSET", "a", "1", "b", "2") == [
        b"a",
        b"b",
    ]
    with pytest.raises(redis.ResponseError, match="The command has no key arguments"):
        call("COMMAND", "GETKEYS", "IDEMPOTENT", "r1", "EXEC")
    assert b"idempotent" in call("COMMAND", "LIST", "FILTERBY", "ACLCAT", "write")
    c.connection_pool.release(raw)
    c.close()


def test_the_recipe_from_the_docs(cluster: LocalCluster, recipe: dict[str, Any]) -> None:
    clients = _clients(cluster, [n.node_id for n in cluster.specs])
    idempotent: Callable[..., Any] = recipe["idempotent"]
    transaction: Callable[..., Any] = recipe["idempotent_transaction"]
    assert idempotent(clients, "LPUSH", "jobs", "a", request_id="job-a") == 1
    assert idempotent(clients[1:], "LPUSH", "jobs", "a", request_id="job-a") == 1
    assert clients[0].lrange("jobs", 0, -1) == [b"a"]
    moves = [("DECRBY", "{acct}:1", "30"), ("INCRBY", "{acct}:2", "30")]
    assert transaction(clients, moves, request_id="t-1") == [-30, 30]
    assert transaction(clients[2:], moves, request_id="t-1") == [-30, 30]
    assert clients[0].mget("{acct}:1", "{acct}:2") == [b"-30", b"30"]
    with pytest.raises(redis.ResponseError, match="not a write command"):
        idempotent(clients, "GET", "jobs")
    for each in clients:
        each.close()


def test_a_retry_after_the_leader_is_killed_applies_once(
    cluster: LocalCluster, recipe: dict[str, Any]
) -> None:
    idempotent: Callable[..., Any] = recipe["idempotent"]
    leader = cluster.wait_for_leader()
    follower, other = _others(cluster, leader)
    via = client(cluster, follower, socket_timeout=8.0)
    # A reply the client never saw: sent through a follower, the leader killed at once.
    assert via.execute_command("IDEMPOTENT", "seen", "INCR", "seen") == 1
    conn = via.connection_pool.get_connection()
    conn.send_command("IDEMPOTENT", "lost", "INCR", "lost")
    cluster.kill(leader)
    try:
        first: object = conn.read_response()
    except redis.RedisError as exc:  # UNCERTAIN, TRYAGAIN, a timeout: the outcome unknown
        first = exc
    conn.disconnect()
    via.connection_pool.release(conn)
    assert first == 1 or isinstance(first, redis.RedisError), first
    survivors = _clients(cluster, [other, follower])
    assert idempotent(survivors, "INCR", "lost", request_id="lost") == 1
    assert idempotent(survivors, "INCR", "seen", request_id="seen") == 1
    assert survivors[0].mget("lost", "seen") == [b"1", b"1"]
    # And after every node restarts (kill -9 of all, the old leader back too).
    cluster.start(leader)
    for node in cluster.specs:
        cluster.kill(node.node_id)
    for node in cluster.specs:
        cluster.start(node.node_id)
    cluster.wait_for_leader()
    everyone = _clients(cluster, [n.node_id for n in cluster.specs])
    assert idempotent(everyone, "INCR", "lost", request_id="lost") == 1
    assert idempotent(everyone, "INCR", "seen", request_id="seen") == 1
    assert everyone[0].mget("lost", "seen") == [b"1", b"1"]
    for each in (via, *survivors, *everyone):
        each.close()
