"""Bad clients against a real 3-node cluster: the node answers, closes, and carries on.

Every case talks raw bytes to a node's client port. Malformed requests must get Redis 7's
exact `-ERR Protocol error: ...` reply (checked against a real redis-server) and lose
only their own connection; absurd declared sizes must be refused without allocating;
random bytes, half-sent commands, clients that never read, and 10,000 idle connections
must not crash a node nor grow its memory without bound (its RSS is read from /proc).
After every test the cluster must still answer SET/GET on every node, keep a canary key,
and have logged no traceback.
"""

from __future__ import annotations

import random
import resource
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from bad_input_tools import (
    PING,
    Exchange,
    ReplyReader,
    command,
    connect,
    exchange,
    info_field,
    open_files_limit,
    ping_fresh,
    read_until_closed,
    roundtrip,
    rss_mb,
    wait_until,
)
from cluster_fixture import client, running_cluster

from cairn.runtime.local_cluster import HOST, LocalCluster

IDLE_CLIENTS = 10_000
MAX_CLIENTS = IDLE_CLIENTS + 100
NEVER_READ_BYTES = 200 << 20
RSS_GROWTH_BOUND_MB = 200
IDLE_RSS_BOUND_MB = 100
"""RSS growth allowed for 10,000 idle clients (measured: about 36 MiB)."""
CANARY = (b"bad-input:canary", b"still here")


def _raise_own_fd_limit(needed: int) -> None:
    """Let this test process open `needed` sockets (it needs one per idle client)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.fail(f"RLIMIT_NOFILE hard limit {hard} < {needed}: raise it (ulimit -Hn)")
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@contextmanager
def _low_soft_fd_limit() -> Iterator[None]:
    """While inside, this process (and so every child it starts) has a soft fd limit <= 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 1024), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One cluster for the whole file, started with a low soft fd limit it must raise itself."""
    root = tmp_path_factory.mktemp("bad-input")
    with ExitStack() as stack:
        with _low_soft_fd_limit():
            c = stack.enter_context(running_cluster(root, limits={"max_clients": MAX_CLIENTS}))
        _raise_own_fd_limit(IDLE_CLIENTS + 1000)
        with client(c, c.wait_for_leader()) as r:
            r.set(*CANARY)
        yield c


@pytest.fixture(autouse=True)
def still_healthy(cluster: LocalCluster) -> Iterator[None]:
    """After each test: every node alive, SET/GET right on every node, canary intact."""
    yield
    dead = [i for i in cluster.procs if not cluster.running(i)]
    assert not dead, f"nodes {dead} died; logs in {cluster.root}"
    cluster.wait_for_leader(timeout=10)
    stamp = f"{time.monotonic_ns()}"
    for spec in cluster.specs:
        with client(cluster, spec.node_id, socket_timeout=10) as r:
            key = f"bad-input:health:{spec.node_id}"
            assert r.set(key, stamp) is True
            assert r.get(key) == stamp.encode()
            assert r.get(CANARY[0]) == CANARY[1]
    for spec in cluster.specs:
        log = spec.log_path.read_text(errors="replace")
        assert "Traceback" not in log, f"node {spec.node_id} logged a traceback:\n{log[-4000:]}"


def _port(cluster: LocalCluster, role: str) -> tuple[int, int]:
    """(node id, client port) of the leader or of a follower."""
    leader = cluster.wait_for_leader()
    node = (
        leader
        if role == "leader"
        else next(s.node_id for s in cluster.specs if s.node_id != leader)
    )
    return node, cluster.spec(node).client_port


def _rss_all(cluster: LocalCluster) -> dict[int, float]:
    return {i: rss_mb(p.pid) for i, p in cluster.procs.items()}


# -- the fd limit -------------------------------------------------------------------------


def test_server_raises_its_soft_fd_limit(cluster: LocalCluster) -> None:
    """Started with a soft RLIMIT_NOFILE of at most 1024, each node raised it to the hard one."""
    for node, proc in cluster.procs.items():
        soft, hard = open_files_limit(proc.pid)
        assert soft == hard, f"node {node}: soft fd limit {soft}, hard {hard}"
        assert soft > IDLE_CLIENTS, f"node {node}: fd limit {soft} cannot hold the clients"


# -- malformed RESP: same reply as Redis 7, connection closed, others served ----------------

MALFORMED = {
    "bulk length not a number": b"*1\r\n$abc\r\n",
    "negative bulk length": b"*2\r\n$3\r\nGET\r\n$-5\r\n",
    "bulk length with a plus sign": b"*1\r\n$+4\r\nPING\r\n",
    "multibulk length not a number": b"*x\r\n",
    "multibulk length over 64 bits": b"*123456789012345678901234\r\n",
    "simple string element": b"*2\r\n+x\r\n",
    "integer element": b"*2\r\n$3\r\nGET\r\n:1\r\n",
    "nested array as argument": b"*2\r\n$3\r\nGET\r\n*1\r\n$1\r\nk\r\n",
    "nested array first": b"*1\r\n*1\r\n$4\r\nPING\r\n",
    "10 GB bulk": b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10737418240\r\n",
    "unbalanced quotes inline": b'SET k "abc\r\n',
    "error after a good command": PING + b"*1\r\n$x\r\n",
    "oversized inline command": b"GET " + b"k" * (70 << 10),
    "oversized bulk header": b"*1\r\n$" + b"1" * (70 << 10),
    "oversized multibulk header": b"*" + b"1" * (70 << 10),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_request_gets_redis_error_and_close(
    case: str, cluster: LocalCluster, redis_server_port: int
) -> None:
    data = MALFORMED[case]
    theirs = exchange(redis_server_port, data)
    for role in ("leader", "follower"):
        _, port = _port(cluster, role)
        ours = exchange(port, data)
        assert ours.closed, f"{role} kept the connection open after {ours.reply!r}"
        assert ours.reply == theirs.reply, f"{role}: ours {ours.reply!r}, redis {theirs.reply!r}"
        assert b"-ERR Protocol error: " in ours.reply
        assert ours.reply.endswith(b"\r\n") and ours.reply.count(b"-ERR") == 1
        ping_fresh(port)
    assert theirs.closed


# -- absurd declared sizes ------------------------------------------------------------------


def test_absurd_declared_sizes_are_refused_at_once(cluster: LocalCluster) -> None:
    node, port = _port(cluster, "leader")
    pid = cluster.procs[node].pid
    before = rss_mb(pid)
    cases = {
        b"*1\r\n$10737418240\r\n": b"-ERR Protocol error: invalid bulk length\r\n",
        b"*99999999\r\n": b"-ERR Protocol error: invalid multibulk length\r\n",
        b"*2147483648\r\n": b"-ERR Protocol error: invalid multibulk length\r\n",
    }
    for header, expected in cases.items():
        with connect(port) as sock:
            started_at = time.monotonic()
            sock.sendall(header)  # the header alone: refusal must not wait for the payload
            got = read_until_closed(sock, timeout=3)
            assert got == Exchange(expected, closed=True), header
            assert time.monotonic() - started_at < 1.0
    assert rss_mb(pid) - before < 5
    ping_fresh(port)


def test_declared_but_unsent_sizes_allocate_nothing(cluster: LocalCluster) -> None:
    """Headers within the limits that announce a lot and send little hold only what came."""
    node, port = _port(cluster, "leader")
    pid = cluster.procs[node].pid
    before = rss_mb(pid)
    payload = b"x" * (8 << 20)
    socks = []
    try:
        for i in range(4):  # each: a 1M-argument array, then a 16 MB argument (within the
            sock = connect(port)  # default proto-max-bulk-len, 17 MiB), 8 MiB sent
            sock.sendall(b"*1000000\r\n$3\r\nSET\r\n$%d\r\nbad:k%d\r\n" % (5 + len(str(i)), i))
            sock.sendall(b"$16000000\r\n" + payload)
            socks.append(sock)
        time.sleep(0.3)
        grown = rss_mb(pid) - before
        assert grown < 4 * 8 + 40, f"RSS grew {grown:.0f} MiB for 32 MiB received"
        ping_fresh(port)
    finally:
        for sock in socks:
            sock.close()
    with client(cluster, node) as r:
        assert r.exists(*(f"bad:k{i}" for i in range(4))) == 0


# -- random bytes -------------------------------------------------------------------------

FUZZ_SEED = 20240603
TEMPLATES = [
    PING,
    command("ECHO", "hello"),
    command("GET", "fuzz:a"),
    command("EXISTS", "fuzz:a", "fuzz:b"),
    command("MGET", "fuzz:a", "fuzz:b", "fuzz:c"),
    command("STRLEN", "fuzz:a"),
    command("TTL", "fuzz:a"),
    b"PING hello\r\n",
    b'ECHO "quoted \\x41 text"\r\n',
]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    """One random damage to `data`: flip, insert, delete, duplicate, truncate, renumber."""
    out = bytearray(data)
    pos = rng.randrange(len(out))
    match rng.randrange(6):
        case 0:
            out[pos] = rng.randrange(256)
        case 1:
            out[pos:pos] = rng.randbytes(rng.randint(1, 8))
        case 2:
            del out[pos : pos + rng.randint(1, 8)]
        case 3:
            end = min(len(out), pos + rng.randint(1, 64))
            out[pos:pos] = out[pos:end]
        case 4:
            del out[pos:]
        case _:
            digits = [i for i, b in enumerate(out) if 0x30 <= b <= 0x39]
            if digits:
                at = rng.choice(digits)
                out[at : at + 1] = str(rng.choice([0, -1, -2, 99, 2**31, 2**63, 10**30])).encode()
    return bytes(out)


def _fuzz_blobs(rng: random.Random, count: int) -> list[bytes]:
    blobs = []
    for i in range(count):
        if i % 2:
            blobs.append(rng.randbytes(rng.randint(1, 2048)))
        else:
            pipeline = b"".join(rng.choice(TEMPLATES) for _ in range(rng.randint(1, 6)))
            for _ in range(rng.randint(1, 4)):
                pipeline = _mutate(rng, pipeline) or b"\r\n"
            blobs.append(pipeline)
    return blobs


def test_random_bytes(cluster: LocalCluster) -> None:
    """300 seeded blobs (raw random, or damaged pipelines), each on its own connection:
    whatever comes back is well-formed RESP, and the server closes at our end-of-file."""
    ports = [s.client_port for s in cluster.specs]
    blobs = _fuzz_blobs(random.Random(FUZZ_SEED), 300)
    before = _rss_all(cluster)
    for i, blob in enumerate(blobs):
        port = ports[i % len(ports)]
        got = exchange(port, blob, timeout=10, half_close=True)
        context = f"seed {FUZZ_SEED} blob {i} {blob[:80]!r}... -> {got.reply[:200]!r}"
        assert got.closed, f"no close after end-of-file: {context}"
        reader = ReplyReader()
        reader.feed(got.reply)
        list(reader.replies())
        assert reader.pending == 0, f"torn reply: {context}"
        if i % 50 == 49:
            ping_fresh(port)
    after = _rss_all(cluster)
    for node in after:
        assert after[node] - before[node] < 50, (before, after)


# -- half-sent commands ---------------------------------------------------------------------


def test_half_sent_commands_then_gone(cluster: LocalCluster) -> None:
    """A command cut anywhere, then the client vanishes (FIN or RST): nothing is executed."""
    _, port = _port(cluster, "follower")
    whole = command("SET", "half:key", "value")
    for cut in range(1, len(whole)):
        for reset in (False, True):
            sock = connect(port)
            sock.sendall(whole[:cut])
            if reset:  # SO_LINGER 0: close sends RST instead of FIN
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            sock.close()
    ping_fresh(port)
    with client(cluster, 1) as r:
        assert r.exists("half:key") == 0


@pytest.mark.parametrize("role", ["leader", "follower"])
def test_commands_trickled_byte_by_byte(role: str, cluster: LocalCluster) -> None:
    """Multibulk and inline commands sent one byte per segment with pauses still work."""
    _, port = _port(cluster, role)
    key = f"slow:{role}"
    value = "v" * 300
    with connect(port) as sock:
        for data in (command("SET", key, value), f"APPEND {key} tail\r\n".encode()):
            for i in range(len(data)):
                sock.sendall(data[i : i + 1])
                time.sleep(0.0005 if i % 50 else 0.05)
        assert roundtrip(sock, b"", replies=2) == ["OK", len(value) + 4]
        # a large argument in two halves with a pause inside the payload
        big = b"b" * 300_000
        request = command("SET", key, big)
        sock.sendall(request[: len(request) // 2])
        time.sleep(0.3)
        assert roundtrip(sock, request[len(request) // 2 :]) == ["OK"]
        assert roundtrip(sock, command("STRLEN", key)) == [len(big)]


# -- clients that never read ------------------------------------------------------------------


@pytest.mark.parametrize("role", ["leader", "follower"])
def test_client_that_never_reads(role: str, cluster: LocalCluster) -> None:
    """A client tries to pipeline 200 MB of GETs and never reads: once its replies back up,
    the node stops reading from it (the client's sends stall for good), the nodes' memory
    stays bounded, others are served, and its replies flow, in order, once it reads.

    Each GET fetches 4 KiB, so the replies fill the socket long before the node has
    worked through what the kernel buffered: the stall comes from flow control, not
    from the node being slow.
    """
    node, port = _port(cluster, role)
    value = b"v" * 4096
    with client(cluster, node) as r:
        r.set("never-read:key", value)
    request = command("GET", "never-read:key")
    block = memoryview(request * 10_000)
    before = _rss_all(cluster)
    peak = dict(before)
    sock = connect(port, rcvbuf=64 << 10)
    sent, stalled_since, sends = 0, 0.0, 0
    give_up = time.monotonic() + 10
    try:
        sock.setblocking(False)
        while sent < NEVER_READ_BYTES and time.monotonic() < give_up:
            try:
                sent += sock.send(block[sent % len(block) :])
                stalled_since = 0.0
            except BlockingIOError:
                now = time.monotonic()
                stalled_since = stalled_since or now
                if now - stalled_since > 1.0:
                    break
                time.sleep(0.01)
            sends += 1
            if sends % 20 == 0:
                peak = {n: max(peak[n], rss) for n, rss in _rss_all(cluster).items()}
        peak = {n: max(peak[n], rss) for n, rss in _rss_all(cluster).items()}
        for n in peak:
            grown = peak[n] - before[n]
            assert grown < RSS_GROWTH_BOUND_MB, f"node {n} RSS grew {grown:.0f} MiB"
        assert stalled_since, (
            f"the node kept reading ({sent >> 20} MiB) from a client that never reads"
        )
        assert sent < 64 << 20
        started_at = time.monotonic()
        with client(cluster, node, socket_timeout=5) as other:
            assert other.set("never-read:other", "ok") is True
            assert other.get("never-read:other") == b"ok"
        assert time.monotonic() - started_at < 2.0
        # The abuser finally reads (the first 2,000 replies): whole, in order, all the same.
        expected = b"$4096\r\n" + value + b"\r\n"
        expected *= 2000
        sock.setblocking(True)
        received = bytearray()
        deadline = time.monotonic() + 20
        while len(received) < len(expected) and time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(len(expected) - len(received))
            assert chunk, "the node closed a slow reader"
            received += chunk
        assert received == expected
    finally:
        sock.close()
    print(f"never-read via {role}: sent {sent >> 20} MiB; RSS MiB {before} -> {peak}")


@pytest.mark.parametrize("role", ["leader", "follower"])
def test_pipeline_of_large_replies_completes(role: str, cluster: LocalCluster) -> None:
    """3,000 GETs of a 32 KiB value sent at once, replies read only a second later:
    every reply arrives (reading must resume when the socket drains) and memory is bounded."""
    node, port = _port(cluster, role)
    value = b"L" * (32 << 10)
    with client(cluster, node) as r:
        r.set("large:key", value)
    count = 3000
    before = _rss_all(cluster)
    peak = dict(before)
    reply = b"$%d\r\n%s\r\n" % (len(value), value)
    with connect(port, timeout=20) as sock:
        sock.sendall(command("GET", "large:key") * count)
        for _ in range(10):
            time.sleep(0.1)
            peak = {n: max(peak[n], rss) for n, rss in _rss_all(cluster).items()}
        received = 0
        deadline = time.monotonic() + 20
        tail = b""
        while received < count * len(reply) and time.monotonic() < deadline:
            chunk = sock.recv(4 << 20)
            assert chunk, "closed early"
            data = tail + chunk
            whole = len(data) - len(data) % len(reply)
            assert data[:whole] == reply * (whole // len(reply))
            tail = data[whole:]
            received += len(chunk)
        assert received == count * len(reply), f"{received // len(reply)} of {count} replies"
    for n in peak:
        assert peak[n] - before[n] < RSS_GROWTH_BOUND_MB, (before, peak)
    print(f"large replies via {role}: RSS MiB before {before} peak {peak}")


# -- many idle connections, and the client limit ---------------------------------------------


def test_ten_thousand_idle_connections(cluster: LocalCluster) -> None:
    node, port = _port(cluster, "leader")
    pid = cluster.procs[node].pid
    baseline = rss_mb(pid)
    idle: list[socket.socket] = []
    try:
        for _ in range(IDLE_CLIENTS):
            idle.append(socket.create_connection((HOST, port), timeout=10))
        wait_until(
            lambda: int(info_field(port, "clients", "connected_clients")) > IDLE_CLIENTS,
            timeout=20,
            what=f"{IDLE_CLIENTS} accepted clients",
        )
        loaded = rss_mb(pid)
        started_at = time.monotonic()
        ping_fresh(port)
        assert time.monotonic() - started_at < 1.0
        for sock in idle[:: IDLE_CLIENTS // 50]:  # a sample of the idle ones still work
            assert roundtrip(sock, PING) == ["PONG"]
        with client(cluster, node) as r:
            assert r.set("idle:key", "1") is True
            assert r.get("idle:key") == b"1"
        grown = loaded - baseline
        assert grown < IDLE_RSS_BOUND_MB, f"RSS grew {grown:.0f} MiB for {IDLE_CLIENTS} clients"
    finally:
        for sock in idle:
            sock.close()
    wait_until(
        lambda: int(info_field(port, "clients", "connected_clients")) <= 2,
        timeout=20,
        what="idle clients to be closed",
    )
    after = rss_mb(pid)
    print(f"{IDLE_CLIENTS} idle: RSS MiB {baseline:.1f} -> {loaded:.1f}, closed {after:.1f}")


def test_client_and_input_limits_from_config(tmp_path: Path) -> None:
    """A small node: `max_clients` refuses the client over the limit with Redis' error and
    closes it; the other `[limits]` keys bound bulk, multibulk, inline and buffered input."""
    limits: dict[str, object] = {
        "max_clients": 4,
        "max_bulk_len": 1000,
        "max_multibulk_len": 5,
        "max_inline_len": 100,
        "max_query_buffer": 4096,
    }
    with running_cluster(tmp_path, 1, limits=limits) as small:
        port = small.spec(1).client_port
        wait_until(
            lambda: info_field(port, "clients", "connected_clients") == "1",
            timeout=10,
            what="earlier clients to leave",
        )
        held = [connect(port) for _ in range(4)]
        try:
            for sock in held:
                assert roundtrip(sock, PING) == ["PONG"]
            refused = exchange(port, PING)
            assert refused == Exchange(b"-ERR max number of clients reached\r\n", closed=True)
            assert roundtrip(held[0], PING) == ["PONG"]
            held.pop().close()
            wait_until(
                lambda: exchange(port, PING, timeout=1).reply == b"+PONG\r\n",
                timeout=5,
                what="a freed client slot",
            )
        finally:
            for sock in held:
                sock.close()
        wait_until(
            lambda: info_field(port, "clients", "connected_clients") == "1",
            timeout=10,
            what="held clients to leave",
        )
        over = {
            command("SET", "k", "x" * 1001): b"-ERR Protocol error: invalid bulk length\r\n",
            command("DEL", *"abcdef"): b"-ERR Protocol error: invalid multibulk length\r\n",
            b"ECHO " + b"x" * 200: b"-ERR Protocol error: too big inline request\r\n",
            # 1000-byte arguments are each allowed, but not 4 KiB of one unfinished command;
            # Redis closes a client over its query buffer limit without a reply
            b"*6\r\n$4\r\nMSET\r\n" + (b"$1000\r\n" + b"y" * 1000 + b"\r\n") * 5: b"",
        }
        for data, expected in over.items():
            assert exchange(port, data) == Exchange(expected, closed=True), data[:40]
        with client(small, 1) as r:
            assert r.set("k", "x" * 1000) is True
            assert r.strlen("k") == 1000
