"""The coordinator's side of the `cairn.txn.*` internal commands: building their argv,
reading their replies, and reading a `-LOCKED` error (docs/transactions.md).

The shapes are the shared interface's (the store executes them, `cairn.store`): every
number is decimal ASCII, every reply an array whose first item is a bulk status. A reply
that is not one of the documented shapes is an error of the region (`Failed`), never a
crash: the coordinator treats it like a lost message (roll back, retry).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cairn.resp.reply import Array, Bulk, ErrorReply, Integer, NullBulk, Reply

LOCK_COMMAND = "cairn.txn.lock"
PREWRITE_COMMAND = "cairn.txn.prewrite"
COMMIT_COMMAND = "cairn.txn.commit"
ROLLBACK_COMMAND = "cairn.txn.rollback"
STATUS_COMMAND = "cairn.txn.status"
CHECK_SECONDARIES_COMMAND = "cairn.txn.check_secondaries"

LOGICAL_BITS = 18
"""A timestamp is `physical_ms << LOGICAL_BITS | logical` (TiKV's layout)."""
MAX_TIMESTAMP = (1 << 64) - 1
LOCKED_PREFIX = "LOCKED "

KIND_DELETE = 0
KIND_SET = 1
KIND_UNCHANGED = 2
"""Async commit's explicit "prewritten, unchanged" marker for a key locked but not changed."""


def physical_ms(ts: int) -> int:
    """The wall-clock milliseconds of timestamp `ts`."""
    return ts >> LOGICAL_BITS


def _num(value: int) -> bytes:
    return str(value).encode()


# -- building the commands ----------------------------------------------------------------


def lock_argv(
    start_ts: int,
    primary: bytes,
    ttl_ms: int,
    max_bytes: int,
    watches: Sequence[tuple[bytes, bytes]],
    keys: Sequence[bytes],
) -> list[bytes]:
    """`cairn.txn.lock`: lock `watches`' keys (checking their fingerprints) and `keys`
    (which must not repeat a watched key) for `start_ts`."""
    argv = [LOCK_COMMAND.encode(), _num(start_ts), primary, _num(ttl_ms), _num(max_bytes)]
    argv.append(_num(len(watches)))
    for key, print_ in watches:
        argv += [key, print_]
    argv.extend(keys)
    return argv


def prewrite_argv(
    start_ts: int, effects: Sequence[Effect], secondaries: Sequence[bytes] | None = None
) -> list[bytes]:
    """`cairn.txn.prewrite`: store each key's effect in its lock; with `secondaries` (an
    async commit's primary region, the primary's effect first) the transaction's other
    locked keys are kept in the primary's lock."""
    argv = [PREWRITE_COMMAND.encode(), _num(start_ts), _num(len(effects))]
    for effect in effects:
        argv += [effect.key, _num(effect.kind), _num(effect.pexpireat_ms), effect.payload]
    if secondaries is not None:
        argv += [_num(len(secondaries)), *secondaries]
    return argv


def check_secondaries_argv(start_ts: int, keys: Sequence[bytes]) -> list[bytes]:
    """`cairn.txn.check_secondaries`: each key's state for `start_ts` (rolling back a lock
    not prewritten yet), in one region."""
    return [CHECK_SECONDARIES_COMMAND.encode(), _num(start_ts), *keys]


def commit_argv(
    start_ts: int, commit_ts: int, keys: Sequence[bytes], primary: bool
) -> list[bytes]:
    """`cairn.txn.commit`: apply the prewritten effects of `keys` (with `primary`, the
    first key is the transaction's primary and its status is written)."""
    flag = b"1" if primary else b"0"
    return [COMMIT_COMMAND.encode(), _num(start_ts), _num(commit_ts), flag, *keys]


def rollback_argv(start_ts: int, keys: Sequence[bytes], primary: bool) -> list[bytes]:
    """`cairn.txn.rollback`: drop the locks of `start_ts` on `keys` (with `primary`, the
    first key is the primary and the transaction is marked rolled back)."""
    flag = b"1" if primary else b"0"
    return [ROLLBACK_COMMAND.encode(), _num(start_ts), flag, *keys]


def status_argv(primary: bytes, start_ts: int) -> list[bytes]:
    """`cairn.txn.status`: the fate of transaction `start_ts` (rolling it back when its
    primary's lock has expired)."""
    return [STATUS_COMMAND.encode(), primary, _num(start_ts)]


# -- reading the replies --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Loaded:
    """A locked key's value as `cairn.txn.lock` read it."""

    key: bytes
    exists: bool
    pexpireat_ms: int
    dump: bytes | None


@dataclass(frozen=True, slots=True)
class Effect:
    """What committing does to one key: delete it, or set it to a DUMP payload."""

    key: bytes
    kind: int
    pexpireat_ms: int = 0
    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class Conflict:
    """A key locked by another transaction (`cairn.txn.lock`'s `locked`, or `-LOCKED`)."""

    key: bytes
    primary: bytes
    start_ts: int
    ttl_ms: int
    """The lock's remaining time to live (0: expired, it may be resolved now)."""


@dataclass(frozen=True, slots=True)
class Status:
    """A status word with its optional number (`committed` commit_ts, `alive` ttl ...)."""

    word: bytes
    number: int = 0


@dataclass(frozen=True, slots=True)
class Failed:
    """The region answered an error or an unreadable reply (routing, timeout, ...)."""

    reply: Reply

    @property
    def uncertain(self) -> bool:
        """Whether the command may have applied (the error names an unknown outcome)."""
        return isinstance(self.reply, ErrorReply) and self.reply.message.startswith("UNCERTAIN")


def _items(reply: Reply) -> tuple[Reply, ...] | None:
    if not isinstance(reply, Array) or not reply.items:
        return None
    if not isinstance(reply.items[0], Bulk):
        return None
    return reply.items


def _word(reply: Reply) -> bytes | None:
    items = _items(reply)
    return items[0].value if items is not None and isinstance(items[0], Bulk) else None


def _int_item(item: Reply) -> int | None:
    if isinstance(item, Integer):
        return item.value
    if isinstance(item, Bulk):
        try:
            return int(item.value)
        except ValueError:
            return None
    return None


def read_lock(reply: Reply, keys: Sequence[bytes]) -> list[Loaded] | Conflict | Status | Failed:
    """`cairn.txn.lock`'s reply for `keys` (in argument order): the loaded values, the
    conflicting lock, or a status (`watch`, `rolledback`, `toolarge`)."""
    items = _items(reply)
    if items is None:
        return Failed(reply)
    word = items[0].value if isinstance(items[0], Bulk) else b""
    if word == b"locked" and len(items) == 5:
        key, primary, start_ts, ttl = items[1:]
        start, left = _int_item(start_ts), _int_item(ttl)
        if isinstance(key, Bulk) and isinstance(primary, Bulk) and start is not None:
            return Conflict(key.value, primary.value, start, max(0, left or 0))
        return Failed(reply)
    if word in (b"watch", b"rolledback", b"toolarge") and len(items) == 1:
        return Status(word)
    if word != b"ok" or len(items) != 2 or not isinstance(items[1], Array):
        return Failed(reply)
    rows = items[1].items
    if len(rows) != len(keys):
        return Failed(reply)
    loaded = []
    for name, row in zip(keys, rows, strict=True):
        value = _loaded_row(name, row)
        if value is None:
            return Failed(reply)
        loaded.append(value)
    return loaded


def _loaded_row(key: bytes, row: Reply) -> Loaded | None:
    if not isinstance(row, Array) or len(row.items) != 3:
        return None
    exists, at, dump = row.items
    flag, when = _int_item(exists), _int_item(at)
    if flag is None or when is None:
        return None
    if isinstance(dump, Bulk):
        return Loaded(key, bool(flag), when, dump.value)
    if isinstance(dump, NullBulk) or dump == Array(()):
        return Loaded(key, False, 0, None) if not flag else None
    return None


def read_status(reply: Reply) -> Status | Failed:
    """Any other `cairn.txn.*` reply: its status word and number (`ok`, `lost`,
    `rolledback`, `committed <ts>`, `alive <ttl>`)."""
    items = _items(reply)
    if items is None or len(items) > 2:
        return Failed(reply)
    word = items[0].value if isinstance(items[0], Bulk) else b""
    if len(items) == 1:
        return Status(word)
    number = _int_item(items[1])
    if number is None:
        return Status(word) if word == b"lost" else Failed(reply)
    return Status(word, number)


@dataclass(frozen=True, slots=True)
class AsyncPrimary:
    """`cairn.txn.status`'s `async` answer: the primary's lock is prewritten for an async
    commit and undecided; its fate is in its `secondaries` (`cairn.txn.resolver`)."""

    ttl_ms: int
    secondaries: tuple[bytes, ...]


def read_txn_status(reply: Reply) -> Status | AsyncPrimary | Failed:
    """`cairn.txn.status`'s reply: a status word (`committed`, `rolledback`, `alive`), or
    an async-commit primary with its secondaries."""
    items = _items(reply)
    if items is None or _word(reply) != b"async":
        return read_status(reply)
    if len(items) != 3:
        return Failed(reply)
    ttl, listed = _int_item(items[1]), items[2]
    if ttl is None or not isinstance(listed, Array):
        return Failed(reply)
    keys = [k.value for k in listed.items if isinstance(k, Bulk)]
    if len(keys) != len(listed.items):
        return Failed(reply)
    return AsyncPrimary(max(0, ttl), tuple(keys))


CHECK_STATES = (b"prewritten", b"rolledback", b"missing")


def read_check(reply: Reply, count: int) -> list[bytes] | Failed:
    """`cairn.txn.check_secondaries`' reply for `count` keys: each key's state word
    (`CHECK_STATES`)."""
    items = _items(reply)
    if items is None or _word(reply) != b"ok" or len(items) != 2:
        return Failed(reply)
    rows = items[1]
    if not isinstance(rows, Array) or len(rows.items) != count:
        return Failed(reply)
    states = [row.value for row in rows.items if isinstance(row, Bulk)]
    if len(states) != count or any(state not in CHECK_STATES for state in states):
        return Failed(reply)
    return states


def read_locked_error(reply: Reply | bytes) -> Conflict | None:
    """The lock a `-LOCKED <start_ts> <ttl_ms> <hex primary> <hex key>` error names (as an
    `ErrorReply` or as RESP bytes); None for any other reply."""
    if isinstance(reply, bytes):
        if not reply.startswith(b"-" + LOCKED_PREFIX.encode()):
            return None
        line = reply[1:].split(b"\r\n", 1)[0].decode("ascii", "replace")
    elif isinstance(reply, ErrorReply) and reply.message.startswith(LOCKED_PREFIX):
        line = reply.message
    else:
        return None
    parts = line.split(" ")
    if len(parts) != 5:
        return None
    try:
        start_ts, ttl = int(parts[1]), int(parts[2])
        primary, key = bytes.fromhex(parts[3]), bytes.fromhex(parts[4])
    except ValueError:
        return None
    if not 0 <= start_ts <= MAX_TIMESTAMP:
        return None
    return Conflict(key, primary, start_ts, max(0, ttl))
