"""The command table: every command the store executes, with its Redis metadata.

Arity, flags, key positions, ACL categories, tips, group and `since` are Redis 7.0's (they
are what COMMAND INFO/DOCS must answer for clients to route and parse); summaries and
complexities are our own words.
"""

from __future__ import annotations

from cairn.store.commands import (
    bitmaps,
    dump,
    geo,
    hashes,
    hyperloglog,
    keys,
    lcs,
    lists,
    memory,
    sets,
    sort,
    streams,
    strings,
    zsets,
)
from cairn.store.commands.define import ALL_SHARDS as _ALL
from cairn.store.commands.define import K1 as _K1
from cairn.store.commands.define import KALL as _KALL
from cairn.store.commands.define import KPAIRS as _KPAIRS
from cairn.store.commands.define import MULTI_SHARD as _MULTI
from cairn.store.commands.define import NOKEYS as _NOKEYS
from cairn.store.commands.define import O1 as _O1
from cairn.store.commands.define import RF as _RF
from cairn.store.commands.define import WD as _WD
from cairn.store.commands.define import WDF as _WDF
from cairn.store.commands.define import WF as _WF
from cairn.store.commands.define import R as _R
from cairn.store.commands.define import W as _W
from cairn.store.commands.define import cmd as _cmd
from cairn.store.commands.spec import CommandSpec
from cairn.store.reclaim import RECLAIM_COMMAND
from cairn.store.scripting import commands as scripting

_ON_KEYS = "O(N) where N is the number of keys given"
_SORT_COST = "O(N+M*log(M)) in the elements N and the elements returned M"
_SWF = "@write @string @fast"
_SWS = "@write @string @slow"
_SRF = "@read @string @fast"
_KWF = "@keyspace @write @fast"
_KRF = "@keyspace @read @fast"
_HWF = "@write @hash @fast"
_HRF = "@read @hash @fast"
_HRS = "@read @hash @slow"


def _s(since: str, summary: str, complexity: str = _O1) -> tuple[str, str, str, str]:
    return ("string", since, complexity, summary)


def _g(since: str, summary: str, complexity: str = _O1) -> tuple[str, str, str, str]:
    return ("generic", since, complexity, summary)


def _h(since: str, summary: str, complexity: str = _O1) -> tuple[str, str, str, str]:
    return ("hash", since, complexity, summary)


_STRING_COMMANDS = (
    _cmd("get", 2, _RF, _K1, _s("1.0.0", "Read a string value."), _SRF, strings.cmd_get),
    _cmd(
        "set",
        -3,
        _WD,
        _K1,
        _s(
            "1.0.0",
            "Write a string value, with optional conditions, expiry and the previous value.",
        ),
        _SWS,
        strings.cmd_set,
    ),
    _cmd(
        "setnx",
        3,
        _WDF,
        _K1,
        _s("1.0.0", "Write a string only if the key is absent."),
        _SWF,
        strings.cmd_setnx,
    ),
    _cmd(
        "setex",
        4,
        _WD,
        _K1,
        _s("2.0.0", "Write a string with a TTL in seconds."),
        _SWS,
        strings.cmd_setex,
    ),
    _cmd(
        "psetex",
        4,
        _WD,
        _K1,
        _s("2.6.0", "Write a string with a TTL in milliseconds."),
        _SWS,
        strings.cmd_psetex,
    ),
    _cmd(
        "getset",
        3,
        _WDF,
        _K1,
        _s("1.0.0", "Write a string and return the previous one."),
        _SWF,
        strings.cmd_getset,
    ),
    _cmd(
        "getdel",
        2,
        _WF,
        _K1,
        _s("6.2.0", "Read a string and delete its key."),
        _SWF,
        strings.cmd_getdel,
    ),
    _cmd(
        "getex",
        -2,
        _WF,
        _K1,
        _s("6.2.0", "Read a string and change its expiry."),
        _SWF,
        strings.cmd_getex,
    ),
    _cmd(
        "mget",
        -2,
        _RF,
        _KALL,
        _s("1.0.0", "Read several strings.", _ON_KEYS),
        _SRF,
        strings.cmd_mget,
        _MULTI,
    ),
    _cmd(
        "mset",
        -3,
        _WD,
        _KPAIRS,
        _s("1.0.1", "Write several strings.", _ON_KEYS),
        _SWS,
        strings.cmd_mset,
        (*_MULTI, "response_policy:all_succeeded"),
    ),
    _cmd(
        "msetnx",
        -3,
        _WD,
        _KPAIRS,
        _s("1.0.1", "Write several strings if none exists.", _ON_KEYS),
        _SWS,
        strings.cmd_msetnx,
        (*_MULTI, "response_policy:agg_min"),
    ),
    _cmd("incr", 2, _WDF, _K1, _s("1.0.0", "Add one to an integer."), _SWF, strings.cmd_incr),
    _cmd("incrby", 3, _WDF, _K1, _s("1.0.0", "Add to an integer."), _SWF, strings.cmd_incrby),
    _cmd(
        "decr", 2, _WDF, _K1, _s("1.0.0", "Subtract one from an integer."), _SWF, strings.cmd_decr
    ),
    _cmd(
        "decrby", 3, _WDF, _K1, _s("1.0.0", "Subtract from an integer."), _SWF, strings.cmd_decrby
    ),
    _cmd(
        "incrbyfloat",
        3,
        _WDF,
        _K1,
        _s("2.6.0", "Add a decimal number to a number."),
        _SWF,
        strings.cmd_incrbyfloat,
    ),
    _cmd("append", 3, _WDF, _K1, _s("2.0.0", "Append to a string."), _SWF, strings.cmd_append),
    _cmd("strlen", 2, _RF, _K1, _s("2.2.0", "Length of a string."), _SRF, strings.cmd_strlen),
    _cmd(
        "getrange",
        4,
        _R,
        _K1,
        _s("2.4.0", "Read a substring.", "O(N) in the length read"),
        "@read @string @slow",
        strings.cmd_getrange,
    ),
    _cmd(
        "setrange",
        4,
        _WD,
        _K1,
        _s("2.2.0", "Overwrite part of a string.", "O(M) in the length of the resulting string"),
        _SWS,
        strings.cmd_setrange,
    ),
    _cmd(
        "substr",
        4,
        _R,
        _K1,
        _s("1.0.0", "Read a substring (GETRANGE's old name).", "O(N) in the length read"),
        "@read @string @slow",
        strings.cmd_substr,
    ),
    _cmd(
        "lcs",
        -3,
        _R,
        (1, 2, 1),
        _s("7.0.0", "The longest common subsequence of two strings.", "O(N*M) in the lengths"),
        "@read @string @slow",
        lcs.cmd_lcs,
    ),
)

_GENERIC_COMMANDS = (
    _cmd(
        "del",
        -2,
        _W,
        _KALL,
        _g("1.0.0", "Delete keys.", "O(N) in the keys and their elements"),
        "@keyspace @write @slow",
        keys.cmd_del,
        (*_MULTI, "response_policy:agg_sum"),
    ),
    _cmd(
        "unlink",
        -2,
        _WF,
        _KALL,
        _g("4.0.0", "Delete keys (same as DEL in Cairn).", "O(N) in the keys and their elements"),
        _KWF,
        keys.cmd_del,
        (*_MULTI, "response_policy:agg_sum"),
    ),
    _cmd(
        "exists",
        -2,
        _RF,
        _KALL,
        _g("1.0.0", "Count the given keys that exist.", _ON_KEYS),
        _KRF,
        keys.cmd_exists,
        (*_MULTI, "response_policy:agg_sum"),
    ),
    _cmd(
        "touch",
        -2,
        _RF,
        _KALL,
        _g("3.2.1", "Count the given keys that exist.", _ON_KEYS),
        _KRF,
        keys.cmd_exists,
        (*_MULTI, "response_policy:agg_sum"),
    ),
    _cmd("expire", -3, _WF, _K1, _g("1.0.0", "Set a TTL in seconds."), _KWF, keys.cmd_expire),
    _cmd(
        "pexpire", -3, _WF, _K1, _g("2.6.0", "Set a TTL in milliseconds."), _KWF, keys.cmd_pexpire
    ),
    _cmd(
        "expireat",
        -3,
        _WF,
        _K1,
        _g("1.2.0", "Set an absolute expiry in Unix seconds."),
        _KWF,
        keys.cmd_expireat,
    ),
    _cmd(
        "pexpireat",
        -3,
        _WF,
        _K1,
        _g("2.6.0", "Set an absolute expiry in Unix ms."),
        _KWF,
        keys.cmd_pexpireat,
    ),
    _cmd(
        "expiretime",
        2,
        _RF,
        _K1,
        _g("7.0.0", "The absolute expiry in Unix seconds."),
        _KRF,
        keys.cmd_expiretime,
    ),
    _cmd(
        "pexpiretime",
        2,
        _RF,
        _K1,
        _g("7.0.0", "The absolute expiry in Unix ms."),
        _KRF,
        keys.cmd_pexpiretime,
    ),
    _cmd(
        "ttl",
        2,
        _RF,
        _K1,
        _g("1.0.0", "Seconds until a key expires."),
        _KRF,
        keys.cmd_ttl,
        ("nondeterministic_output",),
    ),
    _cmd(
        "pttl",
        2,
        _RF,
        _K1,
        _g("2.6.0", "Milliseconds until a key expires."),
        _KRF,
        keys.cmd_pttl,
        ("nondeterministic_output",),
    ),
    _cmd("persist", 2, _WF, _K1, _g("2.2.0", "Remove a key's expiry."), _KWF, keys.cmd_persist),
    _cmd("type", 2, _RF, _K1, _g("1.0.0", "The type of a key's value."), _KRF, keys.cmd_type),
    _cmd(
        "rename",
        3,
        _W,
        (1, 2, 1),
        _g("1.0.0", "Rename a key, replacing the target.", "O(N) in the elements of the value"),
        "@keyspace @write @slow",
        keys.cmd_rename,
    ),
    _cmd(
        "renamenx",
        3,
        _WF,
        (1, 2, 1),
        _g("1.0.0", "Rename a key if the target is absent.", "O(N) in the elements of the value"),
        _KWF,
        keys.cmd_renamenx,
    ),
    _cmd(
        "copy",
        -3,
        _WD,
        (1, 2, 1),
        _g("6.2.0", "Copy a key's value to another key.", "O(N) in the elements of the value"),
        "@keyspace @write @slow",
        keys.cmd_copy,
    ),
    _cmd(
        "memory",
        -2,
        _R,
        (2, 2, 1),
        _g("4.0.0", "The bytes a key and its value take in the keyspace (MEMORY USAGE)."),
        "@read @slow",
        memory.cmd_memory,
    ),
    _cmd(
        "object",
        -2,
        _R,
        (2, 2, 1),
        _g("2.2.3", "Inspect a key's value: encoding, refcount, idle time, frequency."),
        "@keyspace @read @slow",
        keys.cmd_object,
        ("nondeterministic_output",),
    ),
    _cmd(
        "sort",
        -2,
        _WD,
        _K1,
        _g("1.0.0", "Sort a list, set or sorted set, or store the result.", _SORT_COST),
        "@write @set @sortedset @list @slow @dangerous",
        sort.cmd_sort,
        key_finder=sort.sort_keys,
    ),
    _cmd(
        "sort_ro",
        -2,
        _R,
        _K1,
        _g("7.0.0", "Sort a list, set or sorted set.", _SORT_COST),
        "@read @set @sortedset @list @slow @dangerous",
        sort.cmd_sort_ro,
    ),
    _cmd(
        "keys",
        2,
        _R,
        _NOKEYS,
        _g("1.0.0", "Every key matching a glob pattern.", "O(N) in the keys of the database"),
        "@keyspace @read @slow @dangerous",
        keys.cmd_keys,
        (*_ALL, "nondeterministic_output_order"),
    ),
    _cmd(
        "scan",
        -2,
        _R,
        _NOKEYS,
        _g("2.8.0", "Iterate over the keys with a cursor.", "O(COUNT) per call"),
        "@keyspace @read @slow",
        keys.cmd_scan,
        ("nondeterministic_output", "request_policy:special"),
    ),
    _cmd(
        "randomkey",
        1,
        _R,
        _NOKEYS,
        _g("1.0.0", "A random key."),
        "@keyspace @read @slow",
        keys.cmd_randomkey,
        (*_ALL, "nondeterministic_output"),
    ),
    _cmd(
        "dbsize",
        1,
        _RF,
        _NOKEYS,
        ("server", "1.0.0", _O1, "The number of keys."),
        _KRF,
        keys.cmd_dbsize,
        (*_ALL, "response_policy:agg_sum"),
    ),
    _cmd(
        "flushdb",
        -1,
        _W,
        _NOKEYS,
        ("server", "1.0.0", "O(N) in the keys", "Delete every key."),
        "@keyspace @write @slow @dangerous",
        keys.cmd_flushdb,
        (*_ALL, "response_policy:all_succeeded"),
    ),
    _cmd(
        "flushall",
        -1,
        _W,
        _NOKEYS,
        ("server", "1.0.0", "O(N) in the keys", "Delete every key."),
        "@keyspace @write @slow @dangerous",
        keys.cmd_flushdb,
        (*_ALL, "response_policy:all_succeeded"),
    ),
)

_HASH_COMMANDS = (
    _cmd(
        "hset",
        -4,
        _WDF,
        _K1,
        _h("2.0.0", "Set hash fields.", "O(N) in the fields given"),
        _HWF,
        hashes.cmd_hset,
    ),
    _cmd(
        "hsetnx",
        4,
        _WDF,
        _K1,
        _h("2.0.0", "Set a hash field if it is absent."),
        _HWF,
        hashes.cmd_hsetnx,
    ),
    _cmd("hget", 3, _RF, _K1, _h("2.0.0", "Read a hash field."), _HRF, hashes.cmd_hget),
    _cmd(
        "hmget",
        -3,
        _RF,
        _K1,
        _h("2.0.0", "Read hash fields.", "O(N) in the fields given"),
        _HRF,
        hashes.cmd_hmget,
    ),
    _cmd(
        "hmset",
        -4,
        _WDF,
        _K1,
        _h("2.0.0", "Set hash fields (reply OK).", "O(N) in the fields given"),
        _HWF,
        hashes.cmd_hmset,
    ),
    _cmd(
        "hgetall",
        2,
        _R,
        _K1,
        _h("2.0.0", "Every field and value of a hash.", "O(N) in the size of the hash"),
        _HRS,
        hashes.cmd_hgetall,
        ("nondeterministic_output_order",),
    ),
    _cmd(
        "hdel",
        -3,
        _WF,
        _K1,
        _h("2.0.0", "Delete hash fields.", "O(N) in the fields given"),
        _HWF,
        hashes.cmd_hdel,
    ),
    _cmd(
        "hexists",
        3,
        _RF,
        _K1,
        _h("2.0.0", "Whether a hash field exists."),
        _HRF,
        hashes.cmd_hexists,
    ),
    _cmd(
        "hincrby",
        4,
        _WDF,
        _K1,
        _h("2.0.0", "Add to an integer hash field."),
        _HWF,
        hashes.cmd_hincrby,
    ),
    _cmd(
        "hincrbyfloat",
        4,
        _WDF,
        _K1,
        _h("2.6.0", "Add a decimal number to a hash field."),
        _HWF,
        hashes.cmd_hincrbyfloat,
    ),
    _cmd(
        "hlen", 2, _RF, _K1, _h("2.0.0", "The number of fields of a hash."), _HRF, hashes.cmd_hlen
    ),
    _cmd(
        "hkeys",
        2,
        _R,
        _K1,
        _h("2.0.0", "The fields of a hash.", "O(N) in the size of the hash"),
        _HRS,
        hashes.cmd_hkeys,
        ("nondeterministic_output_order",),
    ),
    _cmd(
        "hvals",
        2,
        _R,
        _K1,
        _h("2.0.0", "The values of a hash.", "O(N) in the size of the hash"),
        _HRS,
        hashes.cmd_hvals,
        ("nondeterministic_output_order",),
    ),
    _cmd(
        "hstrlen",
        3,
        _RF,
        _K1,
        _h("3.2.0", "The length of a hash field's value."),
        _HRF,
        hashes.cmd_hstrlen,
    ),
    _cmd(
        "hscan",
        -3,
        _R,
        _K1,
        _h("2.8.0", "Iterate over a hash's fields with a cursor.", "O(COUNT) per call"),
        _HRS,
        hashes.cmd_hscan,
        ("nondeterministic_output",),
    ),
    _cmd(
        "hrandfield",
        -2,
        _R,
        _K1,
        _h("6.2.0", "Random fields of a hash.", "O(N) in the size of the hash"),
        _HRS,
        hashes.cmd_hrandfield,
        ("nondeterministic_output",),
    ),
)


COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        *_STRING_COMMANDS,
        *_GENERIC_COMMANDS,
        *_HASH_COMMANDS,
        *dump.COMMANDS,
        *geo.COMMANDS,
        *sets.COMMANDS,
        *zsets.COMMANDS,
        *bitmaps.COMMANDS,
        *lists.COMMANDS,
        *hyperloglog.COMMANDS,
        *streams.COMMANDS,
        *scripting.COMMANDS,
    )
}
"""Every client-visible command the store executes, by lowercase name."""

EXPIRE_DELETE = "cairn.expiredel"
"""The internal command active expiry proposes: deletes each given key only if it is
expired at the entry's now_ms. Not in `COMMANDS`, so no client can send it."""

INTERNAL_COMMANDS: dict[str, CommandSpec] = {
    EXPIRE_DELETE: _cmd(
        EXPIRE_DELETE,
        -2,
        _W,
        _KALL,
        _g("0.1.0", "Delete expired keys.", _ON_KEYS),
        "@keyspace @write @fast",
        keys.cmd_expire_deleted,
    ),
    RECLAIM_COMMAND: _cmd(
        RECLAIM_COMMAND,
        -1,
        _W,
        _KALL,
        (
            "generic",
            "0.1.0",
            "O(1): a bounded step",
            "Reclaim deleted large keys and trimmed stream records.",
        ),
        "@keyspace @write",
        keys.cmd_reclaim,
    ),
}
