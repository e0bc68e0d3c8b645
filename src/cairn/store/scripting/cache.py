"""The script cache and the node's script front: SCRIPT LOAD/EXISTS/FLUSH/KILL/HELP, and
EVALSHA turned into EVAL before it is routed.

Theory of operation. A node keeps its own cache of scripts (`ScriptCache`, sha1 → body),
as each Redis Cluster node does: EVAL adds its body, SCRIPT LOAD adds one without running
it, SCRIPT FLUSH empties it. `ScriptFront.front(argv)` is what the node asks first about
a client's command: EVAL/EVAL_RO pass on unchanged (the body is cached on the way);
EVALSHA/EVALSHA_RO become EVAL/EVAL_RO with the cached body, or answer Redis' -NOSCRIPT
when this node does not know the sha; SCRIPT is answered here. So the entry replicated in
the Raft log always carries the whole body: no replica depends on its own cache, and a
cache lost (restart, SCRIPT FLUSH, another node) only costs a -NOSCRIPT, which clients
(redis-py's `Script`, `register_script`) answer by loading the script again on the same
connection, exactly as against Redis Cluster.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from cairn.resp.reply import OK, Array, Bulk, ErrorReply, Integer, Reply, SimpleString
from cairn.store.commands.spec import text_of
from cairn.store.scripting.engine import compile_error
from cairn.store.scripting.front import TAIL, Deferred, FunctionFront
from cairn.store.scripting.functions import Libraries
from cairn.store.scripting.sandbox import (
    DEFAULT_LIMITS,
    Rand48,
    ScriptError,
    ScriptLimits,
    new_state,
)

NOSCRIPT = ErrorReply("NOSCRIPT No matching script. Please use EVAL.")
NOTBUSY = ErrorReply("NOTBUSY No scripts in execution right now.")
FLUSH_OPTION = ErrorReply("ERR SCRIPT FLUSH only support SYNC|ASYNC option")

MAX_SCRIPTS = 10_000
"""Scripts a node's cache holds at most; the oldest loaded is dropped first (a client
using it gets -NOSCRIPT and loads it again)."""
MAX_CACHE_BYTES = 64 * 1024 * 1024
"""Bytes of script bodies a node's cache holds at most (same eviction)."""

_HELP = (
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
)
"""SCRIPT HELP as Redis 7.0 prints it, without DEBUG (Cairn has no Lua debugger)."""

FRONT_COMMANDS = frozenset(
    {
        "eval",
        "eval_ro",
        "evalsha",
        "evalsha_ro",
        "script",
        "fcall",
        "fcall_ro",
        "function",
        "idempotent",
    }
)
"""The commands `ScriptFront.front` looks at (lower-case names)."""

_WRAPPED = frozenset({b"eval", b"eval_ro", b"evalsha", b"evalsha_ro", b"fcall", b"fcall_ro"})
"""Script commands IDEMPOTENT may wrap: fronted as if sent alone."""
_SCRIPT_ARITY = {"load": 3, "exists": -3, "flush": -2, "kill": 2, "help": 2}


def sha1_hex(body: bytes) -> str:
    """The SHA1 digest of a script body in lower-case hex: its name in the cache."""
    return hashlib.sha1(body).hexdigest()


class ScriptCache:
    """sha1 → body, bounded by `MAX_SCRIPTS` and `MAX_CACHE_BYTES` (oldest out first)."""

    def __init__(self, max_scripts: int = MAX_SCRIPTS, max_bytes: int = MAX_CACHE_BYTES) -> None:
        self._bodies: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self.max_scripts = max_scripts
        self.max_bytes = max_bytes

    def __len__(self) -> int:
        return len(self._bodies)

    def add(self, body: bytes) -> str:
        """Cache `body`; its sha1."""
        sha = sha1_hex(body)
        if sha not in self._bodies:
            self._bodies[sha] = body
            self._bytes += len(body)
            while len(self._bodies) > self.max_scripts or self._bytes > self.max_bytes:
                _, old = self._bodies.popitem(last=False)
                self._bytes -= len(old)
        return sha

    def get(self, sha: bytes) -> bytes | None:
        """The body cached under `sha` (any case), or None."""
        if len(sha) != 40:
            return None
        return self._bodies.get(sha.lower().decode("ascii", "replace"))

    def flush(self) -> None:
        """Forget every script."""
        self._bodies.clear()
        self._bytes = 0


class ScriptFront:
    """A node's answer to scripting commands before routing (module docstring)."""

    def __init__(self, cache: ScriptCache | None = None, limits: ScriptLimits = DEFAULT_LIMITS):
        self.cache = cache if cache is not None else ScriptCache()
        self.limits = limits
        self.functions = FunctionFront(Libraries(limits))
        """FUNCTION and FCALL (`front.FunctionFront`)."""

    def front(self, argv: list[bytes], rules: bytes = b"") -> list[bytes] | Reply | Deferred:
        """`argv` to route and run (EVALSHA made EVAL, FCALL given its library), or the
        reply to answer now (`Deferred`: later). `rules`: the caller's canonical ACL rules
        when it may not run everything (each `redis.call` is then checked against them)."""
        name = argv[0].lower()
        if name in (b"eval", b"eval_ro") and len(argv) >= 3:
            self.cache.add(argv[1])
            return [*argv, TAIL, b"", rules] if rules else argv
        if name in (b"evalsha", b"evalsha_ro") and len(argv) >= 3:
            body = self.cache.get(argv[1])
            if body is None:
                return NOSCRIPT
            tail = [TAIL, b"", rules] if rules else []
            return [b"eval" if name == b"evalsha" else b"eval_ro", body, *argv[2:], *tail]
        if name in (b"fcall", b"fcall_ro") and len(argv) >= 3:
            return self.functions.fcall(argv, rules)
        if name == b"script" and len(argv) >= 2:
            return self.script(argv[1:])
        if name == b"function" and len(argv) >= 2:
            return self.functions.function(argv[1:])
        if name == b"idempotent" and len(argv) >= 3 and argv[2].lower() in _WRAPPED:
            inner = self.front(argv[2:], rules)  # IDEMPOTENT <id> EVAL ...: the script's
            return [*argv[:2], *inner] if isinstance(inner, list) else inner
        return argv

    def script(self, args: Sequence[bytes]) -> Reply:
        """SCRIPT <subcommand> ...: answered by this node (its own cache)."""
        sub = args[0].lower().decode("utf-8", "replace")
        arity = _SCRIPT_ARITY.get(sub)
        if arity is None:
            return ErrorReply(f"ERR unknown subcommand '{text_of(args[0])}'. Try SCRIPT HELP.")
        if not (len(args) + 1 == arity or (arity < 0 and len(args) + 1 >= -arity)):
            return ErrorReply(f"ERR wrong number of arguments for 'script|{sub}' command")
        if sub == "load":
            return self._load(args[1])
        if sub == "exists":
            return Array(tuple(Integer(int(self.cache.get(s) is not None)) for s in args[1:]))
        if sub == "flush":
            if len(args) > 2 or (len(args) == 2 and args[1].lower() not in (b"sync", b"async")):
                return FLUSH_OPTION
            self.cache.flush()
            return OK
        if sub == "kill":
            return NOTBUSY
        return Array(tuple(SimpleString(line) for line in _HELP))

    def _load(self, body: bytes) -> Reply:
        problem = check_script(body, self.limits)
        if problem is not None:
            return problem
        return Bulk(self.cache.add(body).encode())


def check_script(body: bytes, limits: ScriptLimits = DEFAULT_LIMITS) -> ErrorReply | None:
    """The error SCRIPT LOAD gives for `body` (a bad shebang, a compile error), or None."""
    from cairn.store.scripting.commands import parse_shebang

    flags = parse_shebang(body)
    if isinstance(flags, ErrorReply):
        return flags
    state = new_state(limits, _NoCalls(), Rand48())
    if not state.room(len(body) * 8):  # compiling needs room: never fail outside Lua
        return ErrorReply(f"ERR script too large to compile within {limits.memory} bytes")
    source = b"--" + body[2:] if body.startswith(b"#!") else body
    function, problem = state.compile(source)
    return compile_error(problem) if function is None else None


class _NoCalls:
    """The `redis` library of a state that only compiles (nothing runs in it)."""

    def call(self, *args: Any) -> Any:
        """Never called: nothing runs."""
        raise ScriptError(b"ERR scripts do not run at SCRIPT LOAD")

    pcall = call
    setresp = call
    log = call
