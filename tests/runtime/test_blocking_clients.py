"""Blocking commands on a real 3-node cluster with 3 regions, through redis-py: a client
blocked on a follower or on the leader is woken by a push from any node, first come first
served, times out with Redis's null reply, and a client that leaves pops nothing."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from cluster_fixture import client, running_cluster

from cairn.runtime.local_cluster import HOST, LocalCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(
        tmp_path_factory.mktemp("blocking"), settings={"initial_regions": 3}
    ) as c:
        yield c


class Background:
    """A call run on its own thread; `result()` waits for it."""

    def __init__(self, call: Callable[[], object]) -> None:
        self._value: object = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], object]) -> None:
        try:
            self._value = call()
        except BaseException as exc:  # handed to the test thread
            self._error = exc

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self, timeout: float = 15) -> object:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the call did not return"
        if self._error is not None:
            raise self._error
        return self._value


def settle(seconds: float = 0.5) -> None:
    """Let a blocking call reach its node and park (no reply is expected before)."""
    time.sleep(seconds)


@pytest.mark.parametrize("where", [1, 2, 3])
def test_blpop_is_woken_by_a_push_on_another_node(cluster: LocalCluster, where: int) -> None:
    key = f"q:wake:{where}"
    waiting = client(cluster, where, decode_responses=True)
    pusher = client(cluster, where % 3 + 1, decode_responses=True)
    call = Background(lambda: waiting.blpop([key], timeout=10))
    settle()
    assert not call.done(), "nothing to pop yet: the client waits"
    assert pusher.rpush(key, "a", "b") == 2
    assert call.result() == (key, "a")
    assert pusher.lrange(key, 0, -1) == ["b"]
    waiting.close()
    pusher.close()


def test_timeout_answers_null(cluster: LocalCluster) -> None:
    r = client(cluster, 2)
    started = time.monotonic()
    assert r.blpop(["q:none"], timeout=0.3) is None
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 3, elapsed
    with socket.create_connection((HOST, cluster.spec(2).client_port)) as raw:
        if cluster.password:
            raw.sendall(b"AUTH %s\r\n" % cluster.password.encode())
            assert raw.recv(100) == b"+OK\r\n"
        raw.sendall(b"BRPOP q:none 0.2\r\n")
        assert raw.recv(100) == b"*-1\r\n"
        raw.sendall(b"HELLO 3\r\n")
        raw.recv(4096)
        raw.sendall(b"BLPOP q:none 0.2\r\n")
        assert raw.recv(100) == b"_\r\n"
    r.close()


def test_first_blocked_first_served(cluster: LocalCluster) -> None:
    key = "q:fifo"
    first = client(cluster, 3, decode_responses=True)
    second = client(cluster, 3, decode_responses=True)
    a = Background(lambda: first.brpop([key], timeout=10))
    settle()
    b = Background(lambda: second.brpop([key], timeout=10))
    settle()
    pusher = client(cluster, 1, decode_responses=True)
    pusher.lpush(key, "one")
    assert a.result() == (key, "one")
    settle(0.3)
    assert not b.done(), "one element, one client served"
    pusher.lpush(key, "two")
    assert b.result() == (key, "two")
    for c in (first, second, pusher):
        c.close()


def test_blmove_fills_the_key_another_client_waits_on(cluster: LocalCluster) -> None:
    src, dst = "{q:move}src", "{q:move}dst"
    waiting = client(cluster, 1, decode_responses=True)
    mover = client(cluster, 2, decode_responses=True)
    call = Background(lambda: waiting.blpop([dst], timeout=10))
    settle()
    moved = Background(lambda: mover.blmove(src, dst, 10, "LEFT", "RIGHT"))
    settle()
    client(cluster, 3).rpush(src, "x")
    assert moved.result() == "x"
    assert call.result() == (dst, "x")
    waiting.close()
    mover.close()


def test_a_client_that_left_pops_nothing(cluster: LocalCluster) -> None:
    key = "q:gone"
    with socket.create_connection((HOST, cluster.spec(2).client_port)) as raw:
        if cluster.password:
            raw.sendall(b"AUTH %s\r\n" % cluster.password.encode())
            assert raw.recv(100) == b"+OK\r\n"
        raw.sendall(b"BLPOP %s 0\r\n" % key.encode())
        settle()
    settle()
    r = client(cluster, 1, decode_responses=True)
    r.rpush(key, "kept")
    settle()
    assert r.lrange(key, 0, -1) == ["kept"]
    r.close()


def test_bad_timeouts_get_redis_errors(cluster: LocalCluster) -> None:
    r = client(cluster, 1)
    with pytest.raises(redis.ResponseError, match=r"^timeout is negative$"):
        r.execute_command("BLPOP", "q:x", "-1")
    with pytest.raises(redis.ResponseError, match=r"^timeout is not a float or out of range$"):
        r.execute_command("BLPOP", "q:x", "soon")
    r.close()


@pytest.mark.parametrize("where", [1, 2, 3])
def test_xread_block_dollar_gets_only_later_entries(cluster: LocalCluster, where: int) -> None:
    """`$` is resolved at the first attempt: the XADD that wakes the reader is what it
    gets (a later attempt resolving `$` again would wait forever), wherever it is sent."""
    key = f"x:wake:{where}"
    waiting = client(cluster, where, decode_responses=True)
    writer = client(cluster, where % 3 + 1, decode_responses=True)
    writer.xadd(key, {"old": "1"}, id="1-1")
    call = Background(lambda: waiting.xread({key: "$"}, block=10000))
    settle()
    assert not call.done(), "no entry after $ yet: the client waits"
    writer.xadd(key, {"new": "2"}, id="2-1")
    assert call.result() == [[key, [("2-1", {"new": "2"})]]]
    assert waiting.xread({key: "$"}, block=100) == []  # times out: Redis's null reply
    waiting.close()
    writer.close()


def test_xreadgroup_block_delivers_a_later_entry_once(cluster: LocalCluster) -> None:
    """XREADGROUP BLOCK `>` parks like XREAD BLOCK; the XADD that wakes it is delivered to
    one waiting consumer only and enters its PEL, the other keeps waiting and times out.
    Both wait on one node: first come, first served holds per node (across nodes the first
    attempt to reach the log wins, see docs/commands.md), and each BLOCK stays below the
    client's socket timeout, past which redis-py sends the command again."""
    key = "x:group"
    first = client(cluster, 2, decode_responses=True)
    second = client(cluster, 2, decode_responses=True)
    writer = client(cluster, 3, decode_responses=True)
    writer.xgroup_create(key, "g", id="$", mkstream=True)
    call = Background(lambda: first.xreadgroup("g", "c1", {key: ">"}, block=4000))
    settle()
    other = Background(lambda: second.xreadgroup("g", "c2", {key: ">"}, block=1500))
    settle()
    assert not call.done() and not other.done()
    writer.xadd(key, {"job": "1"}, id="5-1")
    assert call.result() == [[key, [("5-1", {"job": "1"})]]]
    assert other.result() == []
    assert writer.xpending(key, "g")["consumers"] == [{"name": "c1", "pending": 1}]
    for c in (first, second, writer):
        c.close()
