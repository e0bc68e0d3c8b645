"""Running one script: compile it, run it in a sandbox (a new one, or for a leader's run
for effects one reused from a `pool.StatePool`), dispatch its `redis.call`s to the command
table against the command's own `Db`, and turn the outcome into the reply.

Theory of operation. A script runs against one `Db` in one write batch, and nothing else
runs until it returns, so it is atomic and isolated. Usually that batch is an overlay on
the region leader's applied state and the records it ends with are replicated as the
script's effects (`effects`); a script that cannot be tracked, or one inside MULTI or
IDEMPOTENT, is instead applied as its own Raft entry, where every replica runs it with the
same `now_ms`, the same random seed and the same budget. `redis.call` runs the named
command's handler directly against the script's `Db`: its writes join the script's batch.

Outcomes, as Redis 7.0 answers them:

- the script returns: its value converted (`convert.lua_to_reply`), the batch committed;
- it raises an error (its own, or a failed `redis.call`): the error reply
  ``<message> script: <sha>, on @user_script:<line>.``, and, as in Redis, the writes it
  made before the error are kept (scripts are atomic, not transactional);
- it exceeds its budget (`sandbox.ScriptLimits`) of instructions or memory: Redis would
  keep it running and answer -BUSY to others until SCRIPT KILL; Cairn ends it with
  `CommandError`, so the batch is discarded: the script had no effect (on every replica
  alike, when it is replayed).

Keys. A command a script calls may only name keys of the region the script runs in (the
region of its declared KEYS, which routing placed in one region): any other key fails the
call with Redis Cluster's "Script attempted to access a non local key in a cluster node".
Undeclared keys inside the region are allowed, as Redis allows them. On the scratch
machine of a cross-region transaction (scope `confine.DECLARED_KEYS_ONLY`) a script may
use only its declared keys: any other key, or a command naming none, fails the call and
then the whole run (`confine`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import lupa.lua51 as lua51

from cairn.resp.reply import NULL_ARRAY, PONG, Array, Bulk, ErrorReply, Reply
from cairn.store.commands.blocking import Blocked
from cairn.store.commands.errors import CommandError
from cairn.store.commands.spec import CommandSpec, Ctx, Flag
from cairn.store.scope import KeyOutOfRangeError
from cairn.store.scripting.confine import KEYLESS, UNDECLARED, confined
from cairn.store.scripting.convert import lua_size, lua_to_reply, reply_to_lua
from cairn.store.scripting.sandbox import (
    LuaState,
    Rand48,
    ScriptError,
    ScriptLimits,
    lua_error_text,
    lua_number_text,
    new_state,
)

if TYPE_CHECKING:
    from cairn.store.scripting.pool import StatePool

_log = logging.getLogger("cairn.scripting")

UNKNOWN = b"ERR Unknown Redis command called from script"
WRONG_ARITY = b"ERR Wrong number of args calling Redis command from script"
NOT_ALLOWED = b"ERR This Redis command is not allowed from script"
READ_ONLY = b"ERR Write commands are not allowed from read-only scripts."
NOT_LOCAL = b"ERR Script attempted to access a non local key in a cluster node"
_LOG_LEVELS = (logging.DEBUG, logging.DEBUG, logging.INFO, logging.WARNING)


def budget_error(limits: ScriptLimits) -> ErrorReply:
    """The reply to a script stopped by its instruction budget (its writes discarded)."""
    return ErrorReply(
        "ERR Script exceeded the instruction budget "
        f"({limits.instructions} Lua instructions; its writes were discarded)"
    )


def memory_error(limits: ScriptLimits) -> ErrorReply:
    """The reply to a script stopped by the Lua memory limit (its writes discarded)."""
    return ErrorReply(
        f"ERR Script exceeded the Lua memory limit ({limits.memory} bytes; "
        "its writes were discarded)"
    )


def compile_error(message: bytes) -> ErrorReply:
    """Redis 7.0's reply to a script that does not compile."""
    text = message.decode("utf-8", "surrogateescape")
    return ErrorReply(f"ERR Error compiling script (new function): {text}")


def _local_ping(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    if len(args) > 1:
        return ErrorReply("ERR wrong number of arguments for 'ping' command")
    return PONG if not args else Bulk(args[0])


def _local_echo(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    return Bulk(args[0])


def _local_time(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """TIME inside a script: the command's `now_ms` (the same on every replica), not the
    local clock."""
    seconds, ms = divmod(ctx.now_ms, 1000)
    return Array((Bulk(b"%d" % seconds), Bulk(b"%d" % (ms * 1000))))


_SCRIPT_LOCAL: dict[str, tuple[int, Any]] = {
    "ping": (-1, _local_ping),
    "echo": (2, _local_echo),
    "time": (1, _local_time),
}
"""Server commands a script may call although the store's table has none: (arity,
handler)."""

_NODE_NOSCRIPT = frozenset(
    [
        "multi",
        "exec",
        "discard",
        "watch",
        "unwatch",
        "subscribe",
        "unsubscribe",
        "psubscribe",
        "punsubscribe",
        "ssubscribe",
        "sunsubscribe",
        "auth",
        "hello",
        "reset",
        "quit",
        "monitor",
        "sync",
        "psync",
        "replconf",
        "function",
        "script",
        "fcall",
        "fcall_ro",
        "wait",
        "save",
        "bgsave",
        "bgrewriteaof",
        "shutdown",
        "slaveof",
        "replicaof",
        "failover",
        "client",
        "cluster",
        "readonly",
        "readwrite",
        "asking",
        "select",
    ]
)
"""Server commands Redis refuses inside a script ("not allowed from script")."""


_NO_ARGS = b"ERR Please specify at least one argument for this redis lib call"
_BAD_ARG = b"ERR Lua redis lib command arguments must be strings or integers"


Checker = Callable[[list[bytes], CommandSpec | None], bytes | None]
"""The caller's ACL check of one `redis.call` (argv, its spec or None for a script-local
command): None when allowed, else the error text (`acl.script_checker`)."""

Keyless = Callable[[str], None]
"""Told the name of each store command a script calls that names no key (DBSIZE, KEYS,
SCAN, FLUSHDB ...): a run replicated by its effects cannot vouch for what such a command
read (`effects`)."""


@dataclass
class _Run:
    """One script run's Python side of the `redis` library (`sandbox.ScriptApi`)."""

    ctx: Ctx
    readonly: bool
    state: LuaState | None = None
    resp: int = 2
    check: Checker | None = None
    on_keyless: Keyless | None = None
    declared: frozenset[bytes] | None = None
    """The only keys its calls may name (its KEYS), when confined (`confine`); None: any
    key of its region."""
    strayed: ErrorReply | None = None
    """Set when a confined run named another key: the run's reply, its writes discarded."""

    def call(self, *args: Any) -> Any:
        """`redis.call`: the reply as a Lua value; an error is raised into the script.
        Out of memory: nil (the run is already marked and ends at the next hook)."""
        ok, value = self._call(args)
        if not ok and self._room(len(value)):
            raise ScriptError(value)
        return value if ok else None

    def pcall(self, *args: Any) -> Any:
        """`redis.pcall`: the reply as a Lua value, an error as ``{err=...}``."""
        ok, value = self._call(args)
        if not ok:
            assert self.state is not None
            return self.state.table({b"err": value}) if self._room(len(value)) else None
        return value

    def _room(self, estimate: int) -> bool:
        assert self.state is not None
        return self.state.room(estimate + 256)

    def _call(self, args: tuple[Any, ...]) -> tuple[bool, Any]:
        assert self.state is not None
        self.state.count_call()
        if not args:
            return False, _NO_ARGS
        argv = []
        for arg in args:
            if isinstance(arg, bytes):
                argv.append(arg)
            elif isinstance(arg, int | float) and not isinstance(arg, bool):
                argv.append(lua_number_text(arg))
            else:
                return False, _BAD_ARG
        reply = self._dispatch(argv)
        if isinstance(reply, bytes):
            return False, reply
        if isinstance(reply, ErrorReply):
            return False, lua_error_text(b"-" + reply.message.encode("utf-8", "surrogateescape"))
        if not self.state.room(lua_size(reply)):
            return True, None
        return True, reply_to_lua(self.state, reply, self.resp)

    def _dispatch(self, argv: list[bytes]) -> Reply | bytes:
        from cairn.store.commands.table import COMMANDS  # the table lists the scripts too

        name = argv[0].lower().decode("utf-8", "replace")
        spec = COMMANDS.get(name)
        if spec is None:
            return self._local(name, argv)
        if not spec.arity_ok(len(argv)):
            return WRONG_ARITY
        if Flag.NOSCRIPT in spec.flags or name in _NODE_NOSCRIPT:
            return NOT_ALLOWED
        if self.check is not None and (denied := self.check(argv, spec)) is not None:
            return denied
        if spec.is_write and self.readonly:
            return READ_ONLY
        keys = spec.keys(argv)
        if self.declared is not None and (stray := self._stray(keys)) is not None:
            return stray
        if not all(self.ctx.db.scope.contains_key(k) for k in keys):
            return NOT_LOCAL
        if not keys and self.on_keyless is not None:
            self.on_keyless(spec.name)
        return self._run(spec, argv)

    def _stray(self, keys: list[bytes]) -> ErrorReply | None:
        """A confined run's refusal of a call naming no key or an undeclared one (None:
        it names only declared keys); the first refusal becomes the run's reply."""
        assert self.declared is not None
        if keys and all(k in self.declared for k in keys):
            return None
        refusal = UNDECLARED if keys else KEYLESS
        self.strayed = self.strayed or refusal
        return refusal

    def _local(self, name: str, argv: list[bytes]) -> Reply | bytes:
        found = _SCRIPT_LOCAL.get(name)
        if found is None:
            return NOT_ALLOWED if name in _NODE_NOSCRIPT else UNKNOWN
        arity, handler = found
        if arity >= 0 and len(argv) != arity:
            return WRONG_ARITY
        if self.check is not None and (denied := self.check(argv, None)) is not None:
            return denied
        reply: Reply = handler(self.ctx, argv[1:])
        return reply

    def _run(self, spec: CommandSpec, argv: list[bytes]) -> Reply | bytes:
        ctx = self.ctx
        inner = Ctx(ctx.db, ctx.now_ms, spec.name, ctx.rng, ctx.seed, ctx.settings)
        try:
            reply = spec.handler(inner, argv[1:])
        except CommandError as err:
            return err.reply
        except KeyOutOfRangeError:
            return NOT_LOCAL
        if isinstance(reply, Blocked):  # never waits inside a script: a timeout at once
            return NULL_ARRAY
        return reply

    def resp_of(self) -> int:
        """The protocol the script chose with `redis.setresp` (2 unless it did)."""
        return self.resp

    def setresp(self, *args: Any) -> None:
        """`redis.setresp(2|3)`: how later `redis.call` replies (and the result) convert."""
        if not self._room(0):
            return
        if len(args) != 1:
            raise ScriptError(b"ERR redis.setresp() requires one argument.")
        if args[0] not in (2, 3) or isinstance(args[0], bool):
            raise ScriptError(b"ERR RESP version must be 2 or 3.")
        self.resp = int(args[0])

    def log(self, *args: Any) -> None:
        """`redis.log(level, message ...)`: to the node's log (each replica logs its run)."""
        if not self._room(0):
            return
        if len(args) < 2:
            raise ScriptError(b"ERR redis.log() requires two arguments or more.")
        level = args[0]
        if not isinstance(level, int | float) or isinstance(level, bool):
            raise ScriptError(b"ERR First argument must be a number (log level).")
        if not 0 <= level <= 3:
            raise ScriptError(b"ERR Invalid debug level.")
        words = [a if isinstance(a, bytes) else str(a).encode() for a in args[1:]]
        text = b" ".join(words).decode("utf-8", "replace")
        _log.log(_LOG_LEVELS[int(level)], "script: %s", text)


def run_script(
    ctx: Ctx,
    sha: str,
    body: bytes,
    keys: Sequence[bytes],
    argv: Sequence[bytes],
    *,
    readonly: bool,
    limits: ScriptLimits,
    check: Checker | None = None,
    on_keyless: Keyless | None = None,
    pool: StatePool | None = None,
) -> Reply:
    """Run script `body` (its shebang line, if any, already validated) with `keys` and
    `argv`; its reply. Raises `CommandError` when the budget or memory limit stops it.
    `check`: the caller's ACL check of each `redis.call` (None: may run anything);
    `on_keyless`: see `Keyless`; `pool`: where to take the Lua state from and give it
    back to (None: a new state, as every run replayed on all replicas takes)."""
    run, state, arguments = _sandbox(ctx, readonly, check, limits, keys, argv, body, pool)
    run.on_keyless = on_keyless
    reply = _script_reply(state, run, sha, body, keys, argv, arguments, limits)
    if pool is not None:  # not reached when the run raised: that state is dropped
        pool.release(state)
    return reply


def _script_reply(
    state: LuaState,
    run: _Run,
    sha: str,
    body: bytes,
    keys: Sequence[bytes],
    argv: Sequence[bytes],
    arguments: int,
    limits: ScriptLimits,
) -> Reply:
    """`run_script`'s run in `state`."""
    function, problem = state.compile_cached(_without_shebang(body), b"@user_script")
    if function is None:
        return compile_error(problem)
    if not state.room(arguments):
        raise CommandError(memory_error(limits))
    state.start(function, state.table(list(keys)), state.table(list(argv)))
    try:
        reply = _outcome(state, function, sha, run.resp_of)
    except lua51.LuaMemoryError as exc:
        raise CommandError(memory_error(limits)) from exc
    except lua51.LuaError as exc:
        if state.spent:
            raise CommandError(budget_error(limits)) from exc
        reply = ErrorReply(f"ERR Error running script (call to {sha}): {_first_line(exc)}")
    finally:
        state.stop()
    if run.strayed is not None:
        raise CommandError(run.strayed)
    if state.out_of_memory:
        raise CommandError(memory_error(limits))
    if state.spent:
        raise CommandError(budget_error(limits))
    if _out_of_memory(reply):
        raise CommandError(memory_error(limits))
    return reply


def load_error(state: LuaState, outcome: Any) -> ErrorReply | None:
    """The FUNCTION LOAD error for a library whose top-level code ended with `outcome`
    (the xpcall's results), or None when it ran to its end."""
    ok, error = outcome[:2] if isinstance(outcome, tuple) else (outcome, None)
    if ok:
        return None
    text = _error_reply(error, "").message
    if lua51.lua_type(error) == "table" and isinstance(error[b"err"], bytes):
        text = error[b"err"].decode("utf-8", "surrogateescape")
    return ErrorReply(f"ERR Error registering functions: {text}")


def run_function(
    ctx: Ctx,
    name: bytes,
    code: bytes,
    keys: Sequence[bytes],
    argv: Sequence[bytes],
    *,
    readonly: bool,
    limits: ScriptLimits,
    check: Checker | None = None,
    on_keyless: Keyless | None = None,
    pool: StatePool | None = None,
) -> Reply:
    """FCALL: load library `code` (its shebang already validated) in a sandbox, then run
    its function `name` with `keys` and `argv`; its reply. Raises `CommandError` when the
    budget or memory limit stops it (as `run_script`; `pool` too). The library's code
    runs at every call, so its local variables start afresh each time."""
    run, state, arguments = _sandbox(ctx, readonly, check, limits, keys, argv, code, pool)
    run.on_keyless = on_keyless
    reply = _function_reply(state, run, name, code, keys, argv, arguments, limits)
    if pool is not None:  # not reached when the run raised: that state is dropped
        pool.release(state)
    return reply


def _function_reply(
    state: LuaState,
    run: _Run,
    name: bytes,
    code: bytes,
    keys: Sequence[bytes],
    argv: Sequence[bytes],
    arguments: int,
    limits: ScriptLimits,
) -> Reply:
    """`run_function`'s run in `state`."""
    chunk, problem = state.compile_cached(_without_shebang(code), b"@user_function")
    if chunk is None:
        return ErrorReply(f"ERR Error compiling function: {problem.decode('utf-8', 'replace')}")
    try:
        state.start_load(chunk, b"@user_function")
        failed = load_error(state, state.xpcall(chunk, state.handler))
        if failed is not None:
            return failed
        if not state.room(arguments):
            raise CommandError(memory_error(limits))
        lua_keys, lua_argv = state.table(list(keys)), state.table(list(argv))
        found = state.start_function(name, lua_keys, lua_argv)
        if not isinstance(found, tuple):
            return ErrorReply("ERR Function not found")
        function, flags = found
        run.readonly = run.readonly or b"no-writes" in flags.split(b",")
        reply = _outcome(state, function, name.decode("utf-8", "replace"), run.resp_of)
    except lua51.LuaMemoryError as exc:
        raise CommandError(memory_error(limits)) from exc
    except lua51.LuaError as exc:
        if state.spent:
            raise CommandError(budget_error(limits)) from exc
        reply = ErrorReply(f"ERR Error running function: {_first_line(exc)}")
    finally:
        state.stop()
    if run.strayed is not None:
        raise CommandError(run.strayed)
    if state.out_of_memory or _out_of_memory(reply):
        raise CommandError(memory_error(limits))
    if state.spent:
        raise CommandError(budget_error(limits))
    return reply


def _sandbox(
    ctx: Ctx,
    readonly: bool,
    check: Checker | None,
    limits: ScriptLimits,
    keys: Sequence[bytes],
    argv: Sequence[bytes],
    code: bytes,
    pool: StatePool | None,
) -> tuple[_Run, LuaState, int]:
    """A Lua state for one script or function call (from `pool`, else a new one), with
    room checked for its arguments and its code: the run, the state, and what the
    arguments weigh."""
    run = _Run(ctx, readonly, check=check)
    if confined(ctx.db.scope):
        run.declared = frozenset(keys)
    rand = Rand48(ctx.rng.getrandbits(32))
    arguments = sum(len(a) for a in (*keys, *argv)) + 64 * (len(keys) + len(argv) + 2)
    if arguments > limits.memory:
        raise CommandError(memory_error(limits))
    state = new_state(limits, run, rand) if pool is None else pool.acquire(limits, run, rand)
    run.state = state
    if not state.room(arguments + len(code) * 8):
        raise CommandError(memory_error(limits))
    return run, state, arguments


def _outcome(state: LuaState, function: Any, sha: str, resp: Callable[[], int]) -> Reply:
    """Run the compiled script under the hook; its reply (conversions included: a
    returned table's metamethods still run under the budget)."""
    outcome = state.xpcall(function, state.handler)
    ok, result = outcome[:2] if isinstance(outcome, tuple) else (outcome, None)
    if not state.room(0):  # reading a table pushes its keys: keep room for them
        return ErrorReply("ERR not enough memory")
    return lua_to_reply(result, resp()) if ok else _error_reply(result, sha)


def _first_line(exc: Exception) -> str:
    return str(exc).split("\n", 1)[0]


def _out_of_memory(reply: Reply) -> bool:
    """Whether the script died of the Lua memory limit (Lua's own "not enough memory")."""
    return isinstance(reply, ErrorReply) and (
        reply.message.startswith("ERR not enough memory")
        or reply.message.startswith("ERR error in error handling")
    )


def _without_shebang(body: bytes) -> bytes:
    """The body Lua compiles: a shebang line becomes a comment, so line numbers stay."""
    return b"--" + body[2:] if body.startswith(b"#!") else body


def _error_reply(error: Any, sha: str) -> ErrorReply:
    """Redis 7.0's reply to a script that raised `error` (the handler's table)."""
    if isinstance(error, bytes):  # the handler itself failed ("error in error handling")
        return ErrorReply("ERR " + error.decode("utf-8", "replace"))
    if lua51.lua_type(error) != "table" or not isinstance(error[b"err"], bytes):
        return ErrorReply(f"ERR Error running script (call to {sha}): unknown error")
    text = error[b"err"].replace(b"\r", b" ").replace(b"\n", b" ")
    message = text.decode("utf-8", "surrogateescape")
    source, line = error[b"source"], error[b"line"]
    if isinstance(source, bytes) and isinstance(line, int | float):
        where = source.decode("utf-8", "replace")
        return ErrorReply(f"{message} script: {sha}, on {where}:{int(line)}.")
    return ErrorReply(message)
