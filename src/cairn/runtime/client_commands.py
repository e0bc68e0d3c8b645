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
from cairn.runtime.client_introspection import BAD_NAME, client, valid_name
from cairn.runtime.client_pause import ClientPause, client_pause_command, pause_arity_error
from cairn.runtime.command_info import CommandMeta, command_reply, flag_names
from cairn.runtime.command_stats import CommandRecorder, RecorderSettings
from cairn.runtime.config_rewrite import NO_CONFIG_FILE
from cairn.runtime.latency import LatencyMonitor
from cairn.runtime.monitor import Monitors
from cairn.runtime.redis_config import HELP as CONFIG_HELP
from cairn.runtime.redis_config import RedisConfig, reset_stats
from cairn.runtime.save_commands import bgsave, save
from cairn.runtime.server_facts import lastsave, monitor, role, wait
from cairn.runtime.slowlog import SlowLog
from cairn.shard.routing import ClientRouting, observe

if TYPE_CHECKING:
    from cairn.runtime.acl_commands import AclCommands
    from cairn.runtime.server import ClientConnection, RespServer

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
    pause: ClientPause = field(default_factory=ClientPause)
    """CLIENT PAUSE's state and held commands (`cairn.runtime.client_pause`)."""
    replication: Callable[[], tuple[int, int]] = field(default=lambda: (0, 0))
    """ROLE's offset and WAIT's replica count (`cairn.runtime.server_facts`)."""
    monitors: Monitors = field(default_factory=lambda: Monitors({}, time.time, 1 << 20))
    """The connections in MONITOR mode (`cairn.runtime.monitor`)."""
    rewrite: Callable[[], ErrorReply | None] = field(default=lambda: NO_CONFIG_FILE)
    """CONFIG REWRITE: save the CONFIG values into the node's TOML file
    (`cairn.runtime.config_rewrite`); None, or the error."""
    acl: AclCommands | None = None
    """The node's ACL users (`cairn.runtime.acl_commands`); None: only `default`, with
    the configured password (a context without a node)."""


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
    if ctx.acl is not None:  # CONFIG SET requirepass: the default user's password
        ctx.acl.follow_password(values["requirepass"].decode("utf-8") or None)


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


def client_or_pause(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """CLIENT PAUSE and UNPAUSE (`cairn.runtime.client_pause`); any other CLIENT
    subcommand goes to `client`."""
    sub = args[0].lower()
    if sub not in (b"pause", b"unpause"):
        return client(ctx, conn, args)
    wrong = pause_arity_error(sub, len(args) + 1)
    return wrong if wrong is not None else client_pause_command(ctx.pause, sub, args[1:])


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


def _check_password(
    ctx: ServerContext,
    conn: ClientConnection,
    user: bytes,
    password: bytes,
    one_arg: bool = False,
) -> Reply | None:
    if ctx.acl is not None:
        return ctx.acl.authenticate(conn, user, password, one_arg)
    expected = ctx.server.password
    if expected is None:
        return NO_PASSWORD if user == b"default" else WRONGPASS
    ok = user == b"default" and hmac.compare_digest(password, expected.encode())
    return None if ok else WRONGPASS


def auth(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """AUTH [username] password (ACL users: `cairn.runtime.acl_commands`)."""
    if len(args) > 2:
        return SYNTAX_ERROR
    user, password = (args[0], args[1]) if len(args) == 2 else (b"default", args[0])
    error = _check_password(ctx, conn, user, password, len(args) == 1)
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
            error = _check_password(ctx, conn, args[i + 1], args[i + 2])
            if error is not None:
                return error
            conn.set_authenticated(True)
            i += 3
        elif option == b"setname" and i + 1 < len(args):
            name = args[i + 1]
            if not valid_name(name):
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
    state.user = "default"
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
    REWRITE | HELP: this node's Redis parameters (`cairn.runtime.redis_config`; REWRITE
    saves them into its TOML file, `cairn.runtime.config_rewrite`)."""
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
        error = ctx.rewrite()
        return OK if error is None else error
    return Array(tuple(SimpleString(line) for line in CONFIG_HELP))


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


def acl(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """ACL <subcommand> ... (`cairn.runtime.acl_commands`; SETUSER and DELUSER are
    answered there asynchronously, once the cluster has applied them)."""
    if ctx.acl is None:
        return ErrorReply("ERR ACL users need a node")
    return ctx.acl.command(conn, args)


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
_ADMIN = ("admin", "noscript", "loading", "stale")
_SAVE = ("admin", "noscript", "no_async_loading")

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
            client_or_pause,
            "A container for client connection commands.",
            _STALE,
            since="2.4.0",
        ),
        _spec(
            "slowlog",
            -2,
            slowlog,
            "A container for slow log commands.",
            _ADMIN,
            since="2.2.12",
            group="server",
        ),
        _spec(
            "latency",
            -2,
            latency,
            "A container for latency diagnostics commands.",
            _ADMIN,
            since="2.8.13",
            group="server",
        ),
        _spec(
            "config",
            -2,
            config,
            "A container for server configuration commands.",
            _ADMIN,
            since="2.0.0",
            group="server",
        ),
        _spec(
            "lastsave",
            1,
            lastsave,
            "Returns the Unix timestamp of the last successful save to disk.",
            ("loading", "stale", "fast"),
            group="server",
        ),
        _spec(
            "role",
            1,
            role,
            "Returns the replication role.",
            ("noscript", "loading", "stale", "fast"),
            since="2.8.12",
            group="server",
        ),
        _spec(
            "wait",
            3,
            wait,
            "Blocks until the asynchronous replication of all preceding write commands "
            "sent by the connection is completed.",
            ("noscript",),
            since="3.0.0",
            group="generic",
        ),
        _spec(
            "monitor",
            1,
            monitor,
            "Listens for all requests received by the server in real-time.",
            ("admin", "noscript", "loading", "stale"),
            group="server",
        ),
        _spec(
            "acl",
            -2,
            acl,
            "A container for Access List Control commands.",
            ("noscript", "loading", "stale"),
            since="6.0.0",
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
        _spec(
            "save", 1, save, "Synchronously saves the database(s) to disk.", _SAVE, group="server"
        ),
        _spec(
            "bgsave",
            -1,
            bgsave,
            "Asynchronously saves the database(s) to disk.",
            _SAVE,
            group="server",
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
