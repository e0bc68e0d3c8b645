"""Limits on what client connections may hold, enforced for the whole client port.

Theory of operation. `RespServer` owns one `ClientLimiter`; the connection code calls it
at four points and it decides, the server carries out:

- `admit` when a connection is accepted: Redis's protected mode
  (`cairn.runtime.protected_mode`), then a cap on the *unauthenticated* connections one
  source address may hold (`limits.max_unauthenticated_per_source`), so a host that
  opens connections and never authenticates cannot take every `maxclients` slot (it
  only holds its own few, each for at most `limits.auth_timeout_ms`);
- `refuse_command` before a command runs: Redis's `maxmemory` check, answered with its
  `-OOM` error for commands flagged `denyoom` while the node's client memory is over
  `limits.max_memory_bytes` (0: no limit);
- `sweep`, a timer: closes connections that have not authenticated within
  `limits.auth_timeout_ms`, idle ones past Redis's `timeout` (`limits.idle_timeout_s`,
  0: never; subscribers and clients waiting for a reply are exempt, as in Redis), and
  normal clients whose unsent replies stayed over the soft output limit too long;
- `forwarded_reply_fits` on a region leader, before a reply to a command a follower
  forwarded is queued for that follower (`cairn.runtime.node`).

Client memory is counted in one place, `client_memory`: the bytes the request parser
holds (unparsed input, half-read arguments, commands parsed ahead) plus the replies not
yet written (finished replies waiting for an earlier one, queued pushes, and the socket's
write buffer). It bounds what clients make a node hold, not the dataset, which lives
in LMDB on disk.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from cairn.resp.reply import ErrorReply
from cairn.runtime.protected_mode import DENIED, refuses
from cairn.store.commands.spec import Flag
from cairn.store.commands.table import COMMANDS

if TYPE_CHECKING:
    from cairn.runtime.server import ClientConnection, ClientState, RespServer

log = logging.getLogger("cairn.server")

OOM = ErrorReply("OOM command not allowed when used memory > 'maxmemory'.")
"""Redis 7.0's reply to a `denyoom` command once `maxmemory` is reached."""
TOO_MANY_UNAUTHENTICATED = (
    b"-ERR max number of unauthenticated clients from this address reached\r\n"
)
OUTPUT_LIMIT_CLOSE = ErrorReply("ERR client output buffer limit reached: closing the client")
"""Completing a command with this very object closes the client without a reply, as
Redis closes a client over `client-output-buffer-limit` (a leader's verdict on a
forwarded reply that would not fit)."""
MEMORY_CACHE_S = 0.05
"""How long a computed client-memory total is reused: summing every client per command
would cost as much as the command."""
_DENYOOM = frozenset(name.encode() for name, spec in COMMANDS.items() if Flag.DENYOOM in spec.flags)


def _host(addr: str) -> str:
    """The host of a client's `host:port` address."""
    return addr.rpartition(":")[0]


def client_memory(conn: ClientConnection) -> int:
    """Bytes one client makes the node hold: its parser's buffer and unsent replies."""
    return conn.parser.buffered + conn.reply_backlog()


def forwarded_reply_fits(backlog: int, size: int, limit: int) -> bool:
    """Whether a forwarded reply of `size` bytes may be queued for a follower whose link
    already holds `backlog` unsent bytes, under the normal class's hard limit `limit`.
    A reply that does not fit closes the follower's client instead (Redis closes a
    client over its output limit), so a leader never holds more than about `limit`
    bytes of replies for one follower, however many reads the follower's clients
    pipeline."""
    return backlog + size <= limit


class ClientLimiter:
    """Admission, idle and authentication timeouts, soft output limits, and maxmemory
    for one `RespServer` (see the module doc)."""

    def __init__(self, server: RespServer) -> None:
        self.server = server
        self.unauthenticated: Counter[str] = Counter()
        """Unauthenticated connections by source host."""
        self.pending_auth: dict[int, float] = {}
        """Unauthenticated clients by id: since when (monotonic seconds)."""
        self.is_subscriber: Callable[[int], bool] = lambda client_id: False
        """Whether a client is subscribed (set by pub/sub): `timeout` spares it."""
        self._memory = 0
        self._memory_at = -1.0
        self._over_soft: dict[int, float] = {}
        self._idle_seen: dict[int, float] = {}
        """Clients found past `timeout` by the last sweep: their `last_active` then."""
        self._timer: asyncio.TimerHandle | None = None
        self.stats = {"client_timeouts": 0, "auth_timeouts": 0, "oom_refusals": 0}

    # -- accepting ----------------------------------------------------------------------

    def admit(self, host: str, authenticated: bool) -> bytes | None:
        """The line to send before closing a new connection from `host`, or None to
        serve it."""
        server = self.server
        if refuses(server.protected_mode, server.password, host):
            return DENIED
        if not authenticated:
            if self.unauthenticated[host] >= server.limits.max_unauthenticated_per_source:
                return TOO_MANY_UNAUTHENTICATED
            self.unauthenticated[host] += 1
        return None

    def authentication_changed(
        self, state: ClientState, authenticated: bool, counted: bool = False
    ) -> None:
        """A client authenticated (it leaves the cap and the auth timeout), or became
        unauthenticated (new, or RESET): it counts again, and its auth timeout starts
        now. `counted`: `admit` already counted it."""
        host = _host(state.addr)
        if authenticated:
            self._release(host)
            self.pending_auth.pop(state.id, None)
            return
        if not counted:
            self.unauthenticated[host] += 1
        self.pending_auth[state.id] = time.monotonic()

    def gone(self, state: ClientState) -> None:
        """A connection went away."""
        if not state.authenticated:
            self._release(_host(state.addr))
        self.pending_auth.pop(state.id, None)
        self._over_soft.pop(state.id, None)

    def _release(self, host: str) -> None:
        left = self.unauthenticated[host] - 1
        if left > 0:
            self.unauthenticated[host] = left
        else:
            self.unauthenticated.pop(host, None)

    # -- maxmemory ----------------------------------------------------------------------

    def used_memory(self, now: float | None = None) -> int:
        """The node's client memory (module doc), recomputed at most every
        `MEMORY_CACHE_S` seconds."""
        now = time.monotonic() if now is None else now
        if now - self._memory_at >= MEMORY_CACHE_S:
            self._memory = sum(client_memory(conn) for conn, _ in self.server.clients.values())
            self._memory_at = now
        return self._memory

    def refuse_command(self, args: list[bytes]) -> ErrorReply | None:
        """Redis's OOM error for a command that would add memory while the node's
        client memory is over `maxmemory`; None to run it."""
        limit = self.server.limits.max_memory_bytes
        if not limit or args[0].lower() not in _DENYOOM:
            return None
        if self.used_memory() <= limit:
            return None
        self.stats["oom_refusals"] += 1
        return OOM

    # -- the sweep ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the sweep is scheduled."""
        return self._timer is not None

    def start(self) -> None:
        """Run `sweep` periodically until `stop`."""
        self._schedule()

    def stop(self) -> None:
        """Stop the sweep."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self._interval(), self._tick)

    def _interval(self) -> float:
        """A quarter of the shortest timeout: an idle client is closed by its second
        sweep, within about half a timeout past it."""
        limits = self.server.limits
        shortest = limits.auth_timeout_ms / 1000
        if limits.idle_timeout_s:
            shortest = min(shortest, limits.idle_timeout_s)
        return min(max(shortest / 4, 0.02), 0.5)

    def _tick(self) -> None:
        try:
            self.sweep(time.monotonic())
        finally:
            if self._timer is not None:
                self._schedule()

    def sweep(self, now: float) -> None:
        """Close the connections past a timeout or the normal soft output limit."""
        server, limits = self.server, self.server.limits
        auth_s = limits.auth_timeout_ms / 1000
        for client_id, since in list(self.pending_auth.items()):
            entry = server.clients.get(client_id)
            if entry is not None and now - since > auth_s:
                del self.pending_auth[client_id]
                self.stats["auth_timeouts"] += 1
                log.info("closing client %s: not authenticated within %g s", entry[1].addr, auth_s)
                entry[0].abort()
        idle_s, soft = limits.idle_timeout_s, limits.normal_output_soft_limit_bytes
        if not (idle_s or soft):
            return
        idle_seen, self._idle_seen = self._idle_seen, {}
        for conn, state in list(server.clients.values()):
            if state.closing:
                continue
            if idle_s and now - state.last_active > idle_s and self._may_idle_out(conn):
                # Closed at the second sweep that finds it idle: the loop has polled its
                # socket in between. After a stall, uvloop runs due timers before it reads
                # the sockets, so a command sent in time would otherwise be cut off unread.
                if idle_seen.get(state.id) != state.last_active:
                    self._idle_seen[state.id] = state.last_active
                    continue
                self.stats["client_timeouts"] += 1
                conn.abort()
            elif soft and self._over_soft_too_long(conn, state.id, now):
                log.warning("closing client %s: over the soft output buffer limit", state.addr)
                conn.abort()

    def _may_idle_out(self, conn: ClientConnection) -> bool:
        """Redis's `timeout` spares subscribers and clients waiting for a reply."""
        state = conn.state
        return state is not None and not conn.waiting() and not self.is_subscriber(state.id)

    def _over_soft_too_long(self, conn: ClientConnection, client_id: int, now: float) -> bool:
        limits = self.server.limits
        if (
            conn.output_backlog() <= limits.normal_output_soft_limit_bytes
            or self.is_subscriber(client_id)  # the pubsub class has its own limits
        ):
            self._over_soft.pop(client_id, None)
            return False
        since = self._over_soft.setdefault(client_id, now)
        return now - since >= limits.normal_output_soft_limit_seconds
