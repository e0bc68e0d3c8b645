"""MEMORY USAGE key [SAMPLES count]: the bytes a key takes in Cairn's keyspace.

Redis counts the allocations of the key's objects; Cairn's value is its LMDB records (the
metadata record and one sub-record per element, `cairn.store.layout`), so the estimate is
the sum of their key and value bytes. Like Redis, a composite value is sampled: the first
`count` sub-records (default 5; 0 means all of them) are measured and their mean is
multiplied by the number of sub-records the value has (one per element; a sorted set keeps
two, the member and its score index entry, and a set two, the member and its position).
The other subcommands of MEMORY are the node's (`cairn.runtime.memory_report`), answered
where the client is connected.
"""

from __future__ import annotations

from collections.abc import Sequence

from cairn.resp.reply import NULL, ErrorReply, Integer, Reply
from cairn.store.commands.common import fail, int_arg
from cairn.store.commands.spec import SYNTAX, Ctx, arity_error
from cairn.store.layout import Meta, ValueType, element_prefix, encode_meta, meta_key

DEFAULT_SAMPLES = 5
"""Redis' OBJ_COMPUTE_SIZE_DEF_SAMPLES."""
_WALK_CHUNK = 512
_RECORDS_PER_ELEMENT = {ValueType.ZSET: 2, ValueType.SET: 2}


def cmd_memory(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """MEMORY USAGE key [SAMPLES count] (other subcommands never reach the store)."""
    sub = args[0].lower()
    if sub != b"usage":
        name = args[0].split(b"\0")[0][:128].decode("utf-8", "replace")
        raise fail(ErrorReply(f"ERR unknown subcommand '{name}'. Try MEMORY HELP."))
    if len(args) < 2:
        raise fail(arity_error("memory|usage"))
    samples = parse_samples(args[2:])
    meta = ctx.db.lookup(args[1])
    if meta is None:
        return NULL
    return Integer(key_usage(ctx, args[1], meta, samples))


def parse_samples(options: Sequence[bytes]) -> int:
    """SAMPLES count (the last one wins, as in Redis); 0 becomes "all" (-1 here)."""
    samples = DEFAULT_SAMPLES
    i = 0
    while i < len(options):
        if options[i].lower() != b"samples" or i + 1 >= len(options):
            raise fail(SYNTAX)
        samples = int_arg(options[i + 1])
        if samples < 0:
            raise fail(SYNTAX)
        i += 2
    return -1 if samples == 0 else samples


def key_usage(ctx: Ctx, key: bytes, meta: Meta, samples: int) -> int:
    """The key's metadata record plus its (sampled) sub-records, in bytes."""
    size = len(meta_key(key)) + len(encode_meta(meta))
    if meta.type is ValueType.STRING:
        return size
    prefix = len(element_prefix(key, meta.version))
    records = max(meta.size, 0) * _RECORDS_PER_ELEMENT.get(meta.type, 1)
    if samples < 0 or samples >= records:
        return size + _all_records(ctx, key, prefix)
    seen = ctx.db.fields(key, limit=samples)
    if not seen:
        return size
    measured = sum(prefix + len(f) + len(v) for f, v in seen)
    return size + measured * records // len(seen)


def _all_records(ctx: Ctx, key: bytes, prefix: int) -> int:
    """Every sub-record of `key`, walked in bounded chunks."""
    total = 0
    start = b""
    while chunk := ctx.db.fields(key, start, limit=_WALK_CHUNK):
        total += sum(prefix + len(f) + len(v) for f, v in chunk)
        if len(chunk) < _WALK_CHUNK:
            break
        start = chunk[-1][0] + b"\x00"
    return total
