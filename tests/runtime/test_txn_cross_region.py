"""Cross-region transactions on a real 3-node cluster with 3 regions, through redis-py:
MULTI/EXEC and WATCH over keys of several regions, multi-key writes across regions with
Redis's own replies, a concurrent bank (totals conserved, read atomically), and a
cluster-aware connection still answered CROSSSLOT."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis
from cluster_fixture import client, running_cluster
from store_harness import RawRedis

from cairn.runtime.local_cluster import LocalCluster
from cairn.store.slot import key_slot

REGIONS = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(
        tmp_path_factory.mktemp("txn"), settings={"initial_regions": REGIONS}
    ) as c:
        yield c


@pytest.fixture(scope="module")
def ranges(cluster: LocalCluster) -> list[tuple[int, int]]:
    """The slot ranges of the regions (asked on a connection of its own: asking makes a
    connection cluster-aware)."""
    probe = client(cluster, 1)
    slots = probe.execute_command("CLUSTER", "SLOTS")
    probe.close()
    found = sorted((int(r[0]), int(r[1])) for r in slots)
    assert len(found) == REGIONS
    return found


def key_in(ranges: list[tuple[int, int]], region: int, name: str) -> str:
    """A key named after `name` whose slot lies in region number `region`."""
    low, high = ranges[region]
    for n in range(100_000):
        key = f"{name}:{n}"
        if low <= key_slot(key.encode()) <= high:
            return key
    raise AssertionError("no key found")


def test_multi_exec_over_two_regions(cluster: LocalCluster, ranges: list[tuple[int, int]]) -> None:
    a, b = key_in(ranges, 0, "me-a"), key_in(ranges, 2, "me-b")
    r = client(cluster, 2)
    pipe = r.pipeline(transaction=True)
    pipe.set(a, "1").incrby(b, 5).incr(a).get(b).ping()
    assert pipe.execute() == [True, 5, 2, b"5", True]
    assert r.mget(a, b) == [b"2", b"5"]


def test_watch_across_regions_with_the_transaction_helper(
    cluster: LocalCluster, ranges: list[tuple[int, int]]
) -> None:
    a, b, c = (key_in(ranges, i, "wt") for i in range(3))
    r = client(cluster, 3)
    r.mset({a: "10", b: "20"})  # itself a cross-region transaction

    def move(pipe: redis.client.Pipeline) -> None:
        total = int(pipe.get(a)) + int(pipe.get(b))
        pipe.multi()
        pipe.set(c, total)
        pipe.delete(a)

    assert r.transaction(move, a, b) == [True, 1]
    assert r.mget(a, b, c) == [None, b"20", b"30"]


def test_watch_abort_across_regions(cluster: LocalCluster, ranges: list[tuple[int, int]]) -> None:
    a, b = key_in(ranges, 0, "wa"), key_in(ranges, 1, "wa")
    r, other = client(cluster, 1), client(cluster, 2)
    r.set(a, "before")
    pipe = r.pipeline(transaction=True)
    pipe.watch(a, b)
    other.set(b, "changed")  # a watched key of the other region changes
    pipe.multi()
    pipe.set(a, "mine")
    with pytest.raises(redis.WatchError):
        pipe.execute()
    assert r.mget(a, b) == [b"before", b"changed"]


def test_multi_key_writes_answer_as_redis(
    cluster: LocalCluster, ranges: list[tuple[int, int]], redis_server_port: int
) -> None:
    """Each command's bytes from Cairn (keys in several regions) and from redis-server."""
    k = {f"{n}{i}": key_in(ranges, i, f"mk-{n}") for n in "sxyz" for i in range(3)}
    script = [
        ["MSET", k["s0"], "a", k["s1"], "b", k["s2"], "c"],
        ["MSETNX", k["x0"], "1", k["x1"], "2"],
        ["MSETNX", k["x1"], "9", k["x2"], "9"],
        ["RENAME", k["s0"], k["y1"]],
        ["RENAME", k["s0"], k["y2"]],
        ["RENAMENX", k["y1"], k["s1"]],
        ["COPY", k["s1"], k["z0"]],
        ["SADD", k["s0"], "m", "n"],
        ["SADD", k["z2"], "n", "o"],
        ["SUNIONSTORE", k["y0"], k["s0"], k["z2"]],
        ["SINTERSTORE", k["y0"], k["s0"], k["z2"]],
        ["SMOVE", k["s0"], k["z2"], "m"],
        ["SMEMBERS", k["y0"]],
        ["SUNIONSTORE", k["y0"], k["s2"], k["z2"]],
        ["MGET", k["s0"], k["s1"], k["s2"], k["x0"], k["x1"], k["x2"], k["y1"], k["z0"]],
    ]
    theirs, ours = RawRedis(redis_server_port), RawRedis(cluster.spec(1).client_port)
    try:
        for argv in script:
            expected = theirs.call([a.encode() for a in argv])
            assert ours.call([a.encode() for a in argv]) == expected, argv
    finally:
        theirs.close()
        ours.close()


def test_cluster_aware_connection_still_gets_crossslot(
    cluster: LocalCluster, ranges: list[tuple[int, int]]
) -> None:
    a, b = key_in(ranges, 0, "ca"), key_in(ranges, 1, "ca")
    r = client(cluster, 1, single_connection_client=True)
    r.execute_command("READWRITE")  # now it can follow MOVED: served as by Redis Cluster
    with pytest.raises(redis.exceptions.ClusterCrossSlotError):
        r.mset({a: "1", b: "2"})
    r.close()


def test_concurrent_bank_conserves_and_reads_atomically(
    cluster: LocalCluster, ranges: list[tuple[int, int]]
) -> None:
    """Transfers between accounts of three regions from several threads and nodes, while
    an auditor reads every account in one transaction (every audit sees the whole total)
    and with a plain MGET (whose reads meet the locks and are resolved)."""
    accounts = [key_in(ranges, i % REGIONS, f"bank{i}") for i in range(6)]
    start = 100
    client(cluster, 1).mset({acct: start for acct in accounts})
    total = start * len(accounts)
    errors: list[str] = []
    audits: list[int] = []
    done, refused = [0], [0, 0]

    def transfers(worker: int) -> None:
        r = client(cluster, 1 + worker % 3)
        for n in range(15):
            src, dst = accounts[(worker + n) % 6], accounts[(worker + 2 * n + 1) % 6]
            if src == dst:
                continue
            try:
                pipe = r.pipeline(transaction=True)
                pipe.decrby(src, 3).incrby(dst, 3)
                pipe.execute()
                done[0] += 1
            except redis.exceptions.TryAgainError:  # too much contention: not applied
                refused[0] += 1
            except redis.ResponseError as exc:
                errors.append(str(exc))

    def audit() -> None:
        r = client(cluster, 2)
        for _ in range(30):  # until 6 audits went through (a TRYAGAIN is tried again)
            if len(audits) >= 6:
                break
            pipe = r.pipeline(transaction=True)
            for acct in accounts:
                pipe.get(acct)
            try:
                audits.append(sum(int(v) for v in pipe.execute()))
            except redis.exceptions.TryAgainError:
                refused[1] += 1
            # plain reads meet the transfers' locks: resolved on the node, never shown
            plain = r.mget(accounts)
            if not all(isinstance(v, bytes) and v.lstrip(b"-").isdigit() for v in plain):
                errors.append(f"MGET answered {plain!r}")

    threads = [threading.Thread(target=transfers, args=(w,)) for w in range(4)]
    threads.append(threading.Thread(target=audit))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    print(f"transfers {done[0]} refused {refused[0]}; audits {len(audits)} refused {refused[1]}")
    assert not errors, errors
    assert len(audits) >= 6 and all(seen == total for seen in audits), audits
    values = client(cluster, 3).mget(accounts)
    assert sum(int(v) for v in values) == total
