"""The Lua state a script runs in: Redis' restricted globals, its `redis` library, and the
instruction budget that bounds every run.

Theory of operation. A script runs in a Lua 5.1 state (`lupa.lua51`, the Lua Redis
embeds) built by `LuaState`: the `PRELUDE` below runs once in it with the Python callbacks
as arguments and returns the sandbox's entry points. Building one costs about 3 ms. A run
replayed on every replica gets a new state (`new_state`), so every replica starts it from
the same state; a leader's run for effects takes a reused one from a `pool.StatePool`,
rebound to the run (`LuaState.bind`) and checked after it (`LuaState.tidy`), so that it
shows the next run exactly what a new state shows (see `pool`).

The sandbox is Redis 7.0's: the script's global environment is a read-only proxy (writing
a global fails with Redis' "Attempt to modify a readonly table", reading an undefined one
with "Script attempted to access nonexistent global variable"), and it holds only the base
functions Redis keeps, `string`, `table`, `math` and `coroutine` (themselves read-only),
`KEYS`, `ARGV` and `redis`. There is no `os`, `io`, `debug`, `print`, `loadfile`,
`dofile`, `require`, `getfenv` or `setfenv`; `loadstring`/`load` compile text only (no
bytecode, which could crash the VM) into the same sandbox. Redis' `bit`, `cjson` and
`cmsgpack` and `struct` libraries are Cairn's own (`libs`). While a FUNCTION
library's top-level code runs (`start_load`), its globals are only Redis' library API
(`redis.register_function`, `redis.log`, the constants); its functions then run with
the script globals above, without KEYS and ARGV (they get keys and args as arguments).

Randomness. `math.random` is Redis' own generator (`redisLrand48`, a 48-bit LCG with
`math.randomseed` as `redisSrand48`), seeded at the start of each run from the command's
`ctx.rng`: a fresh draw of the leader's random source for a script run for its effects
(`effects`; only its writes are replicated, so each run draws new numbers, as Redis 7.0,
which seeds it once per process), and a source seeded by the entry's log index for a
script replayed in apply, so every replica draws the same numbers.

The budget. Redis lets a script run past `busy-reply-threshold` and then answers `-BUSY`
to everyone until SCRIPT KILL. In Cairn a script runs on the region's leader between
applies (or, replayed, inside the apply of one Raft entry on every replica), so it is
bounded by a deterministic count instead: a Lua count hook
charges `HOOK_STEP` VM instructions at a time (and each `redis.call` charges
`ScriptLimits.call_cost`); once the total passes `ScriptLimits.instructions` the hook
raises an error at every following instruction, so no `pcall` can swallow it, and the run
ends. Every replica counts the same instructions, so all agree that the script failed; its
writes are then discarded (see `engine`). Coroutines get the same hook (a Lua 5.1 hook is
per thread). `max_memory` bounds the Lua state's allocations the same way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import lupa.lua51 as lua51

from cairn.store.scripting.prelude import FUNCTIONS_LUA, LIBRARIES_LUA, REUSE_LUA

if TYPE_CHECKING:
    pass

HOOK_STEP = 1000
"""VM instructions between two runs of the budget hook."""

HEADROOM = 4 * 1024 * 1024
"""Bytes the Lua state may hold past `ScriptLimits.memory` (lupa's hard cap): the hook
stops a script past the limit itself, so the headroom absorbs a burst between two hook
runs and the Python side's own allocations (see `LuaState.room`)."""
SLACK = 64 * 1024
"""Bytes kept free below the hard cap before Python creates a Lua value."""
CACHED_FUNCTIONS = 64
"""Compiled scripts a reused state keeps (`LuaState.compile_cached`)."""
CACHED_BYTES = 1024 * 1024
"""Bytes of script source whose compiled functions a reused state keeps at most."""


@dataclass(frozen=True, slots=True)
class ScriptLimits:
    """The bounds of one script run: the same on every replica (they decide the outcome).

    `instructions`: Lua VM instructions (at the default about 50 ms of pure Lua, or about
    5,000 `redis.call`s);
    `call_cost`: instructions charged per `redis.call`/`redis.pcall` (a command costs far
    more than one VM instruction); `memory`: bytes the Lua state may allocate;
    `pattern_steps`: the bound on one pattern match (a C call no hook can stop).
    """

    instructions: int = 5_000_000
    pattern_steps: int = 100_000_000
    """The most steps a `string.find/match/gmatch/gsub` may be estimated to take:
    (subject length + 1) ^ (quantifiers in the pattern, + 1 unless anchored by ``^``)."""
    call_cost: int = 1_000
    memory: int = 64 * 1024 * 1024


DEFAULT_LIMITS = ScriptLimits()


class Rand48:
    """Redis' `redisLrand48`/`redisSrand48`: the POSIX drand48 LCG, as `math.random` uses."""

    __slots__ = ("_x",)

    _A = 0x5DEECE66D
    _C = 0xB
    _MASK = (1 << 48) - 1
    _MAX = 2**31 - 1

    def __init__(self, seed: int = 0) -> None:
        self._x = 0
        self.seed(seed)

    def seed(self, value: int) -> None:
        """`redisSrand48(value)`: the high 32 bits of the state are the seed's low 32."""
        self._x = ((value & 0xFFFFFFFF) << 16) | 0x330E

    def next_fraction(self) -> float:
        """The `r` of `redis_math_random`: `(lrand48() % INT32_MAX) / INT32_MAX`."""
        self._x = (self._A * self._x + self._C) & self._MASK
        return ((self._x >> 17) % self._MAX) / self._MAX


PRELUDE = r"""
local api, limit, step, call_cost, pattern_steps, memory = ...
local collectgarbage = collectgarbage
local py_call, py_pcall, py_errtext, py_text, py_rand, py_srand, py_sha1, py_setresp, py_log =
    api.call, api.pcall, api.errtext, api.text, api.rand, api.srand, api.sha1hex,
    api.setresp, api.log
local py_exhausted = api.exhausted
local dbg, coroutine_create, coroutine_wrap = debug, coroutine.create, coroutine.wrap
local error, type, tostring, select, setmetatable, rawset, floor =
    error, type, tostring, select, setmetatable, rawset, math.floor
local loadstring_raw, setfenv, pcall_raw, xpcall_raw, rawget =
    loadstring, setfenv, pcall, xpcall, rawget
local MARK = '__cairn_budget_exceeded__'
local next, pairs, rawequal, getmetatable_raw = next, pairs, rawequal, dbg.getmetatable

-- the budget -------------------------------------------------------------------------
local used, exceeded = 0, false
local counters = {calls = 0, oom = false}
local hook
local count_memory, soft_kb = collectgarbage, memory / 1024
local base_soft_kb = soft_kb
hook = function()
  used = used + step
  if not exceeded then
    if count_memory('count') > soft_kb then counters.oom = true end
    if counters.oom or used + counters.calls * call_cost > limit then
      exceeded = true
      py_exhausted()
      dbg.sethook(hook, '', 1)
    end
  end
  if exceeded then error(MARK, 0) end
end

-- read-only tables ---------------------------------------------------------------------
local protected = {}
local function readonly_error() error('Attempt to modify a readonly table', 2) end
local function readonly(t)
  local proxy = setmetatable({}, {__index = t, __newindex = readonly_error,
                                  __metatable = false})
  protected[proxy] = true
  return proxy
end

-- math.random as Redis ----------------------------------------------------------------
local function check_int(v, n)
  if type(v) ~= 'number' then
    error("bad argument #" .. n .. " to 'random' (number expected, got " .. type(v) .. ")", 3)
  end
  return v - v % 1
end
local function random(...)
  local argc = select('#', ...)
  local r = py_rand()
  if argc == 0 then return r end
  local a, b = ...
  if argc == 1 then
    local u = check_int(a, 1)
    if u < 1 then error("bad argument #1 to 'random' (interval is empty)", 2) end
    return floor(r * u) + 1
  end
  if argc == 2 then
    local l, u = check_int(a, 1), check_int(b, 2)
    if l > u then error("bad argument #2 to 'random' (interval is empty)", 2) end
    return floor(r * (u - l + 1)) + l
  end
  error('wrong number of arguments', 2)
end
local function randomseed(v) py_srand(check_int(v, 1)) end

-- the environment ----------------------------------------------------------------------
local base = {}
local mode = 'run'      -- 'load' while a FUNCTION library's top-level code runs
local library_api       -- what that code sees as globals (set below)
local env = setmetatable({}, {
  __index = function(_, k)
    local v
    if mode == 'load' then v = library_api[k] else v = base[k] end
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = readonly_error,
  __metatable = false,
})
protected[env] = true

local function sandboxed_load(text, name)
  if type(text) == 'string' and text:byte(1) == 27 then
    return nil, 'binary chunks are not allowed'
  end
  local f, err = loadstring_raw(text, name)
  if f then setfenv(f, env) end
  return f, err
end
local function load(reader, name)
  if type(reader) == 'string' then return sandboxed_load(reader, name) end
  local parts = {}
  while true do
    local piece = reader()
    if piece == nil or piece == '' then break end
    parts[#parts + 1] = piece
  end
  return sandboxed_load(table.concat(parts), name)
end

local function hooked_create(f)
  local co = coroutine_create(f)
  dbg.sethook(co, hook, '', exceeded and 1 or step)
  return co
end
local function hooked_wrap(f)
  local co = hooked_create(f)
  return function(...)
    local res = {coroutine.resume(co, ...)}
    if not res[1] then error(res[2], 0) end
    return select(2, unpack(res))
  end
end

for _, name in ipairs({'assert', 'error', 'ipairs', 'next', 'pairs', 'pcall', 'rawequal',
                       'rawget', 'select', 'tonumber', 'tostring', 'type', 'unpack',
                       'xpcall', 'gcinfo', 'collectgarbage', 'setmetatable',
                       'getmetatable', '_VERSION'}) do
  base[name] = _G[name]
end
base.loadstring = sandboxed_load
base.load = load
base.rawset = api.rawset
-- Pattern matching is one C call the hook cannot interrupt, and backtracking makes it
-- polynomial in the subject's length with the number of quantifiers as the exponent
-- (`s:find('.-.-.-x')`): a match whose estimated steps pass PATTERN_STEPS is refused.
local string_copy = {}
for k, v in pairs(string) do string_copy[k] = v end
local function quantifiers(pattern)
  local count, i, n, in_set = 0, 1, #pattern, false
  while i <= n do
    local c = pattern:sub(i, i)
    if c == '%' then
      i = i + 1
    elseif in_set then
      if c == ']' then in_set = false end
    elseif c == '[' then
      in_set = true
      if pattern:sub(i + 1, i + 1) == ']' then i = i + 1 end
    elseif c == '*' or c == '+' or c == '-' then
      count = count + 1
    end
    i = i + 1
  end
  return count
end
local function guard(name, subject, pattern, plain)
  if plain or type(subject) ~= 'string' and type(subject) ~= 'number' then return end
  if type(pattern) ~= 'string' and type(pattern) ~= 'number' then return end
  pattern = tostring(pattern)
  local exponent = quantifiers(pattern)
  if pattern:sub(1, 1) ~= '^' or name == 'gmatch' then exponent = exponent + 1 end
  if (#tostring(subject) + 1) ^ exponent > pattern_steps then
    error('pattern too complex for a subject of ' .. #tostring(subject) ..
          ' bytes (Cairn bounds pattern matching, see docs/scripting.md)', 3)
  end
end
for _, name in ipairs({'find', 'match', 'gmatch', 'gsub'}) do
  local raw = string[name]
  string_copy[name] = function(s, p, a, b)
    guard(name, s, p, name == 'find' and b)
    return raw(s, p, a, b)
  end
end
-- string.rep loops n times in C even for an empty string: bounded by the memory limit.
local rep = string.rep
string_copy.rep = function(s, n)
  if type(n) == 'number' and type(s) == 'string' and n * (#s > 0 and #s or 1) > memory then
    error('string.rep result too large (the Lua memory limit is ' .. memory .. ' bytes)', 2)
  end
  return rep(s, n)
end
getmetatable('').__index = string_copy
base.string = readonly(string_copy)
base.table = readonly(table)
local math_copy = {}
for k, v in pairs(math) do math_copy[k] = v end
math_copy.random, math_copy.randomseed = random, randomseed
base.math = readonly(math_copy)
local co_copy = {}
for k, v in pairs(coroutine) do co_copy[k] = v end
co_copy.create, co_copy.wrap = hooked_create, hooked_wrap
base.coroutine = readonly(co_copy)
base._G = env

-- the redis library --------------------------------------------------------------------
-- call, pcall, sha1hex, log and setresp are Python callables: a C function keeps the
-- caller's frame even in `return redis.call(...)` (a tail call), so an error names the
-- script's line as Redis does. They raise Python exceptions, which reach Lua as userdata.
local function error_reply(...)
  local msg = ...
  if select('#', ...) ~= 1 or type(msg) ~= 'string' then
    return {err = 'ERR wrong number or type of arguments'}
  end
  if msg:sub(1, 1) ~= '-' then msg = '-' .. msg end
  return {err = py_errtext(msg)}
end
local function status_reply(...)
  local msg = ...
  if select('#', ...) ~= 1 or type(msg) ~= 'string' then
    return {err = 'ERR wrong number or type of arguments'}
  end
  return {ok = msg}
end

local py_raw = api.rawtext
local function caught(e)
  if type(e) == 'userdata' then return py_raw(e) end
  if type(e) == 'table' and type(rawget(e, 'err')) == 'string' then return rawget(e, 'err') end
  return e
end
local function pcall_result(ok, ...)
  if ok then return ok, ... end
  return ok, caught((...))
end
base.pcall = function(f, ...) return pcall_result(pcall_raw(f, ...)) end
-- A handler runs where the error was raised: for the budget's error, inside the hook,
-- where Lua runs no hook. So the script's own handler is skipped once the budget is out.
base.xpcall = function(f, h)
  return xpcall_raw(f, function(e)
    if exceeded then return e end
    return h(caught(e))
  end)
end

--@LIBRARIES@
base.redis = readonly({
  call = py_call,
  pcall = py_pcall,
  error_reply = error_reply,
  status_reply = status_reply,
  sha1hex = py_sha1,
  log = py_log,
  setresp = py_setresp,
  set_repl = function() end,
  replicate_commands = function() return true end,
  breakpoint = function() return false end,
  debug = function() end,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REPL_NONE = 0, REPL_AOF = 1, REPL_SLAVE = 2, REPL_REPLICA = 2, REPL_ALL = 3,
  REDIS_VERSION = '7.0.15', REDIS_VERSION_NUM = 0x07000f,
})

-- running a script ---------------------------------------------------------------------
local chunk_name = '@user_script'
--@FUNCTIONS@
local function handler(err)
  if type(err) == 'userdata' then
    err = {err = py_text(err)}
  elseif type(err) ~= 'table' then
    err = {err = 'ERR ' .. tostring(err)}
  end
  for level = 2, 64 do
    local info = dbg.getinfo(level, 'Sl')
    if info == nil then break end
    if info.source == chunk_name then
      rawset(err, 'source', info.source)
      rawset(err, 'line', info.currentline)
      break
    end
  end
  return err
end

local function compile(body, name)
  chunk_name = name or '@user_script'
  local f, err = loadstring_raw(body, chunk_name)
  return f, err
end

-- A library: `start_load` runs before its code (under the hook), `registrations` after it;
-- then `start_function` makes the registered callback the run's entry point.
local function start_load(f, name)
  chunk_name = name
  registered, by_name = {}, {}
  mode = 'load'
  setfenv(f, env)
  dbg.sethook(hook, '', step)
end
local function registrations()
  mode = 'run'
  local out = {}
  for i, e in ipairs(registered) do
    out[i] = {e.name, e.description or false, table.concat(e.flags, ',')}
  end
  return out
end
local function start_function(name, keys, argv)
  mode = 'run'
  local entry = by_name[name]
  if entry == nil then  -- FCALL names a function in any case
    for _, e in ipairs(registered) do
      if string.lower(e.name) == string.lower(name) then entry = e end
    end
  end
  if entry == nil then return nil end
  local callback = entry.callback
  return function() return callback(keys, argv) end, table.concat(entry.flags, ',')
end

-- `start` installs the hook last; Python then calls `xpcall(f, handler)`, converts the
-- result (metamethods still under the hook) and calls `stop` (the C function
-- debug.sethook: clearing the hook runs no VM instruction the hook could stop).
local function start(f, keys, argv)
  chunk_name = '@user_script'
  base.KEYS, base.ARGV = keys, argv
  setfenv(f, env)
  dbg.sethook(hook, '', step)
end

--@REUSE@
-- luaL_where(L, 1) for a library function (a Python callable): the position of the Lua
-- line that called it, none when a C function (pcall) did. Levels: 1 this, 2 the callable.
local function where()
  local info = dbg.getinfo(3, 'Sl')
  if info and info.currentline > 0 then
    return info.short_src .. ':' .. info.currentline .. ': '
  end
  return ''
end

return compile, start, xpcall, handler, dbg.sethook, counters, protected, rawset,
       start_load, registrations, start_function, where, null, json_encode, prepare, tidy
"""
"""The Lua source of the sandbox (see the module docstring); returns its entry points
(see `LuaState`)."""
PRELUDE = (
    PRELUDE.replace("--@FUNCTIONS@\n", FUNCTIONS_LUA)
    .replace("--@LIBRARIES@\n", LIBRARIES_LUA)
    .replace("--@REUSE@\n", REUSE_LUA)
)


class ScriptError(Exception):
    """An error a `redis.*` function raises into the script: `text` is the error table's
    text (``CODE message``), what `pcall` returns and the reply shows."""

    def __init__(self, text: bytes) -> None:
        super().__init__(text.decode("utf-8", "replace"))
        self.text = text


class ScriptApi(Protocol):
    """The Python side of the `redis` library a run provides."""

    def call(self, *args: Any) -> Any:
        """`redis.call`: the reply as a Lua value; raises `ScriptError`."""
        ...

    def pcall(self, *args: Any) -> Any:
        """`redis.pcall`: the reply as a Lua value, errors as ``{err=...}``."""
        ...

    def setresp(self, *args: Any) -> None:
        """`redis.setresp`."""
        ...

    def log(self, *args: Any) -> None:
        """`redis.log`."""
        ...


class _Idle:
    """The `redis` library's Python side of a state between runs (nothing calls it)."""

    def call(self, *args: Any) -> Any:
        """Refused: no run is bound."""
        raise ScriptError(b"ERR no script is running in this Lua state")

    pcall = call
    setresp = call
    log = call


IDLE: ScriptApi = _Idle()


class LuaState:
    """One Lua state with the sandbox installed. A state made by `new_state` serves one
    run; one from a `pool.StatePool` serves many, rebound to each (`bind`) and checked
    after each (`tidy`): every per-run part (the `redis` library's Python side, the
    random generator, the budget, the memory accounting, CJSON's settings) is reached
    through this object, never baked into the Lua state."""

    def __init__(self, limits: ScriptLimits, api: ScriptApi, rand: Rand48) -> None:
        self.limits = limits
        self.hard_cap = limits.memory + HEADROOM
        self.call_cost = limits.call_cost
        self.instructions = limits.instructions
        from cairn.store.scripting.libs import Libraries, library_functions  # they import this

        self.api = api
        self.rand = rand
        self.libs = Libraries()
        self.spent = False
        """Set when the instruction budget ran out (every replica sets it alike)."""
        self.runs = 1
        """Runs this state served (this one included)."""
        self.compiled: dict[tuple[bytes, bytes], Any] = {}
        """Compiled chunks by (chunk name, source), oldest first (`compile_cached`)."""
        self.compiled_bytes = 0
        self.runtime = lua51.LuaRuntime(
            encoding=None,
            unpack_returned_tuples=True,
            register_eval=False,
            register_builtins=False,
            max_memory=limits.memory + HEADROOM,
        )
        functions = {
            b"call": self._call,
            b"pcall": self._pcall,
            b"errtext": self._error_text,
            b"text": self._exception_text,
            b"rawtext": self._raw_text,
            b"rand": self._rand,
            b"srand": self._srand,
            b"sha1hex": self._sha1_hex,
            b"setresp": self._setresp,
            b"log": self._log,
            b"rawset": self.rawset,
            b"exhausted": self._exhausted,
            b"libs": self.runtime.table_from(library_functions(self.libs)),
        }
        entry = self.runtime.execute(
            PRELUDE,
            self.runtime.table_from(functions),
            limits.instructions,
            HOOK_STEP,
            limits.call_cost,
            limits.pattern_steps,
            limits.memory,
        )
        (
            self.compile,
            self.start,
            self.xpcall,
            self.handler,
            self.stop,
            self.counters,
            self._protected,
            self._raw,
            self.start_load,
            self.registrations,
            self.start_function,
            self.where,
            null,
            self.json_encode,
            self._prepare,
            self._tidy,
        ) = entry
        self.libs.bind(self, null)
        self.fresh_used = self.runtime.get_memory_used()
        """What the state held before its first run: a later run is credited what it holds
        more (its cached functions), so every run has the room a new state's first has."""

    # -- the per-run indirection (what the prelude calls) ---------------------------------

    def _call(self, *args: Any) -> Any:
        return self.api.call(*args)

    def _pcall(self, *args: Any) -> Any:
        return self.api.pcall(*args)

    def _setresp(self, *args: Any) -> None:
        self.api.setresp(*args)

    def _log(self, *args: Any) -> None:
        self.api.log(*args)

    def _rand(self) -> float:
        return self.rand.next_fraction()

    def _srand(self, value: int) -> None:
        self.rand.seed(value)

    # -- reuse ------------------------------------------------------------------------------

    def bind(self, api: ScriptApi, rand: Rand48) -> None:
        """Start another run in this (tidied) state: its `redis` library, its random
        generator, a full budget, and the memory limit counted from what a new state
        holds (the cached functions are credited, to the soft limit and the hard cap)."""
        self.api, self.rand = api, rand
        self.spent = False
        self.libs.reset()
        self.runs += 1
        credit = max(0, self.runtime.get_memory_used() - self.fresh_used)
        self.hard_cap = self.limits.memory + HEADROOM + credit
        self.runtime.set_max_memory(self.hard_cap)
        self._prepare(credit / 1024)

    def tidy(self) -> bool:
        """End a run: drop its values, collect, restore the collector's settings; whether
        the state may serve another run (nothing a script could reach was changed, the
        run ended within its budget and memory). A False state must be dropped."""
        self.api = IDLE  # hold on to nothing of the run (its Ctx, Db, overlay)
        if self.spent or self.out_of_memory:
            return False
        try:
            clean = self._tidy()
        except lua51.LuaError:
            return False
        return clean is True and not self.out_of_memory

    def compile_cached(self, body: bytes, name: bytes) -> tuple[Any, Any]:
        """`compile`, remembering what compiles (at most `CACHED_FUNCTIONS` chunks and
        `CACHED_BYTES` of source, the oldest dropped first): (function, None) or
        (None, the error)."""
        key = (name, body)
        function = self.compiled.get(key)
        if function is not None:
            return function, None
        function, problem = self.compile(body, name)
        if function is None:
            return None, problem
        if len(body) <= CACHED_BYTES:
            self.compiled[key] = function
            self.compiled_bytes += len(body)
            while len(self.compiled) > CACHED_FUNCTIONS or self.compiled_bytes > CACHED_BYTES:
                oldest = next(iter(self.compiled))
                del self.compiled[oldest]
                self.compiled_bytes -= len(oldest[1])
        return function, None

    def table(self, items: list[Any] | dict[Any, Any]) -> Any:
        """A Lua table holding `items` (a list becomes a 1-based sequence)."""
        return self.runtime.table_from(items)

    def rawset(self, *args: Any) -> Any:
        """The script's `rawset`: Lua's, except on the sandbox's read-only tables (a
        Python callable, so the error names the script's line even in a tail call)."""
        if args and self._protected[args[0]]:
            if not self.room(256):
                return None
            raise ScriptError(b"ERR Attempt to modify a readonly table")
        return self._raw(*args)

    def room(self, estimate: int) -> bool:
        """Whether Python may create about `estimate` bytes of Lua values now. Python's
        own allocations in the state are not protected calls: one failing would abort
        the process, so they must never reach the hard cap. When there is no room the
        run is marked out of memory (no allocation needed) and ends at the next hook."""
        if self.runtime.get_memory_used() + 2 * estimate + SLACK <= self.hard_cap:
            return True
        self.counters[b"oom"] = True
        return False

    @property
    def out_of_memory(self) -> bool:
        """Whether the run passed the memory limit (every replica alike)."""
        return bool(self.counters[b"oom"])

    def _error_text(self, text: bytes) -> bytes | None:
        return lua_error_text(text) if self.room(len(text)) else None

    def _exception_text(self, error: object) -> bytes | None:
        text = _error_text(error)
        return text if self.room(len(text)) else None

    def _raw_text(self, error: object) -> bytes | None:
        """What `pcall` returns for a Python error: a library's as a Lua string error."""
        text = getattr(error, "raw", None)
        if not isinstance(text, bytes):
            text = _error_text(error)
        return text if self.room(len(text)) else None

    def _sha1_hex(self, *args: Any) -> bytes | None:
        return _sha1_hex(*args) if self.room(256) else None

    def _exhausted(self) -> None:
        self.spent = True

    def count_call(self) -> None:
        """Charge one `redis.call` to the budget."""
        self.counters[b"calls"] += 1


def _error_text(error: object) -> bytes:
    """The text of a Python exception raised into Lua (a `ScriptError`'s, or a bug's)."""
    if isinstance(error, ScriptError):
        return error.text
    return b"ERR " + str(error).encode("utf-8", "replace")


def _sha1_hex(*args: Any) -> bytes:
    """`redis.sha1hex(x)`: a string or number is hashed as its text, anything else as ""."""
    if len(args) != 1:
        raise ScriptError(b"ERR wrong number of arguments")
    value = args[0]
    data = value if isinstance(value, bytes) else b""
    if isinstance(value, int | float) and not isinstance(value, bool):
        data = lua_number_text(value)
    return hashlib.sha1(data).hexdigest().encode()


def lua_number_text(value: float) -> bytes:
    """A Lua 5.1 number as `tostring` writes it (``%.14g``)."""
    return b"%.14g" % value


def lua_error_text(text: bytes) -> bytes:
    """Redis' `luaPushErrorBuff`: the text of an error table built from `text`, which is
    either ``-CODE message`` (a reply's error, the code kept) or a bare message (given the
    code ERR); CR and LF are trimmed from the message's ends."""
    if text.startswith(b"-"):
        code, space, message = text[1:].partition(b" ")
        if not space:
            code, message = b"ERR", text[1:]
    else:
        code, message = b"ERR", text
    return code + b" " + message.strip(b"\r\n")


def lua_type(value: object) -> str | None:
    """The Lua type name of a value handed over by lupa ('table', 'function', ...), or
    None for a plain Python value (number, bytes, bool, None)."""
    kind: str | None = lua51.lua_type(value)
    return kind


def new_state(limits: ScriptLimits, api: ScriptApi, rand: Rand48) -> LuaState:
    """A fresh sandboxed Lua state (see the module docstring)."""
    return LuaState(limits, api, rand)
