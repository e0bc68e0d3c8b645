"""etcd's side of `bench/compare.py`: a 3-member etcd cluster and a put load against its leader.

The load comes from `bench/etcd_load` (Go, etcd's own clientv3, built in GOPATH mode against
Debian's golang-etcd-server-dev sources), one gRPC connection per client, puts to the
leader only; when Go cannot build it, from a Python generator over etcd's HTTP/JSON
gateway (keep-alive HTTP/1.1 connections to `/v3/kv/put` of the leader), which is itself a
Python client competing for the same cores: its etcd figures are a floor, and the caller
says which generator ran. Both put `-d`-byte values under `key:<random below -r>` keys, as
redis-benchmark's SET does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import os
import random
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cairn.runtime.local_cluster import HOST, free_ports

ROOT = Path(__file__).resolve().parent.parent
GOPATH = "/usr/share/gocode"
CLIENTV3 = Path(GOPATH, "src/go.etcd.io/etcd/clientv3")
DEBIAN_PACKAGES = {"etcd": "etcd-server", "go": "golang-go"}
"""Tools the etcd side uses, and the Debian package of each (the clientv3 sources are
`golang-etcd-server-dev`, see `CLIENTV3`)."""
START_TIMEOUT = 30.0
LOAD_TIMEOUT = 1800.0
"""The longest one put load may run (a bound, not an expectation)."""

StartProcess = Callable[[str, Sequence[str], Path], None]
"""Starts a named child process logging to a file (the caller stops it by PID)."""


@dataclass(frozen=True, slots=True)
class PutFigures:
    """Throughput and latency of one put load."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int = 0


def start_etcd(start: StartProcess, tmp: Path, members: int = 3) -> list[str]:
    """A `members`-member etcd cluster on free loopback ports; its client URLs, once every
    member reports itself healthy."""
    ports = free_ports(2 * members)
    clients = [f"http://{HOST}:{p}" for p in ports[:members]]
    peers = [f"http://{HOST}:{p}" for p in ports[members:]]
    cluster = ",".join(f"e{i}={peers[i]}" for i in range(members))
    for i in range(members):
        argv = ["etcd", "--name", f"e{i}", "--data-dir", str(tmp / f"etcd{i}")]
        argv += ["--listen-client-urls", clients[i], "--advertise-client-urls", clients[i]]
        argv += ["--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i]]
        argv += ["--initial-cluster", cluster, "--initial-cluster-state", "new"]
        argv += ["--initial-cluster-token", "cairn-bench", "--log-level", "warn"]
        argv += ["--logger", "zap"]
        start(f"etcd{i}", argv, tmp / f"etcd{i}.log")
    for url in clients:
        _poll(functools.partial(_healthy, url), f"etcd at {url}")
    return clients


def _poll(check: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if check():
                return
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not come up within {timeout:.0f} s")


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/health", timeout=1.0) as resp:
        return bool(json.loads(resp.read()).get("health") == "true")


def leader_url(urls: list[str]) -> str:
    """The client URL of the member that reports itself leader (HTTP/JSON gateway)."""
    for url in urls:
        req = urllib.request.Request(f"{url}/v3/maintenance/status", data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=2.0) as resp:
            status = json.loads(resp.read())
        if status["header"]["member_id"] == status["leader"]:
            return url
    raise RuntimeError("no etcd member reports itself leader")


def build_load_binary(out_dir: Path) -> tuple[Path | None, str]:
    """Build `bench/etcd_load` into `out_dir` (Go's build cache makes a rebuild cheap);
    (the binary, "") or (None, why not)."""
    if shutil.which("go") is None:
        return None, "no Go toolchain (apt-get install golang-go)"
    if not CLIENTV3.is_dir():
        return None, f"no {CLIENTV3} (apt-get install golang-etcd-server-dev)"
    out = out_dir / "etcd_load"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": GOPATH, "GOFLAGS": ""}
    build = subprocess.run(
        ["go", "build", "-o", str(out), "./bench/etcd_load"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=LOAD_TIMEOUT,
    )
    if build.returncode != 0:
        return None, "go build failed: " + build.stderr.strip()[-400:]
    return out, ""


def put_go(
    binary: Path, urls: list[str], clients: int, requests: int, size: int, keyspace: int
) -> PutFigures:
    """`bench/etcd_load`'s figures: `requests` puts by `clients` clients to the leader."""
    argv = [str(binary), "-endpoints", ",".join(urls), "-clients", str(clients)]
    argv += ["-n", str(requests), "-d", str(size), "-r", str(keyspace), "-target", "leader"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=LOAD_TIMEOUT, check=True)
    r = json.loads(out.stdout)
    return PutFigures(r["rps"], r["p50_ms"], r["p99_ms"], int(r["errors"]))


def put_python(
    urls: list[str], clients: int, requests: int, size: int, keyspace: int
) -> PutFigures:
    """The fallback load: `clients` keep-alive HTTP/1.1 connections to the leader's
    gateway, `requests` puts in all."""
    host, port = leader_url(urls).removeprefix("http://").rsplit(":", 1)
    value = base64.b64encode(b"v" * size).decode()
    latencies: list[float] = []
    counter = iter(range(requests))

    async def client(seed: int) -> None:
        rng = random.Random(seed)
        reader, writer = await asyncio.open_connection(host, int(port))
        for _ in counter:
            key = base64.b64encode(b"key:%012d" % rng.randrange(keyspace)).decode()
            body = json.dumps({"key": key, "value": value}).encode()
            head = f"POST /v3/kv/put HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
            start = time.perf_counter()
            writer.write(head.encode() + b"Content-Type: application/json\r\n\r\n" + body)
            headers = await reader.readuntil(b"\r\n\r\n")
            length = int(headers.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
        writer.close()

    async def run() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        return time.perf_counter() - start

    elapsed = asyncio.run(run())
    latencies.sort()
    return PutFigures(
        rps=len(latencies) / elapsed,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
    )


def percentile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank `q` percentile of `sorted_values` (as `bench/etcd_load` computes it)."""
    i = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[i]
