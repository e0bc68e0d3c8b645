"""Transactions in one region: MULTI/EXEC as ONE Raft entry, WATCH as stamps compared at apply.

Theory of operation. A client's MULTI ... EXEC reaches the store as a single internal
command, `TXN_COMMAND`, whose one argument is `encode_transaction(watches, commands)`: the
watched keys with the fingerprint each had at WATCH time, and the queued commands (argv,
name first) in order. It is proposed like any write, so it is one Raft entry, applied by
every replica at the same index with the same time; `apply_transaction` runs it inside the
machine's keyspace transaction for that entry:

1. every watched key's current fingerprint is compared with the one recorded at WATCH;
   any difference and the entry writes nothing and answers the null array (EXEC aborted);
2. otherwise each command runs in order, each in its own write batch: a command failing
   at run time (WRONGTYPE, not an integer ...) has its own error reply and its writes
   discarded, and the others go on, as in Redis (no rollback); the reply is the array of
   every command's reply.

Nothing else can run between the commands of one entry (the machine applies entries one
at a time), so the transaction is atomic and isolated like Redis' EXEC.

Fingerprints. Every write stamps the metadata record of each key it changes with
`encode_stamp(region id, entry index)` (`Db.put_meta`, `Db.finish_stamps`), a value that no
other write anywhere in the cluster's history has, and every deletion stamps the scope's
``deleted`` record. A key's fingerprint (`fingerprint`) is ``P`` + its stamp when it is
live, ``A`` + the region id + the last deletion's stamp when it is absent (missing or
expired). So a watched key's fingerprint changes whenever the key was written (a write
always leaves a new stamp), deleted or expired (live becomes absent), or created and
deleted again (the last-deletion stamp moved). It may change without a change to the key,
never the other way: another key of the region deleted while the watched key was absent,
or the region split or merged (the region id in an absent key's fingerprint), abort EXEC
where Redis would not; the client retries, as after any WATCH failure.

The fingerprints are read by `WATCH_COMMAND`, an internal write command that changes
nothing and answers the fingerprint of each of its keys: as a Raft entry it is
linearizable, so it sees every write acknowledged before WATCH was sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgpack

from cairn.resp.reply import NULL, NULL_ARRAY, Array, Bulk, ErrorReply, Reply
from cairn.store.commands import CommandError, CommandSpec, classify, run_in_batch
from cairn.store.commands.blocking import Blocked
from cairn.store.commands.spec import Ctx, internal_write
from cairn.store.db import Db
from cairn.store.keyspace import Keyspace
from cairn.store.layout import encode_stamp
from cairn.store.notifications import Event
from cairn.store.scope import KeyOutOfRangeError, Scope

__all__ = [
    "TRANSACTION_COMMANDS",
    "TXN_COMMAND",
    "WATCH_COMMAND",
    "Transaction",
    "apply_transaction",
    "decode_transaction",
    "encode_transaction",
    "fingerprint",
]

TXN_COMMAND = "cairn.exec"
"""The internal command carrying a whole transaction: `cairn.exec <encoded transaction>`."""
WATCH_COMMAND = "cairn.watch"
"""The internal command reading WATCH fingerprints: `cairn.watch key [key ...]`."""

_FORMAT = 1
_LIVE = b"P"
_ABSENT = b"A"
_NONBLOCKING_NULL = frozenset({"blmove", "brpoplpush"})
"""Blocking commands whose non-blocking run (inside MULTI) answers a null bulk, not the
null array (Redis 7.0's `blmoveGenericCommand` under CLIENT_DENY_BLOCKING)."""


class Transaction:
    """A decoded transaction entry: watched `(key, fingerprint)` pairs and the commands."""

    __slots__ = ("commands", "watches")

    def __init__(
        self, watches: list[tuple[bytes, bytes]], commands: list[list[bytes]]
    ) -> None:
        self.watches = watches
        self.commands = commands

    def keys(self) -> list[bytes]:
        """Every key the transaction names: the watched ones, then each command's (what
        routing places and the region checks)."""
        found = [key for key, _ in self.watches]
        for argv in self.commands:
            spec = classify(argv)
            if isinstance(spec, CommandSpec):
                found += spec.keys(argv)
        return found


def encode_transaction(
    watches: Sequence[tuple[bytes, bytes]], commands: Sequence[Sequence[bytes]]
) -> bytes:
    """The argument of a `TXN_COMMAND` entry."""
    payload = [_FORMAT, [[k, f] for k, f in watches], [list(c) for c in commands]]
    return bytes(msgpack.packb(payload, use_bin_type=True))


def decode_transaction(data: bytes) -> Transaction:
    """The inverse of `encode_transaction`; ValueError on anything else."""
    try:
        version, watches, commands = msgpack.unpackb(data, raw=False)
    except Exception as exc:
        raise ValueError("malformed transaction") from exc
    if version != _FORMAT or not isinstance(watches, list) or not isinstance(commands, list):
        raise ValueError("malformed transaction")
    pairs: list[tuple[bytes, bytes]] = []
    for pair in watches:
        if not (isinstance(pair, list) and len(pair) == 2 and all(_is_bytes(p) for p in pair)):
            raise ValueError("malformed transaction")
        pairs.append((pair[0], pair[1]))
    for argv in commands:
        if not (isinstance(argv, list) and argv and all(_is_bytes(a) for a in argv)):
            raise ValueError("malformed transaction")
    return Transaction(pairs, commands)


def _is_bytes(value: object) -> bool:
    return isinstance(value, bytes)


def fingerprint(db: Db, key: bytes) -> bytes:
    """What WATCH records of `key` and EXEC compares (see the module docstring)."""
    meta = db.lookup(key)
    if meta is not None:
        return _LIVE + meta.stamp
    region_id = db.scope.region_id or 0
    return _ABSENT + region_id.to_bytes(8, "big") + db.last_deletion()


def _watch_handler(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """`cairn.watch key [key ...]`: each key's fingerprint; writes nothing."""
    return Array(tuple(Bulk(fingerprint(ctx.db, key)) for key in args))


def _transaction_keys(argv: Sequence[bytes]) -> list[bytes]:
    """Every key of a `cairn.exec` entry; a transaction naming none runs in the region of
    slot 0 (the empty key's), as a keyless EXEC runs on the node a Redis Cluster client
    sent it to."""
    try:
        return decode_transaction(argv[1]).keys() or [b""]
    except (ValueError, IndexError):
        return []


def _not_direct(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """`cairn.exec` is applied by `apply_transaction`, never through a handler."""
    raise CommandError(ErrorReply("ERR cairn.exec is applied by the machine only"))


def _internal(
    name: str,
    arity: int,
    handler: Callable[[Ctx, Sequence[bytes]], Reply],
    key_finder: Callable[[Sequence[bytes]], list[bytes]] | None,
) -> CommandSpec:
    return internal_write(
        name,
        arity,
        handler,
        key_finder,
        "transactions",
        "Internal: part of MULTI/EXEC/WATCH.",
        every_argument_a_key=key_finder is None,
    )


TRANSACTION_COMMANDS: dict[str, CommandSpec] = {
    WATCH_COMMAND: _internal(WATCH_COMMAND, -2, _watch_handler, None),
    TXN_COMMAND: _internal(TXN_COMMAND, 2, _not_direct, _transaction_keys),
}
"""The internal commands of transactions: not in `COMMANDS`, so no client can send them;
a node forwards them to a region's leader like any write."""


def apply_transaction(
    keyspace: Keyspace,
    scope: Scope,
    index: int,
    now_ms: int,
    data: bytes,
    events: list[Event] | None = None,
) -> Reply:
    """Apply the transaction `data` (`encode_transaction`) at log `index` and time
    `now_ms`, inside the caller's keyspace transaction; the EXEC reply. `events`: where
    the keyspace notifications of its commands go, in order (None: not collected)."""
    try:
        txn = decode_transaction(data)
        scope.check_keys(txn.keys())
    except ValueError:
        return ErrorReply("ERR malformed transaction entry")
    except KeyOutOfRangeError:
        return ErrorReply("TRYAGAIN key outside this region's range: route it again")
    stamp = encode_stamp(scope.region_id or 0, index)
    reader = Db(keyspace, None, now_ms, scope)
    for key, recorded in txn.watches:
        if fingerprint(reader, key) != recorded:
            return NULL_ARRAY
    replies = []
    for position, argv in enumerate(txn.commands):
        seed = (index << 20) | position
        replies.append(_run_one(keyspace, scope, now_ms, stamp, seed, argv, events))
    return Array(tuple(replies))


def _run_one(
    keyspace: Keyspace,
    scope: Scope,
    now_ms: int,
    stamp: bytes,
    seed: int,
    argv: list[bytes],
    events: list[Event] | None,
) -> Reply:
    """One queued command in its own batch: its reply, its writes kept only on success."""
    spec = classify(argv)
    if isinstance(spec, ErrorReply):
        return spec
    reply = run_in_batch(keyspace, spec, argv[1:], now_ms, scope, stamp, seed, events)
    if isinstance(reply, Blocked):  # nothing to take: answered as a timeout at once
        return NULL if spec.name in _NONBLOCKING_NULL else NULL_ARRAY
    return reply

