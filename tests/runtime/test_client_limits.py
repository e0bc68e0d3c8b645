"""Client limits on a real 3-node cluster with a password (docs/security.md).

Unauthenticated connections: Redis's 16 KiB / 10-argument input limits, a per-address
cap, and a timeout. Authenticated ones: `timeout` for idle clients, `maxmemory` for the
node's client memory, and the output limit a region leader applies to the replies it
sends a follower for the follower's clients (the 100k x 256 KiB flood of issue 14,
scaled down). Secrets: the password is in a 0600 file, never on a node's command line.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from bad_input_tools import (
    PING,
    Exchange,
    command,
    connect,
    exchange,
    read_until_closed,
    roundtrip,
    rss_mb,
    wait_until,
)
from cluster_fixture import client, running_cluster, set_until_certain

from cairn.cli.server_cmd import PASSWORD_ENV, password_from_env
from cairn.runtime.client_limits import TOO_MANY_UNAUTHENTICATED
from cairn.runtime.config import ConfigError, from_mapping
from cairn.runtime.local_cluster import LocalCluster

PASSWORD = "limits-s3cret"
PER_SOURCE = 5
AUTH_TIMEOUT_MS = 1000
AUTH = command("AUTH", PASSWORD)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    limits = {"max_unauthenticated_per_source": PER_SOURCE, "auth_timeout_ms": AUTH_TIMEOUT_MS}
    root = tmp_path_factory.mktemp("limits")
    with running_cluster(root, password=PASSWORD, limits=limits) as c:
        yield c


def _follower(cluster: LocalCluster) -> int:
    leader = cluster.wait_for_leader()
    return next(s.node_id for s in cluster.specs if s.node_id != leader)


# -- before AUTH --------------------------------------------------------------------------


def test_unauthenticated_input_limits_are_redis(cluster: LocalCluster) -> None:
    """Before AUTH: at most 10 arguments of at most 16 KiB (Redis 7.0's texts); after
    AUTH the normal limits."""
    port = cluster.spec(1).client_port
    big = b"x" * (16 * 1024 + 1)
    assert exchange(port, command("SET", "k", big)) == Exchange(
        b"-ERR Protocol error: unauthenticated bulk length\r\n", closed=True
    )
    assert exchange(port, b"*11\r\n") == Exchange(
        b"-ERR Protocol error: unauthenticated multibulk length\r\n", closed=True
    )
    with connect(port) as sock:
        assert roundtrip(sock, AUTH + command("SET", "limits:big", big), replies=2) == [
            "OK",
            "OK",
        ]


def test_unauthenticated_connections_are_capped_per_address_and_timed_out(
    cluster: LocalCluster,
) -> None:
    port = cluster.spec(2).client_port
    held = [connect(port) for _ in range(PER_SOURCE)]
    try:
        for sock in held:  # served: each may still AUTH
            assert roundtrip(sock, PING) == ["NOAUTH Authentication required."]
        assert exchange(port, PING) == Exchange(TOO_MANY_UNAUTHENTICATED, closed=True)
        assert roundtrip(held[0], AUTH) == ["OK"]  # authenticating frees a place
        with connect(port) as sock:
            assert roundtrip(sock, PING) == ["NOAUTH Authentication required."]
            started = time.monotonic()
            got = read_until_closed(sock, timeout=AUTH_TIMEOUT_MS / 1000 + 3)
        assert got == Exchange(b"", closed=True), "not closed after the auth timeout"
        assert time.monotonic() - started >= AUTH_TIMEOUT_MS / 1000 - 0.2
        for sock in held[1:]:
            assert read_until_closed(sock, timeout=1).closed
        assert roundtrip(held[0], PING) == ["PONG"]  # the authenticated one stays
    finally:
        for sock in held:
            sock.close()


# -- timeout and maxmemory ----------------------------------------------------------------


def test_idle_clients_are_closed_after_timeout(cluster: LocalCluster) -> None:
    """`timeout 1`: a silent client is closed; one that talks, a subscriber and a client
    blocked in BLPOP are not (as in Redis)."""
    port = cluster.spec(3).client_port
    admin = connect(port)
    idle, busy, subscriber, blocked = (connect(port) for _ in range(4))
    try:
        assert roundtrip(admin, AUTH + command("CONFIG", "SET", "timeout", "1"), 2) == ["OK"] * 2
        for sock in (idle, busy, subscriber, blocked):
            assert roundtrip(sock, AUTH) == ["OK"]
        assert roundtrip(subscriber, command("SUBSCRIBE", "limits:ch")) == [
            [b"subscribe", b"limits:ch", 1]
        ]
        blocked.sendall(command("BLPOP", "limits:list", "0"))
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:  # busy keeps talking, the others say nothing
            assert roundtrip(busy, PING) == ["PONG"]
            time.sleep(0.25)
        assert read_until_closed(idle, timeout=0.5).closed
        assert roundtrip(subscriber, PING) == [[b"pong", b""]]
        assert roundtrip(busy, command("RPUSH", "limits:list", "x")) == [1]
        assert roundtrip(blocked, b"") == [[b"limits:list", b"x"]]
        assert roundtrip(busy, command("CONFIG", "SET", "timeout", "0")) == ["OK"]
    finally:
        for sock in (admin, idle, busy, subscriber, blocked):
            sock.close()


def test_maxmemory_bounds_client_memory(cluster: LocalCluster) -> None:
    """One client holds 3 MiB of a half-sent argument; with maxmemory 2mb, writes that
    would add memory get Redis's OOM error, reads still work; once it goes, writes pass."""
    port = cluster.spec(1).client_port
    with connect(port) as ctl:
        assert roundtrip(ctl, AUTH + command("CONFIG", "SET", "maxmemory", "2mb"), 2) == ["OK"] * 2
        hog = connect(port)
        assert roundtrip(hog, AUTH) == ["OK"]
        hog.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nhog\r\n$8000000\r\n" + b"h" * (3 << 20))
        oom = "OOM command not allowed when used memory > 'maxmemory'."
        wait_until(
            lambda: roundtrip(ctl, command("SET", "limits:oom", "v")) == [oom],
            timeout=5,
            what="the OOM error",
        )
        assert roundtrip(ctl, command("GET", "limits:big"))[0] is not None  # reads pass
        hog.close()
        wait_until(
            lambda: roundtrip(ctl, command("SET", "limits:oom", "v")) == ["OK"],
            timeout=5,
            what="writes once the memory is freed",
        )
        assert roundtrip(ctl, command("CONFIG", "SET", "maxmemory", "0")) == ["OK"]


# -- the leader bounds what it holds for a follower's clients -----------------------------

FLOOD_VALUE = 128 << 10
FLOOD_CLIENTS = 8
FLOOD_READS = 1000
FLOOD_ROUNDS = 2
FLOOD_LIMIT = "8mb"
"""8 clients of a follower each pipeline 1,000 GETs of 128 KiB (1 GiB of replies) and
never read, twice, under a normal hard limit of 8 MiB. Issue 14 measured 100,000 reads of
256 KiB taking a leader from 65 MB to 1,037 MB. Before the leader applied the output
limit to forwarded replies, one such round grew it by 62 to 627 MiB (less when the
reads reach it spread over many loop turns: hence two rounds), and its link to the
follower backed up and dropped replies, so the follower's other clients got TRYAGAIN;
after, by 19 to 27 MiB."""
GROWTH_BOUND_MB = 60


def _key_leader(cluster: LocalCluster, key: str) -> int:
    """The node leading the region that holds `key` (INFO raft of the nodes: one region)."""
    leaders = cluster.region_leaders_seen_by(1)
    assert leaders is not None and len(leaders) == 1, leaders
    return next(iter(leaders.values()))


def _flood(port: int, pids: dict[int, int]) -> dict[int, float]:
    """One round of the flood; each node's peak RSS growth (MiB) while it lasts."""
    before = {n: rss_mb(pid) for n, pid in pids.items()}
    peak = dict(before)
    request = command("GET", "limits:flood") * FLOOD_READS
    socks = []
    try:
        for _ in range(FLOOD_CLIENTS):
            socks.append(connect(port, rcvbuf=64 << 10))
            # (the follower may still be busy with the previous round's 8,000 commands)
            assert roundtrip(socks[-1], AUTH, timeout=30) == ["OK"]
        for sock in socks:
            sock.sendall(request)  # 33 KB: the kernel takes it all at once
        until = time.monotonic() + 1.5
        while time.monotonic() < until:
            peak = {n: max(peak[n], rss_mb(pid)) for n, pid in pids.items()}
            time.sleep(0.002)
    finally:
        for sock in socks:
            sock.close()
    return {n: peak[n] - before[n] for n in peak}


def test_pipelined_large_reads_through_a_follower_leave_the_leader_bounded(
    cluster: LocalCluster,
) -> None:
    leader = _key_leader(cluster, "limits:flood")
    follower = next(s.node_id for s in cluster.specs if s.node_id != leader)
    for spec in cluster.specs:
        with client(cluster, spec.node_id) as r:
            r.config_set("client-output-buffer-limit", f"normal {FLOOD_LIMIT} 0 0")
    try:
        with client(cluster, follower) as r:
            r.set("limits:flood", b"f" * FLOOD_VALUE)
        pids = {n: p.pid for n, p in cluster.procs.items()}
        port = cluster.spec(follower).client_port
        grown = [_flood(port, pids) for _ in range(FLOOD_ROUNDS)]
        print(f"flood through node {follower} to {leader}: RSS growth MiB {grown}")
        worst = max(g[leader] for g in grown)
        assert worst < GROWTH_BOUND_MB, f"the leader grew {worst:.0f} MiB: {grown}"
        with client(cluster, follower, socket_timeout=20) as r:
            # its other clients are served: before the limit, the leader's link to the
            # follower backed up and dropped replies, so this timed out (TRYAGAIN)
            assert r.strlen("limits:flood") == FLOOD_VALUE
    finally:
        for spec in cluster.specs:
            with client(cluster, spec.node_id) as r:
                r.config_set("client-output-buffer-limit", "normal 64mb 0 0")


def test_a_forwarded_reply_over_the_hard_limit_closes_the_client(cluster: LocalCluster) -> None:
    """A reply larger than the normal hard limit closes the client, as Redis does, even
    when the follower relays it: the leader refuses to queue it. (Before, the leader
    sent it whole and the follower handed it to the kernel at once, so the limit was
    never seen.)"""
    leader = _key_leader(cluster, "limits:huge")
    follower = next(s.node_id for s in cluster.specs if s.node_id != leader)
    with client(cluster, leader) as r:
        set_until_certain(r, "limits:huge", b"h" * (2 << 20))
    # On every node: the region's leadership may move before the GET (a loaded machine),
    # and whichever node leads then must refuse to queue the reply.
    for spec in cluster.specs:
        with client(cluster, spec.node_id) as r:
            r.config_set("client-output-buffer-limit", "normal 1mb 0 0")
    try:
        with connect(cluster.spec(follower).client_port) as sock:
            sock.sendall(AUTH + command("GET", "limits:huge"))
            assert read_until_closed(sock, timeout=5) == Exchange(b"+OK\r\n", closed=True)
    finally:
        for spec in cluster.specs:
            with client(cluster, spec.node_id) as r:
                r.config_set("client-output-buffer-limit", "normal 64mb 0 0")


# -- secrets ------------------------------------------------------------------------------


def test_password_is_in_a_private_file_not_on_the_command_line(cluster: LocalCluster) -> None:
    for spec in cluster.specs:
        pid = cluster.procs[spec.node_id].pid
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert PASSWORD.encode() not in cmdline
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert PASSWORD.encode() not in environ
        assert stat.S_IMODE(spec.config_path.stat().st_mode) == 0o600
        assert PASSWORD not in spec.config_path.read_text()
    password_file = cluster.root / "password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    with redis.Redis(port=cluster.spec(1).client_port, password=PASSWORD) as r:
        assert r.ping() is True


def test_password_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = {
        "node_id": 1,
        "data_dir": str(tmp_path),
        "peers": {"1": "127.0.0.1:1"},
        "insecure_peer_port": True,
    }
    secret = tmp_path / "pw"
    secret.write_text("from-a-file\n")
    assert from_mapping(base | {"password_file": str(secret)}).password == "from-a-file"
    with pytest.raises(ConfigError, match="password_file: cannot read"):
        from_mapping(base | {"password_file": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="not both"):
        from_mapping(base | {"password_file": str(secret), "password": "x"})
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert password_from_env() == {"password": "from-env"}
    assert PASSWORD_ENV not in os.environ  # not inherited by anything the node starts
    assert password_from_env() == {}
