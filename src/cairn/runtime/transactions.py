"""MULTI, EXEC, DISCARD, WATCH, UNWATCH: each connection's transaction state.

Theory of operation. Between MULTI and EXEC a connection's commands are checked (known,
right arity) and queued, each answered ``+QUEUED``; a queuing error is answered at once and
marks the transaction, whose EXEC then answers ``-EXECABORT`` (Redis 7.0). MULTI inside
MULTI and WATCH inside MULTI are errors that leave the transaction alone, QUIT and RESET
act at once (RESET discards), as in Redis.

EXEC sends the store commands as ONE internal `cairn.exec` write
(`cairn.store.transaction`), routed like any write by all its keys (watched ones
included): to this node's region if it leads it, forwarded to the leader otherwise. When
the keys lie in more than one region (routing answers CROSSSLOT), `cross` runs it as a
cross-region transaction (`cairn.runtime.txn_wiring`; WATCH likewise reads each region's
fingerprints through `cross_watch`; an IDEMPOTENT EXEC through `cross_tagged`,
`cairn.runtime.cross_requests`), or CROSSSLOT stands (a cluster-aware connection). Its
reply is the array of the commands' replies, or the null array when a watched key
changed. Connection commands (PING, ECHO, CLIENT ...) queued in the
transaction run on this node once the store part has applied, their replies put in their
places.

WATCH sends `cairn.watch keys...`, also a write (so it is linearizable), and keeps the
fingerprint of each key; EXEC carries them and the store compares them at apply. EXEC
waits for every WATCH of its connection still in flight. UNWATCH, EXEC and DISCARD forget
the watched keys (a WATCH still in flight then counts for nothing).

``IDEMPOTENT <request-id> EXEC`` is EXEC tagged with a request id: the transaction entry
goes wrapped in `cairn.idem` (`cairn.store.idempotency`), so a retry of the same id (a new
connection's MULTI ... IDEMPOTENT id EXEC) is answered the first EXEC's reply instead of
running again. ``IDEMPOTENT`` inside MULTI tags nothing and aborts the transaction.

Every queued byte is counted: `Limits.max_transaction_commands`,
`max_transaction_bytes` and `max_watched_keys` bound what one connection may hold.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cairn.resp.codec import encode
from cairn.resp.reply import OK, QUEUED, Array, Bulk, ErrorReply, NullArray, Reply
from cairn.runtime.command_info import ServedCommand
from cairn.runtime.plants import EXEC_SPLIT, PLANT_ENV
from cairn.store import CommandSpec, classify
from cairn.store.idempotency import INSIDE_MULTI, PREFIX, prefix_keys, tag_transaction
from cairn.store.idempotency_entries import IDEM_COMMAND, IDEMPOTENCY_COMMANDS
from cairn.store.machine import decode_command, encode_command
from cairn.store.scripting.confine import CROSS_REGION_SCRIPTS
from cairn.store.scripting.effects import EFFECTS_COMMAND, wake_part
from cairn.store.transaction import (
    TRANSACTION_COMMANDS,
    TXN_COMMAND,
    WATCH_COMMAND,
    decode_transaction,
    encode_transaction,
)
from cairn.store.txn_locks import TXN_LOCK_COMMANDS

__all__ = [
    "EXECABORT",
    "SERVED_COMMANDS",
    "TransactionState",
    "Transactions",
    "applied_parts",
    "forwarded_spec",
]

if TYPE_CHECKING:
    from cairn.runtime.config import Limits
    from cairn.runtime.server import ClientConnection, Done, ReplyValue

EXECABORT = ErrorReply("EXECABORT Transaction discarded because of previous errors.")
NESTED = ErrorReply("ERR MULTI calls can not be nested")
EXEC_WITHOUT = ErrorReply("ERR EXEC without MULTI")
DISCARD_WITHOUT = ErrorReply("ERR DISCARD without MULTI")
WATCH_INSIDE = ErrorReply("ERR WATCH inside MULTI is not allowed")

_ARITY = {"multi": 1, "exec": 1, "discard": 1, "watch": -2, "unwatch": 1}

_TXN_FLAGS = ("noscript", "loading", "stale", "fast", "allow_busy")
_TXN_CATEGORIES = ("@fast", "@transaction")


def _served(name: str, since: str, summary: str, **extra: object) -> ServedCommand:
    fields: dict[str, object] = {"flags": _TXN_FLAGS, "acl_categories": _TXN_CATEGORIES}
    fields.update(extra)
    return ServedCommand(
        name=name,
        arity=_ARITY[name],
        group="transactions",
        since=since,
        summary=summary,
        **fields,  # type: ignore[arg-type]
    )


SERVED_COMMANDS: dict[str, ServedCommand] = {
    "multi": _served("multi", "1.2.0", "Mark the start of a transaction block"),
    "exec": _served(
        "exec",
        "1.2.0",
        "Execute all commands issued after MULTI",
        flags=("noscript", "loading", "stale", "skip_slowlog"),
        acl_categories=("@slow", "@transaction"),
        complexity="Depends on commands in the transaction",
    ),
    "discard": _served(
        "discard",
        "2.0.0",
        "Discard all commands issued after MULTI",
        complexity="O(N), when N is the number of queued commands",
    ),
    "watch": _served(
        "watch",
        "2.2.0",
        "Watch the given keys to determine execution of the MULTI/EXEC block",
        complexity="O(1) for every key.",
        first_key=1,
        last_key=-1,
        step=1,
    ),
    "unwatch": _served("unwatch", "2.2.0", "Forget about all watched keys"),
    PREFIX: ServedCommand(
        name=PREFIX,
        arity=-3,
        flags=("movablekeys", "write"),
        group="generic",
        since="7.0.0",
        summary="Cairn: runs a write (or EXEC) at most once per request id, however often "
        "a client retries it.",
        acl_categories=("@write",),
        complexity="O(1) besides the wrapped command",
        key_finder=prefix_keys,
    ),
}
"""What COMMAND INFO, DOCS, LIST and GETKEYS say of the commands this module serves
(Redis 7.0's metadata for the transaction commands; IDEMPOTENT is Cairn's own)."""
_ACT_AT_ONCE = frozenset({"quit", "reset"})
"""Commands Redis runs at once even inside MULTI (besides the transaction's own)."""
_ARG_OVERHEAD = 16
"""Bytes counted per queued argument besides its length (its list slot and header)."""


@dataclass(slots=True)
class TransactionState:
    """One connection's MULTI queue and watched keys."""

    queued: list[list[bytes]] | None = None
    """The commands queued since MULTI (None: not in MULTI)."""
    queued_bytes: int = 0
    failed: bool = False
    """A command could not be queued: EXEC answers EXECABORT."""
    watched: dict[bytes, bytes] = field(default_factory=dict)
    """Each watched key's fingerprint (`cairn.store.transaction.fingerprint`)."""
    generation: int = 0
    """Bumped when the watched keys are forgotten: a WATCH answered later is ignored."""
    probes: int = 0
    """WATCH commands in flight; EXEC waits for them."""
    waiting: list[Callable[[], None]] = field(default_factory=list)
    """EXECs waiting for the WATCHes in flight."""

    def forget_watches(self) -> None:
        """UNWATCH: forget every watched key (and any WATCH still in flight)."""
        self.watched.clear()
        self.generation += 1

    def reset(self) -> None:
        """Leave MULTI and forget the watched keys (EXEC, DISCARD, RESET)."""
        self.queued = None
        self.queued_bytes = 0
        self.failed = False
        self.forget_watches()


Dispatch = Callable[[list[bytes], CommandSpec, int, "Done"], None]
"""Route and run an internal write (`Node._attempt`): argv, spec, protocol, done."""
RunClient = Callable[["ClientConnection", list[bytes]], Reply | None]
"""Run a connection command here (None: `args` names none)."""
CrossExec = Callable[
    ["ClientConnection", list[tuple[bytes, bytes]], list[list[bytes]], "Done"], bool
]
"""Run EXEC's store commands as a cross-region transaction (False: refused, CROSSSLOT)."""
CrossWatch = Callable[["ClientConnection", list[bytes], "Done"], bool]
"""Read the fingerprints of keys in several regions (False: refused, CROSSSLOT)."""
CrossTagged = Callable[
    ["ClientConnection", bytes, list[tuple[bytes, bytes]], list[list[bytes]], "Done"], bool
]
"""``IDEMPOTENT <id> EXEC`` over several regions (False: refused, CROSSSLOT)."""


def forwarded_spec(args: list[bytes]) -> CommandSpec | ErrorReply:
    """The spec of a command another node forwarded: a client command or one of the
    transactions' internal ones (never accepted from a client)."""
    name = args[0].decode("utf-8", "replace") if args else ""
    spec = (
        TRANSACTION_COMMANDS.get(name)
        or IDEMPOTENCY_COMMANDS.get(name)
        or TXN_LOCK_COMMANDS.get(name)
    )
    if spec is not None:
        return spec if spec.arity_ok(len(args)) else ErrorReply("ERR malformed forward")
    return classify(args)


def applied_parts(data: bytes) -> list[bytes]:
    """The command entries an applied entry stands for, for waking blocked clients: a
    transaction's commands one by one, an idempotent write's wrapped command or
    transaction, a script's effects as the script on the keys it wrote, anything else
    itself."""
    try:
        name, args, now_ms = decode_command(data)
    except ValueError:
        return [data]
    if name == EFFECTS_COMMAND and args:  # a script's effects: as a script on its writes
        return [encode_command("eval", wake_part(args[0]), now_ms)]
    if name == IDEM_COMMAND and len(args) > 3:  # id, ttl, max ids, the wrapped command
        inner = args[3].lower().decode("utf-8", "replace")
        return applied_parts(encode_command(inner, args[4:], now_ms))
    if name != TXN_COMMAND or len(args) != 1:
        return [data]
    try:
        commands = decode_transaction(args[0]).commands
    except ValueError:
        return []
    return [
        encode_command(argv[0].lower().decode("utf-8", "replace"), argv[1:], now_ms)
        for argv in commands
    ]


class Transactions:
    """The node's MULTI/EXEC/WATCH front: what `Node.execute` asks first."""

    def __init__(
        self,
        limits: Limits,
        dispatch: Dispatch,
        client_commands: Callable[[str], int | None],
        run_client: RunClient,
    ) -> None:
        """`client_commands(name)`: the arity of connection command `name` (None: not
        one); `run_client` runs one at EXEC."""
        self.limits = limits
        self._dispatch = dispatch
        self._client_arity = client_commands
        self._run_client = run_client
        self._split = os.environ.get(PLANT_ENV) == EXEC_SPLIT
        """The planted bug `exec-split` (`cairn.runtime.plants`)."""
        self.cross: CrossExec | None = None
        self.cross_watch: CrossWatch | None = None
        self.cross_tagged: CrossTagged | None = None

    def intercept(
        self, client: ClientConnection, name: str, args: list[bytes], done: Done
    ) -> bool:
        """Handle `args` if it is a transaction command or is queued; False: run it."""
        state = client.state
        assert state is not None
        txn = state.transaction
        if name == PREFIX and len(args) == 3 and args[2].lower() == b"exec":
            self._tagged_exec(client, txn, args[1], done)  # IDEMPOTENT <id> EXEC
            return True
        if name in _ARITY:
            if not _arity_ok(_ARITY[name], len(args)):
                done(_rejected(txn, name, f"wrong number of arguments for '{name}' command"))
                return True
            self._transaction_command(client, txn, name, args, done)
            return True
        if name == "reset":
            txn.reset()
        if txn.queued is None or name in _ACT_AT_ONCE:
            return False
        done(self._queue(txn, name, args))
        return True

    # -- the commands ---------------------------------------------------------------------

    def _transaction_command(
        self,
        client: ClientConnection,
        txn: TransactionState,
        name: str,
        args: list[bytes],
        done: Done,
    ) -> None:
        if name == "multi":
            if txn.queued is not None:
                done(NESTED)
                return
            txn.queued, txn.queued_bytes, txn.failed = [], 0, False
            done(OK)
        elif name == "discard":
            if txn.queued is None:
                done(DISCARD_WITHOUT)
                return
            txn.reset()
            done(OK)
        elif name == "unwatch":
            txn.forget_watches()
            done(OK)
        elif name == "watch":
            if txn.queued is not None:
                done(WATCH_INSIDE)
                return
            self._watch(client, txn, args[1:], done)
        else:
            self._exec(client, txn, done)

    def _queue(self, txn: TransactionState, name: str, args: list[bytes]) -> Reply:
        """Check and queue one command inside MULTI (+QUEUED, or the error that aborts)."""
        assert txn.queued is not None
        error = self._check(name, args)
        if error is None:
            size = sum(len(a) + _ARG_OVERHEAD for a in args)
            if len(txn.queued) >= self.limits.max_transaction_commands:
                error = ErrorReply(
                    "ERR transaction too long: at most "
                    f"{self.limits.max_transaction_commands} queued commands "
                    "(limits.max_transaction_commands)"
                )
            elif txn.queued_bytes + size > self.limits.max_transaction_bytes:
                error = ErrorReply(
                    "ERR transaction too large: at most "
                    f"{self.limits.max_transaction_bytes} bytes queued "
                    "(limits.max_transaction_bytes)"
                )
            else:
                txn.queued.append(args)
                txn.queued_bytes += size
                return QUEUED
        txn.failed = True
        if error.message.startswith("ERR transaction too"):
            txn.queued, txn.queued_bytes = [], 0  # EXEC will abort: hold nothing more
        return error

    def _check(self, name: str, args: list[bytes]) -> ErrorReply | None:
        if name == PREFIX:
            return INSIDE_MULTI
        arity = self._client_arity(name)
        if arity is not None:
            if _arity_ok(arity, len(args)):
                return None
            return ErrorReply(f"ERR wrong number of arguments for '{name}' command")
        spec = classify(args)
        return spec if isinstance(spec, ErrorReply) else None

    def _watch(
        self, client: ClientConnection, txn: TransactionState, keys: list[bytes], done: Done
    ) -> None:
        fresh = list(dict.fromkeys(k for k in keys if k not in txn.watched))
        if len(txn.watched) + len(fresh) > self.limits.max_watched_keys:
            done(
                ErrorReply(
                    f"ERR too many watched keys: at most {self.limits.max_watched_keys} "
                    "(limits.max_watched_keys)"
                )
            )
            return
        if not fresh:
            done(OK)
            return
        state = client.state
        assert state is not None
        generation = txn.generation
        spec = TRANSACTION_COMMANDS[WATCH_COMMAND]

        def start(finished: Callable[[], None]) -> None:
            def answered(value: ReplyValue) -> None:
                if (
                    _is_crossslot(value)
                    and self.cross_watch is not None
                    and self.cross_watch(client, fresh, answered)
                ):
                    return  # keys in several regions: read region by region
                prints = _fingerprints(value, len(fresh))
                if isinstance(prints, ErrorReply):
                    done(prints)
                else:
                    if generation == txn.generation:
                        txn.watched.update(zip(fresh, prints, strict=True))
                    done(OK)
                txn.probes -= 1
                if not txn.probes:
                    waiting, txn.waiting = txn.waiting, []
                    for resume in waiting:
                        resume()
                finished()

            txn.probes += 1
            self._dispatch([WATCH_COMMAND.encode(), *fresh], spec, 2, answered)

        state.order.submit(True, start)

    def _tagged_exec(
        self, client: ClientConnection, txn: TransactionState, request_id: bytes, done: Done
    ) -> None:
        """``IDEMPOTENT <request-id> EXEC``: EXEC, applied at most once per request id."""
        checked = tag_transaction(request_id, b"", 1, 1)
        if isinstance(checked, ErrorReply):  # a bad id discards the transaction, as EXEC's
            if txn.queued is None:
                done(checked)
            else:
                done(_rejected(txn, "exec", checked.message.removeprefix("ERR ")))
            return
        self._exec(client, txn, done, request_id)

    def _exec(
        self,
        client: ClientConnection,
        txn: TransactionState,
        done: Done,
        request_id: bytes | None = None,
    ) -> None:
        if txn.queued is None:
            done(EXEC_WITHOUT)
            return
        if txn.failed:
            txn.reset()
            done(EXECABORT)
            return
        queued = txn.queued
        state = client.state
        assert state is not None

        def start(finished: Callable[[], None]) -> None:
            def run() -> None:
                watches = list(txn.watched.items())
                txn.reset()

                def reply(value: ReplyValue) -> None:
                    done(value)
                    finished()

                self._run(client, queued, watches, reply, request_id)

            if txn.probes:
                txn.waiting.append(run)
            else:
                run()

        # A script's transaction is run on the leader's state (for its effects, or on the
        # coordinator's scratch machine): alone in the client's order, as a script is.
        scripted = any(_name(argv) in CROSS_REGION_SCRIPTS for argv in queued)
        state.order.submit(True, start, exclusive=scripted)

    def _run(
        self,
        client: ClientConnection,
        queued: list[list[bytes]],
        watches: list[tuple[bytes, bytes]],
        done: Done,
        request_id: bytes | None = None,
    ) -> None:
        """Run the queued commands: the store ones as one entry (wrapped in `cairn.idem`
        with `request_id`), then the connection ones."""
        state = client.state
        assert state is not None
        data = [argv for argv in queued if self._client_arity(_name(argv)) is None]
        if not data and not watches:
            done(Array(tuple(self._client_reply(client, argv) for argv in queued)))
            return
        protocol = state.protocol
        if self._split and data:
            self._run_split(client, queued, watches, data, done)
            return
        payload = encode_transaction(watches, data)
        spec = TRANSACTION_COMMANDS[TXN_COMMAND]

        def applied(value: ReplyValue) -> None:
            if (
                request_id is None
                and _is_crossslot(value)
                and self.cross is not None
                and self.cross(client, watches, data, applied)
            ):
                return  # keys in several regions: a cross-region transaction
            if (
                request_id is not None
                and _is_crossslot(value)
                and self.cross_tagged is not None
                and self.cross_tagged(client, request_id, watches, data, applied)
            ):
                return  # likewise, tagged (`cairn.runtime.cross_requests`)
            if len(data) == len(queued) or _is_failure(value):
                done(value)
                return
            parts = _store_parts(value, protocol)
            if parts is None:
                done(ErrorReply("ERR the transaction's reply could not be read"))
                return
            out: list[bytes] = []
            store = iter(parts)
            for argv in queued:
                if self._client_arity(_name(argv)) is None:
                    out.append(next(store))
                else:
                    out.append(encode(self._client_reply(client, argv), protocol))
            done(b"*%d\r\n" % len(out) + b"".join(out))

        argv = [TXN_COMMAND.encode(), payload]
        if request_id is not None:
            limits = self.limits
            tagged = tag_transaction(
                request_id, payload, limits.idempotency_ttl_ms, limits.idempotency_max_ids
            )
            assert not isinstance(tagged, ErrorReply)  # the id was checked at EXEC
            argv, spec = tagged, IDEMPOTENCY_COMMANDS[IDEM_COMMAND]
        self._dispatch(argv, spec, protocol, applied)

    def _run_split(
        self,
        client: ClientConnection,
        queued: list[list[bytes]],
        watches: list[tuple[bytes, bytes]],
        data: list[list[bytes]],
        done: Done,
    ) -> None:
        """The planted bug `exec-split`: each store command its own entry, one after
        the other (the watches checked with the first only), so other clients' writes
        and reads interleave with the transaction's commands."""
        state = client.state
        assert state is not None
        protocol = state.protocol
        spec = TRANSACTION_COMMANDS[TXN_COMMAND]
        parts: list[bytes] = []

        def step(i: int) -> None:
            payload = encode_transaction(watches if i == 0 else [], [data[i]])

            def applied(value: ReplyValue) -> None:
                got = None if _is_failure(value) else _store_parts(value, protocol)
                if got is None:
                    if i == 0:
                        done(value)
                        return
                    got = [value if isinstance(value, bytes) else encode(value, protocol)]
                parts.extend(got)
                if i + 1 < len(data):
                    step(i + 1)
                    return
                store = iter(parts)
                out = [
                    next(store)
                    if self._client_arity(_name(argv)) is None
                    else encode(self._client_reply(client, argv), protocol)
                    for argv in queued
                ]
                done(b"*%d\r\n" % len(out) + b"".join(out))

            self._dispatch([TXN_COMMAND.encode(), payload], spec, protocol, applied)

        step(0)

    def _client_reply(self, client: ClientConnection, argv: list[bytes]) -> Reply:
        reply = self._run_client(client, argv)
        return reply if reply is not None else ErrorReply("ERR unknown command")


def _rejected(txn: TransactionState, name: str, reason: str) -> ErrorReply:
    """Redis' `rejectCommand`: a rejected command inside MULTI aborts the transaction; a
    rejected EXEC, in MULTI or not, discards it (and the watched keys) naming the reason."""
    if name == "exec":
        txn.reset()
        return ErrorReply(f"EXECABORT Transaction discarded because of: {reason}")
    if txn.queued is not None:
        txn.failed = True
    return ErrorReply(f"ERR {reason}")


def _name(argv: list[bytes]) -> str:
    return argv[0].lower().decode("utf-8", "replace")


def _arity_ok(arity: int, argc: int) -> bool:
    return argc == arity if arity >= 0 else argc >= -arity


def _is_crossslot(value: ReplyValue) -> bool:
    """Routing refused the keys as spanning several regions."""
    if isinstance(value, bytes):
        return value.startswith(b"-CROSSSLOT ")
    return isinstance(value, ErrorReply) and value.message.startswith("CROSSSLOT ")


def _is_failure(value: ReplyValue) -> bool:
    """An EXEC answered as a whole: aborted by WATCH, or an error (CROSSSLOT, TRYAGAIN)."""
    if isinstance(value, bytes):
        return value[:1] in (b"-", b"_") or value.startswith(b"*-1")
    return isinstance(value, ErrorReply | NullArray)


def _fingerprints(value: ReplyValue, count: int) -> list[bytes] | ErrorReply:
    """The fingerprints a `cairn.watch` answered (RESP2 bytes when forwarded)."""
    if isinstance(value, bytes):
        parts = _split_array(value)
        if parts is None:
            return ErrorReply(value[1:].split(b"\r\n", 1)[0].decode("utf-8", "replace"))
        prints = [_bulk_value(p) for p in parts]
    elif isinstance(value, Array):
        prints = [b.value if isinstance(b, Bulk) else None for b in value.items]
    elif isinstance(value, ErrorReply):
        return value
    else:
        prints = []
    if len(prints) != count or any(p is None for p in prints):
        return ErrorReply("ERR WATCH could not read the keys' versions")
    return [p for p in prints if p is not None]


def _store_parts(value: ReplyValue, protocol: int) -> list[bytes] | None:
    """Each store command's reply, encoded, from the transaction entry's array reply."""
    if isinstance(value, Array):
        return [encode(item, protocol) for item in value.items]
    if isinstance(value, bytes):
        return _split_array(value)
    return None


# -- splitting a RESP2/RESP3 array reply into its elements --------------------------------

_LINE_TYPES = frozenset(b"+-:,(#_")
_BLOB_TYPES = frozenset(b"$=!")
_AGGREGATE_TYPES = frozenset(b"*~>")
_MAX_DEPTH = 64


def _split_array(data: bytes) -> list[bytes] | None:
    """The encoded elements of the one array reply `data` (None: not exactly that)."""
    if not data.startswith(b"*"):
        return None
    try:
        count, at = _header(data, 0)
        parts = []
        for _ in range(count):
            end = _skip(data, at, 0)
            parts.append(data[at:end])
            at = end
    except (ValueError, IndexError):
        return None
    return parts if at == len(data) and count >= 0 else None


def _header(data: bytes, at: int) -> tuple[int, int]:
    end = data.index(b"\r\n", at)
    return int(data[at + 1 : end]), end + 2


def _skip(data: bytes, at: int, depth: int) -> int:
    """The end of the reply starting at `at`; raises ValueError on malformed bytes."""
    if depth > _MAX_DEPTH:
        raise ValueError("nested too deep")
    kind = data[at]
    if kind in _LINE_TYPES:
        return data.index(b"\r\n", at) + 2
    count, at = _header(data, at)
    if kind in _BLOB_TYPES:
        if count < 0:
            return at
        if data[at + count : at + count + 2] != b"\r\n":
            raise ValueError("bad blob")
        return at + count + 2
    if kind == ord("%") or kind == ord("|"):
        count *= 2
    elif kind not in _AGGREGATE_TYPES:
        raise ValueError("unknown reply type")
    for _ in range(max(count, 0)):
        at = _skip(data, at, depth + 1)
    if kind == ord("|"):  # an attribute precedes the reply it describes
        at = _skip(data, at, depth + 1)
    return at


def _bulk_value(part: bytes) -> bytes | None:
    if not part.startswith(b"$"):
        return None
    length, at = _header(part, 0)
    return part[at : at + length] if length >= 0 else None
