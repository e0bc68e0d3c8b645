"""CLIENT ID | GETNAME | SETNAME | INFO | LIST | KILL | NO-EVICT | NO-TOUCH | SETINFO |
HELP: this node's client connections, as Redis 7.0 shows and closes them (SETINFO is
Redis 7.2's, which redis-py 5 sends on connect).

CLIENT LIST and INFO print Redis 7.0's fields in its order with Cairn's figures (buffers
Cairn does not keep as Redis does are 0), then 7.2's `lib-name` and `lib-ver`. CLIENT KILL
closes connections of this node only: the caller after its reply, others at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cairn.resp.reply import NULL, OK, Array, Bulk, ErrorReply, Integer, Reply, SimpleString
from cairn.store.numbers import parse_ll

if TYPE_CHECKING:
    from cairn.runtime.client_commands import ServerContext
    from cairn.runtime.server import ClientConnection, ClientState

SYNTAX_ERROR = ErrorReply("ERR syntax error")
BAD_NAME = ErrorReply("ERR Client names cannot contain spaces, newlines or special characters.")


def valid_name(name: bytes) -> bool:
    """Whether a client name has only printable characters other than space."""
    return all(33 <= b <= 126 for b in name)


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
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
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
    b"reply": 3,
    b"help": 2,
}
_TYPES = (b"normal", b"master", b"slave", b"replica", b"pubsub")


def _client_type(ctx: ServerContext, state: ClientState) -> bytes:
    """normal or pubsub (Cairn has no replication clients: master/replica match none)."""
    return b"pubsub" if any(ctx.subscriptions(state.id)) else b"normal"


def _flags(ctx: ServerContext, state: ClientState, subs: tuple[int, int, int]) -> str:
    """Redis' flag letters Cairn can have: O monitor, P pubsub, x MULTI, e no-evict,
    T no-touch."""
    flags = "O" if "monitor" in state.flags else ""
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
        f"tot-mem={qbuf + multi_mem + omem} events=r cmd={state.last_command} user={state.user} "
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
        return ErrorReply(f"ERR wrong number of arguments for 'client|{sub.decode()}' command")
    rest = args[1:]
    if sub == b"id":
        return Integer(state.id)
    if sub == b"getname":
        return Bulk(state.name.encode()) if state.name else NULL
    if sub == b"setname":
        if not valid_name(rest[0]) and rest[0]:
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
    if sub == b"reply":
        return _client_reply(state, rest[0])
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


REPLY_OFF = "reply-off"
REPLY_SKIP = "reply-skip"
REPLY_SKIP_NEXT = "reply-skip-next"


def _client_reply(state: ClientState, value: bytes) -> Reply:
    """CLIENT REPLY ON (answers OK) | OFF (no reply from now on, this one included) |
    SKIP (no reply to this command and the next). `reply_silenced` applies the mode."""
    choice = value.lower()
    if choice == b"on":
        state.flags -= {REPLY_OFF, REPLY_SKIP, REPLY_SKIP_NEXT}
    elif choice == b"off":
        state.flags.add(REPLY_OFF)
    elif choice == b"skip":
        if REPLY_OFF not in state.flags:
            state.flags.add(REPLY_SKIP)
    else:
        return SYNTAX_ERROR
    return OK


def reply_silenced(state: ClientState) -> bool:
    """Whether the command just handed to the router gets no reply (CLIENT REPLY OFF, or
    SKIP: that command and the next one); called once per command, after it started."""
    flags = state.flags
    if REPLY_SKIP_NEXT in flags:
        flags.discard(REPLY_SKIP_NEXT)
        silenced = True
    else:
        silenced = REPLY_OFF in flags
    if REPLY_SKIP in flags:
        flags.discard(REPLY_SKIP)
        flags.add(REPLY_SKIP_NEXT)
        silenced = True
    return silenced


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
    user: str | None = None
    skipme: bool = True

    def matches(self, ctx: ServerContext, state: ClientState) -> bool:
        return (
            (self.id is None or state.id == self.id)
            and (self.user is None or state.user == self.user)
            and (self.addr is None or state.addr == self.addr)
            and (self.laddr is None or state.laddr == self.laddr)
            and (self.type is None or _type_matches(ctx, state, self.type))
        )


def _type_matches(ctx: ServerContext, state: ClientState, wanted: bytes) -> bool:
    return _client_type(ctx, state) == wanted


def _parse_kill(
    rest: Sequence[bytes], user_exists: Callable[[str], bool]
) -> _KillFilter | ErrorReply:
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
            if not user_exists(text):
                return ErrorReply(f"ERR No such user '{text}'")
            found.user = text
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
    acl = ctx.acl
    parsed = _parse_kill(
        rest, lambda name: name == "default" if acl is None else acl.table.user(name) is not None
    )
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
