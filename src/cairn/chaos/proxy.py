"""Per-peer TCP proxies: the runner's hand on every byte two nodes exchange.

Theory of operation. Each node reaches each peer through its own proxy: node a's config
names, as the address of peer b, a proxy that forwards to b's real peer port. The node
with the smaller id dials (see `cairn.runtime.transport`) and one connection carries both
directions, so a proxy knows, for every byte, which node sent it. Every direction a -> b
has a `Link` whose rule the runner changes while the run goes on:

- `delay` (+ `jitter`): each chunk read is held until it is that old before it is sent;
- `loss`: TCP never loses bytes, it retransmits; a lost packet shows as a chunk held for a
  retransmission timeout (`RTO`), so a "lost" chunk is delayed by that much;
- `blocked`: nothing is read or sent (a partition, or a stall when brief); the kernel's
  buffers fill and the sender's writes back up, exactly what a silent network does to
  TCP. A connection accepted while its link is blocked waits before dialling onwards, as
  a SYN would be retransmitted. When the block lifts, what was held flows again.
- `cut()` resets every connection of a pair at once (RST), as a crashed middlebox would.

Threads, not asyncio: a handful of links, and blocking sockets make each pump obvious.
A `thread_init` (entering a network namespace) runs before any socket is created, so in
namespace mode the proxies live, and dial out, inside the node's own namespace.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

RTO = 0.2
"""Linux's minimum TCP retransmission timeout, the delay a lost segment costs."""

_POLL = 0.01
_CHUNK = 65536


@dataclass
class Link:
    """The rule for bytes going one way between two nodes; mutated by the runner."""

    delay: float = 0.0
    jitter: float = 0.0
    loss: float = 0.0
    blocked: bool = False

    def hold_for(self, rng: random.Random) -> float:
        """How long a chunk read now waits before it is sent."""
        hold = self.delay + (rng.uniform(0, self.jitter) if self.jitter else 0.0)
        if self.loss and rng.random() < self.loss:
            hold += RTO
        return hold

    def clear(self) -> None:
        """Back to a perfect link."""
        self.delay = self.jitter = self.loss = 0.0
        self.blocked = False


@dataclass
class Proxy:
    """Listens for node `src`'s connections to node `dst` and forwards them to `upstream`."""

    src: int
    dst: int
    upstream: tuple[str, int]
    forward: Link
    backward: Link
    listen_host: str = "127.0.0.1"
    thread_init: Callable[[], None] | None = None
    port: int = 0
    _listener: socket.socket | None = None
    _conns: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: threading.Event = field(default_factory=threading.Event)
    _rng: random.Random = field(default_factory=random.Random)

    def start(self) -> None:
        """Bind (in the right namespace) and start accepting; `port` is then known."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                if self.thread_init is not None:
                    self.thread_init()
                self._bind()
            except BaseException as exc:  # reported to the caller below
                errors.append(exc)
                ready.set()
                return
            ready.set()
            self._accept_loop()

        threading.Thread(target=run, daemon=True, name=f"proxy-{self.src}-{self.dst}").start()
        ready.wait(10)
        if errors:
            raise errors[0]

    def _bind(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.listen_host, self.port))
        listener.listen(16)
        listener.settimeout(0.2)
        self._listener = listener
        self.port = listener.getsockname()[1]

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._connect(conn)

    def _connect(self, conn: socket.socket) -> None:
        """Dial onwards once the link allows it; pump both ways on two threads."""
        while self.forward.blocked and not self._closed.is_set():
            time.sleep(_POLL)
        try:
            up = socket.create_connection(self.upstream, timeout=2)
        except OSError:
            _reset(conn)
            return
        for s in (conn, up):
            s.settimeout(0.2)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._conns += [conn, up]
        pair = (conn, up)
        threading.Thread(
            target=self._pump, args=(conn, up, self.forward, pair), daemon=True
        ).start()
        threading.Thread(
            target=self._pump, args=(up, conn, self.backward, pair), daemon=True
        ).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, link: Link, pair: tuple[socket.socket, ...]
    ) -> None:
        try:
            while not self._closed.is_set():
                if link.blocked:
                    time.sleep(_POLL)
                    continue
                try:
                    data = src.recv(_CHUNK)
                except TimeoutError:
                    continue
                if not data:
                    break
                self._hold(link, time.monotonic() + link.hold_for(self._rng))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in pair:
                _reset(s)
            with self._lock:
                self._conns = [c for c in self._conns if c not in pair]

    def _hold(self, link: Link, until: float) -> None:
        while (link.blocked or time.monotonic() < until) and not self._closed.is_set():
            time.sleep(min(_POLL, max(0.0, until - time.monotonic())) or _POLL)

    def cut(self) -> None:
        """Reset every connection through this proxy."""
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            _reset(s)

    def close(self) -> None:
        """Stop accepting and reset everything."""
        self._closed.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        self.cut()


def _reset(s: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer sees a reset, not an orderly end."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        s.close()


@dataclass
class ProxyMesh:
    """One proxy per ordered pair of nodes, and one `Link` per direction."""

    links: dict[tuple[int, int], Link] = field(default_factory=dict)
    proxies: dict[tuple[int, int], Proxy] = field(default_factory=dict)

    def link(self, a: int, b: int) -> Link:
        """The rule for bytes from node a to node b."""
        return self.links.setdefault((a, b), Link())

    def add(
        self,
        src: int,
        dst: int,
        upstream: tuple[str, int],
        listen_host: str = "127.0.0.1",
        thread_init: Callable[[], None] | None = None,
    ) -> Proxy:
        """Start the proxy node `src` uses to reach node `dst` at `upstream`."""
        proxy = Proxy(
            src,
            dst,
            upstream,
            self.link(src, dst),
            self.link(dst, src),
            listen_host=listen_host,
            thread_init=thread_init,
        )
        proxy.start()
        self.proxies[(src, dst)] = proxy
        return proxy

    def cut(self, a: int, b: int) -> None:
        """Reset the connections between a and b (whichever of them dialled)."""
        for key in ((a, b), (b, a)):
            proxy = self.proxies.get(key)
            if proxy is not None:
                proxy.cut()

    def clear(self) -> None:
        """Every link back to perfect."""
        for link in self.links.values():
            link.clear()

    def close(self) -> None:
        """Close every proxy."""
        for proxy in self.proxies.values():
            proxy.close()
        self.proxies.clear()
