"""One Cairn node in this process, driven by simulated clients: CPU per command, a profile,
the garbage collector's pauses and the event loop's stalls.

A single-voter node (its writes commit without a network, but with LMDB and the fsync)
runs on uvloop; `--clients` simulated clients each send one command, wait for its reply
and send the next, as `redis-benchmark -c N` does, straight into
`ClientConnection.data_received` (no sockets). What is left is the Python a command costs
on a leader: parsing, routing, Raft, the apply, the reply. Runs are quick (seconds) and
steady enough to compare code versions on a noisy machine; take the best of a few.

    python bench/node_inproc.py get                      # us of CPU per GET
    python bench/node_inproc.py set --profile tottime    # cProfile, top functions
    python bench/node_inproc.py set --watch              # stacks of loop stalls > 15 ms
    python bench/node_inproc.py set --clients 1          # per-round fixed costs
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import gc
import pstats
import random
import sys
import tempfile
import threading
import time
import traceback
from typing import Any

import uvloop

from cairn.runtime.config import from_mapping
from cairn.runtime.node import Node
from cairn.runtime.server import ClientConnection

KEYS = 10_000
STALL_S = 0.015


class Clients:
    """`count` clients in a closed loop: each reply sends that client's next command."""

    def __init__(self, loop: asyncio.AbstractEventLoop, requests: list[bytes], total: int):
        self.loop = loop
        self.requests = requests
        self.total = total
        self.sent = 0
        self.answered = 0
        self.finished: asyncio.Future[None] = loop.create_future()

    def start(self, node: Node, count: int) -> None:
        for _ in range(count):
            conn = ClientConnection(node.server)
            conn.connection_made(_Transport(self, conn))  # type: ignore[arg-type]
            self.send(conn)

    def send(self, conn: ClientConnection) -> None:
        self.sent += 1
        conn.data_received(random.choice(self.requests))

    def on_reply(self, conn: ClientConnection) -> None:
        self.answered += 1
        if self.sent < self.total:
            self.loop.call_soon(self.send, conn)
        elif self.answered >= self.total and not self.finished.done():
            self.finished.set_result(None)


class _Transport:
    """The little of `asyncio.Transport` a `ClientConnection` uses; replies are counted."""

    def __init__(self, clients: Clients, conn: ClientConnection) -> None:
        self.clients = clients
        self.conn = conn

    def write(self, data: bytes) -> None:
        self.clients.on_reply(self.conn)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 0)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


def command(kind: str, key: bytes, value: bytes) -> bytes:
    """The RESP bytes of GET `key` or SET `key` `value`."""
    if kind == "get":
        return b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key)
    return b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value)


class StallWatch:
    """A thread that records the loop's stack whenever the loop has not run a turn for
    `STALL_S` (a blocking call, a long collection, a big transaction)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.beat = time.perf_counter()
        self.stalls: collections.Counter[str] = collections.Counter()
        self.running = True
        self.main = threading.get_ident()
        loop.call_soon(self._tick)
        threading.Thread(target=self._watch, daemon=True).start()

    def _tick(self) -> None:
        self.beat = time.perf_counter()
        if self.running:
            self.loop.call_later(0.002, self._tick)

    def _watch(self) -> None:
        while self.running:
            time.sleep(0.003)
            if time.perf_counter() - self.beat > STALL_S:
                frame = sys._current_frames().get(self.main)
                stack = traceback.extract_stack(frame)[-9:]
                self.stalls[" <- ".join(f"{f.name}:{f.lineno}" for f in reversed(stack))] += 1


async def run(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory(prefix="cairn-inproc-") as data_dir:
        config = from_mapping(
            {
                "node_id": 1,
                "data_dir": data_dir,
                "client_addr": "127.0.0.1:0",
                "peer_addr": "127.0.0.1:0",
                "admin_addr": "off",
                "peers": {"1": "127.0.0.1:0"},
                "insecure_peer_port": True,  # one node, a benchmark: no peers to trust
            }
        )
        node = Node(config)
        await node.start()
        try:
            while not node.host.peers or not all(
                p.replica.is_leader for p in node.host.peers.values()
            ):
                await asyncio.sleep(0.05)
            keys = [b"key:%012d" % i for i in range(KEYS)]
            value = b"v" * args.value_size
            if args.kind == "get":  # something to read
                filler = Clients(loop, [command("set", k, value) for k in keys], KEYS)
                filler.start(node, 50)
                await filler.finished
            gc.collect()
            if args.freeze:
                gc.freeze()
            pauses = _gc_pauses()
            watch = StallWatch(loop) if args.watch else None
            profile = cProfile.Profile() if args.profile else None
            clients = Clients(loop, [command(args.kind, k, value) for k in keys], args.n)
            wall, cpu = time.perf_counter(), time.process_time()
            if profile is not None:
                profile.enable()
            clients.start(node, args.clients)
            await clients.finished
            if profile is not None:
                profile.disable()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            await node.stop()
    n = clients.answered
    print(f"{args.kind}: {cpu / n * 1e6:.1f} us CPU per command ({wall / n * 1e6:.1f} wall), "
          f"{n} commands, {args.clients} clients, {node.host.drains} drains")
    for generation, times in sorted(pauses.items()):
        if times:
            print(f"gc generation {generation}: {len(times)} collections, "
                  f"{sum(times) * 1e3:.1f} ms in all, longest {max(times) * 1e3:.2f} ms")
    if watch is not None:
        watch.running = False
        for stack, count in watch.stalls.most_common(10):
            print(f"stall x{count}: {stack}")
    if profile is not None:
        stats = pstats.Stats(profile).sort_stats(args.profile)
        stats.print_stats(args.top)
        if args.callers:
            stats.print_callers(args.callers)


def _gc_pauses() -> dict[int, list[float]]:
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses[info["generation"]].append(time.perf_counter() - started[0])

    gc.callbacks.append(callback)
    return pauses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("get", "set"))
    parser.add_argument("-n", type=int, default=50_000, help="commands to run")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--profile", metavar="SORT", help="cProfile, sorted by SORT")
    parser.add_argument("--callers", metavar="REGEX", help="with --profile: who calls these")
    parser.add_argument("--top", type=int, default=40, help="profile lines to print")
    parser.add_argument("--watch", action="store_true", help="report loop stalls")
    parser.add_argument(
        "--freeze", action="store_true", help="gc.freeze() first, as `cairn server` does"
    )
    args = parser.parse_args()
    if args.clients < 1 or args.n < 1:
        parser.error("-n and --clients must be at least 1")
    uvloop.run(run(args))


if __name__ == "__main__":
    main()
