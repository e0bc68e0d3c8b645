"""EVAL, EVAL_RO, EVALSHA, EVALSHA_RO and SCRIPT: the scripting command table entries.

EVAL is a write, run once by the region's leader and replicated by its effects
(`effects`; these handlers are what that run, and a replayed entry, call), EVAL_RO a read
served by the region's leader after its lease or a ReadIndex, with writes refused. A script
marked ``#!lua flags=no-writes`` sent with EVAL runs with writes refused as in Redis, and,
writing nothing, needs no entry. EVAL is routed by its declared keys (all in one region, else
-CROSSSLOT as Redis Cluster answers); a script with no keys runs in the region of slot 0.

EVALSHA and SCRIPT never reach the store through a node: the node's `ScriptFront` turns
EVALSHA into EVAL with the cached body (or answers -NOSCRIPT) and answers SCRIPT from its
own cache. Their entries here carry the metadata (COMMAND INFO, key positions for cluster
clients); their handlers answer what a store without a cache can: -NOSCRIPT, and an error
for SCRIPT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cairn.resp.reply import ErrorReply, Reply
from cairn.store.commands.define import cmd, numkeys_keys
from cairn.store.commands.errors import CommandError
from cairn.store.commands.spec import NOT_INTEGER, CommandSpec, Ctx, Flag
from cairn.store.numbers import parse_ll
from cairn.store.scripting.acl import script_checker
from cairn.store.scripting.cache import NOSCRIPT, sha1_hex
from cairn.store.scripting.engine import Keyless, run_function, run_script
from cairn.store.scripting.front import split_tail
from cairn.store.scripting.functions import NOT_FOUND
from cairn.store.scripting.sandbox import DEFAULT_LIMITS, ScriptLimits

if TYPE_CHECKING:
    from cairn.store.scripting.pool import StatePool

SHEBANG_FLAGS = frozenset(
    {"no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"}
)
"""The flags a ``#!lua flags=...`` line may name (Redis 7.0's). Only no-writes changes
anything in Cairn: memory, staleness and slots are decided by the region, not the script."""

_NEGATIVE_KEYS = ErrorReply("ERR Number of keys can't be negative")
_TOO_MANY_KEYS = ErrorReply("ERR Number of keys can't be greater than number of args")


def parse_shebang(body: bytes) -> frozenset[str] | ErrorReply:
    """The flags of `body`'s ``#!lua`` line (empty when it has none), or Redis 7.0's error
    for a malformed one."""
    if not body.startswith(b"#!"):
        return frozenset()
    end = body.find(b"\n")
    if end < 0:
        return ErrorReply("ERR Invalid script shebang")
    parts = body[:end].decode("utf-8", "surrogateescape").split()
    if parts[0] != "#!lua":
        return ErrorReply(f"ERR Unexpected engine in script shebang: {parts[0]}")
    flags: set[str] = set()
    for part in parts[1:]:
        if not part.startswith("flags="):
            return ErrorReply(f"ERR Unknown lua shebang option: {part}")
        for flag in part[len("flags=") :].split(","):
            if flag and flag not in SHEBANG_FLAGS:
                return ErrorReply(f"ERR Unexpected flag in script shebang: {flag}")
            flags.add(flag)
    return frozenset(flags)


def _numkeys(args: Sequence[bytes]) -> int:
    """EVAL's key count, checked as Redis 7.0 checks it."""
    count = parse_ll(args[1])
    if count is None:
        raise CommandError(NOT_INTEGER)
    if count > len(args) - 2:
        raise CommandError(_TOO_MANY_KEYS)
    if count < 0:
        raise CommandError(_NEGATIVE_KEYS)
    return count


def evaluate(
    ctx: Ctx,
    args: Sequence[bytes],
    readonly: bool,
    limits: ScriptLimits,
    on_keyless: Keyless | None = None,
    pool: StatePool | None = None,
) -> Reply:
    """EVAL/EVAL_RO script numkeys [key ...] [arg ...] (and the front's tail: `front`);
    `on_keyless`: see `engine.Keyless`, `pool`: the Lua states to reuse (both for a run
    for its effects)."""
    args, _, rules = split_tail(args)
    count = _numkeys(args)
    body = args[0]
    flags = parse_shebang(body)
    if isinstance(flags, ErrorReply):
        return flags
    keys, argv = args[2 : 2 + count], args[2 + count :]
    readonly = readonly or "no-writes" in flags
    check = script_checker(rules)
    return run_script(
        ctx,
        sha1_hex(body),
        body,
        keys,
        argv,
        readonly=readonly,
        limits=limits,
        check=check,
        on_keyless=on_keyless,
        pool=pool,
    )


def _fcall_numkeys(args: Sequence[bytes]) -> int:
    """FCALL's key count, checked as Redis 7.0 checks it."""
    count = parse_ll(args[1])
    if count is None:
        raise CommandError(ErrorReply("ERR Bad number of keys provided"))
    if count > len(args) - 2:
        raise CommandError(_TOO_MANY_KEYS)
    if count < 0:
        raise CommandError(_NEGATIVE_KEYS)
    return count


def function_call(
    ctx: Ctx,
    args: Sequence[bytes],
    readonly: bool,
    on_keyless: Keyless | None = None,
    pool: StatePool | None = None,
) -> Reply:
    """FCALL/FCALL_RO function numkeys [key ...] [arg ...], with the front's tail (the
    library's code and the caller's rules); without one no library is known here.
    `on_keyless`: see `engine.Keyless`, `pool`: the Lua states to reuse (both for a run
    for its effects)."""
    args, code, rules = split_tail(args)
    if code is None:
        return NOT_FOUND
    count = _fcall_numkeys(args)
    keys, argv = args[2 : 2 + count], args[2 + count :]
    return run_function(
        ctx,
        args[0],
        code,
        keys,
        argv,
        readonly=readonly,
        limits=DEFAULT_LIMITS,
        check=script_checker(rules),
        on_keyless=on_keyless,
        pool=pool,
    )


def fcall(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """FCALL function numkeys [key ...] [arg ...]."""
    return function_call(ctx, args, False)


def fcall_ro(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """FCALL_RO function numkeys [key ...] [arg ...]: writes refused."""
    return function_call(ctx, args, True)


def function(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """FUNCTION reaching the store: it is the node's (`front.FunctionFront`)."""
    return ErrorReply("ERR FUNCTION is answered by the node's function table, not by a region")


def eval_(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """EVAL script numkeys [key ...] [arg ...]."""
    return evaluate(ctx, args, False, DEFAULT_LIMITS)


def eval_ro(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """EVAL_RO script numkeys [key ...] [arg ...]: writes refused."""
    return evaluate(ctx, args, True, DEFAULT_LIMITS)


def evalsha(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """EVALSHA reaching the store: the store keeps no cache (the node resolves the sha)."""
    _numkeys(args)
    return NOSCRIPT


def script(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SCRIPT reaching the store: it is the node's (`ScriptFront`)."""
    return ErrorReply("ERR SCRIPT is answered by the node's script cache, not by a region")


_WRITE = frozenset({Flag.WRITE, Flag.NOSCRIPT})
_READ = frozenset({Flag.READONLY, Flag.NOSCRIPT})
_NODE: frozenset[Flag] = frozenset()
"""SCRIPT and FUNCTION have no flags of their own (Redis 7.0: their subcommands have,
`subcommands`); a script may call neither (`engine`'s node-level refusals)."""
_ACL = "@slow @scripting"
_KEYS = numkeys_keys(2)
_NONE = (0, 0, 0)
_DEPENDS = "Depends on the script that is executed."

COMMANDS: tuple[CommandSpec, ...] = (
    cmd("eval", -3, _WRITE, _NONE, ("scripting", "2.6.0", _DEPENDS,
        "Execute a Lua script server side"), _ACL, eval_, key_finder=_KEYS),
    cmd("eval_ro", -3, _READ, _NONE, ("scripting", "7.0.0", _DEPENDS,
        "Execute a read-only Lua script server side"), _ACL, eval_ro, key_finder=_KEYS),
    cmd("evalsha", -3, _WRITE, _NONE, ("scripting", "2.6.0", _DEPENDS,
        "Execute a Lua script server side"), _ACL, evalsha, key_finder=_KEYS),
    cmd("evalsha_ro", -3, _READ, _NONE, ("scripting", "7.0.0", _DEPENDS,
        "Execute a read-only Lua script server side"), _ACL, evalsha, key_finder=_KEYS),
    cmd("script", -2, _NODE, _NONE, ("scripting", "2.6.0", "Depends on subcommand.",
        "A container for Lua scripts management commands"), "@slow", script),
    cmd("fcall", -3, _WRITE, _NONE, ("scripting", "7.0.0", "Depends on the function "
        "that is executed.", "Invoke a function"), _ACL, fcall, key_finder=_KEYS),
    cmd("fcall_ro", -3, _READ, _NONE, ("scripting", "7.0.0", "Depends on the function "
        "that is executed.", "Invoke a read-only function"), _ACL, fcall_ro,
        key_finder=_KEYS),
    cmd("function", -2, _NODE, _NONE, ("scripting", "7.0.0", "Depends on subcommand.",
        "A container for function commands"), "@slow", function),
)  # fmt: skip
