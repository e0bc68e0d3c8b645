"""Cairn's streams and pub/sub against redis-server (appendfsync always), in one run.

    python bench/streams.py            # every measurement, about three minutes
    python bench/streams.py --quick    # 1/10 of the work

What it does, on 127.0.0.1 with free ports and temporary data directories:

1. starts a 3-node Cairn cluster (production timing) and one `redis-server --appendonly yes
   --appendfsync always`;
2. SET and XADD (one stream, `XADD bench:stream * field <100 bytes>`) with redis-benchmark,
   50 clients, against Cairn's leader and against redis-server, back to back: issue 13 asks
   XADD to reach 0.8 x Cairn's own SET rate;
3. XREADGROUP + XACK: a stream of N entries, one group, 4 consumers (asyncio, one
   connection each) reading `COUNT 10` with `>` and acknowledging each batch until the
   stream is consumed; entries per second;
4. PUBLISH to 100 subscribers (raw sockets, hiredis parser) spread over Cairn's 3 nodes
   (all on the one redis-server), a publisher on the leader's node sending messages at a fixed rate,
   each carrying its send time; the delivery latency p50 and p99 over every delivery;
5. rewrites the generated section of `docs/benchmarks.md` between its markers.

Everything it started is stopped by PID at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import hiredis
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (
    HOST,
    Figures,
    Processes,
    console,
    ensure_tools,
    machine,
    redis_benchmark,
    start_cairn,
    start_redis,
    versions,
    write_doc,
)

BEGIN, END = "<!-- streams.py:begin -->", "<!-- streams.py:end -->"
CLIENTS = 50
WRITES = 40_000
GROUP_ENTRIES = 20_000
CONSUMERS = 4
BATCH = 10
SUBSCRIBERS = 100
PUBLISH_RATE = 200
"""Messages per second the publisher sends (each reaches every subscriber)."""
PUBLISH_SECONDS = 5.0
QUICK_DIVISOR = 10
FIELD_VALUE = b"v" * 100


@dataclass(frozen=True, slots=True)
class Target:
    """One system under test: where its clients connect."""

    name: str
    ports: tuple[int, ...]
    """Every node's client port; the first is where writes go."""
    password: str | None = None


@dataclass(slots=True)
class Results:
    """One system's figures."""

    set: Figures
    xadd: Figures
    group_rate: float
    """Entries per second read with XREADGROUP and acknowledged with XACK."""
    publish_p50_ms: float
    publish_p99_ms: float
    deliveries: int
    expected_deliveries: int


def writes(target: Target, divisor: int) -> tuple[Figures, Figures]:
    """SET and XADD with redis-benchmark, 50 clients."""
    n = str(max(1000, WRITES // divisor))
    auth = ["-a", target.password] if target.password else []
    port = target.ports[0]
    base = [*auth, "-n", n, "-c", str(CLIENTS), "--csv"]
    set_figures = redis_benchmark(port, [*base, "-t", "set", "-d", "100", "-r", "100000"])
    xadd = [*base, "XADD", "bench:stream", "*", "field", FIELD_VALUE.decode()]
    return set_figures, redis_benchmark(port, xadd)


async def group_throughput(target: Target, entries: int) -> float:
    """Entries per second a 4-consumer group reads and acknowledges."""
    port = target.ports[0]
    admin = aioredis.Redis(host=HOST, port=port, password=target.password)
    key = "bench:group"
    await admin.delete(key)
    for start in range(0, entries, 1000):
        pipe = admin.pipeline(transaction=False)
        for _ in range(min(1000, entries - start)):
            pipe.xadd(key, {"field": FIELD_VALUE})
        await pipe.execute()
    await admin.xgroup_create(key, "g", id="0")
    consumers = [
        aioredis.Redis(host=HOST, port=port, password=target.password) for _ in range(CONSUMERS)
    ]
    started = time.perf_counter()
    counts = await asyncio.gather(*(_consume(c, key, f"c{i}") for i, c in enumerate(consumers)))
    elapsed = time.perf_counter() - started
    for c in consumers:
        await c.aclose()
    pending = await admin.xpending(key, "g")
    await admin.aclose()
    if sum(counts) != entries or pending["pending"] != 0:
        raise RuntimeError(f"group read {sum(counts)} of {entries}, {pending['pending']} pending")
    return entries / elapsed


async def _consume(r: aioredis.Redis, key: str, name: str) -> int:
    """Read and acknowledge until the group has nothing new; how many entries."""
    done = 0
    while True:
        reply = await r.xreadgroup("g", name, {key: ">"}, count=BATCH)
        if not reply:
            return done
        ids = [entry_id for entry_id, _ in reply[0][1]]
        if not ids:
            return done
        await r.xack(key, "g", *ids)
        done += len(ids)


class _Subscriber(asyncio.Protocol):
    """A raw subscriber connection: parses pushes with hiredis, keeps each latency."""

    def __init__(self, latencies: list[float], ready: asyncio.Future[None]) -> None:
        self.reader = hiredis.Reader()
        self.latencies = latencies
        self.ready = ready

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        self.reader.feed(data)
        while (item := self.reader.gets()) is not False:
            if isinstance(item, list) and item[0] == b"message":
                self.latencies.append((now - int(item[2])) / 1e6)
            elif isinstance(item, list) and item[0] == b"subscribe" and not self.ready.done():
                self.ready.set_result(None)


async def publish_latency(target: Target, seconds: float) -> tuple[list[float], int]:
    """Delivery latencies (ms) of PUBLISHes to `SUBSCRIBERS` subscribers, spread round
    robin over the target's nodes; also how many deliveries were expected."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    transports = []
    for i in range(SUBSCRIBERS):
        port = target.ports[i % len(target.ports)]
        ready: asyncio.Future[None] = loop.create_future()
        transport, _ = await loop.create_connection(
            lambda ready=ready: _Subscriber(latencies, ready), HOST, port
        )
        if target.password:
            transport.write(_command(b"AUTH", target.password.encode()))
        transport.write(_command(b"SUBSCRIBE", b"bench:channel"))
        await asyncio.wait_for(ready, 10)
        transports.append(transport)
    publisher = aioredis.Redis(host=HOST, port=target.ports[0], password=target.password)
    await _wait_subscribed(target)
    messages = int(seconds * PUBLISH_RATE)
    started = time.perf_counter()
    for n in range(messages):
        await publisher.publish("bench:channel", str(time.perf_counter_ns()))
        pause = started + (n + 1) / PUBLISH_RATE - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
    await asyncio.sleep(1.0)  # the last deliveries
    await publisher.aclose()
    for transport in transports:
        transport.close()
    return latencies, messages * SUBSCRIBERS


async def _wait_subscribed(target: Target) -> None:
    """Until every node reports its share of the subscribers."""
    for i, port in enumerate(target.ports):
        want = len(range(i, SUBSCRIBERS, len(target.ports)))
        r = aioredis.Redis(host=HOST, port=port, password=target.password)
        deadline = time.monotonic() + 10
        while (await r.pubsub_numsub("bench:channel"))[0][1] != want:
            if time.monotonic() > deadline:
                raise RuntimeError(f"port {port}: subscribers missing")
            await asyncio.sleep(0.05)
        await r.aclose()


def _command(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(target: Target, divisor: int) -> Results:
    """Every measurement on one system."""
    console.print(f"  {target.name}: SET and XADD ...")
    set_figures, xadd = writes(target, divisor)
    console.print(f"  {target.name}: XREADGROUP + XACK ...")
    group_rate = asyncio.run(group_throughput(target, max(1000, GROUP_ENTRIES // divisor)))
    console.print(f"  {target.name}: PUBLISH to {SUBSCRIBERS} subscribers ...")
    seconds = max(1.0, PUBLISH_SECONDS / divisor)
    latencies, expected = asyncio.run(publish_latency(target, seconds))
    return Results(
        set_figures,
        xadd,
        group_rate,
        statistics.median(latencies) if latencies else float("nan"),
        _percentile(latencies, 0.99) if latencies else float("nan"),
        len(latencies),
        expected,
    )


def markdown(cairn: Results, theirs: Results, argv: list[str], started: str, load: str) -> str:
    """The generated section of docs/benchmarks.md."""
    rows = [
        ("SET, 50 clients (ops/s)", cairn.set.rps, theirs.set.rps),
        ("XADD, 50 clients (ops/s)", cairn.xadd.rps, theirs.xadd.rps),
        ("XREADGROUP + XACK, 4 consumers (entries/s)", cairn.group_rate, theirs.group_rate),
    ]
    lines = [
        BEGIN,
        "",
        f"### Streams and pub/sub, `python bench/streams.py {' '.join(argv)}`".rstrip()
        + f" ({started})",
        "",
        f"{machine()}; {versions()}. `uptime` before the run: {load}. 3 Cairn nodes, one",
        "region; redis-server with `appendfsync always`.",
        "",
        "| test | Cairn | Redis | Cairn/Redis |",
        "|---|--:|--:|--:|",
    ]
    for name, ours, redis_rate in rows:
        lines.append(f"| {name} | {ours:,.0f} | {redis_rate:,.0f} | {ours / redis_rate:.2f} |")
    lines += [
        f"| XADD p99 ms (SET p99 ms) | {cairn.xadd.p99_ms:.1f} ({cairn.set.p99_ms:.1f}) | "
        f"{theirs.xadd.p99_ms:.1f} ({theirs.set.p99_ms:.1f}) | |",
        f"| PUBLISH to {SUBSCRIBERS} subscribers, delivery p50 ms | {cairn.publish_p50_ms:.2f} | "
        f"{theirs.publish_p50_ms:.2f} | |",
        f"| PUBLISH to {SUBSCRIBERS} subscribers, delivery p99 ms | {cairn.publish_p99_ms:.2f} | "
        f"{theirs.publish_p99_ms:.2f} | |",
        f"| deliveries received / sent | {cairn.deliveries:,} / {cairn.expected_deliveries:,} | "
        f"{theirs.deliveries:,} / {theirs.expected_deliveries:,} | |",
        "",
        f"XADD / Cairn's SET: **{cairn.xadd.rps / cairn.set.rps:.2f}** (issue 13 asks >= 0.8).",
        f"Cairn's subscribers: {SUBSCRIBERS} spread over its 3 nodes, the publisher on the "
        f"leader's node, {PUBLISH_RATE} messages/s.",
        "",
        END,
    ]
    return "\n".join(lines)


def main() -> None:
    """Parse the options, run, print and record."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"1/{QUICK_DIVISOR} of the work")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args()
    ensure_tools(no_etcd=True)
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    divisor = QUICK_DIVISOR if args.quick else 1
    procs = Processes()
    cluster = None
    try:
        with tempfile.TemporaryDirectory(prefix="cairn-streams-") as tmp_name:
            tmp = Path(tmp_name)
            console.print("starting redis-server and a 3-node Cairn cluster ...")
            redis_port = start_redis(procs, tmp)
            cluster, leader = start_cairn(tmp)
            order = [leader, *sorted(n for n in cluster.procs if n != leader)]
            ports = tuple(cluster.spec(n).client_port for n in order)
            cairn = measure(Target("Cairn", ports, cluster.password), divisor)
            theirs = measure(Target("Redis", (redis_port,)), divisor)
            section = markdown(cairn, theirs, sys.argv[1:], started, load)
            console.print(section)
            if not args.no_doc:
                write_doc(section, BEGIN, END)
    finally:
        if cluster is not None:
            cluster.stop()
        procs.stop_all()


if __name__ == "__main__":
    main()
