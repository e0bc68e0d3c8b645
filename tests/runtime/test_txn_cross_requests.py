"""Requests that run as cross-region transactions on a real 3-node cluster with 3 regions
(`cairn.runtime.cross_requests`): multi-key reads across regions answer redis-server's
bytes (RESP2 and RESP3); a cluster-aware connection still gets CROSSSLOT; IDEMPOTENT
writes, scripts and EXECs across regions apply once, also when retried after the leader of the
primary's region was killed and on the restarted node; the chaos bank's retry path."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence

import pytest
import redis
from cluster_fixture import client, running_cluster

from cairn.chaos.txn_workloads import BankWorkload, Session
from cairn.check.history import OpType
from cairn.runtime.local_cluster import LocalCluster
from cairn.store.slot import key_slot

REGIONS = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(
        tmp_path_factory.mktemp("xreq"), settings={"initial_regions": REGIONS}
    ) as c:
        yield c


@pytest.fixture(scope="module")
def layout(cluster: LocalCluster) -> list[tuple[int, int, int]]:
    """(first slot, last slot, client port of the leader) of each region, in slot order
    (asked on a connection of its own: asking makes a connection cluster-aware)."""
    probe = client(cluster, 1)
    slots = probe.execute_command("CLUSTER", "SLOTS")
    probe.close()
    found = sorted((int(r[0]), int(r[1]), int(r[2][1])) for r in slots)
    assert len(found) == REGIONS
    return found


def key_in(layout: list[tuple[int, int, int]], region: int, name: str) -> str:
    """A key named after `name` whose slot lies in region number `region`."""
    low, high, _ = layout[region]
    for n in range(100_000):
        key = f"{name}:{n}"
        if low <= key_slot(key.encode()) <= high:
            return key
    raise AssertionError("no key found")


def region_of(layout: list[tuple[int, int, int]], key: str) -> int:
    """The number of the region holding `key`."""
    slot = key_slot(key.encode())
    return next(i for i, (low, high, _) in enumerate(layout) if low <= slot <= high)


class Raw:
    """A minimal RESP2/RESP3 connection returning each reply's raw bytes."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def call(self, *argv: str | bytes) -> bytes:
        args = [a.encode() if isinstance(a, str) else a for a in argv]
        out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        self.sock.sendall(out)
        end = self._end(0)
        raw, self.buf = self.buf[:end], self.buf[end:]
        return raw

    def _line(self, pos: int) -> int:
        while (i := self.buf.find(b"\r\n", pos)) < 0:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        return i

    def _end(self, pos: int) -> int:
        eol = self._line(pos)
        kind, head = self.buf[pos : pos + 1], self.buf[pos + 1 : eol]
        if kind in b"$=!" and int(head) >= 0:
            while len(self.buf) < eol + 4 + int(head):
                self._line(len(self.buf))  # reads more
            return eol + 4 + int(head)
        if kind in b"*~>%|" and int(head) >= 0:
            pos = eol + 2
            for _ in range(int(head) * (2 if kind in b"%|" else 1)):
                pos = self._end(pos)
            return self._end(pos) if kind == b"|" else pos
        return eol + 2

    def close(self) -> None:
        self.sock.close()


UNORDERED = frozenset({"SINTER", "SUNION", "SDIFF"})
"""Replies whose order is unspecified (a set's): compared as sets of items, as the store's
scripts compare them (`unordered`)."""


def _as_set(raw: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """An array of bulk strings as (its header, its items sorted)."""
    lines = raw.split(b"\r\n")
    return lines[0], sorted(zip(lines[1::2], lines[2::2], strict=False))


def test_cross_region_reads_answer_as_redis(
    cluster: LocalCluster, layout: list[tuple[int, int, int]], redis_server_port: int
) -> None:
    """Each read's bytes from Cairn (keys in several regions, a plain connection) and from
    redis-server, in RESP2 and RESP3, over the same data."""
    k = {f"{n}{i}": key_in(layout, i, f"xr-{n}") for n in "sztxhl" for i in range(3)}
    setup = [
        ["SADD", k["s0"], "a", "b", "c", "d"],
        ["SADD", k["s1"], "b", "c", "e"],
        ["SADD", k["s2"], "c", "f"],
        ["ZADD", k["z0"], "1", "a", "2", "b", "3", "c"],
        ["ZADD", k["z1"], "5", "b", "1.5", "c", "7", "d"],
        ["SET", k["t0"], "ohmytext"],
        ["SET", k["t1"], "mynewtext"],
        ["XADD", k["x0"], "1-1", "f", "v"],
        ["XADD", k["x1"], "2-1", "g", "w"],
        ["PFADD", k["h0"], "a", "b", "c"],
        ["PFADD", k["h1"], "c", "d"],
        ["RPUSH", k["l0"], "x"],
    ]
    reads = [
        ["SINTER", k["s0"], k["s1"], k["s2"]],
        ["SUNION", k["s0"], k["s1"], k["s2"]],
        ["SDIFF", k["s0"], k["s1"], k["s2"]],
        ["SINTER", k["s0"], k["s1"] + "-none"],
        ["SINTERCARD", "2", k["s0"], k["s1"]],
        ["SINTERCARD", "2", k["s0"], k["s1"], "LIMIT", "1"],
        ["ZUNION", "2", k["z0"], k["z1"], "WITHSCORES"],
        ["ZINTER", "2", k["z0"], k["z1"], "AGGREGATE", "MAX", "WITHSCORES"],
        ["ZDIFF", "2", k["z0"], k["z1"]],
        ["ZINTERCARD", "2", k["z0"], k["z1"]],
        ["PFCOUNT", k["h0"], k["h1"]],
        ["LCS", k["t0"], k["t1"]],
        ["LCS", k["t0"], k["t1"], "IDX", "MINMATCHLEN", "2", "WITHMATCHLEN"],
        ["XREAD", "COUNT", "5", "STREAMS", k["x0"], k["x1"], "0", "0"],
        ["SINTER", k["s0"], k["t1"]],  # WRONGTYPE, as Redis
        ["SUNION", k["l0"], k["s2"]],
        ["SINTERCARD", "2", k["s0"], k["s1"], "LIMIT", "-1"],
        ["SINTERCARD", "3", k["s0"], k["s1"]],
        ["ZUNION", "2", k["z0"], k["z1"], "WEIGHTS", "1"],
        ["ZINTER", "2", k["z0"], k["z1"], "AGGREGATE", "nope"],
        ["LCS", k["t0"], k["t1"], "MINMATCHLEN", "x"],
        ["PFCOUNT", k["h0"], k["s0"]],
    ]
    for protocol in ("2", "3"):
        theirs, ours = Raw(redis_server_port), Raw(cluster.spec(1).client_port)
        try:
            if cluster.password:
                ours.call("AUTH", cluster.password)
            assert ours.call("HELLO", protocol)[:1] == theirs.call("HELLO", protocol)[:1]
            if protocol == "2":
                for argv in setup:
                    assert ours.call(*argv) == theirs.call(*argv), argv
            for argv in reads:
                mine, redis_said = ours.call(*argv), theirs.call(*argv)
                if argv[0] in UNORDERED and redis_said[:1] in b"*~":
                    mine, redis_said = _as_set(mine), _as_set(redis_said)
                assert mine == redis_said, (protocol, argv)
        finally:
            theirs.close()
            ours.close()


def test_cluster_aware_connection_still_gets_crossslot(
    cluster: LocalCluster, layout: list[tuple[int, int, int]]
) -> None:
    a, b = key_in(layout, 0, "ca"), key_in(layout, 1, "ca")
    r = client(cluster, 1, single_connection_client=True)
    r.execute_command("READWRITE")  # now it can follow MOVED: served as by Redis Cluster
    tagged_script = ["IDEMPOTENT", "ca-2", "EVAL", "return 1", 2, a, b]
    for argv in (
        ["SINTER", a, b],
        ["PFCOUNT", a, b],
        ["IDEMPOTENT", "ca-1", "MSET", a, 1, b, 2],
        tagged_script,
    ):
        with pytest.raises(redis.exceptions.ClusterCrossSlotError):
            r.execute_command(*argv)
    r.close()


def test_idempotent_multi_key_write_across_regions_applies_once(
    cluster: LocalCluster, layout: list[tuple[int, int, int]]
) -> None:
    src, dst = key_in(layout, 0, "im-src"), key_in(layout, 2, "im-dst")
    r1, r3 = client(cluster, 1), client(cluster, 3)
    r1.rpush(src, "a", "b", "c")
    move = ("IDEMPOTENT", "im-1", "LMOVE", src, dst, "LEFT", "RIGHT")
    assert r1.execute_command(*move) == b"a"
    assert r3.execute_command(*move) == b"a"  # a retry on another node: the first reply
    assert r1.lrange(src, 0, -1) == [b"b", b"c"] and r1.lrange(dst, 0, -1) == [b"a"]
    with pytest.raises(redis.ResponseError, match="different command"):
        r3.execute_command("IDEMPOTENT", "im-1", "LMOVE", src, dst, "RIGHT", "RIGHT")
    assert r1.execute_command("IDEMPOTENT", "im-2", "MSETNX", src + "x", 1, dst + "x", 2) == 1
    assert r3.execute_command("IDEMPOTENT", "im-2", "MSETNX", src + "x", 1, dst + "x", 2) == 1
    assert r1.lrange(dst, 0, -1) == [b"a"]
    pop = ("IDEMPOTENT", "im-3", "LMPOP", 2, src, dst, "RIGHT")  # not TRANSACTIONAL
    assert r1.execute_command(*pop) == [src.encode(), [b"c"]]
    assert r3.execute_command(*pop) == [src.encode(), [b"c"]]
    assert r1.lrange(src, 0, -1) == [b"b"]


TRANSFER = """
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('INCRBY', KEYS[2], ARGV[1])
return {n, redis.call('TIME')[2]}
"""
"""Moves nothing but bumps both keys; its reply carries the clock, so a retry answered
anew (not from the record) would differ."""


def test_idempotent_script_across_regions_runs_once(
    cluster: LocalCluster, layout: list[tuple[int, int, int]]
) -> None:
    """IDEMPOTENT EVAL, EVALSHA and FCALL whose keys span regions: each runs once as a
    tagged cross-region transaction, and a retry on another node gets the first reply."""
    a, b = key_in(layout, 0, "is-a"), key_in(layout, 2, "is-b")
    r1, r3 = client(cluster, 1), client(cluster, 3)
    first = r1.execute_command("IDEMPOTENT", "is-1", "EVAL", TRANSFER, 2, a, b, 5)
    assert first[0] == 5
    time.sleep(0.01)
    assert r3.execute_command("IDEMPOTENT", "is-1", "EVAL", TRANSFER, 2, a, b, 5) == first
    assert r1.mget(a, b) == [b"5", b"5"]
    sha = r1.script_load(TRANSFER)
    again = r3.execute_command("IDEMPOTENT", "is-2", "EVALSHA", sha, 2, a, b, 1)
    assert again[0] == 6
    assert r1.execute_command("IDEMPOTENT", "is-2", "EVALSHA", sha, 2, a, b, 1) == again
    with pytest.raises(redis.ResponseError, match="different command"):
        r1.execute_command("IDEMPOTENT", "is-2", "EVALSHA", sha, 2, a, b, 2)
    library = "#!lua name=xbump\nredis.register_function('xbump', function(keys, args)\n"
    library += "  redis.call('INCRBY', keys[1], args[1])\n"
    library += "  return redis.call('INCRBY', keys[2], args[1])\nend)"
    r1.execute_command("FUNCTION", "LOAD", "REPLACE", library)
    assert r1.execute_command("IDEMPOTENT", "is-3", "FCALL", "xbump", 2, a, b, 10) == 16
    assert r3.execute_command("IDEMPOTENT", "is-3", "FCALL", "xbump", 2, a, b, 10) == 16
    assert r1.mget(a, b) == [b"16", b"16"]
    pipe = r3.pipeline(transaction=False)  # the script runs after the earlier write
    pipe.set(a, "x")
    pipe.execute_command("IDEMPOTENT", "is-4", "EVAL", "return redis.call('GET', KEYS[1])", 2, a, b)
    assert pipe.execute() == [True, b"x"]
    stray = "redis.call('SET', KEYS[1], 'y') return redis.call('GET', 'is-undeclared')"
    with pytest.raises(redis.ResponseError, match="did not declare"):
        r1.execute_command("IDEMPOTENT", "is-5", "EVAL", stray, 2, a, b)
    assert r1.get(a) == b"x"  # confined as an untagged script: nothing of it applied
    r1.close()
    r3.close()


def _tagged_exec(
    port: int, password: str | None, request_id: str, commands: Sequence[tuple]
) -> object:
    """MULTI, `commands`, IDEMPOTENT <id> EXEC on a fresh connection; EXEC's reply."""
    r = redis.Redis(port=port, password=password, single_connection_client=True)
    try:
        r.execute_command("MULTI")
        for argv in commands:
            r.execute_command(*argv)
        return r.execute_command("IDEMPOTENT", request_id, "EXEC")
    finally:
        r.close()


def _retry(port: int, password: str | None, request_id: str, commands: Sequence[tuple]) -> object:
    """`_tagged_exec` until it answers (a leader may be being elected), for 20 s."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return _tagged_exec(port, password, request_id, commands)
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
            retryable = not isinstance(exc, redis.ResponseError) or str(exc).startswith(
                ("UNCERTAIN", "TRYAGAIN", "CLUSTERDOWN")
            )
            if not retryable or time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_concurrent_copies_of_one_tagged_exec_apply_once(
    cluster: LocalCluster, layout: list[tuple[int, int, int]]
) -> None:
    """The same tagged EXEC sent at once on every node (an original and its retries
    racing): one applies, every copy answers its reply."""
    a, b = key_in(layout, 1, "cc"), key_in(layout, 2, "cc")
    commands = [("INCRBY", a, 3), ("INCRBY", b, 4)]
    replies: list[object] = []

    def send(node: int) -> None:
        replies.append(_retry(cluster.spec(node).client_port, cluster.password, "cc-1", commands))

    threads = [threading.Thread(target=send, args=(n,)) for n in (1, 2, 3, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert replies == [[3, 4]] * 4
    assert client(cluster, 1).mget(a, b) == [b"3", b"4"]


def test_bank_retries_a_transfer_whose_connection_was_cut(
    cluster: LocalCluster, layout: list[tuple[int, int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chaos bank's transfer path: EXEC sent, the connection cut before its reply;
    the transfer is retried with its request id and applies exactly once."""
    endpoints = [("127.0.0.1", cluster.spec(n).client_port) for n in (1, 2, 3)]
    bank = BankWorkload(endpoints, password=cluster.password, accounts=2, retry_pause=0.05)
    bank.prefix = next(
        p
        for p in (f"bank-retry{n}:" for n in range(1000))
        if region_of(layout, p + "0") != region_of(layout, p + "1")
    )
    a, b = bank.names
    client(cluster, 1).mset({a: 100, b: 100})
    cut = [0]
    real_exec = Session.exec

    def cut_after_sending(
        self: Session, commands: Sequence[tuple], request_id: str | None = None
    ) -> list[object]:
        if cut[0]:
            return real_exec(self, commands, request_id)
        cut[0] += 1
        batch = [("MULTI",), *commands, ("IDEMPOTENT", request_id, "EXEC")]
        self.conn.connect()
        self.conn.send_packed_command(self.conn.pack_commands(batch))
        time.sleep(0.5)  # EXEC has surely run by now; its reply is never read
        self.conn.disconnect()
        raise redis.ConnectionError("cut by the test")

    session = Session(endpoints[0], cluster.password, 5.0)
    monkeypatch.setattr(Session, "exec", cut_after_sending)
    try:
        outcome = bank._transfer(session, 0, a, b, 7, absolute=False)
    finally:
        session.close()
    assert cut[0] == 1
    assert outcome is OpType.OK  # the retry found the first run's recorded reply
    assert client(cluster, 2).mget(a, b) == [b"93", b"107"]
    kinds = [op.type for op in bank.history.snapshot() if op.f == "transfer"]
    assert kinds == [OpType.INVOKE, OpType.OK]


def test_idempotent_exec_retried_after_the_primary_leader_dies_and_restarts(
    cluster: LocalCluster, layout: list[tuple[int, int, int]]
) -> None:
    """Last in the module: it kills a node. The primary (the first command key) is in
    region 0; its leader is killed after the first EXEC, the retry goes to another node
    (a new leader answers from the record), then to the restarted node."""
    a, b, c = (key_in(layout, i, "ie") for i in range(3))
    commands = [("INCRBY", a, 5), ("INCRBY", b, 5), ("LPUSH", c, "x")]
    ports = {cluster.spec(n).client_port: n for n in (1, 2, 3)}
    leader = ports[layout[0][2]]
    others = [n for n in (1, 2, 3) if n != leader]
    pw = cluster.password
    first = _retry(cluster.spec(others[0]).client_port, pw, "ie-1", commands)
    assert first == [5, 5, 1]
    cluster.kill(leader)
    try:
        again = _retry(cluster.spec(others[1]).client_port, pw, "ie-1", commands)
        assert again == [5, 5, 1]
    finally:
        cluster.start(leader)
        cluster.wait_serving(leader)
    restarted = _retry(cluster.spec(leader).client_port, pw, "ie-1", commands)
    assert restarted == [5, 5, 1]
    r = client(cluster, others[0])
    assert r.mget(a, b) == [b"5", b"5"] and r.lrange(c, 0, -1) == [b"x"]
