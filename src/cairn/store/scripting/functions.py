"""FUNCTION libraries (Redis 7.0): parsing a library, the library table, and FUNCTION's
subcommands over it.

Theory of operation. A library is its code: ``#!lua name=<lib>`` then Lua whose top-level
code calls `redis.register_function`. `load_library` runs that code once in a fresh
sandbox (`sandbox.PRELUDE`'s load mode: only the library API is visible) to check it and
learn its functions, names, flags and descriptions. `Libraries` is a node's table of them,
by name, with the `version` of the cluster's table it holds.

Libraries are cluster state. A FUNCTION subcommand that changes the table (LOAD, DELETE,
FLUSH, RESTORE) is computed here into the whole new table (`Change`: the (name, code) pairs
and the reply to give once it applies); the node proposes it to the placement group, which
applies it only if its table is still at the version the change started from (another
node's change meanwhile: the client is told to retry) and pushes the new table to every
node (`Libraries.adopt`). Without a proposer (a single store, the tests' harness) the change
applies at once. The libraries live in the placement metadata, so they survive restarts and
snapshots like ACL users.

FCALL does not run from this table on the replicas: the node that receives it looks the
function up here and hands the library's code to the region with the call (see
`front.FunctionFront`), so the replicated entry carries everything the run needs and every
replica runs the same code whatever table it holds at that moment.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import lupa.lua51 as lua51

from cairn.resp.reply import (
    NULL,
    OK,
    Array,
    Bulk,
    ErrorReply,
    Integer,
    Map,
    Reply,
    Set,
    SimpleString,
)
from cairn.store.glob import stringmatch
from cairn.store.rdb import BadPayloadError, Reader, encode_string, verify_footer, with_footer
from cairn.store.scripting.sandbox import DEFAULT_LIMITS, Rand48, ScriptLimits, new_state

MAX_LIBRARIES = 10_000
"""Libraries the cluster holds at most (each travels in every push of the table)."""
MAX_TOTAL_CODE = 16 * 1024 * 1024
"""Bytes of library code the cluster holds at most (the table lives in the placement
metadata and is pushed whole to every node)."""

FUNCTION_OPCODE = 245
"""RDB_OPCODE_FUNCTION2: one library's code in a FUNCTION DUMP payload."""

_NAME = re.compile(rb"[A-Za-z0-9_]+\Z")
_BAD_NAME = (
    "ERR Library names can only contain letters, numbers, or underscores(_) and must be "
    "at least one character long"
)
NOT_FOUND = ErrorReply("ERR Function not found")
TOO_MANY = ErrorReply(
    f"ERR Cairn holds at most {MAX_LIBRARIES} libraries and {MAX_TOTAL_CODE} bytes of library code"
)


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """One registered function: its name, description (None: none given) and flags (in
    Redis' order: no-writes, allow-oom, allow-stale, no-cluster, allow-cross-slot-keys)."""

    name: str
    description: bytes | None
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Library:
    """A loaded library: its name, whole code (shebang included) and functions."""

    name: str
    code: bytes
    functions: tuple[FunctionInfo, ...]


@dataclass(frozen=True, slots=True)
class Change:
    """A FUNCTION subcommand's new table, to apply if the table is still at `base`; then
    the client gets `reply`."""

    base: int
    items: tuple[tuple[str, bytes], ...]
    reply: Reply


def parse_metadata(code: bytes) -> str | ErrorReply:
    """The library name of `code`'s shebang line, or Redis 7.0's error."""
    if not code.startswith(b"#!"):
        return ErrorReply("ERR Missing library metadata")
    end = code.find(b"\n")
    if end < 0:
        return ErrorReply("ERR Invalid library metadata")
    parts = code[:end].split()
    if not parts:
        return ErrorReply("ERR Invalid library metadata")
    name: bytes | None = None
    for part in parts[1:]:
        if part[:5].lower() == b"name=":
            if name is not None:
                return ErrorReply(
                    "ERR Invalid metadata value, name argument was given multiple times"
                )
            name = part[5:]
            continue
        return ErrorReply(f"ERR Invalid metadata value given: {_text(part)}")
    if name is None:
        return ErrorReply("ERR Library name was not given")
    if not _NAME.match(name):
        return ErrorReply(_BAD_NAME)
    engine = parts[0][2:]
    if engine.lower() != b"lua":
        return ErrorReply(f"ERR Engine '{_text(engine)}' not found")
    return name.decode()


def load_library(code: bytes, limits: ScriptLimits = DEFAULT_LIMITS) -> Library | ErrorReply:
    """Check library `code` by running its top-level code; the library, or the error
    FUNCTION LOAD gives."""
    from cairn.store.scripting.cache import _NoCalls
    from cairn.store.scripting.engine import load_error

    name = parse_metadata(code)
    if isinstance(name, ErrorReply):
        return name
    state = new_state(limits, _NoCalls(), Rand48())
    if not state.room(len(code) * 8):
        return ErrorReply(f"ERR library too large to load within {limits.memory} bytes")
    chunk, problem = state.compile(b"--" + code[2:], b"@user_function")
    if chunk is None:
        return ErrorReply(f"ERR Error compiling function: {_text(problem)}")
    try:
        state.start_load(chunk, b"@user_function")
        failed = load_error(state, state.xpcall(chunk, state.handler))
        if state.spent or state.out_of_memory:
            return ErrorReply("ERR Error registering functions: FUNCTION LOAD exceeded the budget")
        if failed is not None:
            return failed
        found = state.registrations()
        functions = tuple(_info(found[i]) for i in range(1, len(found) + 1))
    except lua51.LuaError:
        return ErrorReply("ERR Error registering functions: FUNCTION LOAD exceeded the budget")
    finally:
        state.stop()
    if not functions:
        return ErrorReply("ERR No functions registered")
    return Library(name, code, functions)


def _info(entry: object) -> FunctionInfo:
    name, description, flags = entry[1], entry[2], entry[3]  # type: ignore[index]
    return FunctionInfo(
        name.decode("utf-8", "surrogateescape"),
        description if isinstance(description, bytes) else None,
        tuple(f for f in flags.decode().split(",") if f),
    )


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


class Libraries:
    """A node's table of libraries (module docstring), with the cluster version it holds."""

    def __init__(self, limits: ScriptLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.version = 0
        self.libraries: dict[str, Library] = {}
        self._functions: dict[str, tuple[Library, FunctionInfo]] = {}

    def function(self, name: bytes) -> tuple[Library, FunctionInfo] | None:
        """The library and function FCALL `name` names (any case), or None."""
        return self._functions.get(name.decode("utf-8", "surrogateescape").lower())

    def adopt(self, version: int, items: Sequence[tuple[str, bytes]]) -> None:
        """Take the cluster's table at `version` (ignored unless newer)."""
        if version <= self.version:
            return
        old = {lib.name: lib for lib in self.libraries.values()}
        libraries: dict[str, Library] = {}
        for name, code in items:
            known = old.get(name)
            lib = known if known is not None and known.code == code else load_library(code)
            if isinstance(lib, Library):  # checked when loaded: only a different build fails
                libraries[name] = lib
        self.version = version
        self._set(libraries)

    def _set(self, libraries: dict[str, Library]) -> None:
        self.libraries = libraries
        self._functions = {
            f.name.lower(): (lib, f) for lib in libraries.values() for f in lib.functions
        }

    def apply(self, change: Change) -> Reply:
        """Apply `change` here (no placement group: a single store)."""
        self.adopt(self.version + 1, change.items)
        return change.reply

    # -- FUNCTION subcommands --------------------------------------------------------------

    def load(self, args: Sequence[bytes]) -> Change | ErrorReply:
        """FUNCTION LOAD [REPLACE] code."""
        replace, at = False, 0
        while at < len(args) - 1:
            if args[at].lower() != b"replace":
                return ErrorReply(f"ERR Unknown option given: {_text(args[at])}")
            replace, at = True, at + 1
        if at >= len(args):
            return ErrorReply("ERR Function code is missing")
        lib = load_library(args[at], self.limits)
        if isinstance(lib, ErrorReply):
            return lib
        if lib.name in self.libraries and not replace:
            return ErrorReply(f"ERR Library '{lib.name}' already exists")
        merged = self._join({k: v for k, v in self.libraries.items() if k != lib.name}, [lib])
        if isinstance(merged, ErrorReply):
            return merged
        return self._change(merged, Bulk(lib.name.encode()))

    def _join(
        self, current: dict[str, Library], new: Sequence[Library]
    ) -> dict[str, Library] | ErrorReply:
        taken = {f.name.lower() for lib in current.values() for f in lib.functions}
        out = dict(current)
        for lib in new:
            for f in lib.functions:
                if f.name.lower() in taken:
                    return ErrorReply(f"ERR Function {f.name} already exists")
                taken.add(f.name.lower())
            out[lib.name] = lib
        return out

    def _change(self, libraries: dict[str, Library], reply: Reply) -> Change | ErrorReply:
        items = tuple((lib.name, lib.code) for lib in libraries.values())
        if len(items) > MAX_LIBRARIES or sum(len(c) for _, c in items) > MAX_TOTAL_CODE:
            return TOO_MANY
        return Change(self.version, items, reply)

    def delete(self, name: bytes) -> Change | ErrorReply:
        """FUNCTION DELETE library."""
        text = _text(name)
        if text not in self.libraries:
            return ErrorReply("ERR Library not found")
        return self._change({k: v for k, v in self.libraries.items() if k != text}, OK)

    def flush(self, args: Sequence[bytes]) -> Change | ErrorReply:
        """FUNCTION FLUSH [ASYNC|SYNC]."""
        if args and (len(args) > 1 or args[0].lower() not in (b"async", b"sync")):
            return ErrorReply("ERR FUNCTION FLUSH only supports SYNC|ASYNC option")
        return self._change({}, OK)

    def listing(self, args: Sequence[bytes]) -> Reply:
        """FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE]."""
        with_code, pattern, at = False, None, 0
        while at < len(args):
            word = args[at].lower()
            if not with_code and word == b"withcode":
                with_code = True
            elif pattern is None and word == b"libraryname":
                if at >= len(args) - 1:
                    return ErrorReply("ERR library name argument was not given")
                at += 1
                pattern = args[at]
            else:
                return ErrorReply(f"ERR Unknown argument {_text(args[at])}")
            at += 1
        return Array(
            tuple(
                _describe(lib, with_code)
                for lib in self.libraries.values()
                if pattern is None or stringmatch(pattern, lib.name.encode(), nocase=True)
            )
        )

    def stats(self) -> Reply:
        """FUNCTION STATS: no script ever runs across replies in Cairn."""
        counts = Map(
            (
                (Bulk(b"libraries_count"), Integer(len(self.libraries))),
                (Bulk(b"functions_count"), Integer(len(self._functions))),
            )
        )
        engines = Map(((Bulk(b"LUA"), counts),))
        return Map(((Bulk(b"running_script"), NULL), (Bulk(b"engines"), engines)))

    def dump(self) -> Reply:
        """FUNCTION DUMP: Redis' payload (each library's code, the RDB version, CRC64)."""
        body = b"".join(
            bytes((FUNCTION_OPCODE,)) + encode_string(lib.code) for lib in self.libraries.values()
        )
        return Bulk(with_footer(body))

    def restore(self, args: Sequence[bytes]) -> Change | ErrorReply:
        """FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE]."""
        policy = args[1].lower() if len(args) > 1 else b"append"
        if len(args) > 2 or policy not in (b"flush", b"append", b"replace"):
            return ErrorReply(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE."
            )
        payload = args[0]
        if len(payload) < 10 or not verify_footer(payload):
            return ErrorReply("ERR DUMP payload version or checksum are wrong")
        loaded = self._read_payload(payload[:-10])
        if isinstance(loaded, ErrorReply):
            return loaded
        if policy == b"flush":
            current: dict[str, Library] = {}
        else:
            current = dict(self.libraries)
            for lib in loaded:
                if lib.name in current and policy == b"append":
                    return ErrorReply(f"ERR Library {lib.name} already exists")
                current.pop(lib.name, None)
        merged = self._join(current, loaded)
        return merged if isinstance(merged, ErrorReply) else self._change(merged, OK)

    def _read_payload(self, body: bytes) -> list[Library] | ErrorReply:
        reader, found = Reader(body), list[Library]()
        try:
            while reader.left > 0:
                if reader.take(1)[0] != FUNCTION_OPCODE:
                    return ErrorReply("ERR given type is not a function")
                lib = load_library(reader.string(), self.limits)
                if isinstance(lib, ErrorReply):
                    return lib
                if any(lib.name == other.name for other in found):
                    return ErrorReply(f"ERR Library '{lib.name}' already exists")
                found.append(lib)
        except (BadPayloadError, IndexError, ValueError):
            return ErrorReply("ERR failed loading the given functions payload")
        return found


def _describe(lib: Library, with_code: bool) -> Reply:
    functions = tuple(
        Map(
            (
                (Bulk(b"name"), Bulk(f.name.encode("utf-8", "surrogateescape"))),
                (Bulk(b"description"), NULL if f.description is None else Bulk(f.description)),
                (Bulk(b"flags"), Set(tuple(SimpleString(flag) for flag in f.flags))),
            )
        )
        for f in lib.functions
    )
    pairs: tuple[tuple[Reply, Reply], ...] = (
        (Bulk(b"library_name"), Bulk(lib.name.encode())),
        (Bulk(b"engine"), Bulk(b"LUA")),
        (Bulk(b"functions"), Array(functions)),
    )
    if with_code:
        pairs += ((Bulk(b"library_code"), Bulk(lib.code)),)
    return Map(pairs)
