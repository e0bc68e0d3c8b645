"""Connection-level commands: those answered by the node a client is connected to,
without touching the replicated keyspace (PING, HELLO, AUTH, CLIENT, INFO, COMMAND ...).

Replies and error texts are Redis 7's, so existing clients behave unchanged.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cairn.resp.reply import (
    NULL,
    OK,
    PONG,
    Array,
    Bulk,
    ErrorReply,
    Integer,
    Map,
    Reply,
    SimpleString,
    Verbatim,
)
from cairn.runtime.command_info import CommandMeta, command_reply, flag_names
from cairn.runtime.command_stats import CommandRecorder, RecorderSettings
from cairn.runtime.latency import LatencyMonitor
from cairn.runtime.redis_config import HELP as CONFIG_HELP
from cairn.runtime.redis_config import NO_REWRITE, RedisConfig, reset_stats
from cairn.runtime.slowlog import SlowLog
from cairn.shard.routing import ClientRouting, observe
from cairn.store.numbers import parse_ll

if TYPE_CHECKING:
    from cairn.runtime.server import ClientConnection, ClientState, RespServer

SERVER_NAME = "cairn"
PROTOCOL_LEVEL = "7.0.0"
"""The Redis version whose protocol and replies Cairn follows (HELLO, INFO redis_version)."""

NOAUTH = ErrorReply("NOAUTH Authentication required.")
WRONGPASS = ErrorReply("WRONGPASS invalid username-password pair or user is disabled.")
SYNTAX_ERROR = ErrorReply("ERR syntax error")
NO_CLUSTER = ErrorReply("ERR This instance has cluster support disabled")
NO_PASSWORD = ErrorReply(
    "ERR AUTH <password> called without any password configured for the default user. "
    "Are you sure your configuration is correct?"
)


@dataclass(slots=True)
class ServerContext:
    """What connection commands may read: the server, the command table, INFO, time."""

    server: RespServer
    table: Mapping[str, CommandMeta]
    info: Callable[[Sequence[str]], str]
    wall_time: Callable[[], float]
    monotonic: Callable[[], float]
    role: Callable[[], str] = field(default=lambda: "master")
    cluster: Callable[[Sequence[bytes]], Reply] = field(default=lambda args: NO_CLUSTER)
    """Answers `CLUSTER <args>` from the node's view of the layout."""
    redis_config: RedisConfig = field(default_factory=RedisConfig)
    """This node's CONFIG values (`cairn.runtime.redis_config`)."""
    recorder: CommandRecorder = field(default_factory=lambda: default_recorder())
    """Command statistics, SLOWLOG and LATENCY (`cairn.runtime.command_stats`)."""
    subscriptions: Callable[[int], tuple[int, int, int]] = field(default=lambda cid: (0, 0, 0))
    """A client's (channels, patterns, shard channels) for CLIENT LIST."""


def default_recorder() -> CommandRecorder:
    """A recorder for a context without a node (tests): every name known, none fast."""
    return CommandRecorder(
        time.monotonic,
        time.time,
        known=lambda name: True,
        fast=lambda name: False,
        blocking=lambda name: False,
        slowlog=SlowLog(),
        latency=LatencyMonitor(),
    )


def follow_config(ctx: ServerContext) -> None:
    """Hand the CONFIG parameters the recorder obeys to it (at start, after CONFIG SET):
    slowlog-log-slower-than, slowlog-max-len, latency-monitor-threshold,
    latency-tracking and latency-tracking-info-percentiles."""
    values = ctx.redis_config.values
    recorder = ctx.recorder
    recorder.settings = RecorderSettings(
        slowlog_slower_than_us=int(values["slowlog-log-slower-than"]),
        latency_threshold_ms=int(values["latency-monitor-threshold"]),
        latency_tracking=values["latency-tracking"] == b"yes",
        percentiles=tuple(float(p) for p in values["latency-tracking-info-percentiles"].split()),
    )
    recorder.slowlog.max_len = int(values["slowlog-max-len"])
    recorder.slowlog.trim()


ClientHandler = Callable[[ServerContext, "ClientConnection", Sequence[bytes]], Reply]


@dataclass(frozen=True, slots=True)
class ClientCommandSpec:
    """A connection-level command: Redis metadata plus a handler.

    `no_auth` marks the commands a client may send before authenticating.
    """

    name: str
    arity: int
    flags: tuple[str, ...]
    handler: ClientHandler
    group: str
    since: str
    summary: str
    complexity: str = "O(1)"
    first_key: int = 0
    last_key: int = 0
    step: int = 0
    acl_categories: tuple[str, ...] = ("@connection",)
    tips: tuple[str, ...] = ()
    no_auth: bool = False


def _arity_error(name: str) -> ErrorReply:
    return ErrorReply(f"ERR wrong number of arguments for '{name}' command")


def ping(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """PING [message]."""
    if len(args) > 1:
        return _arity_error("ping")
    return Bulk(args[0]) if args else PONG


def echo(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """ECHO message."""
    return Bulk(args[0])


def _check_password(ctx: ServerContext, user: bytes, password: bytes) -> Reply | None:
    expected = ctx.server.password
    if expected is None:
        return NO_PASSWORD if user == b"default" else WRONGPASS
    ok = user == b"default" and hmac.compare_digest(password, expected.encode())
    return None if ok else WRONGPASS


def auth(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """AUTH [username] password (only the `default` user exists until ACLs land)."""
    if len(args) > 2:
        return SYNTAX_ERROR
    user, password = (args[0], args[1]) if len(args) == 2 else (b"default", args[0])
    error = _check_password(ctx, user, password)
    if error is not None:
        return error
    conn.set_authenticated(True)
    return OK


def hello(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """HELLO [protover [AUTH username password] [SETNAME clientname]]."""
    state = conn.state
    assert state is not None
    protocol = state.protocol
    if args:
        try:
            protocol = int(args[0])
        except ValueError:
            return ErrorReply("ERR Protocol version is not an integer or out of range")
        if protocol not in (2, 3):
            return ErrorReply("NOPROTO unsupported protocol version")
    name: bytes | None = None
    i = 1
    while i < len(args):
        option = args[i].lower()
        if option == b"auth" and i + 2 < len(args):
            error = _check_password(ctx, args[i + 1], args[i + 2])
            if error is not None:
                return error
            conn.set_authenticated(True)
            i += 3
        elif option == b"setname" and i + 1 < len(args):
            name = args[i + 1]
            if not _valid_name(name):
                return BAD_NAME
            i += 2
        else:
            option_text = args[i].decode("utf-8", "replace")
            return ErrorReply(f"ERR Syntax error in HELLO option '{option_text}'")
    if not state.authenticated:
        return ErrorReply(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
            "HELLO AUTH <user> <pass> option can be used to authenticate the client and "
            "select the RESP protocol version at the same time"
        )
    if name is not None:
        state.name = name.decode()
    state.protocol = protocol
    return Map(
        (
            (Bulk(b"server"), Bulk(SERVER_NAME.encode())),
            (Bulk(b"version"), Bulk(PROTOCOL_LEVEL.encode())),
            (Bulk(b"proto"), Integer(protocol)),
            (Bulk(b"id"), Integer(state.id)),
            (Bulk(b"mode"), Bulk(b"cluster")),
            (Bulk(b"role"), Bulk(ctx.role().encode())),
            (Bulk(b"modules"), Array(())),
        )
    )


def cluster(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """CLUSTER <subcommand>: the layout as Redis Cluster clients read it (`cairn.shard.topology`).

    Asking for the layout marks the connection cluster-aware: it may be answered MOVED."""
    _observe(conn, b"cluster", args)
    return ctx.cluster(args)


def _connection_mode(name: bytes) -> ClientHandler:
    """READONLY, READWRITE, ASKING: a cluster client's connection modes, which also mark it
    cluster-aware. ASKING is otherwise a no-op: Cairn never answers ASK
    (`cairn.shard.routing`)."""

    def handler(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
        _observe(conn, name, args)
        return OK

    return handler


def _observe(conn: ClientConnection, name: bytes, args: Sequence[bytes]) -> None:
    state = conn.state
    if state is not None:
        state.routing = observe(state.routing, [name, *args])


BAD_NAME = ErrorReply("ERR Client names cannot contain spaces, newlines or special characters.")


def _valid_name(name: bytes) -> bool:
    return all(33 <= b <= 126 for b in name)


def select(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """SELECT index: only database 0 exists (as in Redis Cluster)."""
    try:
        index = int(args[0])
    except ValueError:
        return ErrorReply("ERR value is not an integer or out of range")
    if index != 0:
        return ErrorReply("ERR DB index is out of range")
    return OK


def quit_(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """QUIT: reply OK, then close."""
    conn.close_after_reply()
    return OK


def reset(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """RESET: back to a fresh connection's state."""
    state = conn.state
    assert state is not None
    state.protocol = 2
    state.name = ""
    state.routing = ClientRouting()
    conn.set_authenticated(ctx.server.password is None)
    return SimpleString("RESET")


def time_(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """TIME: [unix seconds, microseconds] as bulk strings."""
    micros = int(ctx.wall_time() * 1_000_000)
    seconds, rest = divmod(micros, 1_000_000)
    return Array((Bulk(str(seconds).encode()), Bulk(str(rest).encode())))


def info(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """INFO [section ...]."""
    text = ctx.info([a.decode("utf-8", "replace").lower() for a in args]).encode()
    return Verbatim(text) if conn.protocol == 3 else Bulk(text)


def command(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """COMMAND [COUNT | LIST | INFO name... | DOCS name...]."""
    reply = command_reply(ctx.table, args)
    if reply is None:
        sub = args[0].decode("utf-8", "replace")
        return ErrorReply(f"ERR unknown subcommand '{sub}'. Try COMMAND HELP.")
    return reply


_CONFIG_ARITY = {b"get": -3, b"set": -4, b"resetstat": 2, b"rewrite": 2, b"help": 2}


def config(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """CONFIG GET pattern [pattern ...] | SET name value [name value ...] | RESETSTAT |
    HELP: this node's Redis parameters (`cairn.runtime.redis_config`; REWRITE refused)."""
    sub = args[0].lower()
    arity = _CONFIG_ARITY.get(sub)
    if arity is None:
        text = args[0].split(b"\0")[0][:128].decode("utf-8", "surrogateescape")
        return ErrorReply(f"ERR unknown subcommand '{text}'. Try CONFIG HELP.")
    argc = len(args) + 1
    if argc != arity if arity > 0 else argc < -arity:
        return _arity_error(f"config|{sub.decode()}")
    settings = ctx.redis_config
    if sub == b"get":
        pairs = settings.get(args[1:])
        return Map(tuple((Bulk(name), Bulk(value)) for name, value in pairs))
    if sub == b"set":
        if len(args) % 2 == 0:
            return SYNTAX_ERROR
        error = settings.set(args[1:], ctx.server)
        if error is not None:
            return error
        follow_config(ctx)
        return OK
    if sub == b"resetstat":
        reset_stats(ctx.server)
        ctx.recorder.stats.reset()
        return OK
    if sub == b"rewrite":
        return NO_REWRITE
    return Array(tuple(SimpleString(line) for line in CONFIG_HELP))


CLIENT_HELP = (
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.",
    "    * LIB-VER: the client lib version.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "NO-TOUCH (ON|OFF)",
    "    Will not touch LRU/LFU stats when this mode is on.",
    "HELP",
    "    Prints this help.",
)
_CLIENT_ARITY = {
    b"id": 2,
    b"getname": 2,
    b"setname": 3,
    b"info": 2,
    b"list": -2,
    b"kill": -3,
    b"no-evict": 3,
    b"no-touch": 3,
    b"setinfo": 4,
    b"help": 2,
}
_TYPES = (b"normal", b"master", b"slave", b"replica", b"pubsub")


def _client_type(ctx: ServerContext, state: ClientState) -> bytes:
    """normal or pubsub (Cairn has no replication clients: master/replica match none)."""
    return b"pubsub" if any(ctx.subscriptions(state.id)) else b"normal"


def _flags(ctx: ServerContext, state: ClientState, subs: tuple[int, int, int]) -> str:
    """Redis' flag letters Cairn can have: P pubsub, x MULTI, e no-evict, T no-touch."""
    flags = ""
    if any(subs):
        flags += "P"
    if state.transaction.queued is not None:
        flags += "x"
    if "no-evict" in state.flags:
        flags += "e"
    if "no-touch" in state.flags:
        flags += "T"
    return flags or "N"


def _fd(conn: ClientConnection) -> int:
    sock = None if conn.transport is None else conn.transport.get_extra_info("socket")
    return sock.fileno() if sock is not None else -1


def client_line(ctx: ServerContext, conn: ClientConnection, now: float) -> str:
    """One line of CLIENT LIST, Redis 7.0's fields in its order with Cairn's figures
    (the buffers Cairn does not have as Redis does are 0), then 7.2's lib-name and lib-ver."""
    state = conn.state
    assert state is not None
    subs = ctx.subscriptions(state.id)
    queued = state.transaction.queued
    qbuf = conn.parser.buffered
    multi_mem = state.transaction.queued_bytes
    omem = conn.output_backlog()
    return (
        f"id={state.id} addr={state.addr} laddr={state.laddr} fd={_fd(conn)} "
        f"name={state.name} age={int(now - state.created)} idle={int(now - state.last_active)} "
        f"flags={_flags(ctx, state, subs)} db=0 sub={subs[0]} psub={subs[1]} ssub={subs[2]} "
        f"multi={-1 if queued is None else len(queued)} qbuf={qbuf} qbuf-free=0 argv-mem=0 "
        f"multi-mem={multi_mem} rbs=0 rbp=0 obl=0 oll=0 omem={omem} "
        f"tot-mem={qbuf + multi_mem + omem} events=r cmd={state.last_command} user=default "
        f"redir=-1 resp={state.protocol} lib-name={state.lib_name} lib-ver={state.lib_ver}\n"
    )


def client(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """CLIENT ID | GETNAME | SETNAME | INFO | LIST | KILL | NO-EVICT | NO-TOUCH | SETINFO |
    HELP."""
    state = conn.state
    assert state is not None
    sub = args[0].lower()
    arity = _CLIENT_ARITY.get(sub)
    if arity is None:
        text = args[0].split(b"\0")[0][:128].decode("utf-8", "replace")
        return ErrorReply(f"ERR unknown subcommand '{text}'. Try CLIENT HELP.")
    argc = len(args) + 1
    if argc != arity if arity > 0 else argc < -arity:
        return _arity_error(f"client|{sub.decode()}")
    rest = args[1:]
    if sub == b"id":
        return Integer(state.id)
    if sub == b"getname":
        return Bulk(state.name.encode()) if state.name else NULL
    if sub == b"setname":
        if not _valid_name(rest[0]) and rest[0]:
            return BAD_NAME
        state.name = rest[0].decode()
        return OK
    if sub == b"info":
        return Bulk(client_line(ctx, conn, ctx.monotonic()).encode())
    if sub == b"list":
        return _client_list(ctx, rest)
    if sub == b"kill":
        return _client_kill(ctx, conn, rest)
    if sub in (b"no-evict", b"no-touch"):
        return _client_switch(state, sub.decode(), rest[0])
    if sub == b"setinfo":
        return _client_setinfo(state, rest[0], rest[1])
    return Array(tuple(SimpleString(line) for line in CLIENT_HELP))


def _client_list(ctx: ServerContext, rest: Sequence[bytes]) -> Reply:
    """CLIENT LIST [TYPE type] [ID id ...]."""
    wanted_type: bytes | None = None
    ids: set[int] | None = None
    if len(rest) == 2 and rest[0].lower() == b"type":
        wanted_type = rest[1].lower()
        if wanted_type not in _TYPES:
            return ErrorReply(f"ERR Unknown client type '{rest[1].decode('utf-8', 'replace')}'")
    elif len(rest) >= 2 and rest[0].lower() == b"id":
        ids = set()
        for raw in rest[1:]:
            value = parse_ll(raw)
            if value is None:
                return ErrorReply("ERR Invalid client ID")
            ids.add(value)
    elif rest:
        return SYNTAX_ERROR
    now = ctx.monotonic()
    lines = []
    clients = ctx.server.clients
    for client_id in sorted(clients):
        conn, state = clients[client_id]
        if ids is not None and client_id not in ids:
            continue
        if wanted_type is not None and _client_type(ctx, state) != wanted_type:
            continue
        lines.append(client_line(ctx, conn, now))
    return Bulk("".join(lines).encode())


def _client_switch(state: ClientState, flag: str, value: bytes) -> Reply:
    """CLIENT NO-EVICT / NO-TOUCH ON|OFF: kept and shown in the flags. Cairn never evicts
    clients and keeps no LRU/LFU clock that a read would touch, so both hold trivially."""
    choice = value.lower()
    if choice == b"on":
        state.flags.add(flag)
    elif choice == b"off":
        state.flags.discard(flag)
    else:
        return SYNTAX_ERROR
    return OK


def _client_setinfo(state: ClientState, option: bytes, value: bytes) -> Reply:
    """CLIENT SETINFO LIB-NAME|LIB-VER value (Redis 7.2; redis-py 5 sends it)."""
    attr = option.lower()
    shown = option.split(b"\0")[0][:128].decode("utf-8", "replace")
    if attr not in (b"lib-name", b"lib-ver"):
        return ErrorReply(f"ERR Unrecognized option '{shown}'")
    if not all(33 <= b <= 126 for b in value) or len(value) > 128:
        return ErrorReply(f"ERR {shown} cannot contain spaces, newlines or special characters.")
    if attr == b"lib-name":
        state.lib_name = value.decode()
    else:
        state.lib_ver = value.decode()
    return OK


_KILL_OPTIONS = (b"id", b"type", b"addr", b"laddr", b"user", b"skipme")


@dataclass(slots=True)
class _KillFilter:
    """CLIENT KILL's filters, all of which a client must match."""

    id: int | None = None
    type: bytes | None = None
    addr: str | None = None
    laddr: str | None = None
    skipme: bool = True

    def matches(self, ctx: ServerContext, state: ClientState) -> bool:
        return (
            (self.id is None or state.id == self.id)
            and (self.addr is None or state.addr == self.addr)
            and (self.laddr is None or state.laddr == self.laddr)
            and (self.type is None or _type_matches(ctx, state, self.type))
        )


def _type_matches(ctx: ServerContext, state: ClientState, wanted: bytes) -> bool:
    return _client_type(ctx, state) == wanted


def _parse_kill(rest: Sequence[bytes]) -> _KillFilter | ErrorReply:
    """The new form's option/value pairs, with Redis 7.0's errors."""
    found = _KillFilter()
    for i in range(0, len(rest), 2):
        option = rest[i].lower()
        if option not in _KILL_OPTIONS or i + 1 >= len(rest):
            return SYNTAX_ERROR
        value = rest[i + 1]
        text = value.decode("utf-8", "replace")
        if option == b"id":
            number = parse_ll(value)
            if number is None or number <= 0:
                return ErrorReply("ERR client-id should be greater than 0")
            found.id = number
        elif option == b"type":
            if value.lower() not in _TYPES:
                return ErrorReply(f"ERR Unknown client type '{text}'")
            found.type = value.lower()
        elif option == b"addr":
            found.addr = text
        elif option == b"laddr":
            found.laddr = text
        elif option == b"user":
            if value != b"default":
                return ErrorReply(f"ERR No such user '{text}'")
        elif value.lower() in (b"yes", b"no"):
            found.skipme = value.lower() == b"yes"
        else:
            return SYNTAX_ERROR
    return found


def _client_kill(ctx: ServerContext, conn: ClientConnection, rest: Sequence[bytes]) -> Reply:
    """CLIENT KILL addr (old form: OK or an error) | CLIENT KILL <filter value> ... (the
    number killed). The caller itself is closed after this reply; others at once."""
    if len(rest) == 1:
        target = rest[0].decode("utf-8", "replace")
        victims = [c for c, s in ctx.server.clients.values() if s.addr == target]
        if not victims:
            return ErrorReply("ERR No such client")
        _kill(conn, victims)
        return OK
    parsed = _parse_kill(rest)
    if isinstance(parsed, ErrorReply):
        return parsed
    victims = [
        c
        for c, s in ctx.server.clients.values()
        if parsed.matches(ctx, s) and not (parsed.skipme and c is conn)
    ]
    _kill(conn, victims)
    return Integer(len(victims))


def _kill(caller: ClientConnection, victims: Sequence[ClientConnection]) -> None:
    for victim in victims:
        if victim is caller:
            victim.close_after_reply()
        else:
            victim.abort()


def slowlog(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """SLOWLOG GET [count] | LEN | RESET | HELP (`cairn.runtime.slowlog`)."""
    return ctx.recorder.slowlog.command(args)


def latency(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """LATENCY LATEST | HISTORY event | RESET [event ...] | HISTOGRAM [command ...] |
    DOCTOR | HELP (`cairn.runtime.latency`)."""
    recorder = ctx.recorder
    threshold = recorder.settings.latency_threshold_ms
    reply = recorder.latency.command(args, recorder.stats, threshold)
    if isinstance(reply, Bulk) and conn.protocol == 3:
        return Verbatim(reply.value)
    return reply


def _spec(
    name: str,
    arity: int,
    handler: ClientHandler,
    summary: str,
    flags: tuple[str, ...] = ("fast",),
    no_auth: bool = False,
    since: str = "1.0.0",
    group: str = "connection",
) -> ClientCommandSpec:
    return ClientCommandSpec(
        name=name,
        arity=arity,
        flags=flags,
        handler=handler,
        group=group,
        since=since,
        summary=summary,
        no_auth=no_auth,
    )


_NO_AUTH = ("noscript", "loading", "stale", "fast", "no_auth")
_STALE = ("loading", "stale")

CLIENT_COMMANDS: dict[str, ClientCommandSpec] = {
    s.name: s
    for s in (
        _spec("ping", -1, ping, "Returns the server's liveliness response."),
        _spec("echo", 2, echo, "Returns the given string."),
        _spec("auth", -2, auth, "Authenticates the connection.", _NO_AUTH, True),
        _spec("hello", -1, hello, "Handshakes with the server.", _NO_AUTH, True, "6.0.0"),
        _spec("select", 2, select, "Changes the selected database."),
        _spec("quit", -1, quit_, "Closes the connection.", _NO_AUTH, True),
        _spec("reset", 1, reset, "Resets the connection.", _NO_AUTH, True, "6.2.0"),
        _spec(
            "time",
            1,
            time_,
            "Returns the server time.",
            (*_STALE, "fast"),
            False,
            "2.6.0",
            "server",
        ),
        _spec(
            "info",
            -1,
            info,
            "Returns information and statistics about the server.",
            _STALE,
            group="server",
        ),
        _spec(
            "command",
            -1,
            command,
            "Returns detailed information about all commands.",
            _STALE,
            False,
            "2.8.13",
            "server",
        ),
        _spec(
            "client",
            -2,
            client,
            "A container for client connection commands.",
            _STALE,
            since="2.4.0",
        ),
        _spec(
            "slowlog",
            -2,
            slowlog,
            "A container for slow log commands.",
            ("admin", "noscript", "loading", "stale"),
            since="2.2.12",
            group="server",
        ),
        _spec(
            "latency",
            -2,
            latency,
            "A container for latency diagnostics commands.",
            ("admin", "noscript", "loading", "stale"),
            since="2.8.13",
            group="server",
        ),
        _spec(
            "config",
            -2,
            config,
            "A container for server configuration commands.",
            ("admin", "noscript", "loading", "stale"),
            since="2.0.0",
            group="server",
        ),
        _spec(
            "cluster",
            -2,
            cluster,
            "A container for Redis Cluster commands.",
            _STALE,
            since="3.0.0",
            group="cluster",
        ),
        _spec(
            "readonly",
            1,
            _connection_mode(b"readonly"),
            "Enables read-only queries for a connection to a Redis Cluster replica node.",
            ("loading", "stale", "fast"),
            since="3.0.0",
            group="cluster",
        ),
        _spec(
            "readwrite",
            1,
            _connection_mode(b"readwrite"),
            "Enables read-write queries for a connection to a Redis Cluster replica node.",
            ("loading", "stale", "fast"),
            since="3.0.0",
            group="cluster",
        ),
        _spec(
            "asking",
            1,
            _connection_mode(b"asking"),
            "Signals that a cluster client is following an -ASK redirect.",
            ("fast",),
            since="3.0.0",
            group="cluster",
        ),
    )
}


def recorder_for(table: Mapping[str, CommandMeta]) -> CommandRecorder:
    """The node's recorder over its command table: a command is known if in `table`,
    fast and blocking as its COMMAND INFO flags say."""
    flags = {name: set(flag_names(meta)) for name, meta in table.items()}
    return CommandRecorder(
        time.monotonic,
        time.time,
        known=flags.__contains__,
        fast=lambda name: "fast" in flags.get(name, ()),
        blocking=lambda name: "blocking" in flags.get(name, ()),
        slowlog=SlowLog(),
        latency=LatencyMonitor(),
    )
