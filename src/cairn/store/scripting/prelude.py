"""Parts of the sandbox's Lua prelude (`sandbox.PRELUDE`), kept here to keep that module
small: the FUNCTION library API (`redis.register_function` and the load-time globals),
what reusing a state needs (`REUSE_LUA`: `prepare` and `tidy`, see `pool`), and the
libraries Redis ships (`bit`, `cjson`, `cmsgpack`, `struct`: Python callables from
`libs`, and `cjson.encode`'s walk in Lua). They are spliced into the prelude's one chunk,
so they use its locals (`readonly`, `protected`, `base`, `api`, ...).
"""

FUNCTIONS_LUA = r"""
-- FUNCTION libraries --------------------------------------------------------------------
-- While a library loads, its globals are only `redis` with register_function, log and the
-- constants (Redis 7.0's library API); every other name fails as a nonexistent global.
local FLAGS = {'no-writes', 'allow-oom', 'allow-stale', 'no-cluster', 'allow-cross-slot-keys'}
local KNOWN_FLAG = {}
for _, f in ipairs(FLAGS) do KNOWN_FLAG[f] = true end
local registered = {}   -- {name=, callback=, flags={...}, description=} in order
local by_name = {}
local function reg_error(text) error({err = 'ERR ' .. text}, 0) end
local function is_string(v) return type(v) == 'string' or type(v) == 'number' end
local function read_flags(t)
  local seen = {}
  for _, f in pairs(t) do
    if type(f) ~= 'string' or not KNOWN_FLAG[f] then reg_error('unknown flag given') end
    seen[f] = true
  end
  local out = {}
  for _, f in ipairs(FLAGS) do if seen[f] then out[#out + 1] = f end end
  return out
end
local function named_args(t)
  if type(t) ~= 'table' then
    reg_error('calling redis.register_function with a single argument is only applicable ' ..
              'to Lua table (representing named arguments).')
  end
  local name, callback, flags, desc = nil, nil, {}, nil
  for k, v in pairs(t) do
    if not is_string(k) then
      reg_error('named argument key given to redis.register_function is not a string')
    end
    local key = string.lower(tostring(k))
    if key == 'function_name' then
      if not is_string(v) then
        reg_error('function_name argument given to redis.register_function must be a string')
      end
      name = tostring(v)
    elseif key == 'description' then
      if not is_string(v) then
        reg_error('description argument given to redis.register_function must be a string')
      end
      desc = tostring(v)
    elseif key == 'callback' then
      if type(v) ~= 'function' then
        reg_error('callback argument given to redis.register_function must be a function')
      end
      callback = v
    elseif key == 'flags' then
      if type(v) ~= 'table' then
        reg_error('flags argument to redis.register_function must be a table ' ..
                  'representing function flags')
      end
      flags = read_flags(v)
    else
      reg_error('unknown argument given to redis.register_function')
    end
  end
  if name == nil then reg_error('redis.register_function must get a function name argument') end
  if callback == nil then reg_error('redis.register_function must get a callback argument') end
  return name, callback, flags, desc
end
local function register_function(...)
  local argc = select('#', ...)
  if argc < 1 or argc > 2 then
    reg_error('wrong number of arguments to redis.register_function')
  end
  local name, callback, flags, desc
  if argc == 1 then
    name, callback, flags, desc = named_args((...))
  else
    local a, b = ...
    if not is_string(a) then
      reg_error('first argument to redis.register_function must be a string')
    end
    if type(b) ~= 'function' then
      reg_error('second argument to redis.register_function must be a function')
    end
    name, callback, flags = tostring(a), b, {}
  end
  if not string.find(name, '^[%w_]+$') then  -- Redis 7.0 says "Library" here too
    reg_error('Library names can only contain letters, numbers, or underscores(_) and ' ..
              'must be at least one character long')
  end
  if by_name[name] then reg_error('Function already exists in the library') end
  local entry = {name = name, callback = callback, flags = flags, description = desc}
  by_name[name] = entry
  registered[#registered + 1] = entry
end
local library_redis = setmetatable({}, {
  __index = function(t, k)
    local v = ({register_function = register_function, log = py_log, LOG_DEBUG = 0,
                LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
                REDIS_VERSION = '7.0.15', REDIS_VERSION_NUM = 0x07000f})[k]
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = readonly_error, __metatable = false,
})
protected[library_redis] = true
library_api = {redis = library_redis}

"""
"""`redis.register_function` and what a library's top-level code sees (Redis 7.0's
library API); `start_load`, `registrations` and `start_function` use them."""

LIBRARIES_LUA = r"""
-- the libraries Redis ships (`libs`): Python callables, so an error names the script's line
local null = newproxy(false)

-- cjson.encode's walk, in Lua (so the hook bounds it); `libs.cjson_encode` calls it and
-- raises its errors at the caller's line. `cfg` holds the run's CJSON settings.
local json_escapes = {['"'] = '\\"', ['\\'] = '\\\\', ['/'] = '\\/', ['\b'] = '\\b',
                      ['\f'] = '\\f', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t'}
for i = 0, 31 do
  local c = string.char(i)
  if json_escapes[c] == nil then json_escapes[c] = string.format('\\u%04x', i) end
end
json_escapes['\127'] = '\\u007f'
local gsub, sformat, huge = string.gsub, string.format, math.huge
local function json_number(n, cfg)
  if n ~= n or n == huge or n == -huge then
    if not cfg.encode_invalid then
      error('Cannot serialise number: must not be NaN or Inf', 0)
    end
  end
  return sformat(cfg.format, n)
end
local json_value
local function json_table(t, depth, cfg, out)
  if depth > cfg.encode_max_depth then
    error('Cannot serialise, excessive nesting (' .. depth .. ')', 0)
  end
  local largest, items, array = 0, 0, true
  for k in next, t do
    if type(k) == 'number' and k >= 1 and k == floor(k) then
      if k > largest then largest = k end
      items = items + 1
    else
      array = false
      break
    end
  end
  if array and cfg.sparse_ratio > 0 and largest > items * cfg.sparse_ratio
     and largest > cfg.sparse_safe then
    if not cfg.sparse_convert then
      error('Cannot serialise table: excessively sparse array', 0)
    end
    array = false
  end
  if array and largest > 0 then
    out[#out + 1] = '['
    for i = 1, largest do
      if i > 1 then out[#out + 1] = ',' end
      json_value(t[i], depth, cfg, out)
    end
    out[#out + 1] = ']'
    return
  end
  out[#out + 1] = '{'
  local first = true
  for k, v in next, t do
    if not first then out[#out + 1] = ',' end
    first = false
    local kind = type(k)
    if kind == 'string' then
      out[#out + 1] = '"' .. gsub(k, '[%c"\\/]', json_escapes) .. '":'
    elseif kind == 'number' then
      out[#out + 1] = '"' .. json_number(k, cfg) .. '":'
    else
      error('Cannot serialise ' .. kind .. ': table key must be a number or string', 0)
    end
    json_value(v, depth, cfg, out)
  end
  out[#out + 1] = '}'
end
json_value = function(v, depth, cfg, out)
  local kind = type(v)
  if kind == 'string' then
    out[#out + 1] = '"' .. gsub(v, '[%c"\\/]', json_escapes) .. '"'
  elseif kind == 'number' then
    out[#out + 1] = json_number(v, cfg)
  elseif kind == 'boolean' then
    out[#out + 1] = v and 'true' or 'false'
  elseif kind == 'table' then
    json_table(v, depth + 1, cfg, out)
  elseif v == nil or v == null then
    out[#out + 1] = 'null'
  else
    error('Cannot serialise ' .. kind .. ': type not supported', 0)
  end
end
local function json_encode(v, cfg)
  local out = {}
  local ok, err = pcall_raw(json_value, v, 0, cfg, out)
  if not ok then return nil, err end
  return table.concat(out)
end
local libs = api.libs
base.bit = readonly({
  tobit = libs.tobit, tohex = libs.tohex, bnot = libs.bnot, band = libs.band,
  bor = libs.bor, bxor = libs.bxor, lshift = libs.lshift, rshift = libs.rshift,
  arshift = libs.arshift, rol = libs.rol, ror = libs.ror, bswap = libs.bswap,
})
base.cjson = readonly({
  encode = libs.cjson_encode, decode = libs.cjson_decode, null = null,
  encode_max_depth = libs.encode_max_depth, decode_max_depth = libs.decode_max_depth,
  encode_number_precision = libs.encode_number_precision,
  encode_sparse_array = libs.encode_sparse_array,
  encode_invalid_numbers = libs.encode_invalid_numbers,
  decode_invalid_numbers = libs.decode_invalid_numbers,
  encode_keep_buffer = libs.encode_keep_buffer,
  _NAME = 'cjson', _VERSION = '2.1.0',
})
base.struct = readonly({pack = libs.struct_pack, unpack = libs.struct_unpack,
                        size = libs.struct_size})
base.cmsgpack = readonly({
  pack = libs.pack, unpack = libs.unpack, unpack_one = libs.unpack_one,
  unpack_limit = libs.unpack_limit, _NAME = 'cmsgpack', _VERSION = 'lua-cmsgpack 0.4.0',
})

"""
"""The `bit`, `cjson`, `cmsgpack` and `struct` tables, and `json_encode`."""

REUSE_LUA = r"""
-- Reusing the state (`StatePool`): `prepare` starts a new run's budget (`credit_kb`: what
-- the state holds more than when it was new: its cached functions); `tidy` ends a run:
-- it drops the run's values, restores the collector's defaults (a script may stop it),
-- and says whether everything a script can reach but not replace is as it was: the
-- string metatable and its `__index` table (`getmetatable('')`), no metatable on them,
-- and every read-only proxy still empty (`table.insert` writes past `__newindex`).
local string_mt = getmetatable('')
local function snapshot(t)
  local copy = {}
  for k, v in pairs(t) do copy[k] = v end
  return copy
end
local saved_mt, saved_string = snapshot(string_mt), snapshot(string_copy)
local function unchanged(t, saved)
  if getmetatable_raw(t) ~= nil then return false end
  for k, v in next, t do
    if not rawequal(saved[k], v) then return false end
  end
  for k, v in next, saved do
    if not rawequal(rawget(t, k), v) then return false end
  end
  return true
end
local function prepare(credit_kb)
  used, exceeded = 0, false
  counters.calls, counters.oom = 0, false
  soft_kb = base_soft_kb + credit_kb
  mode = 'run'
end
local function tidy()
  base.KEYS, base.ARGV = nil, nil
  registered, by_name = {}, {}
  mode = 'run'
  collectgarbage('restart')
  collectgarbage('setpause', 200)
  collectgarbage('setstepmul', 200)
  collectgarbage('collect')
  if not rawequal(getmetatable_raw(''), string_mt) then return false end
  if not unchanged(string_mt, saved_mt) or not unchanged(string_copy, saved_string) then
    return false
  end
  for proxy in next, protected do
    if next(proxy) ~= nil then return false end
  end
  return true
end

"""
"""`prepare` and `tidy`: a state serving many runs (`sandbox.LuaState.bind`/`tidy`)."""
