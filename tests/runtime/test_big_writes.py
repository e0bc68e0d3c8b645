"""One replicated write is bounded (`limits.max_entry_bytes`, defect 3 of issue 14).

A write command is one Raft entry that the leader encodes, fsyncs and replicates on its
event loop: a 64 MiB SET held a leader for seconds and forced elections. A write whose
arguments pass `max_entry_bytes` is refused at the node the client talks to, before it is
forwarded or proposed; one that fits is served. The cluster here runs with a 1 MiB limit
so the test sends little.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from cluster_fixture import client, running_cluster

from cairn.runtime.config import ConfigError, Limits, from_mapping
from cairn.runtime.entry_limits import entry_too_large
from cairn.runtime.local_cluster import LocalCluster

LIMIT = 1 << 20
BASE = {
    "node_id": 1,
    "data_dir": "/tmp/x",
    "client_addr": "127.0.0.1:7001",
    "peer_addr": "127.0.0.1:17001",
    "peers": {"1": "127.0.0.1:17001"},
    "cluster_secret": "a-test-secret-of-enough-bytes",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(
        tmp_path_factory.mktemp("big"), limits={"max_entry_bytes": LIMIT}
    ) as started:
        yield started


def _nodes(cluster: LocalCluster) -> tuple[int, int]:
    lead = cluster.wait_for_leader()
    follower = next(n for n in (1, 2, 3) if n != lead)
    return lead, follower


def test_the_limit_is_a_config_key_with_a_16_mib_default() -> None:
    assert Limits().max_entry_bytes == 16 << 20
    config = from_mapping({**BASE, "limits": {"max_entry_bytes": 4096}})
    assert config.limits.max_entry_bytes == 4096


def test_the_error_names_the_size_and_the_setting() -> None:
    """SET k v carries 5 argument bytes: over a limit of 4, within one of 5."""
    error = entry_too_large([b"SET", b"k", b"v"], 4)
    assert error is not None
    assert error.message == (
        "ERR value too large for one replicated write (5 bytes; limits.max_entry_bytes is 4)"
    )
    assert entry_too_large([b"SET", b"k", b"v"], 5) is None


@pytest.mark.parametrize("via", ["leader", "follower"])
def test_a_write_past_the_limit_is_refused_at_the_edge(cluster: LocalCluster, via: str) -> None:
    """Through the leader or a follower (which would forward it): an error, the key not
    written, the node answering at once; a value that fits is written."""
    lead, follower = _nodes(cluster)
    c = client(cluster, lead if via == "leader" else follower, socket_timeout=10)
    key = f"big-{via}"
    with pytest.raises(redis.ResponseError, match="too large for one replicated write"):
        c.set(key, b"x" * LIMIT)
    with pytest.raises(redis.ResponseError, match=r"limits\.max_entry_bytes is 1048576"):
        c.mset({f"{key}-a": b"x" * (LIMIT // 2), f"{key}-b": b"y" * (LIMIT // 2)})
    started = time.monotonic()
    assert c.ping()
    assert time.monotonic() - started < 2
    assert c.exists(key, f"{key}-a", f"{key}-b") == 0
    assert c.set(key, b"x" * (LIMIT - 100))
    assert c.strlen(key) == LIMIT - 100


def test_reads_and_small_writes_are_not_limited(cluster: LocalCluster) -> None:
    """The limit is on a write's arguments: a read of a big value and a write that grows
    it in small steps (APPEND) are served."""
    lead, _ = _nodes(cluster)
    c = client(cluster, lead, socket_timeout=10)
    c.set("grow", b"a" * (LIMIT - 100))
    assert c.append("grow", b"b" * 200) == LIMIT + 100
    assert len(c.get("grow") or b"") == LIMIT + 100


def test_a_transaction_past_the_limit_is_refused(cluster: LocalCluster) -> None:
    """A MULTI/EXEC is one entry too: past the limit EXEC answers the error, nothing runs."""
    lead, _ = _nodes(cluster)
    c = client(cluster, lead, socket_timeout=10)
    pipe = c.pipeline(transaction=True)
    pipe.set("t1", b"x" * (LIMIT // 2))
    pipe.set("t2", b"y" * (LIMIT // 2))
    with pytest.raises(redis.ResponseError, match="too large for one replicated write"):
        pipe.execute()
    assert c.exists("t1", "t2") == 0


def test_config_validation_refuses_a_zero_limit() -> None:
    with pytest.raises(ConfigError, match="max_entry_bytes"):
        from_mapping({**BASE, "limits": {"max_entry_bytes": 0}})


HUGE = ("-3000000000", "9999999999", "9223372036854775807", "9223372036854775808", "-1")
NODE_SHAPES = (
    "SELECT N",
    "HELLO N",
    "CLIENT KILL ID N",
    "CLIENT LIST ID N",
    "SLOWLOG GET N",
    "WAIT N N",
    "WAIT 0 N",
    "CLUSTER COUNTKEYSINSLOT N",
    "CLUSTER GETKEYSINSLOT 0 N",
    "SCAN N COUNT N",
    "MEMORY USAGE bounded SAMPLES N",
    "SRANDMEMBER bounded N",
    "LRANGE bounded-list 0 N",
)
"""Node-level commands with a count, index, id or timeout (the store's commands are
audited in tests/store/test_store_bounds.py; CONFIG SET's ranges are Redis' own, checked
by `redis_params`; CLIENT PAUSE with a huge timeout pauses, as in Redis)."""


def test_node_level_integer_arguments_are_bounded(cluster: LocalCluster) -> None:
    """Every huge value at every node-level integer position: a quick, small reply."""
    _, follower = _nodes(cluster)
    c = client(cluster, follower, socket_timeout=4)
    c.sadd("bounded", "a", "b")
    c.rpush("bounded-list", "a", "b")
    for shape in NODE_SHAPES:
        for value in HUGE:
            argv = [value if word == "N" else word for word in shape.split()]
            started = time.monotonic()
            try:
                reply = c.execute_command(*argv)
            except redis.ResponseError as error:
                reply = str(error)
            assert time.monotonic() - started < 1.5, argv
            assert len(repr(reply)) < 64 << 10, argv
    assert c.ping()
