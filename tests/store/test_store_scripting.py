"""Lua scripting in the store: the sandbox, the budget (rollback on every replica alike),
the conversions both ways, EVAL_RO as a read, the node's script front, region bounds."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_harness import FakeClock, MachineClient

from cairn.resp.reply import (
    NULL,
    Array,
    Boolean,
    Bulk,
    Double,
    ErrorReply,
    Integer,
    Map,
    Reply,
    Set,
    SimpleString,
)
from cairn.store import StoreMachine, encode_command
from cairn.store.commands.errors import CommandError
from cairn.store.commands.spec import Ctx
from cairn.store.db import Db
from cairn.store.keyspace import MemoryKeyspace
from cairn.store.scope import Scope, range_key
from cairn.store.scripting import ScriptCache, ScriptFront, sha1_hex
from cairn.store.scripting.engine import run_script
from cairn.store.scripting.pool import StatePool
from cairn.store.scripting.sandbox import Rand48, ScriptLimits

SMALL = ScriptLimits(instructions=200_000, call_cost=100, memory=4 * 1024 * 1024)


def _client() -> MachineClient:
    return MachineClient(clock=FakeClock())


def _eval(client: MachineClient, body: str, *keys_and_args: str, numkeys: int = 0) -> Reply:
    return client.call("EVAL", body, str(numkeys), *keys_and_args)


def _run(
    body: bytes,
    limits: ScriptLimits = SMALL,
    keyspace: MemoryKeyspace | None = None,
    pool: StatePool | None = None,
):
    """Run `body` directly with `limits` in a batch that is committed unless it raised
    (in a state from `pool`, as a leader's run for effects, else in a new one)."""
    space = keyspace if keyspace is not None else MemoryKeyspace()
    batch = space.begin()
    db = Db(space, batch, 1_000, stamp=b"\0" * 16)
    try:
        reply = run_script(Ctx(db, 1_000, "eval", None, 7), "sha", body, [], [], readonly=False,
                           limits=limits, pool=pool)  # fmt: skip
    except CommandError:
        batch.abort()
        raise
    db.finish_stamps()
    batch.commit()
    return reply


def _warm_pool(limits: ScriptLimits = SMALL) -> StatePool:
    """A pool holding one state that already served a run (the next run reuses it)."""
    pool = StatePool()
    assert _run(b"local t = {} for i = 1, 1000 do t[i] = i end return #t", limits, pool=pool)
    assert len(pool) == 1
    return pool


def _pool_or_none(reused: bool, limits: ScriptLimits = SMALL) -> StatePool | None:
    return _warm_pool(limits) if reused else None


def _dropped(pool: StatePool | None) -> bool:
    """Whether the state of a run that hit a limit was dropped, not kept for reuse."""
    return pool is None or (len(pool) == 0 and pool.counters.reused == 1)


# -- the sandbox -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["os", "io", "debug", "print", "loadfile", "dofile", "require",
                                  "getfenv", "setfenv", "module", "newproxy"])  # fmt: skip
def test_dangerous_globals_are_absent(name: str) -> None:
    reply = _eval(_client(), f"return {name}")
    assert isinstance(reply, ErrorReply)
    assert f"nonexistent global variable '{name}'" in reply.message


def test_globals_and_libraries_are_read_only() -> None:
    client = _client()
    for body in ("x = 1", "redis = nil", "redis.call = nil", "string.x = 1", "math.pi = 3"):
        reply = _eval(client, body)
        assert isinstance(reply, ErrorReply), body
        assert "Attempt to modify a readonly table" in reply.message
    reply = _eval(client, "rawset(_G, 'x', 1)")
    assert isinstance(reply, ErrorReply) and "readonly table" in reply.message
    assert _eval(client, "local x = 5 return x") == Integer(5)


def test_loadstring_compiles_text_into_the_sandbox_only() -> None:
    client = _client()
    assert _eval(client, "return loadstring('return 1 + 1')()") == Integer(2)
    assert _eval(client, "return pcall(loadstring('return os.time()'))") == NULL
    reply = _eval(client, "local f, e = loadstring(string.dump(function() end)) return e")
    assert reply == Bulk(b"binary chunks are not allowed")


def test_every_run_starts_from_a_fresh_state() -> None:
    client = _client()
    assert _eval(client, "string.len = nil") != Integer(0)
    assert _eval(client, "return string.len('abc')") == Integer(3)


def test_random_is_deterministic_per_entry() -> None:
    body = "return {math.random(1000000), math.random(1000000)}"
    one, two = MachineClient(clock=FakeClock()), MachineClient(clock=FakeClock())
    assert _eval(one, body) == _eval(two, body)  # same log index: the same draws
    assert _eval(one, "math.randomseed(42) return math.random(1000)") == _eval(
        two, "math.randomseed(42) return math.random(1000)"
    )


def test_rand48_matches_redis() -> None:
    rand = Rand48()
    rand.seed(5)
    assert int(rand.next_fraction() * 1000) + 1 == 525  # Redis 7.0: randomseed(5), random(1000)


def test_time_inside_a_script_is_the_entry_time() -> None:
    client = MachineClient(clock=lambda: 1_700_000_123_456)
    reply = _eval(client, "return redis.call('TIME')")
    assert reply == Array((Bulk(b"1700000123"), Bulk(b"456000")))


# -- the budget ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"while true do end",
        b"while true do pcall(function() while true do end end) end",
        b"local co = coroutine.wrap(function() while true do end end) co()",
        b"return xpcall(function() while true do end end, function() while true do end end)",
        b"while true do redis.pcall('ping') end",
        b"return setmetatable({}, {__index = function() while true do end end})",
    ],
)
@pytest.mark.parametrize("reused", [False, True])
def test_the_budget_stops_every_kind_of_loop(body: bytes, reused: bool) -> None:
    pool = _pool_or_none(reused)
    started = time.perf_counter()
    with pytest.raises(CommandError) as caught:
        _run(body, pool=pool)
    assert "instruction budget" in caught.value.reply.message
    assert time.perf_counter() - started < 2
    assert _dropped(pool)


def test_pattern_matching_that_could_backtrack_for_ever_is_refused() -> None:
    started = time.perf_counter()
    for body in (
        b"return string.find(string.rep('a', 5000), '.-.-.-b')",
        b"return (string.rep('a', 5000)):match('(.*)(.*)(.*)b')",
        b"for w in string.rep('ab', 3000):gmatch('a.-b.-a.-x') do end",
    ):
        reply = _run(body)
        assert isinstance(reply, ErrorReply) and "pattern too complex" in reply.message
    assert time.perf_counter() - started < 2
    assert _run(b"return ('key:123'):match('^(%a+):(%d+)$')") == Bulk(b"key")
    assert _run(b"return string.find(string.rep('a', 5000), '.-.-.-b', 1, true)") == NULL
    assert _run(b"return (string.gsub('a-b-c', '[-]', '+'))") == Bulk(b"a+b+c")
    reply = _run(b"return #string.rep('', 2^31)")
    assert isinstance(reply, ErrorReply) and "string.rep result too large" in reply.message
    assert _run(b"return string.rep('ab', 3)") == Bulk(b"ababab")


@pytest.mark.parametrize("reused", [False, True])
def test_the_memory_limit_stops_a_script(reused: bool) -> None:
    pool = _pool_or_none(reused)
    with pytest.raises(CommandError) as caught:
        _run(b"local t = {} for i = 1, 1000 do t[i] = string.rep('x', 100000) .. i end", pool=pool)
    assert "memory limit" in caught.value.reply.message
    assert _dropped(pool)


@pytest.mark.parametrize(
    "body",
    [
        b"local t, i = {}, 0 while pcall(function() i = i + 1 t[i] = string.rep('x', 9000) .. i"
        b" end) do end for j = 1, 50 do pcall(redis.call, 'get', 'big') end return i",
        b"local t, i = {}, 0 while pcall(function() i = i + 1 t[i] = {i, i} end) do end"
        b" return redis.pcall('nosuch')",
        b"local t, i = {}, 0 while pcall(function() i = i + 1 t[i] = 'x' .. i end) do end return t",
    ],
)
@pytest.mark.parametrize("reused", [False, True])
def test_filling_the_memory_then_calling_python_ends_cleanly(body: bytes, reused: bool) -> None:
    space = MemoryKeyspace()
    batch = space.begin()
    Db(space, batch, 1, stamp=b"\0" * 16).set_string(b"big", b"z" * 200_000)
    batch.commit()
    limits = ScriptLimits(instructions=50_000_000, memory=1 << 20)
    pool = _pool_or_none(reused, limits)
    with pytest.raises(CommandError) as caught:  # never an abort of the process
        _run(body, limits, keyspace=space, pool=pool)
    assert "memory limit" in caught.value.reply.message
    assert _dropped(pool)


def test_a_script_stopped_by_the_budget_leaves_no_write() -> None:
    space = MemoryKeyspace()
    with pytest.raises(CommandError):
        _run(b"redis.call('set', 'k', 'v') while true do end", keyspace=space)
    assert Db(space, None, 1_000).lookup(b"k") is None
    assert _run(b"return redis.call('set', 'k', 'v')", keyspace=space) == SimpleString("OK")
    assert Db(space, None, 1_000).lookup(b"k") is not None


def test_through_the_machine_the_budget_rolls_back_and_all_replicas_agree() -> None:
    body = b"redis.call('incr', KEYS[1]) while true do end"
    data = encode_command("eval", [body, b"1", b"n"], 1_000)
    replies, states = [], []
    for _ in range(2):
        machine = StoreMachine()
        replies.append(machine.apply(1, data))
        states.append(machine.keyspace.scan(b""))
    assert replies[0] == replies[1]
    assert isinstance(replies[0], ErrorReply) and "budget" in replies[0].message
    assert states[0] == states[1]
    assert not any(b"n" in key for key, _ in states[0] if key.startswith(b"M"))


def test_a_runtime_error_keeps_earlier_writes_as_redis_does() -> None:
    client = _client()
    reply = _eval(client, "redis.call('set', 'w', '1') error('after')")
    assert isinstance(reply, ErrorReply)
    assert reply.message.startswith("ERR user_script:1: after script: ")
    assert client.call("GET", "w") == Bulk(b"1")


# -- conversions -----------------------------------------------------------------------------


def test_lua_values_become_replies() -> None:
    client = _client()
    assert _eval(client, "return 3.99") == Integer(3)
    assert _eval(client, "return -3.99") == Integer(-3)
    assert _eval(client, "return 1e300") == Integer(-(2**63))
    assert _eval(client, "return true") == Integer(1)
    assert _eval(client, "return false") == NULL
    assert _eval(client, "return {1, 'a', {2}, false, nil, 9}") == Array(
        (Integer(1), Bulk(b"a"), Array((Integer(2),)), NULL)
    )
    assert _eval(client, "return {ok='fine'}") == SimpleString("fine")
    assert _eval(client, "return {err='CODE text'}") == ErrorReply("CODE text")
    assert _eval(client, "return redis.error_reply('plain')") == ErrorReply("ERR plain")
    assert _eval(client, "return {double=2.5}") == Double(2.5)
    assert _eval(client, "return {map={a=1}}") == Map(((Bulk(b"a"), Integer(1)),))
    assert _eval(client, "return {set={a=true}}") == Set((Bulk(b"a"),))


def test_resp3_replies_inside_a_script() -> None:
    client = _client()
    client.call("HSET", "h", "f", "v")
    client.call("ZADD", "z", "1.5", "m")
    assert _eval(client, "redis.setresp(3) return redis.call('hgetall', 'h').map.f") == Bulk(b"v")
    assert _eval(client, "redis.setresp(3) return redis.call('zscore', 'z', 'm')") == Double(1.5)
    assert _eval(client, "return redis.call('zscore', 'z', 'm')") == Bulk(b"1.5")
    assert _eval(client, "redis.setresp(3) return type(redis.call('get', 'none'))") == Bulk(b"nil")
    assert _eval(client, "return type(redis.call('get', 'none'))") == Bulk(b"boolean")
    assert _eval(client, "redis.setresp(3) return false") == Boolean(False)


_ITEMS = st.recursive(
    st.integers(-(2**52), 2**52) | st.binary(max_size=8).filter(lambda b: b"]" not in b),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=12,
)


def _literal(value: object) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return "[[" + value.decode("latin-1") + "]]"
    assert isinstance(value, list)
    return "{" + ", ".join(_literal(v) for v in value) + "}"


def _expected(value: object) -> Reply:
    if isinstance(value, int):
        return Integer(value)
    if isinstance(value, bytes):
        return Bulk(value)
    assert isinstance(value, list)
    return Array(tuple(_expected(v) for v in value))


@settings(max_examples=40, deadline=None)
@given(_ITEMS)
def test_nested_tables_convert_like_a_model(value: object) -> None:
    body = "return " + _literal(value)
    assume_ok = all(0x20 <= c < 0x7F for c in body.encode("latin-1"))
    if not assume_ok:
        return
    assert _eval(_client(), body) == _expected(value)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=6), min_size=1, max_size=5))
def test_redis_call_round_trips_a_list(items: list[bytes]) -> None:
    client = _client()
    args = [i.hex() for i in items]
    reply = client.call(
        "EVAL",
        "redis.call('rpush', KEYS[1], unpack(ARGV)) return redis.call('lrange', KEYS[1], 0, -1)",
        "1",
        "l",
        *args,
    )
    assert reply == Array(tuple(Bulk(a.encode()) for a in args))


# -- read-only scripts, regions ------------------------------------------------------------


def test_eval_ro_runs_as_a_read_and_refuses_writes() -> None:
    client = _client()
    client.call("SET", "k", "v")
    index = client.index
    assert client.call("EVAL_RO", "return redis.call('get', KEYS[1])", "1", "k") == Bulk(b"v")
    assert client.index == index  # not a log entry
    reply = client.call("EVAL_RO", "return redis.call('set', 'k', 'x')", "0")
    assert isinstance(reply, ErrorReply)
    assert reply.message.startswith("ERR Write commands are not allowed from read-only scripts.")
    reply = _eval(client, "#!lua flags=no-writes\nreturn redis.call('del', 'k')")
    assert isinstance(reply, ErrorReply) and "read-only scripts" in reply.message
    assert client.call("GET", "k") == Bulk(b"v")


def test_a_script_may_not_touch_keys_outside_its_region() -> None:
    middle = range_key(b"m")
    machine = StoreMachine(scope=Scope.region(1, b"", middle))
    inside = next(k for k in (b"a%d" % i for i in range(100)) if range_key(k) < middle)
    outside = next(k for k in (b"b%d" % i for i in range(100)) if range_key(k) >= middle)
    body = b"return redis.call('set', ARGV[1], 'v')"
    ok = machine.apply(1, encode_command("eval", [body, b"1", inside, inside], 1_000))
    assert ok == SimpleString("OK")
    reply = machine.apply(2, encode_command("eval", [body, b"1", inside, outside], 1_000))
    assert isinstance(reply, ErrorReply)
    assert reply.message.startswith(
        "ERR Script attempted to access a non local key in a cluster node script: "
    )


# -- the node's script front -----------------------------------------------------------------


def test_evalsha_becomes_eval_with_the_cached_body() -> None:
    front = ScriptFront()
    body = b"return 1"
    assert front.front([b"EVALSHA", sha1_hex(body).encode(), b"0"]) == ErrorReply(
        "NOSCRIPT No matching script. Please use EVAL."
    )
    assert front.front([b"SCRIPT", b"LOAD", body]) == Bulk(sha1_hex(body).encode())
    assert front.front([b"evalsha_ro", sha1_hex(body).upper().encode(), b"0", b"x"]) == [
        b"eval_ro",
        body,
        b"0",
        b"x",
    ]
    assert front.front([b"SCRIPT", b"FLUSH"]) == SimpleString("OK")
    assert front.front([b"SCRIPT", b"EXISTS", sha1_hex(body).encode()]) == Array((Integer(0),))


def test_script_load_refuses_what_does_not_compile() -> None:
    reply = ScriptFront().front([b"SCRIPT", b"LOAD", b"return +"])
    assert isinstance(reply, ErrorReply)
    assert reply.message.startswith("ERR Error compiling script (new function): user_script:1:")


def test_huge_scripts_are_refused_before_they_reach_lua() -> None:
    body = b"return 1 --" + b"x" * (20 * 1024 * 1024)
    reply = ScriptFront().front([b"SCRIPT", b"LOAD", body])
    assert isinstance(reply, ErrorReply) and "too large" in reply.message
    with pytest.raises(CommandError) as caught:
        _run(body)
    assert "memory limit" in caught.value.reply.message


def test_the_cache_is_bounded() -> None:
    cache = ScriptCache(max_scripts=2, max_bytes=100)
    first = cache.add(b"return 1")
    cache.add(b"return 2")
    cache.add(b"return 3")
    assert len(cache) == 2 and cache.get(first.encode()) is None
    cache.add(b"x" * 95)
    assert len(cache) == 1
