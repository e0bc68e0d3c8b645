"""The Redis-protocol front end: one asyncio `Protocol` per client connection.

Theory of operation (uvicorn's shape). Bytes from `data_received` go into the sans-I/O
`RequestParser`; each complete command gets a reply slot in arrival order and is handed
to the `CommandRouter`, which completes the slot at once (PING) or later (a write waiting
for Raft). Replies leave strictly in command order: a finished slot is written only when
every slot before it is finished. Backpressure: when a client has `max_pipeline` commands
outstanding, or the socket's write buffer is over its high-water mark (the transport
calls `pause_writing`), the connection stops reading until both drain; commands already
buffered are parsed when reading resumes. A protocol error gets `-ERR Protocol error: ...`
and closes that connection only.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

from cairn.resp.codec import NEED_DATA, RemoteProtocolError, RequestParser, encode
from cairn.resp.codec import Limits as ParserLimits
from cairn.resp.reply import Reply
from cairn.runtime.client_introspection import reply_silenced
from cairn.runtime.client_limits import OUTPUT_LIMIT_CLOSE, ClientLimiter
from cairn.runtime.config import Limits
from cairn.runtime.ordering import ProgramOrder
from cairn.runtime.protected_mode import start_warning
from cairn.runtime.transactions import TransactionState
from cairn.shard.routing import ClientRouting

log = logging.getLogger("cairn.server")

ReplyValue = Reply | bytes
"""A typed reply, or one already encoded (e.g. relayed from the leader)."""
Done = Callable[[ReplyValue], None]


@dataclass(slots=True)
class ClientState:
    """What the server knows about one client (CLIENT LIST, AUTH, HELLO)."""

    id: int
    addr: str
    laddr: str
    created: float
    protocol: int = 2
    name: str = ""
    authenticated: bool = False
    user: str = "default"
    """The ACL user the connection runs as (AUTH, HELLO AUTH; `cairn.runtime.acl_commands`)."""
    last_command: str = "NULL"
    last_active: float = 0.0
    closing: bool = False
    flags: set[str] = field(default_factory=set)
    order: ProgramOrder = field(default_factory=ProgramOrder)
    routing: ClientRouting = field(default_factory=ClientRouting)
    """Whether the client follows MOVED (it asked for the layout, or sent READONLY ...)."""
    transaction: TransactionState = field(default_factory=TransactionState)
    """MULTI's queue and the WATCHed keys (`cairn.runtime.transactions`)."""
    lib_name: str = ""
    lib_ver: str = ""
    """CLIENT SETINFO's library name and version (shown by CLIENT LIST)."""


class CommandRouter(Protocol):
    """Runs one client command and completes `done` with its reply, now or later."""

    def execute(self, client: ClientConnection, args: list[bytes], done: Done) -> None:
        """Run `args` (name first) for `client`."""
        ...


class _Slot:
    __slots__ = ("data", "done", "silent", "tail")

    def __init__(self) -> None:
        self.done = False
        self.silent = False
        """CLIENT REPLY OFF or SKIP: the reply is dropped (pushes after it still go)."""
        self.data = b""
        self.tail: list[bytes] | None = None
        """Out-of-band pushes (pub/sub messages) that arrived after this command: they
        leave right after its reply."""


class ClientConnection(asyncio.Protocol):
    """One client: parse, route, and write replies in order with flow control."""

    def __init__(self, server: RespServer) -> None:
        self.server = server
        limits = server.limits
        self.parser = RequestParser(
            ParserLimits(
                max_bulk_length=limits.max_bulk_len,
                max_array_length=limits.max_multibulk_len,
                max_inline_length=limits.max_inline_len,
                max_buffer=limits.max_query_buffer,
            )
        )
        self.parser.auth_required = server.password is not None
        self.transport: asyncio.Transport | None = None
        self.state: ClientState | None = None
        self._slots: deque[_Slot] = deque()
        self._reading_paused = False
        self._writing_paused = False
        self._close_after_flush = False
        self._in_process = False
        self._flush_scheduled = False
        self._loose: list[bytes] = []
        """Pushes that arrived while no command was outstanding: they leave first."""
        self._pushed_bytes = 0
        """Bytes of pushes queued here and not yet handed to the transport."""

    # -- asyncio callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        admitted = self.server.register(self, self.transport)
        if isinstance(admitted, bytes):  # refused: the reason, then close (as Redis)
            self.transport.write(admitted)
            transport.close()
            return
        self.state = admitted

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state is not None:
            self.state.closing = True
            self.server.unregister(self.state.id)

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._update_reading()
        if not self._reading_paused:
            self._process()  # commands parsed ahead may be all the client will send

    def data_received(self, data: bytes) -> None:
        self.server.stats["total_net_input_bytes"] += len(data)
        try:
            self.parser.feed(data)
        except RemoteProtocolError as exc:
            self._protocol_error(exc)
            return
        self._process()

    # -- commands -----------------------------------------------------------------------

    def _process(self) -> None:
        state = self.state
        if state is None or self._close_after_flush:
            return
        self._in_process = True  # replies completed meanwhile go out in one write, below
        try:
            while len(self._slots) < self.server.limits.max_pipeline:
                try:
                    args = self.parser.next_command()
                except RemoteProtocolError as exc:
                    self._in_process = False
                    self._protocol_error(exc)
                    return
                if args is NEED_DATA:
                    break
                assert isinstance(args, list)
                slot = _Slot()
                self._slots.append(slot)
                state.last_active = time.monotonic()
                refusal = self.server.limiter.refuse_command(args)
                if refusal is not None:  # maxmemory reached
                    self._completer(slot)(refusal)
                    continue
                self.server.router.execute(self, args, self._completer(slot))
                if state.flags:
                    slot.silent = reply_silenced(state)
                if self._close_after_flush:
                    break
        finally:
            self._in_process = False
        self._update_reading()
        if self._slots and self._slots[0].done:
            self._schedule_flush()

    def _completer(self, slot: _Slot) -> Done:
        def done(reply: ReplyValue) -> None:
            if slot.done:
                return
            if reply is OUTPUT_LIMIT_CLOSE:  # a leader refused to queue this reply
                self._close_over_output_limit()
                return
            slot.done = True
            if isinstance(reply, bytes):
                slot.data = reply
            else:
                slot.data = encode(reply, self.protocol)
            if not self._in_process:
                self._schedule_flush()

        return done

    def _schedule_flush(self) -> None:
        """Write this client's finished replies once the event loop has handled the
        input it has now (`RespServer.flush_soon`)."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.server.flush_soon(self)

    def scheduled_flush(self) -> None:
        """`RespServer`'s end-of-turn write for this client."""
        self._flush_scheduled = False
        self._flush()

    @property
    def protocol(self) -> int:
        """The RESP version this client speaks (2 until HELLO 3)."""
        return self.state.protocol if self.state is not None else 2

    def set_authenticated(self, authenticated: bool) -> None:
        """Record AUTH's outcome; unauthenticated clients get Redis' tighter input limits."""
        state = self.state
        assert state is not None
        if authenticated != state.authenticated:
            self.server.limiter.authentication_changed(state, authenticated)
        state.authenticated = authenticated
        self.parser.auth_required = not authenticated

    def close_after_reply(self) -> None:
        """Close once every reply so far is written (QUIT)."""
        self._close_after_flush = True

    def _flush(self) -> None:
        t = self.transport
        if t is None:
            return
        out, self._loose = self._loose, []
        while self._slots and self._slots[0].done:
            slot = self._slots.popleft()
            if not slot.silent:
                out.append(slot.data)
            if slot.tail is not None:
                out.extend(slot.tail)
        if self._pushed_bytes:
            self._pushed_bytes = sum(len(d) for s in self._slots if s.tail for d in s.tail)
        if out and not t.is_closing():
            payload = b"".join(out)
            self.server.stats["total_net_output_bytes"] += len(payload)
            t.write(payload)
            if t.get_write_buffer_size() > self.server.limits.max_pending_replies_bytes:
                # Redis' client-output-buffer-limit: a client that does not read its
                # replies may not make the server hold them without bound.
                log.warning("closing client %s: over the reply buffer limit", self._peer())
                t.abort()
                return
        if self._close_after_flush and not self._slots:
            t.close()
            return
        if self._reading_paused:
            self._update_reading()
            if not self._reading_paused:
                self._process()

    def push(self, data: bytes) -> None:
        """Queue an out-of-band message (a pub/sub message, already encoded): it is
        written after the replies of every command received before it, never inside or
        ahead of one, as Redis appends it to the output buffer when published."""
        t = self.transport
        if t is None or t.is_closing() or self._close_after_flush:
            return
        if self._slots:
            slot = self._slots[-1]
            if slot.tail is None:
                slot.tail = []
            slot.tail.append(data)
        else:
            self._loose.append(data)
        self._pushed_bytes += len(data)
        self._schedule_flush()

    def reply_backlog(self) -> int:
        """Bytes of replies this client makes the node hold: finished replies waiting
        for an earlier one, queued pushes and the socket's buffer."""
        return self.output_backlog() + sum(len(s.data) for s in self._slots if s.done)

    def waiting(self) -> bool:
        """Whether a command of this client has not been answered yet (blocked or in
        flight): Redis's `timeout` does not close such a client."""
        return any(not s.done for s in self._slots)

    def output_backlog(self) -> int:
        """Bytes waiting to reach this client: queued pushes plus the socket's buffer
        (what `client-output-buffer-limit` measures)."""
        t = self.transport
        return self._pushed_bytes + (0 if t is None else t.get_write_buffer_size())

    def _close_over_output_limit(self) -> None:
        """Drop the connection (once: its other forwarded commands may get the same)."""
        t = self.transport
        if t is not None and not t.is_closing():
            log.warning("closing client %s: over the output buffer limit", self._peer())
            t.abort()

    def abort(self) -> None:
        """Drop the connection now, discarding what is unsent (a slow subscriber)."""
        if self.transport is not None:
            self.transport.abort()

    def _peer(self) -> str:
        return self.state.addr if self.state is not None else "?"

    def _update_reading(self) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        should_pause = (
            self._writing_paused
            or self._close_after_flush  # a protocol error: nothing more is read (a refused bulk)
            or len(self._slots) >= self.server.limits.max_pipeline
        )
        if should_pause and not self._reading_paused:
            t.pause_reading()
            self._reading_paused = True
        elif not should_pause and self._reading_paused:
            t.resume_reading()
            self._reading_paused = False

    def _protocol_error(self, exc: RemoteProtocolError) -> None:
        """Answer (if Redis would) after pending replies, then close this connection only."""
        slot = _Slot()
        slot.done = True
        reply = exc.error_reply
        slot.data = b"" if reply is None else encode(reply, self.protocol)
        self._slots.append(slot)
        self._close_after_flush = True
        self._update_reading()  # the rest of a refused bulk stays in the client's socket
        self._flush()


class RespServer:
    """Accepts clients, enforces the client limit, and knows every connected client."""

    def __init__(
        self,
        router: CommandRouter,
        limits: Limits,
        password: str | None,
        protected_mode: bool = True,
    ) -> None:
        self.router = router
        self.limits = limits
        self.password = password
        self.protected_mode = protected_mode
        """Redis's protected mode (`cairn.runtime.protected_mode`); CONFIG SET changes it."""
        self.limiter = ClientLimiter(self)
        self.clients: dict[int, tuple[ClientConnection, ClientState]] = {}
        self._ids = itertools.count(1)
        self._to_flush: list[ClientConnection] = []
        self._server: asyncio.Server | None = None
        self._tls_server: asyncio.Server | None = None
        self.stats = {
            "total_connections_received": 0,
            "rejected_connections": 0,
            "total_net_input_bytes": 0,
            "total_net_output_bytes": 0,
            "expired_keys": 0,
        }
        self.on_disconnect: Callable[[int], None] | None = None
        """Told the id of every client that goes away (pub/sub forgets its subscriptions)."""

    async def start(self, host: str, port: int) -> None:
        """Listen for clients."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ClientConnection(self), host, port, reuse_address=True, backlog=4096
        )
        self._started(host)

    def _started(self, host: str) -> None:
        """Start the limits' sweep once, and warn about an open port with no password."""
        if self.limiter.running:
            return
        self.limiter.start()
        warning = start_warning(self.protected_mode, self.password, host)
        if warning is not None:
            log.warning("%s", warning)

    async def start_tls(
        self, host: str, port: int, context: ssl.SSLContext, handshake_timeout: float
    ) -> None:
        """Listen for TLS clients too (`cairn.runtime.tls`): the same commands, limits
        and client table; a connection counts once its handshake is done."""
        loop = asyncio.get_running_loop()
        self._tls_server = await loop.create_server(
            lambda: ClientConnection(self),
            host,
            port,
            reuse_address=True,
            backlog=4096,
            ssl=context,
            ssl_handshake_timeout=handshake_timeout,
        )
        self._started(host)

    @property
    def bound_address(self) -> tuple[str, int]:
        """The address listened on."""
        assert self._server is not None and self._server.sockets
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def stop(self) -> None:
        """Stop accepting and close every client."""
        self.limiter.stop()
        if self._tls_server is not None:
            self._tls_server.close()
        if self._server is not None:
            self._server.close()
        for conn, _ in list(self.clients.values()):
            if conn.transport is not None:
                conn.transport.close()
        if self._server is not None:
            await self._server.wait_closed()
        if self._tls_server is not None:
            await self._tls_server.wait_closed()

    def flush_soon(self, conn: ClientConnection) -> None:
        """Write `conn`'s replies after the event loop has handled every input ready now.

        Like Redis' write in `beforeSleep`: replies finished in one turn go out back to
        back, not one between each command of the next client. A client process asleep
        is woken once per turn, not once per reply (each wake-up is a costly
        inter-processor interrupt, more so in a virtual machine), and commands that a
        Ready round completes together are answered together.
        """
        if not self._to_flush:
            asyncio.get_running_loop().call_soon(self._flush_all)
        self._to_flush.append(conn)

    def _flush_all(self) -> None:
        conns, self._to_flush = self._to_flush, []
        for conn in conns:
            conn.scheduled_flush()

    def register(self, conn: ClientConnection, transport: asyncio.Transport) -> ClientState | bytes:
        """A new client's state, or the line to send it before closing (the client limit,
        protected mode, too many unauthenticated connections from its address)."""
        self.stats["total_connections_received"] += 1
        if len(self.clients) >= self.limits.max_clients:
            self.stats["rejected_connections"] += 1
            return b"-ERR max number of clients reached\r\n"
        peer = transport.get_extra_info("peername")
        authenticated = self.password is None
        refusal = self.limiter.admit(_host_of(peer), authenticated)
        if refusal is not None:
            self.stats["rejected_connections"] += 1
            return refusal
        now = time.monotonic()
        state = ClientState(
            id=next(self._ids),
            addr=_address(peer),
            laddr=_address(transport.get_extra_info("sockname")),
            created=now,
            last_active=now,
            authenticated=authenticated,
        )
        if not authenticated:
            self.limiter.authentication_changed(state, False, counted=True)
        self.clients[state.id] = (conn, state)
        return state

    def unregister(self, client_id: int) -> None:
        """Forget a disconnected client."""
        entry = self.clients.pop(client_id, None)
        if entry is not None:
            self.limiter.gone(entry[1])
        if self.on_disconnect is not None:
            self.on_disconnect(client_id)


def _host_of(name: object) -> str:
    """The host part of a socket address ("" when unknown: never local)."""
    return str(name[0]) if isinstance(name, tuple) and name else ""


def _address(name: object) -> str:
    if isinstance(name, tuple) and len(name) >= 2:
        return f"{name[0]}:{name[1]}"
    return "?"
