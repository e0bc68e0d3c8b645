"""How long one huge SET holds a node's event loop, and whether it costs a leader.

    PYTHONPATH=src python bench/bulk_stall.py --size-mib 64 --via leader
    PYTHONPATH=src python bench/bulk_stall.py --size-mib 64 --proto-max-bulk-len 512mb

Starts a 3-node `LocalCluster` with the production Raft timing (`cairn dev`'s: 10 ms
ticks, elections after 1-2 s), optionally sets `proto-max-bulk-len` on every node with
CONFIG SET (512mb: Redis's default, which Cairn had before), then sends one
`SET k <size>` to the chosen node over a raw socket as fast as the kernel takes it, while
another connection to the same node sends a PING every 5 ms. It prints the reply the SET
got (or that the connection was closed), how many bytes the node took before answering,
the slowest PING during the send, and the region leaders and Raft terms before and after
(a changed leader or term means the stall cost an election). Issue 14, defect 3.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis

from cairn.runtime.local_cluster import HOST, LocalCluster

CHUNK = 1 << 20


def _pinger(port: int, stop: threading.Event, worst: list[float]) -> None:
    """PING every 5 ms until `stop`; the slowest round trip goes in `worst[0]`."""
    c = redis.Redis(host=HOST, port=port, socket_timeout=30)
    while not stop.is_set():
        started = time.monotonic()
        c.ping()
        worst[0] = max(worst[0], time.monotonic() - started)
        time.sleep(0.005)


def _send_set(port: int, size: int) -> tuple[int, bytes, float]:
    """Send `SET k <size bytes>`; (bytes the node took, its reply or b"", seconds)."""
    sock = socket.create_connection((HOST, port))
    sock.settimeout(30)
    header = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % size
    chunk = b"x" * CHUNK
    sent, started = 0, time.monotonic()
    try:
        sock.sendall(header)
        sent = len(header)
        left = size
        while left > 0:
            piece = chunk[: min(left, CHUNK)]
            sock.sendall(piece)
            sent += len(piece)
            left -= len(piece)
        sock.sendall(b"\r\n")
        sent += 2
    except OSError:
        pass  # the node closed the connection: what it took is what was sent
    try:
        reply = sock.recv(4096)
    except OSError:
        reply = b""
    elapsed = time.monotonic() - started
    sock.close()
    return sent, reply, elapsed


def _raft_view(cluster: LocalCluster) -> dict[int, tuple[int, int]]:
    """Region id -> (leader, term) as node 1 sees it."""
    info = redis.Redis(host=HOST, port=cluster.spec(1).client_port).info("raft")
    out = {}
    for key, value in info.items():
        if key.startswith("raft_region") and isinstance(value, dict):
            out[int(key[len("raft_region") :])] = (
                int(value.get("leader", 0)),
                int(value.get("term", 0)),
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--via", choices=["leader", "follower"], default="leader")
    parser.add_argument("--proto-max-bulk-len", default="", help="CONFIG SET on every node")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cairn-bulk-stall-"))
    cluster = LocalCluster.plan(root, 3)
    cluster.start()
    try:
        lead = cluster.wait_for_leader()
        for n in (1, 2, 3):
            c = redis.Redis(host=HOST, port=cluster.spec(n).client_port)
            if args.proto_max_bulk_len:
                c.config_set("proto-max-bulk-len", args.proto_max_bulk_len)
            limit = c.config_get("proto-max-bulk-len")["proto-max-bulk-len"]
        time.sleep(3)
        node = lead if args.via == "leader" else next(n for n in (1, 2, 3) if n != lead)
        port = cluster.spec(node).client_port
        before = _raft_view(cluster)
        stop, worst = threading.Event(), [0.0]
        pinger = threading.Thread(target=_pinger, args=(port, stop, worst), daemon=True)
        pinger.start()
        time.sleep(0.2)
        sent, reply, elapsed = _send_set(port, args.size_mib << 20)
        time.sleep(3)
        stop.set()
        pinger.join()
        after = _raft_view(cluster)
        print(f"proto-max-bulk-len {limit}; SET of {args.size_mib} MiB to node {node} "
              f"({args.via}, leader {lead})")
        print(f"  node took {sent} bytes in {elapsed:.2f} s; reply {reply[:100]!r}")
        print(f"  slowest PING on the same node during the send: {worst[0] * 1000:.0f} ms")
        print(f"  regions (leader, term) before {before} after {after}")
        print(f"  leader changed: {any(before[r][0] != after.get(r, (0, 0))[0] for r in before)}"
              f"; term moved: {any(before[r][1] != after.get(r, (0, 0))[1] for r in before)}")
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
