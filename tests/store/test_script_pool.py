"""Reused Lua states (`cairn.store.scripting.pool`): a run in a reused state sees exactly
what a run in a new state sees, whatever the runs before it tried; a state that hit a
limit, or was changed where Lua 5.1 lets a script write, is dropped; the budget, the
memory limit and the compiled-function cache behave per run."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from cairn.resp.reply import Array, Bulk, ErrorReply, Integer, Reply
from cairn.store.commands.errors import CommandError
from cairn.store.commands.spec import Ctx
from cairn.store.db import Db
from cairn.store.keyspace import MemoryKeyspace
from cairn.store.scripting.cache import sha1_hex
from cairn.store.scripting.engine import run_function, run_script
from cairn.store.scripting.pool import StatePool
from cairn.store.scripting.sandbox import CACHED_FUNCTIONS, IDLE, ScriptLimits

LIMITS = ScriptLimits(instructions=2_000_000, call_cost=100, memory=2 * 1024 * 1024)


def _run(body: bytes, pool: StatePool | None, keys: Sequence[bytes] = (), seed: int = 7) -> Reply:
    """Run `body` once (its writes dropped afterwards) in a state from `pool`."""
    space = MemoryKeyspace()
    batch = space.begin()
    try:
        ctx = Ctx(Db(space, batch, 1_000, stamp=b"\0" * 16), 1_000, "eval", None, seed)
        return run_script(ctx, sha1_hex(body), body, list(keys), [], readonly=False,
                          limits=LIMITS, pool=pool)  # fmt: skip
    finally:
        batch.abort()


def _fcall(code: bytes, name: bytes, pool: StatePool) -> Reply:
    space = MemoryKeyspace()
    batch = space.begin()
    try:
        ctx = Ctx(Db(space, batch, 1_000, stamp=b"\0" * 16), 1_000, "fcall", None, 7)
        return run_function(ctx, name, code, [], [], readonly=False, limits=LIMITS, pool=pool)
    finally:
        batch.abort()


REFUSED = b"""
local attempts = {
  function() x = 1 end,
  function() _G.x = 1 end,
  function() rawset(_G, 'x', 1) end,
  function() redis.call = nil end,
  function() redis.x = 1 end,
  function() rawset(redis, 'x', 1) end,
  function() cjson.x = 1 end,
  function() rawset(cjson, 'null', 1) end,
  function() string.x = 1 end,
  function() math.random = nil end,
  function() setmetatable(_G, {}) end,
  function() setmetatable(redis, {}) end,
  function() setmetatable(string, {}) end,
  function() package.loaded.x = 1 end,
  function() getfenv(1).x = 1 end,
  function() setmetatable(cjson.null, {}) end,
}
local refused = 0
for _, f in ipairs(attempts) do
  if not pcall(f) then refused = refused + 1 end
end
collectgarbage('stop')
collectgarbage('setpause', 1000)
math.randomseed(42)
cjson.encode_number_precision(3)
cjson.encode_max_depth(2)
redis.setresp(3)
return {refused, #attempts}
"""
"""Every way to leave something behind that the sandbox refuses, then every per-run
setting changed: the state stays reusable."""

ACCEPTED = [
    b"getmetatable('').__index.x = 'leak'",
    b"getmetatable('').__index.len = function() return 'leak' end",
    b"getmetatable('').__add = function() return 'leak' end",
    b"getmetatable('').__index = {len = function() return 'leak' end}",
    b"setmetatable(getmetatable('').__index, {__index = function() return 'leak' end})",
    b"setmetatable(getmetatable(''), {__index = function() return 'leak' end})",
    b"table.insert(_G, 'leak')",
    b"table.insert(string, 'leak')",
    b"table.insert(redis, 'leak')",
    b"table.insert(cjson, 'leak')",
    b"table.insert(math, 'leak')",
]
"""Writes Lua 5.1 lets a script make to what every run shares: the state is dropped."""

PROBE = b"""
local problems = {}
local function check(name, ok) if not ok then problems[#problems + 1] = name end end
check('global x', not pcall(function() return x end))
check('_G', rawget(_G, 'x') == nil and rawget(_G, 1) == nil and next(_G) == nil)
check('_G[1]', not pcall(function() return _G[1] end))
check('redis', redis.x == nil and redis[1] == nil and redis.call ~= nil)
check('string', string.x == nil and string[1] == nil and ('').x == nil)
check('string.len', ('abc'):len() == 3 and string.len('abc') == 3)
local fields = 0
for _ in pairs(getmetatable('')) do fields = fields + 1 end
check('string metatable', fields == 1 and getmetatable(getmetatable('')) == nil)
check('string __index', getmetatable(getmetatable('').__index) == nil)
check('string __add', not pcall(function() return '' + {} end))
check('cjson', cjson.x == nil and cjson[1] == nil and type(cjson.null) == 'userdata')
check('cjson precision', cjson.encode({1.23456789}) == '[1.23456789]')
check('cjson depth', pcall(cjson.encode, {{{{1}}}}))
check('math', type(math.random) == 'function' and math[1] == nil)
check('package', not pcall(function() return package end))
local before = collectgarbage('count')
for i = 1, 20000 do local t = {} end
check('collector running', collectgarbage('count') - before < 400)
redis.call('hset', KEYS[1], 'f', 'v')
check('resp2', redis.call('hgetall', KEYS[1])[1] == 'f')
return problems
"""
"""What a second run checks: everything as in a new state."""


def test_a_new_state_passes_the_probe() -> None:
    assert _run(PROBE, None, [b"h"]) == Array(())


def test_refused_attempts_leave_nothing_and_the_state_is_reused() -> None:
    pool = StatePool()
    assert _run(REFUSED, pool) == Array((Integer(16), Integer(16)))
    (state,) = pool.idle()
    assert state.api is IDLE  # an idle state holds nothing of its last run
    assert _run(PROBE, pool, [b"h"]) == Array(())
    assert pool.counters.reused == 1 and pool.counters.built == 1


@pytest.mark.parametrize("body", ACCEPTED)
def test_a_state_a_script_changed_is_dropped(body: bytes) -> None:
    pool = StatePool()
    assert _run(b"return 1", pool) == Integer(1)
    assert _run(body, pool) is not None
    assert len(pool) == 0 and pool.counters.dropped == 1
    assert _run(PROBE, pool, [b"h"]) == Array(())


def test_random_draws_do_not_depend_on_earlier_runs() -> None:
    body = b"return {math.random(1000000), math.random()}"
    pool = StatePool()
    assert _run(b"math.randomseed(42) math.random()", pool) is not None
    assert _run(body, pool, seed=3) == _run(body, None, seed=3)
    assert _run(body, pool, seed=4) != _run(body, None, seed=3)
    assert pool.counters.reused == 2


def test_the_budget_is_per_run() -> None:
    pool = StatePool()
    body = b"local n = 0 for i = 1, 600000 do n = n + 1 end return n"  # ~60% of the budget
    for _ in range(3):
        assert _run(body, pool) == Integer(600_000)
    assert pool.counters.reused == 2 and len(pool) == 1
    with pytest.raises(CommandError) as caught:
        _run(b"while true do end", pool)
    assert "instruction budget" in caught.value.reply.message
    assert len(pool) == 0  # the state that ran out is not reused
    assert _run(body, pool) == Integer(600_000)
    assert pool.counters.built == 2


def test_the_memory_limit_is_per_run_and_credits_the_cached_functions() -> None:
    pool = StatePool()
    filler = b"x" * 15_000
    for i in range(CACHED_FUNCTIONS - 1):  # about 1 MB of compiled constants kept
        assert _run(b"return #'%d%s'" % (i, filler), pool) == Integer(15_000 + len(b"%d" % i))
    (state,) = pool.idle()
    assert len(state.compiled) == CACHED_FUNCTIONS - 1
    assert state.runtime.get_memory_used() > state.fresh_used + 800_000
    big = b"local t = {} for i = 1, 130 do t[i] = string.rep('y', 10000) .. i end return #t"
    for _ in range(3):  # about 1.3 MB of a 2 MB limit, as in a new state
        assert _run(big, pool) == Integer(130)
    assert _run(big, None) == Integer(130)
    assert pool.counters.built == 1
    huge = b"local t = {} for i = 1, 300 do t[i] = string.rep('y', 10000) .. i end return #t"
    for reused in (None, pool):
        with pytest.raises(CommandError) as caught:
            _run(huge, reused)
        assert "memory limit" in caught.value.reply.message
    assert len(pool) == 0


def test_compiled_functions_are_cached_and_bounded() -> None:
    pool = StatePool()
    for _ in range(3):
        assert _run(b"return 'same'", pool) == Bulk(b"same")
    (state,) = pool.idle()
    assert list(state.compiled) == [(b"@user_script", b"return 'same'")]
    for i in range(CACHED_FUNCTIONS + 6):
        assert _run(b"return %d" % i, pool) == Integer(i)
    (state,) = pool.idle()
    assert len(state.compiled) == CACHED_FUNCTIONS
    assert (b"@user_script", b"return 'same'") not in state.compiled  # the oldest went first
    reply = _run(b"return 1 +", pool)
    assert isinstance(reply, ErrorReply) and "Error compiling script" in reply.message
    reply = _run(b"error('boom')", pool)
    assert isinstance(reply, ErrorReply) and "user_script:1: boom" in reply.message
    assert len(pool) == 1 and pool.counters.built == 1  # errors keep the state


def test_a_library_runs_afresh_at_every_fcall_in_a_reused_state() -> None:
    pool = StatePool()
    counter = (
        b"#!lua name=one\nlocal n = 0\n"
        b"redis.register_function('f', function() n = n + 1 return n end)"
    )
    other = b"#!lua name=two\nredis.register_function('g', function() return 2 end)"
    assert _fcall(counter, b"f", pool) == Integer(1)
    assert _fcall(counter, b"f", pool) == Integer(1)
    assert _fcall(other, b"f", pool) == ErrorReply("ERR Function not found")
    assert _fcall(other, b"g", pool) == Integer(2)
    reply = _fcall(b"#!lua name=bad\nredis.register_function('h', function() error('no') end)",
                   b"h", pool)  # fmt: skip
    assert isinstance(reply, ErrorReply) and "user_function:2: no" in reply.message
    assert pool.counters.built == 1 and pool.counters.reused == 4


def test_the_pool_keeps_states_per_limits_and_bounded() -> None:
    pool = StatePool(idle_states=2)
    small = ScriptLimits(memory=1 << 20)
    space = MemoryKeyspace()
    for limits in (LIMITS, small, LIMITS, ScriptLimits(memory=3 << 20)):
        batch = space.begin()
        ctx = Ctx(Db(space, batch, 1_000, stamp=b"\0" * 16), 1_000, "eval", None, 1)
        assert run_script(ctx, "sha", b"return 1", [], [], readonly=False, limits=limits,
                          pool=pool) == Integer(1)  # fmt: skip
        batch.abort()
    assert [s.limits for s in pool.idle()] == [LIMITS, ScriptLimits(memory=3 << 20)]
    assert pool.counters.built == 3 and pool.counters.reused == 1
