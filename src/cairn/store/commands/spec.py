"""The shape of the command table: `CommandSpec`, the handler context, shared replies.

A `CommandSpec` carries everything the server needs without running the command: arity
and key positions as Redis defines them (COMMAND INFO, cluster routing, Raft routing: a
`write` command is proposed, a `readonly` one served after a ReadIndex), and the metadata
COMMAND DOCS shows. Handlers receive the arguments after the command name.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cairn.resp.reply import ErrorReply, Reply
from cairn.store.db import Db
from cairn.store.encodings import DEFAULT_SETTINGS, ObjectSettings


class Flag(enum.Enum):
    """Command flags, named as COMMAND INFO names them."""

    WRITE = "write"
    READONLY = "readonly"
    DENYOOM = "denyoom"
    FAST = "fast"
    BLOCKING = "blocking"
    MOVABLEKEYS = "movablekeys"
    NOSCRIPT = "noscript"


class Ctx:
    """What a handler runs against: the keyspace view, the command's time, and the
    randomness source for commands whose outcome is random.

    A read's `rng` is the machine's own source. A write's must give every replica the
    same draws (SPOP, SRANDMEMBER inside a script), so it is seeded by the entry's log
    index, and only built when a handler asks for it (most writes never do).

    `settings` are the serving node's OBJECT settings (encoding thresholds, eviction
    policy): only reads look at them, so a replicated write never depends on them.
    """

    __slots__ = ("_rng", "db", "name", "now_ms", "seed", "settings")

    def __init__(
        self,
        db: Db,
        now_ms: int,
        name: str,
        rng: random.Random | None,
        seed: int = 0,
        settings: ObjectSettings = DEFAULT_SETTINGS,
    ) -> None:
        self.db = db
        self.now_ms = now_ms
        self.name = name
        self._rng = rng
        self.seed = seed
        self.settings = settings

    def notify(self, cls: int, event: str, key: bytes) -> None:
        """Report keyspace notification `event` of class `cls` (`cairn.store.notifications`)
        on `key`: Redis's `notifyKeyspaceEvent`, recorded only when the write collects."""
        events = self.db.events
        if events is not None:
            events.append((cls, event, key))

    @property
    def rng(self) -> random.Random:
        """The randomness source (see the class docstring)."""
        if self._rng is None:
            self._rng = random.Random(self.seed)
        return self._rng


Handler = Callable[[Ctx, Sequence[bytes]], Reply]
KeyFinder = Callable[[Sequence[bytes]], list[bytes]]
"""The keys of a command whose key positions depend on its arguments (argv, name included);
never raises: on malformed arguments it returns what it can and the handler reports them."""


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command: its Redis metadata and its handler.

    `arity` counts the command name; a negative arity -N means "at least N". Key positions
    are 1-based argv indexes (`last_key` -1: the last argument; all zero: no keys). A
    command whose keys move with its arguments (a `numkeys` argument, `STORE dest`) has a
    `key_finder` and the MOVABLEKEYS flag; its static positions are Redis' (often zero).
    """

    name: str
    arity: int
    flags: frozenset[Flag]
    first_key: int
    last_key: int
    step: int
    group: str
    since: str
    complexity: str
    summary: str
    handler: Handler
    acl_categories: tuple[str, ...] = ()
    tips: tuple[str, ...] = ()
    key_finder: KeyFinder | None = None

    is_write: bool = field(init=False)
    """Whether the command changes state (is proposed through Raft)."""

    def __post_init__(self) -> None:
        # A field, not a property over `flags`: it is asked several times per command.
        object.__setattr__(self, "is_write", Flag.WRITE in self.flags)

    def arity_ok(self, argc: int) -> bool:
        """Whether `argc` arguments (name included) satisfy the arity."""
        return argc == self.arity if self.arity >= 0 else argc >= -self.arity

    def keys(self, argv: Sequence[bytes]) -> list[bytes]:
        """The key arguments of `argv` (name included), as COMMAND GETKEYS lists them."""
        if self.key_finder is not None:
            return self.key_finder(argv)
        return positional_keys(argv, self.first_key, self.last_key, self.step)


def internal_write(
    name: str,
    arity: int,
    handler: Handler,
    key_finder: KeyFinder | None,
    group: str,
    summary: str,
    complexity: str = "O(N)",
    *,
    every_argument_a_key: bool = False,
) -> CommandSpec:
    """The spec of an internal write command (transactions, idempotency, effects ...):
    never in `COMMANDS`, so no client can send it; routed by `key_finder`'s keys, or by
    every argument with `every_argument_a_key` (neither: keyless)."""
    step = 1 if every_argument_a_key else 0
    return CommandSpec(
        name=name,
        arity=arity,
        flags=frozenset({Flag.WRITE}),
        first_key=step,
        last_key=-step,
        step=step,
        group=group,
        since="7.0.0",
        complexity=complexity,
        summary=summary,
        handler=handler,
        key_finder=key_finder,
    )


def positional_keys(argv: Sequence[bytes], first: int, last: int, step: int) -> list[bytes]:
    """The keys at Redis's (first key, last key, step) positions of `argv` (name included;
    a negative `last` counts from the end; `first` 0: no keys)."""
    if first == 0:
        return []
    end = last if last >= 0 else len(argv) + last
    return list(argv[first : end + 1 : step])


def arity_error(name: str) -> ErrorReply:
    """The reply to a call with the wrong number of arguments."""
    return ErrorReply(f"ERR wrong number of arguments for '{name}' command")


WRONGTYPE = ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")
NOT_INTEGER = ErrorReply("ERR value is not an integer or out of range")
NOT_FLOAT = ErrorReply("ERR value is not a valid float")
OVERFLOW = ErrorReply("ERR increment or decrement would overflow")
SYNTAX = ErrorReply("ERR syntax error")
NO_SUCH_KEY = ErrorReply("ERR no such key")
TOO_BIG = ErrorReply("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
NAN_OR_INF = ErrorReply("ERR increment would produce NaN or Infinity")
INVALID_CURSOR = ErrorReply("ERR invalid cursor")

RANDOM_REPEAT_LIMIT = 100_000
"""The most elements HRANDFIELD, SRANDMEMBER and ZRANDMEMBER return for a negative count
(with repetition). Redis answers any count, but `HRANDFIELD h -3000000` (30 bytes) would
hold a node's loop for seconds and cost hundreds of MB: Cairn refuses it instead
(`RANDOM_REPEAT_TOO_MANY`; documented in docs/commands.md)."""

RANDOM_REPEAT_TOO_MANY = ErrorReply(
    f"ERR count is out of range: at most {RANDOM_REPEAT_LIMIT} elements with repetition"
)

MAX_STRING = 512 * 1024 * 1024
"""Redis' default proto-max-bulk-len: the largest string SETRANGE/APPEND may build."""

MAX_WRITE_STRING = 16 * 1024 * 1024
"""The largest string a write may grow a key to (SETRANGE, APPEND, SETBIT, BITFIELD).

Redis lets `SETRANGE k 536870911 x` (30 bytes) build a 512 MiB string; in Cairn that one
string would be written to LMDB and to every replica's log, holding each node's loop for
seconds (defect 3). The bound is a constant, not a node setting, because every replica
must make the same decision when it applies the entry. It matches the default
`max_entry_bytes` (the largest replicated write a node accepts from a client). Past it
Cairn answers `STRING_LIMIT`; past Redis' own 512 MiB it answers Redis' errors."""

STRING_LIMIT = ErrorReply(
    f"ERR string exceeds maximum allowed size (Cairn's string limit is {MAX_WRITE_STRING} bytes)"
)


def text_of(data: bytes) -> str:
    """User bytes quoted in an error message, as Redis writes them: CR and LF become spaces.

    Non-UTF-8 bytes survive as surrogate escapes; the encoder turns the message back into
    the same bytes with `encode("utf-8", "surrogateescape")`.
    """
    return data.replace(b"\r", b" ").replace(b"\n", b" ").decode("utf-8", "surrogateescape")


def expire_error(name: str) -> ErrorReply:
    """The reply to an out-of-range expiry time."""
    return ErrorReply(f"ERR invalid expire time in '{name}' command")
