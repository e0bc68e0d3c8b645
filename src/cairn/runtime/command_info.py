"""COMMAND COUNT / INFO / DOCS / LIST replies, for any command table entry.

Clients read these at connect time (redis-cli for hints, redis-py's cluster client for key
positions), so the shapes follow Redis 7: an INFO entry is [name, arity, flags, first key,
last key, step, ACL categories, tips, key specs, subcommands].
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from cairn.resp.reply import (
    Array,
    Bulk,
    ErrorReply,
    Integer,
    Map,
    NullArray,
    Reply,
    Set,
    SimpleString,
)
from cairn.store.commands.spec import positional_keys
from cairn.store.glob import stringmatch
from cairn.store.scripting.subcommands import SUBCOMMANDS

SYNTAX_ERROR = ErrorReply("ERR syntax error")
NO_KEYS = ErrorReply("ERR The command has no key arguments")


class CommandMeta(Protocol):
    """What COMMAND needs to know of a command (store and server commands alike)."""

    @property
    def name(self) -> str: ...
    @property
    def arity(self) -> int: ...
    @property
    def first_key(self) -> int: ...
    @property
    def last_key(self) -> int: ...
    @property
    def step(self) -> int: ...
    @property
    def group(self) -> str: ...
    @property
    def since(self) -> str: ...
    @property
    def complexity(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def acl_categories(self) -> tuple[str, ...]: ...
    @property
    def tips(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class ServedCommand:
    """What COMMAND knows of a command the node serves itself before routing (MULTI,
    WATCH, IDEMPOTENT ...): metadata only; the node's front end runs it."""

    name: str
    arity: int
    flags: tuple[str, ...]
    group: str
    since: str
    summary: str
    acl_categories: tuple[str, ...]
    complexity: str = "O(1)"
    first_key: int = 0
    last_key: int = 0
    step: int = 0
    tips: tuple[str, ...] = ()
    key_finder: Callable[[Sequence[bytes]], list[bytes]] | None = None

    def keys(self, argv: Sequence[bytes]) -> list[bytes]:
        """The key arguments of `argv` (name included), as COMMAND GETKEYS lists them."""
        if self.key_finder is not None:
            return self.key_finder(argv)
        return positional_keys(argv, self.first_key, self.last_key, self.step)


_FLAG_ORDER = (
    "write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript", "blocking",
    "loading", "stale", "skip_monitor", "skip_slowlog", "asking", "fast", "no_auth",
    "may_replicate", "no_mandatory_keys", "no_async_loading", "no_multi", "movablekeys",
    "allow_busy",
)  # fmt: skip
"""Redis 7.0 lists a command's flags in this order (`addReplyCommandFlags`)."""
_FLAG_RANK = {name: i for i, name in enumerate(_FLAG_ORDER)}


def flag_names(meta: object) -> list[str]:
    """The command's flags as COMMAND INFO spells and orders them."""
    flags = getattr(meta, "flags", ())
    names = {getattr(f, "value", f) for f in flags}
    return sorted(names, key=lambda n: (_FLAG_RANK.get(n, len(_FLAG_RANK)), n))


def info_entry(meta: CommandMeta) -> Reply:
    """One COMMAND INFO entry."""
    return Array(
        (
            Bulk(meta.name.lower().encode()),
            Integer(meta.arity),
            Set(tuple(SimpleString(f) for f in flag_names(meta))),
            Integer(meta.first_key),
            Integer(meta.last_key),
            Integer(meta.step),
            Set(tuple(SimpleString(c) for c in meta.acl_categories)),
            Array(tuple(Bulk(t.encode()) for t in meta.tips)),
            Array(()),
            Array(tuple(info_entry(sub) for sub in SUBCOMMANDS.get(meta.name.lower(), ()))),
        )
    )


def docs_entry(meta: CommandMeta) -> Reply:
    """One COMMAND DOCS entry (without argument descriptions; with the subcommands')."""
    fields: tuple[tuple[Reply, Reply], ...] = (
        (Bulk(b"summary"), Bulk(meta.summary.encode())),
        (Bulk(b"since"), Bulk(meta.since.encode())),
        (Bulk(b"group"), Bulk(meta.group.encode())),
        (Bulk(b"complexity"), Bulk(meta.complexity.encode())),
    )
    subs = SUBCOMMANDS.get(meta.name.lower(), ())
    if subs:
        docs = tuple((Bulk(sub.name.encode()), docs_entry(sub)) for sub in subs)
        fields += ((Bulk(b"subcommands"), Map(docs)),)
    return Map(fields)


def _find(table: Mapping[str, CommandMeta], name: str) -> CommandMeta | None:
    """Command `name`, or subcommand `container|sub` of a container that lists it."""
    if name in table:
        return table[name]
    container, _, _ = name.partition("|")
    if container not in table:
        return None
    return next((sub for sub in SUBCOMMANDS.get(container, ()) if sub.name == name), None)


def command_reply(table: Mapping[str, CommandMeta], args: Sequence[bytes]) -> Reply | None:
    """The reply to COMMAND [subcommand ...]; None for an unknown subcommand."""
    if not args:
        return Array(tuple(info_entry(table[n]) for n in sorted(table)))
    sub = args[0].lower()
    rest = [a.decode("utf-8", "replace").lower() for a in args[1:]]
    if sub == b"count" and not rest:
        return Integer(len(table))
    if sub == b"list":
        return list_reply(table, args[1:])
    if sub == b"getkeys":
        return getkeys_reply(table, args[1:])
    if sub == b"info":
        found = [_find(table, n) for n in rest or sorted(table)]
        return Array(tuple(NullArray() if m is None else info_entry(m) for m in found))
    if sub == b"docs":
        metas = [m for m in (_find(table, n) for n in rest or sorted(table)) if m is not None]
        return Map(tuple((Bulk(m.name.lower().encode()), docs_entry(m)) for m in metas))
    return None


def list_reply(table: Mapping[str, CommandMeta], options: Sequence[bytes]) -> Reply:
    """COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]: no module
    is loaded, so a MODULE filter matches nothing; ACLCAT matches a category without its
    `@`, case-insensitively; PATTERN is a case-insensitive glob on the name."""
    names = sorted(table)
    if options:
        if len(options) != 3 or options[0].lower() != b"filterby":
            return SYNTAX_ERROR
        kind, value = options[1].lower(), options[2]
        if kind == b"module":
            names = []
        elif kind == b"aclcat":
            wanted = "@" + value.decode("utf-8", "replace").lower()
            names = [n for n in names if wanted in table[n].acl_categories]
        elif kind == b"pattern":
            names = [n for n in names if stringmatch(value, n.encode(), nocase=True)]
        else:
            return SYNTAX_ERROR
    return Array(tuple(Bulk(n.lower().encode()) for n in names))


def getkeys_reply(table: Mapping[str, CommandMeta], argv: Sequence[bytes]) -> Reply:
    """COMMAND GETKEYS command [arg ...]: the key arguments, as the command table finds
    them (Redis 7.0's errors for an unknown command, a wrong arity, no keys)."""
    if len(argv) < 2:
        return ErrorReply("ERR wrong number of arguments for 'command|getkeys' command")
    meta = table.get(argv[0].decode("utf-8", "replace").lower())
    if meta is None:
        return ErrorReply("ERR Invalid command specified")
    finder = getattr(meta, "keys", None)
    if finder is None or (meta.first_key == 0 and getattr(meta, "key_finder", None) is None):
        return NO_KEYS  # before the arity check, as Redis 7.0 does
    arity = meta.arity
    if len(argv) != arity if arity >= 0 else len(argv) < -arity:
        return ErrorReply("ERR Invalid number of arguments specified for command")
    keys: list[bytes] = finder(argv)
    if not keys:
        return NO_KEYS
    return Array(tuple(Bulk(k) for k in keys))
