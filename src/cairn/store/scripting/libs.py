"""The Lua libraries Redis 7.0 ships to scripts, on the Python side: `cjson` (see
`cjson`), `cmsgpack` (see `cmsgpack`), `struct` (see `lstruct`) and `bit` (LuaBitOp),
installed in every sandbox by `prelude.LIBRARIES_LUA`.

Python work runs inside one Lua call, where the instruction hook cannot stop it: each
function charges its work to the run's budget as it goes (`Libraries.charge`, in
`redis.call` units: one per `WORK_PER_CALL` bytes or values) and stops as soon as the
budget is spent (the hook then ends the script at its next instruction, as for any
script out of budget); before creating a Lua value it asks the state for room, as
`redis.call` does. Errors are raised as Redis shows them: the position of the script's
line, then the library's message.
"""

from __future__ import annotations

import math
import re
import sys
from functools import partial
from typing import TYPE_CHECKING, Any

from cairn.store.scripting import cjson, cmsgpack, lstruct
from cairn.store.scripting.sandbox import ScriptError, lua_type

if TYPE_CHECKING:
    from cairn.store.scripting.sandbox import LuaState

WORK_PER_CALL = 64
"""Work units charged as one `redis.call` (ScriptLimits.call_cost instructions): a byte of
input is one unit, a value built or walked `VALUE_COST` (measured: Python handles about a
byte in the time Lua runs 15 instructions, a Lua value in the time of a thousand: values
are charged a quarter of that, so a script may encode or decode some 20,000 values)"""
VALUE_COST = 16
_CHECK_EVERY = 4096
RECURSION_LIMIT = 12_000
"""Python's recursion limit while a library runs: CJSON nests 1000 levels (three Python
frames each when decoding); in Python 3.11 a Python-to-Python call uses no C stack."""


def deep_enough() -> None:
    """Raise Python's recursion limit to `RECURSION_LIMIT` if it is lower (for good: it
    only ever grows, and only library calls recurse that deep)."""
    if sys.getrecursionlimit() < RECURSION_LIMIT:
        sys.setrecursionlimit(RECURSION_LIMIT)


class LibraryError(ScriptError):
    """A library's error, raised into the script as a Lua string error is: `raw` (the
    position, then the message) is what `pcall` returns; uncaught, the script's error
    reply is ``ERR <raw>``."""

    def __init__(self, raw: bytes) -> None:
        super().__init__(b"ERR " + raw)
        self.raw = raw


class BudgetSpentError(Exception):
    """The run's budget is spent: stop the library's work (the hook ends the script)."""


class Libraries:
    """One run's library state: CJSON's settings, the `cjson.null` value, the charge."""

    def __init__(self) -> None:
        self.state: LuaState | None = None
        self.null: Any = None
        self.settings = cjson.Settings()
        self._pending = 0
        self.is_null: Any = None
        """Whether a Lua value is `cjson.null` (lupa gives a new wrapper for each)."""

    def bind(self, state: LuaState, null: Any) -> None:
        """Attach the run's Lua state and its `cjson.null`."""
        self.state, self.null = state, null
        equal = state.runtime.eval("function(n) return function(v) return rawequal(v, n) end end")
        self.is_null = equal(null)
        deep_enough()

    def reset(self) -> None:
        """Start another run in the same state: CJSON's default settings, no charge."""
        self.settings = cjson.Settings()
        self._pending = 0

    # -- the budget ------------------------------------------------------------------------

    def charge(self, work: int) -> None:
        """Charge `work` units; `BudgetSpentError` once the run's budget is spent."""
        self._pending += work
        if self._pending >= _CHECK_EVERY:
            self.flush()

    def _charge_values(self, count: int) -> None:
        self.charge(count * VALUE_COST)

    def flush(self) -> None:
        """Move the pending charge into the run's counters (and check it)."""
        state = self.state
        assert state is not None
        pending, self._pending = self._pending, 0
        counters = state.counters
        counters[b"calls"] = counters[b"calls"] + pending / WORK_PER_CALL
        if counters[b"calls"] * state.call_cost > state.instructions:
            state.spent = True  # the run failed; the hook stops it at its next instruction
            raise BudgetSpentError

    def _error(self, text: str) -> LibraryError:
        assert self.state is not None
        where = self.state.where()
        if not where and text.startswith("bad argument"):  # luaL_argerror: no name known
            text = re.sub(r"to '[^']*'", "to '?'", text, count=1)
        return LibraryError(where + text.encode())

    def _result(self, value: bytes) -> bytes | None:
        assert self.state is not None
        return value if self.state.room(len(value)) else None

    # -- cjson -----------------------------------------------------------------------------

    def cjson_encode(self, *args: Any) -> bytes | None:
        """`cjson.encode(value)`."""
        if len(args) != 1:
            raise self._error("bad argument #1 to 'encode' (expected 1 argument)")
        state = self.state
        assert state is not None
        s = self.settings
        cfg = state.table(
            {
                b"format": b"%%.%dg" % s.precision,
                b"encode_invalid": s.encode_invalid,
                b"encode_max_depth": s.encode_max_depth,
                b"sparse_ratio": s.sparse_ratio,
                b"sparse_safe": s.sparse_safe,
                b"sparse_convert": s.sparse_convert,
            }
        )
        # the walk is Lua (`sandbox.PRELUDE`), under the hook and the memory limit
        result = state.json_encode(args[0], cfg)
        if isinstance(result, bytes):
            return result
        if state.spent or state.out_of_memory or not isinstance(result, tuple):
            return None  # the run is over: the hook ends it at its next instruction
        error = result[1]
        text = error if isinstance(error, bytes) else b"unknown error"
        raise self._error(text.decode("utf-8", "replace"))

    def cjson_decode(self, *args: Any) -> Any:
        """`cjson.decode(text)`."""
        if len(args) != 1:
            raise self._error("bad argument #1 to 'decode' (expected 1 argument)")
        data = args[0]
        if isinstance(data, int | float) and not isinstance(data, bool):
            data = b"%.14g" % data
        if not isinstance(data, bytes):
            kind = "nil" if data is None else lua_type(data) or type(data).__name__
            raise self._error(f"bad argument #1 to 'decode' (string expected, got {kind})")
        assert self.state is not None
        try:
            self.charge(len(data))
            self.flush()
            if not self.state.room(len(data) * 8):
                return None
            return cjson.Decoder(data, self.settings, self.null, self._table).decode()
        except BudgetSpentError:
            return None
        except cjson.JsonError as exc:
            raise self._error(str(exc)) from None

    def _table(self, items: dict[Any, Any] | list[Any]) -> Any:
        assert self.state is not None
        self.charge(len(items) + VALUE_COST)
        return self.state.table(items)

    def cjson_setting(self, name: bytes, *args: Any) -> Any:
        """`cjson.encode_max_depth([n])` and the other settings: set when given, and
        return the current value(s)."""
        s = self.settings
        key = name.decode()
        if key in ("encode_max_depth", "decode_max_depth", "encode_number_precision"):
            attr = "precision" if key == "encode_number_precision" else key
            if args and args[0] is not None:
                value = int(args[0])
                top = 14 if attr == "precision" else 2**31 - 1
                if not 1 <= value <= top:
                    raise self._error(
                        f"bad argument #1 to '{key}' (expected integer between 1 and {top})"
                    )
                setattr(s, attr, value)
            return getattr(s, attr)
        if key == "encode_sparse_array":
            if args and args[0] is not None:
                s.sparse_convert = bool(args[0])
            if len(args) > 1 and args[1] is not None:
                s.sparse_ratio = int(args[1])
            if len(args) > 2 and args[2] is not None:
                s.sparse_safe = int(args[2])
            return (s.sparse_convert, s.sparse_ratio, s.sparse_safe)
        attr = {
            "encode_invalid_numbers": "encode_invalid",
            "decode_invalid_numbers": "decode_invalid",
        }.get(key, "keep_buffer")
        if args and args[0] is not None:
            setattr(s, attr, bool(args[0]))
        return getattr(s, attr)

    # -- cmsgpack --------------------------------------------------------------------------

    def msgpack_pack(self, *args: Any) -> bytes | None:
        """`cmsgpack.pack(value, ...)`."""
        if not args:
            raise self._error("bad argument #0 to 'pack' (MessagePack pack needs input.)")
        try:
            packed = cmsgpack.pack(args, self._charge_values)
            self.flush()
        except BudgetSpentError:
            return None
        return self._result(packed)

    def msgpack_unpack(self, how: bytes, *args: Any) -> Any:
        """`cmsgpack.unpack(data)`, `unpack_one(data [, offset])`, `unpack_limit(data,
        limit [, offset])`: the values as one Lua table (the Lua side unpacks it)."""
        name = how.decode()
        data = args[0] if args else None
        if isinstance(data, int | float) and not isinstance(data, bool):
            data = b"%.14g" % data
        if not isinstance(data, bytes):
            got = "no value" if not args else "nil" if data is None else lua_type(data)
            raise self._error(f"bad argument #1 to '{name}' (string expected, got {got})")
        limit, offset = 0, 0
        if name == "unpack_one":
            limit, offset = 1, int(args[1]) if len(args) > 1 and args[1] is not None else 0
        elif name == "unpack_limit":
            limit = int(args[1]) if len(args) > 1 and args[1] is not None else 0
            offset = int(args[2]) if len(args) > 2 and args[2] is not None else 0
        assert self.state is not None
        try:
            self.charge(len(data))
            self.flush()
            if not self.state.room(len(data) * 8):
                return None
            values, end = cmsgpack.unpack(data, offset, limit, self._table)
        except BudgetSpentError:
            return None
        except cmsgpack.MsgpackError as exc:
            raise self._error(str(exc)) from None
        if name != "unpack":
            values.insert(0, -1 if end >= len(data) else end)
        return tuple(values)

    # -- struct ----------------------------------------------------------------------------

    def struct_call(self, name: bytes, *args: Any) -> Any:
        """`struct.pack(fmt, ...)`, `struct.unpack(fmt, data [, init])`, `struct.size(fmt)`."""
        op = name.decode()
        fmt = args[0] if args else None
        if isinstance(fmt, int | float) and not isinstance(fmt, bool):
            fmt = b"%.14g" % fmt
        if not isinstance(fmt, bytes):
            got = "no value" if not args else _lua_kind(fmt)
            raise self._error(f"bad argument #1 to '{op}' (string expected, got {got})")
        work = len(fmt) + sum(len(a) for a in args if isinstance(a, bytes))
        try:
            self.charge(work)
            self.flush()
            return self._struct(op, fmt, args[1:])
        except BudgetSpentError:
            return None
        except lstruct.StructError as exc:
            if exc.argument:
                raise self._error(f"bad argument #{exc.argument} to '{op}' ({exc})") from None
            raise self._error(str(exc)) from None

    def _struct(self, op: str, fmt: bytes, rest: tuple[Any, ...]) -> Any:
        if op == "pack":
            return self._result(lstruct.pack(fmt, rest))
        if op == "size":
            return lstruct.size(fmt)
        data = rest[0] if rest else None
        if not isinstance(data, bytes):
            got = "no value" if not rest else _lua_kind(data)
            raise self._error(f"bad argument #2 to 'unpack' (string expected, got {got})")
        init = 1
        if len(rest) > 1 and rest[1] is not None:
            number = _lua_number(rest[1])
            if number is None:
                kind = _lua_kind(rest[1])
                raise self._error(f"bad argument #3 to 'unpack' (number expected, got {kind})")
            init = int(number)
        return tuple(lstruct.unpack(fmt, data, init))

    # -- bit (LuaBitOp) --------------------------------------------------------------------

    def _bit_arg(self, name: str, args: tuple[Any, ...], n: int) -> int:
        """Argument `n` (1-based) as LuaBitOp reads it: a number (or numeric string)
        rounded to an integer, its low 32 bits."""
        if n > len(args):
            raise self._error(f"bad argument #{n} to '{name}' (number expected, got no value)")
        value = _lua_number(args[n - 1])
        if value is None:
            kind = _lua_kind(args[n - 1])
            raise self._error(f"bad argument #{n} to '{name}' (number expected, got {kind})")
        if math.isnan(value) or math.isinf(value):
            return 0
        return round(value) & 0xFFFFFFFF if abs(value) < 2**51 else int(value) & 0xFFFFFFFF

    def bit(self, name: bytes, *args: Any) -> Any:
        """`bit.<name>(...)`: LuaBitOp's functions, results as signed 32-bit numbers."""
        op = name.decode()
        if op == "tohex":
            return self._tohex(args)
        a = self._bit_arg(op, args, 1)
        if op in ("band", "bor", "bxor"):
            for i in range(2, len(args) + 1):
                b = self._bit_arg(op, args, i)
                a = a & b if op == "band" else a | b if op == "bor" else a ^ b
            return _signed(a)
        if op in ("tobit", "bnot", "bswap"):
            if op == "bnot":
                a = ~a & 0xFFFFFFFF
            elif op == "bswap":
                a = int.from_bytes(a.to_bytes(4, "little"), "big")
            return _signed(a)
        count = self._bit_arg(op, args, 2) & 31
        if op == "lshift":
            return _signed((a << count) & 0xFFFFFFFF)
        if op == "rshift":
            return _signed(a >> count)
        if op == "arshift":
            return _signed(a) >> count
        if op == "rol":
            return _signed(((a << count) | (a >> (32 - count))) & 0xFFFFFFFF)
        return _signed(((a >> count) | (a << (32 - count))) & 0xFFFFFFFF)  # ror

    def _tohex(self, args: tuple[Any, ...]) -> bytes:
        a = self._bit_arg("tohex", args, 1)
        n = 8
        if len(args) > 1 and args[1] is not None:
            n = _signed(self._bit_arg("tohex", args, 2))
        upper = n < 0
        n = min(abs(n), 8) if n != -(2**31) else 8
        text = b"%0*x" % (n, a & ((1 << (4 * n)) - 1)) if n else b""
        return text.upper() if upper else text


_FLAGS = {"encode_invalid_numbers": "encode_invalid", "decode_invalid_numbers": "decode_invalid"}


def _signed(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


def _lua_number(value: Any) -> float | None:
    """`tonumber(value)` as Lua 5.1 converts a number or a numeric string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, bytes):
        return None
    text = value.strip().lower()
    try:
        if text.startswith((b"0x", b"-0x", b"+0x")):
            return float(int(text, 16))
        return float(text)
    except ValueError:
        return None


def _lua_kind(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, bytes):
        return "string"
    return lua_type(value) or type(value).__name__


def library_functions(libs: Libraries) -> dict[bytes, Any]:
    """The Python callables behind `bit`, `cjson` and `cmsgpack` (see `libs`)."""
    table: dict[bytes, Any] = {
        b"cjson_encode": libs.cjson_encode,
        b"cjson_decode": libs.cjson_decode,
        b"pack": libs.msgpack_pack,
    }
    for name in ("unpack", "unpack_one", "unpack_limit"):
        table[name.encode()] = partial(libs.msgpack_unpack, name.encode())
    for name in ("pack", "unpack", "size"):
        table[b"struct_" + name.encode()] = partial(libs.struct_call, name.encode())
    for name in BIT_FUNCTIONS:
        table[name.encode()] = partial(libs.bit, name.encode())
    for name in CJSON_SETTINGS:
        table[name.encode()] = partial(libs.cjson_setting, name.encode())
    return table


BIT_FUNCTIONS = (
    "tobit", "tohex", "bnot", "band", "bor", "bxor", "lshift", "rshift", "arshift", "rol",
    "ror", "bswap",
)  # fmt: skip
CJSON_SETTINGS = (
    "encode_max_depth",
    "decode_max_depth",
    "encode_number_precision",
    "encode_sparse_array",
    "encode_invalid_numbers",
    "decode_invalid_numbers",
    "encode_keep_buffer",
)
