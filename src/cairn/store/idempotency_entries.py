"""The internal entries of idempotent writes: their names, their arguments, their keys,
the digest that tells one request from another, and their command specs.

``cairn.idem <request-id> <ttl ms> <max ids> <command> [args ...]`` (`IDEM_COMMAND`)
wraps one client write; ``<command> [args ...]`` is either a plain write, a transaction
(``cairn.exec <payload>``) or a tagged script's effects (`EFFECTS_WRAPPED`). The
cross-region steps (`TXN_LOCK_COMMAND`, `TXN_COMMIT_COMMAND`) are applied by
`cairn.store.idempotency_txn`, the purge of expired ids (`PURGE_COMMAND`) by the table
(`cairn.store.idempotency_table`). What every replica derives from an entry alone lives
here: the keys routing places it by (`wrapped_keys`), the key whose slot keeps its
request id (`request_key`), and the digest a retry must match (`request_digest`).

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import msgpack

from cairn.resp.reply import ErrorReply, Reply
from cairn.store.commands import CommandError, CommandSpec, classify
from cairn.store.commands.spec import Ctx, internal_write
from cairn.store.idempotency_table import MAX_LIMIT
from cairn.store.transaction import TXN_COMMAND, decode_transaction
from cairn.store.txn_locks import parse_lock

__all__ = [
    "DIGEST_BYTES",
    "EFFECTS_WRAPPED",
    "IDEMPOTENCY_COMMANDS",
    "IDEM_COMMAND",
    "MALFORMED",
    "MAX_REQUEST_ID",
    "PURGE_COMMAND",
    "TXN_COMMIT_COMMAND",
    "TXN_COMMIT_HEAD",
    "TXN_LOCK_COMMAND",
    "parse_entry",
    "request_digest",
    "request_key",
    "transaction_request_key",
    "txn_commit_keys",
    "txn_lock_keys",
    "wrapped_keys",
]

IDEM_COMMAND = "cairn.idem"
"""The internal entry: ``cairn.idem <request-id> <ttl ms> <max ids> <command> [args ...]``."""
PURGE_COMMAND = "cairn.idempurge"
"""The internal entry dropping expired request ids (no arguments)."""
TXN_LOCK_COMMAND = "cairn.idem.lock"
"""``cairn.idem.lock <request-id> <digest> <first key> <cairn.txn.lock arguments ...>``:
a tagged cross-region transaction's lock of its primary's region
(`cairn.store.idempotency_txn`)."""
TXN_COMMIT_COMMAND = "cairn.idem.commit"
"""``cairn.idem.commit <request-id> <ttl ms> <max ids> <digest> <reply> <start_ts>
<commit_ts> <key> ...``: its primary commit, recording the request id."""
TXN_COMMIT_HEAD = 7
"""The arguments of `TXN_COMMIT_COMMAND` before its keys."""
EFFECTS_WRAPPED = b"cairn.effects"
"""What a `cairn.idem` entry wraps for a tagged script the leader ran once: ``cairn.effects
<effects> <record-key> <digest>`` (the effects of `cairn.store.scripting.effects`, the key
whose slot keeps the id and the digest of the script command the client sent:
`cairn.store.idempotency_effects`)."""

MAX_REQUEST_ID = 64
"""The longest request id, in bytes (a UUID is 36; a hash in hex 64)."""
DIGEST_BYTES = 16
"""The length of a `request_digest`."""

MALFORMED = ErrorReply("ERR malformed idempotent request entry")


def parse_entry(args: Sequence[bytes]) -> tuple[bytes, int, int, list[bytes]] | ErrorReply:
    """(request id, ttl ms, max ids, wrapped argv) of a `cairn.idem` entry's arguments."""
    if len(args) < 4 or not 0 < len(args[0]) <= MAX_REQUEST_ID:
        return MALFORMED
    try:
        ttl_ms, max_ids = int(args[1]), int(args[2])
    except ValueError:
        return MALFORMED
    if not (0 < ttl_ms < MAX_LIMIT and 0 < max_ids < MAX_LIMIT):
        return MALFORMED
    return args[0], ttl_ms, max_ids, list(args[3:])


# -- keys -------------------------------------------------------------------------------


def wrapped_keys(argv: Sequence[bytes]) -> list[bytes]:
    """The keys of a `cairn.idem` entry (argv, name first): the wrapped command's or
    transaction's (what routing places and the region checks); none when malformed."""
    wrapped = argv[4:]
    if not wrapped:
        return []
    if wrapped[0] == EFFECTS_WRAPPED:  # a tagged script's effects: the keys it used
        return _effects_keys(wrapped)
    if wrapped[0] == TXN_COMMAND.encode():
        if len(wrapped) != 2:
            return []
        try:  # a keyless transaction runs where the empty key lives, as an untagged one
            return decode_transaction(wrapped[1]).keys() or [b""]
        except ValueError:
            return []
    spec = classify(wrapped)
    return [] if isinstance(spec, ErrorReply) else spec.keys(wrapped)


def _effects_keys(wrapped: Sequence[bytes]) -> list[bytes]:
    """The keys of wrapped ``cairn.effects <effects> <record-key> <digest>``: the record
    key and every key the script used; none when malformed."""
    from cairn.store.scripting.effects import decode_effects  # it names `IDEM_COMMAND`

    if len(wrapped) != 4:
        return []
    try:
        effects = decode_effects(wrapped[1])
    except ValueError:
        return []
    return [wrapped[2], *(key for key, _ in effects.fingerprints)]


def request_key(wrapped: Sequence[bytes]) -> bytes | None:
    """The key whose hash slot keeps a request's id: the wrapped command's first key, or
    a transaction's first command key (its first watched key when its commands name
    none): never decided by WATCH alone, so a retry that watches other keys, or the same
    in another order, finds the record. None when the request names no key."""
    if wrapped and wrapped[0] == TXN_COMMAND.encode():
        if len(wrapped) != 2:
            return None
        try:
            txn = decode_transaction(wrapped[1])
        except ValueError:
            return None
        return transaction_request_key(txn.watches, txn.commands)
    spec = classify(wrapped) if wrapped else None
    keys = [] if spec is None or isinstance(spec, ErrorReply) else spec.keys(wrapped)
    return keys[0] if keys else None


def transaction_request_key(
    watches: Sequence[tuple[bytes, bytes]], commands: Sequence[Sequence[bytes]]
) -> bytes | None:
    """`request_key` of a transaction of `commands` watching `watches`."""
    for argv in commands:
        spec = classify(list(argv))
        if isinstance(spec, CommandSpec):
            keys = spec.keys(list(argv))
            if keys:
                return keys[0]
    return watches[0][0] if watches else None


def request_digest(wrapped: Sequence[bytes]) -> bytes:
    """The digest a request id is recorded with for the wrapped command or transaction
    `wrapped` (``[name, args ...]`` or ``[cairn.exec, payload]``): its lowercased name and
    arguments (a transaction's commands, not its WATCH fingerprints, which a client's
    retry renews). A cross-region run of the same request records it too
    (`cairn.store.idempotency_txn`)."""
    parts: list[object] = [wrapped[0].lower(), *wrapped[1:]]
    if wrapped[0] == TXN_COMMAND.encode():
        parts = [wrapped[0], decode_transaction(wrapped[1]).commands]
    packed = msgpack.packb(parts, use_bin_type=True)
    return hashlib.blake2b(packed, digest_size=DIGEST_BYTES).digest()


def txn_lock_keys(argv: Sequence[bytes]) -> list[bytes]:
    """The keys of a `TXN_LOCK_COMMAND` entry (argv, name first): those it locks."""
    if len(argv) < 5:
        return []
    try:
        return parse_lock(argv[4:]).every_key()
    except CommandError:
        return []


def txn_commit_keys(argv: Sequence[bytes]) -> list[bytes]:
    """The keys of a `TXN_COMMIT_COMMAND` entry (argv, name first): those it commits."""
    return list(argv[1 + TXN_COMMIT_HEAD :])


# -- the specs --------------------------------------------------------------------------


def _applied_by_machine(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """The internal entries are applied by `apply_idempotency`, never through a handler."""
    raise CommandError(ErrorReply(f"ERR {ctx.name} is applied by the machine only"))


def _internal(name: str, arity: int, key_finder: bool) -> CommandSpec:
    return internal_write(
        name,
        arity,
        _applied_by_machine,
        wrapped_keys if key_finder else None,
        "generic",
        "Internal: an idempotent write (IDEMPOTENT) or the purge of expired ids.",
        "O(1) besides the wrapped command",
    )


def _txn_step(
    name: str, arity: int, finder: Callable[[Sequence[bytes]], list[bytes]]
) -> CommandSpec:
    return internal_write(
        name,
        arity,
        _applied_by_machine,
        finder,
        "transactions",
        "Internal: a step of an idempotent cross-region transaction.",
    )


IDEMPOTENCY_COMMANDS: dict[str, CommandSpec] = {
    IDEM_COMMAND: _internal(IDEM_COMMAND, -6, True),
    PURGE_COMMAND: _internal(PURGE_COMMAND, 1, False),
    TXN_LOCK_COMMAND: _txn_step(TXN_LOCK_COMMAND, -9, txn_lock_keys),
    TXN_COMMIT_COMMAND: _txn_step(TXN_COMMIT_COMMAND, -(2 + TXN_COMMIT_HEAD), txn_commit_keys),
}
"""The internal entries of idempotent writes: not in `COMMANDS`, so no client sends them;
a node forwards `cairn.idem` to a region's leader like any write."""
