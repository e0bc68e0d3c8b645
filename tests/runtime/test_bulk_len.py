"""A bulk longer than any write can carry is refused at its header (issue 14, defect 3).

`proto-max-bulk-len` (`limits.max_bulk_len`) defaults to `max_entry_bytes` + 1 MiB
(17 MiB), not Redis's 512 MiB: a 64 MiB SET, which `max_entry_bytes` refuses anyway, used
to be received and parsed whole first, holding the node's loop for a fraction of a second
to seconds. Now its `$67108864` header gets Redis's `-ERR Protocol error: invalid bulk
length` and the connection is closed, so the node reads next to nothing of it; other
clients are served meanwhile. CONFIG SET proto-max-bulk-len still raises or lowers the
limit for connections opened afterwards. One single-node cluster with the default limits.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from bad_input_tools import PING, command, connect, read_until_closed, roundtrip
from cluster_fixture import client, running_cluster

from cairn.runtime.config import BULK_LEN_MARGIN, Limits, from_mapping
from cairn.runtime.local_cluster import LocalCluster

INVALID_BULK = b"-ERR Protocol error: invalid bulk length\r\n"
"""Redis 7.0.15's reply to a `$<n>` header past proto-max-bulk-len (then it closes)."""
HUGE = 64 << 20
CHUNK = 1 << 20
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
    with running_cluster(tmp_path_factory.mktemp("bulk"), nodes=1) as started:
        yield started


def _send_set(port: int, size: int) -> tuple[int, bytes, bool]:
    """Send `SET bulk:k <size bytes>` in 1 MiB pieces until done or the node closes:
    (bytes the node accepted, what it answered, whether it closed the connection)."""
    with connect(port, timeout=10) as sock:
        sent = 0
        try:
            sock.sendall(b"*3\r\n$3\r\nSET\r\n$6\r\nbulk:k\r\n$%d\r\n" % size)
            piece = b"x" * CHUNK
            while sent < size:
                sock.sendall(piece[: size - sent])
                sent += min(CHUNK, size - sent)
            sock.sendall(b"\r\n")
        except OSError:  # closed by the node (EPIPE, ECONNRESET)
            pass
        try:
            answer = read_until_closed(sock, timeout=5)
            return sent, answer.reply, answer.closed
        except OSError:
            return sent, b"", True


def test_the_default_derives_from_the_write_limit() -> None:
    assert Limits().max_bulk_len == (16 << 20) + BULK_LEN_MARGIN
    assert Limits(max_entry_bytes=4 << 20).max_bulk_len == (4 << 20) + BULK_LEN_MARGIN
    assert Limits(max_bulk_len=5 << 20).max_bulk_len == 5 << 20
    config = from_mapping({**BASE, "limits": {"max_entry_bytes": 1 << 20}})
    assert config.limits.max_bulk_len == 2 << 20
    explicit = from_mapping({**BASE, "limits": {"max_bulk_len": 512 << 20}})
    assert explicit.limits.max_bulk_len == 512 << 20


def test_a_64_mib_bulk_is_refused_at_its_header(cluster: LocalCluster) -> None:
    """Redis's error, the connection closed after a few MiB at most (what the kernel's
    buffers take before the close), the key not written; meanwhile another client's PING
    is answered."""
    port = cluster.spec(1).client_port
    with connect(port) as other:
        sent, received, closed = _send_set(port, HUGE)
        started = time.monotonic()
        assert roundtrip(other, PING) == ["PONG"]
        assert time.monotonic() - started < 2
    assert received == INVALID_BULK
    assert closed
    assert sent < HUGE // 4, f"the node took {sent} bytes of a refused bulk"
    assert client(cluster, 1).exists("bulk:k") == 0


def test_a_write_just_past_the_write_limit_gets_the_write_error(cluster: LocalCluster) -> None:
    """Within the margin the bulk is read and the write refused by `max_entry_bytes`,
    with the error that names it; the connection stays usable."""
    port = cluster.spec(1).client_port
    with connect(port, timeout=10) as sock:
        value = b"v" * ((16 << 20) + 10)
        (error,) = roundtrip(sock, command("SET", "bulk:k", value), timeout=10)
        assert "too large for one replicated write" in str(error)
        assert roundtrip(sock, PING) == ["PONG"]


def test_config_set_changes_the_limit_for_new_connections(cluster: LocalCluster) -> None:
    c = client(cluster, 1)
    assert c.config_get("proto-max-bulk-len") == {"proto-max-bulk-len": str(17 << 20)}
    try:
        c.config_set("proto-max-bulk-len", "1mb")
        port = cluster.spec(1).client_port
        _, received, closed = _send_set(port, (1 << 20) + 1)
        assert (received, closed) == (INVALID_BULK, True)
        with connect(port) as sock:
            assert roundtrip(sock, command("SET", "bulk:small", b"s" * (1 << 20))) == ["OK"]
    finally:
        c.config_set("proto-max-bulk-len", str(17 << 20))
    assert c.config_get("proto-max-bulk-len") == {"proto-max-bulk-len": str(17 << 20)}


def test_the_refusal_matches_redis_when_a_server_is_at_hand() -> None:
    """The same header against redis-server 7.0 with proto-max-bulk-len lowered (skipped
    when none is installed): the same bytes, and the connection closed."""
    import shutil
    import subprocess

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--proto-max-bulk-len", "1mb"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        _, received, closed = _send_set(port, (1 << 20) + 1)
        assert (received, closed) == (INVALID_BULK, True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
