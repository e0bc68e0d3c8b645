"""The scratch executor (`cairn.store.txn_scratch`): a cross-region transaction's queued
commands over the locked values give redis-server's EXEC replies byte for byte, and the
effects of the changed keys hold what redis-server holds after the same EXEC."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import pytest
from store_harness import MachineClient, RawRedis, parse_resp2, resp2

from cairn.resp.reply import Array, Bulk, ErrorReply, Integer, NullBulk, SimpleString
from cairn.store.scripting.confine import UNDECLARED
from cairn.store.txn_locks import LOCK_COMMAND
from cairn.store.txn_scratch import LoadedValue, ScratchKeyError, run_scratch

NOW = int(time.time() * 1000)
LATER = NOW + 86_400_000
SEED = 12345


@pytest.fixture
def redis(redis_server_port: int) -> Iterator[RawRedis]:
    client = RawRedis(redis_server_port)
    client.call([b"flushall"])
    yield client
    client.close()


def _setup(c: MachineClient) -> None:
    c.call("set", "c", "10")
    c.call("pexpireat", "c", str(LATER))
    c.call("rpush", "l", "a", "b", "c")
    c.call("sadd", "s1", "x", "y")
    c.call("sadd", "s2", "y", "z", "1")
    c.call("hset", "h", "f", "1", "g", "v")
    c.call("zadd", "z", "1", "m", "2.5", "n")
    c.call("set", "a", "exists")


def _locked_values(c: MachineClient, keys: Sequence[bytes]) -> dict[bytes, LoadedValue]:
    """The values `cairn.txn.lock` answers for `keys`, as the coordinator passes them."""
    args = [b"%d" % (NOW << 18), keys[0], b"3000", b"%d" % (1 << 20), b"0", *keys]
    got = c.apply_internal(LOCK_COMMAND, *args)
    assert isinstance(got, Array) and got.items[0] == Bulk(b"ok")
    values: dict[bytes, LoadedValue] = {}
    listed = got.items[1]
    assert isinstance(listed, Array)
    for key, item in zip(keys, listed.items, strict=True):
        assert isinstance(item, Array)
        exists, pexpireat, dump = item.items
        assert isinstance(exists, Integer) and isinstance(pexpireat, Integer)
        values[key] = (
            exists.value,
            pexpireat.value,
            dump.value if isinstance(dump, Bulk) else None,
        )
    return values


def _content(redis: RawRedis, key: bytes) -> object:
    """A key's type, value (order-free where Redis's is) and absolute expiry in Redis."""
    kind = parse_resp2(redis.call([b"type", key]))
    reads = {
        b"string": [b"get", key],
        b"list": [b"lrange", key, b"0", b"-1"],
        b"set": [b"smembers", key],
        b"hash": [b"hgetall", key],
        b"zset": [b"zrange", key, b"0", b"-1", b"withscores"],
    }
    if kind == b"none":
        return None
    value = parse_resp2(redis.call(reads[kind]))  # type: ignore[index]
    if kind in (b"set", b"hash"):
        value = sorted(value)  # type: ignore[arg-type]
    return kind, value, parse_resp2(redis.call([b"pexpiretime", key]))


COMMANDS = [
    [b"INCR", b"c"],
    [b"RPUSH", b"l", b"d"],
    [b"SADD", b"s1", b"w"],
    [b"RENAME", b"s2", b"moved"],
    [b"SUNIONSTORE", b"dest", b"s1", b"moved"],
    [b"MSETNX", b"a", b"1", b"fresh", b"2"],
    [b"MSETNX", b"fresh", b"1", b"fresh2", b"2"],
    [b"INCR", b"l"],  # WRONGTYPE: only this command fails
    [b"LPOP", b"l"],
    [b"HINCRBY", b"h", b"f", b"5"],
    [b"ZINCRBY", b"z", b"1", b"m"],
    [b"PEXPIREAT", b"h", b"%d" % LATER],
    [b"DEL", b"a"],
    [b"GET", b"c"],
    [b"SCARD", b"dest"],
    [b"SISMEMBER", b"dest", b"z"],
]
KEYS = [b"c", b"l", b"s1", b"s2", b"moved", b"dest", b"a", b"fresh", b"fresh2", b"h", b"z"]


def test_scratch_replies_and_effects_match_redis(redis: RawRedis) -> None:
    source = MachineClient(clock=lambda: NOW)
    _setup(source)
    values = _locked_values(source, KEYS)
    result = run_scratch(values, COMMANDS, NOW, SEED)
    for key, (exists, pexpireat, dump) in values.items():
        if exists:
            assert dump is not None
            restore = [b"restore", key, b"%d" % pexpireat, dump, b"ABSTTL"]
            assert redis.call(restore) == b"+OK\r\n"
    before = {key: _content(redis, key) for key in KEYS}
    assert redis.call([b"multi"]) == b"+OK\r\n"
    for argv in COMMANDS:
        assert redis.call(argv) == b"+QUEUED\r\n"
    assert resp2(Array(tuple(result.replies))) == redis.call([b"exec"])
    after = {key: _content(redis, key) for key in KEYS}
    changed = {key for key in KEYS if after[key] != before[key]}
    assert set(result.effects) == changed
    for key, (kind, pexpireat, payload) in result.effects.items():
        if after[key] is None:
            assert (kind, pexpireat, payload) == (0, 0, b"")
            continue
        assert kind == 1
        check = b"check:" + key
        restore = [b"restore", check, b"%d" % pexpireat, payload, b"ABSTTL"]
        assert redis.call(restore) == b"+OK\r\n"
        assert _content(redis, check) == after[key]


def test_an_expired_value_loads_as_absent_and_deleting_it_changes_nothing() -> None:
    source = MachineClient(clock=lambda: NOW)
    source.call("set", "k", "v")
    values = _locked_values(source, [b"k", b"n"])
    exists, _, dump = values[b"k"]
    values[b"k"] = (exists, NOW, dump)  # expired at the transaction's time
    result = run_scratch(values, [[b"GET", b"k"], [b"DEL", b"k"], [b"SET", b"n", b"1"]], NOW, 1)
    assert [resp2(r) for r in result.replies] == [b"$-1\r\n", b":0\r\n", b"+OK\r\n"]
    assert set(result.effects) == {b"n"}
    assert result.effects[b"n"][:2] == (1, 0)


def test_a_command_naming_an_unloaded_key_is_refused_before_anything_runs() -> None:
    with pytest.raises(ScratchKeyError) as refused:
        run_scratch({b"a": (0, 0, None)}, [[b"SET", b"a", b"1"], [b"RENAME", b"a", b"b"]], NOW, 1)
    assert refused.value.key == b"b"


def test_errors_are_per_command_and_unknown_commands_name_no_key() -> None:
    values: dict[bytes, LoadedValue] = {b"a": (0, 0, None)}
    commands = [[b"SET", b"a", b"x"], [b"NOSUCH", b"zzz"], [b"GET"], [b"APPEND", b"a", b"y"]]
    result = run_scratch(values, commands, NOW, 1)
    assert result.replies[0] == SimpleString("OK")
    assert isinstance(result.replies[1], ErrorReply)
    assert result.replies[2] == ErrorReply("ERR wrong number of arguments for 'get' command")
    assert result.replies[3] == Integer(2)
    assert set(result.effects) == {b"a"}


def test_a_script_naming_an_undeclared_key_fails_and_writes_nothing() -> None:
    """Declared keys only (`cairn.store.scripting.confine`), even a key another queued
    command locked, and even when the script catches the error."""
    values: dict[bytes, LoadedValue] = {b"a": (0, 0, None), b"b": (0, 0, None)}
    script = b"redis.call('set', KEYS[1], 1) return redis.pcall('set', 'b', 1)"
    result = run_scratch(values, [[b"EVAL", script, b"1", b"a"], [b"GET", b"b"]], NOW, 1)
    assert result.replies == [UNDECLARED, NullBulk()]
    assert result.effects == {}
