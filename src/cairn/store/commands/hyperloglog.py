"""HyperLogLog commands: PFADD, PFCOUNT, PFMERGE.

A HyperLogLog is a plain string holding Redis 7.0's own representation
(`cairn.store.hyperloglog`), so GET returns Redis' exact bytes and a value copied from Redis
with GET/SET keeps working. A string that is not a valid HLL gives Redis' "WRONGTYPE Key is
not a valid HyperLogLog string value."; a sparse HLL whose registers do not add up gives
"INVALIDOBJ Corrupted HLL object detected"; other types the usual WRONGTYPE.

Two deliberate differences from Redis, both confined to corrupted or cached state:

* PFCOUNT of one key does not write the recomputed cardinality back into the header's
  cache. In Redis PFCOUNT is flagged read-only yet rewrites the value when its cache is
  stale; in Cairn a read is served without a log entry (after a ReadIndex, possibly by a
  follower) and cannot write, and making every PFCOUNT a replicated write would cost each
  count a Raft round and an fsync. So the stored bytes differ from Redis' only in header
  bytes 8..15 (the cache, which stays marked stale) after a PFCOUNT, and the count is
  recomputed each time (a few hundred microseconds for a dense HLL). A value whose cache
  is valid (copied from Redis) is answered from its cache, as Redis does. Every reply is
  the same as Redis'.
* A PFADD that meets a corrupted sparse HLL midway fails without a trace (the command's
  write batch is discarded); Redis keeps the registers already raised, unreplicated.
"""

from __future__ import annotations

from collections.abc import Sequence

from cairn.resp.reply import OK, ErrorReply, Integer, Reply
from cairn.store import hyperloglog as hll
from cairn.store.commands.common import fail, lookup_typed
from cairn.store.commands.define import K1, KALL, WD, WDF, R, cmd
from cairn.store.commands.spec import CommandSpec, Ctx
from cairn.store.layout import Meta, ValueType
from cairn.store.notifications import STRING

NOT_HLL = ErrorReply("WRONGTYPE Key is not a valid HyperLogLog string value.")
CORRUPTED = ErrorReply("INVALIDOBJ Corrupted HLL object detected")


def _hll(ctx: Ctx, key: bytes) -> Meta | None:
    """`key`'s metadata if it holds a valid HLL string, None if missing; the WRONGTYPE
    errors otherwise (Redis' isHLLObjectOrReply)."""
    meta = lookup_typed(ctx.db, key, ValueType.STRING)
    if meta is not None and not hll.is_hll(meta.value):
        raise fail(NOT_HLL)
    return meta


def _lanes(value: bytes) -> bytes:
    try:
        return hll.lanes(value)
    except hll.CorruptedError:
        raise fail(CORRUPTED) from None


def _store(ctx: Ctx, key: bytes, old: Meta | None, value: bytes) -> None:
    """Write the new HLL value, keeping the key's TTL (Redis changes the string in place)."""
    expire = None if old is None else old.expire_ms
    ctx.db.put_meta(key, Meta(ValueType.STRING, expire, value=value), existed=old is not None)


def cmd_pfadd(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """PFADD key [element ...]: 1 if a register changed or the key was created, else 0."""
    key = args[0]
    meta = _hll(ctx, key)
    base = hll.empty() if meta is None else meta.value
    try:
        value = hll.add(base, args[1:])
    except hll.CorruptedError:
        raise fail(CORRUPTED) from None
    if meta is None and value is None:
        value = hll.with_stale_cache(base)
    if value is None:
        return Integer(0)
    _store(ctx, key, meta, value)
    ctx.notify(STRING, "pfadd", key)
    return Integer(1)


def cmd_pfcount(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """PFCOUNT key [key ...]: the estimated cardinality of one HLL (from its cache when
    valid; see the module docstring on why the cache is not rewritten) or of the union of
    several (merged in memory, the keys unchanged)."""
    if len(args) == 1:
        return Integer(_count_one(ctx, args[0]))
    merged: bytes | None = None
    for key in args:
        meta = _hll(ctx, key)
        if meta is not None:
            lanes = _lanes(meta.value)
            merged = lanes if merged is None else hll.union(merged, lanes)
    return Integer(hll.lanes_cardinality(merged or hll.empty_lanes()))


def _count_one(ctx: Ctx, key: bytes) -> int:
    meta = _hll(ctx, key)
    if meta is None:
        return 0
    cached = hll.cached_cardinality(meta.value)
    if cached is not None:
        return cached
    try:
        return hll.cardinality(meta.value)
    except hll.CorruptedError:
        raise fail(CORRUPTED) from None


def cmd_pfmerge(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """PFMERGE destkey [sourcekey ...]: destkey becomes the union of itself and the sources
    (created if missing). Dense when any input was dense, else sparse as far as Redis'
    register-by-register update keeps it sparse."""
    merged: bytes | None = None
    dense = False
    for key in args:
        meta = _hll(ctx, key)
        if meta is not None:
            dense = dense or hll.is_dense(meta.value)
            lanes = _lanes(meta.value)
            merged = lanes if merged is None else hll.union(merged, lanes)
    dest = ctx.db.lookup(args[0])
    base = None if dest is None else dest.value
    _store(ctx, args[0], dest, hll.merge_into(base, merged or hll.empty_lanes(), dense))
    ctx.notify(STRING, "pfadd", args[0])
    return OK


def _doc(summary: str, complexity: str) -> tuple[str, str, str, str]:
    return ("hyperloglog", "2.8.9", complexity, summary)


COMMANDS: tuple[CommandSpec, ...] = (
    cmd(
        "pfadd",
        -2,
        WDF,
        K1,
        _doc("Add elements to a HyperLogLog.", "O(1) per element"),
        "@write @hyperloglog @fast",
        cmd_pfadd,
    ),
    cmd(
        "pfcount",
        -2,
        R,
        KALL,
        _doc(
            "Estimate the number of distinct elements of one HyperLogLog or of a union.",
            "O(1) for one key with a valid cache, O(N) in the number of keys otherwise",
        ),
        "@read @hyperloglog @slow",
        cmd_pfcount,
    ),
    cmd(
        "pfmerge",
        -2,
        WD,
        KALL,
        _doc("Merge HyperLogLogs into a destination key.", "O(N) in the number of keys"),
        "@write @hyperloglog @slow",
        cmd_pfmerge,
    ),
)
"""The HyperLogLog commands' table entries (gathered into `table.COMMANDS`)."""
