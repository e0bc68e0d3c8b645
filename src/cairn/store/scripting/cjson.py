"""Redis 7.0's `cjson` library (Lua CJSON 2.1.0 as Redis bundles it), in Python behind
the sandbox: `encode` and `decode` with CJSON's output and error texts, and its settings
(`encode_max_depth`, `decode_max_depth`, `encode_number_precision`,
`encode_sparse_array`, `encode_invalid_numbers`, `decode_invalid_numbers`,
`encode_keep_buffer`), which last for the run (every run starts from a fresh state).

Encoding: numbers with ``%.14g`` (NaN and infinities refused), strings with CJSON's
escapes (``/`` as ``\\/``, control bytes as ``\\u00XX``, bytes >= 0x80 raw), a table whose
keys are all positive integers as an array (holes as ``null``; refused when excessively
sparse: more than 10 and more than twice its items), any other table, the empty one
included, as an object, `cjson.null` as ``null``.

Decoding: a recursive descent over CJSON's tokens with its messages ("Expected value but
found invalid token at character 1"); numbers become Lua numbers (doubles), ``null``
`cjson.null`, strings' ``\\uXXXX`` escapes UTF-8. Python work cannot be interrupted by the
instruction hook, so both directions are charged to the script's budget up front by the
size of their input (`Budget`), and nesting is bounded by the depth settings (1000).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cairn.store.scripting.sandbox import ScriptError, lua_type

MAX_DEPTH = 1000


class JsonError(Exception):
    """CJSON's error text (the caller adds the script's position)."""


@dataclass
class Settings:
    """CJSON's settings for one run."""

    encode_max_depth: int = MAX_DEPTH
    decode_max_depth: int = MAX_DEPTH
    precision: int = 14
    sparse_convert: bool = False
    sparse_ratio: int = 2
    sparse_safe: int = 10
    encode_invalid: bool = False
    decode_invalid: bool = True
    keep_buffer: bool = True


_ESCAPES = {i: b"\\u%04x" % i for i in range(32)}
_ESCAPES.update(
    {
        8: b"\\b",
        9: b"\\t",
        10: b"\\n",
        12: b"\\f",
        13: b"\\r",
        0x22: b'\\"',
        0x5C: b"\\\\",
        0x2F: b"\\/",
        0x7F: b"\\u007f",
    }
)
_NEEDS_ESCAPE = re.compile(rb'[\x00-\x1f"\\/\x7f]')


def escape(data: bytes) -> bytes:
    """`data` as a JSON string, CJSON's escapes."""
    return b'"' + _NEEDS_ESCAPE.sub(lambda m: _ESCAPES[m.group()[0]], data) + b'"'


class Encoder:
    """`cjson.encode` for one value (`is_null` tells the run's `cjson.null`)."""

    def __init__(
        self, settings: Settings, is_null: Callable[[Any], bool], charge: Callable[[int], None]
    ) -> None:
        self.settings = settings
        self.is_null = is_null
        self.charge = charge
        self.out: list[bytes] = []

    def encode(self, value: Any) -> bytes:
        """The JSON text of `value`; `JsonError` with CJSON's message."""
        self.value(value, 0)
        return b"".join(self.out)

    def number(self, value: float) -> bytes:
        if not self.settings.encode_invalid and (math.isnan(value) or math.isinf(value)):
            raise JsonError("Cannot serialise number: must not be NaN or Inf")
        if math.isnan(value):
            return b"nan"
        if math.isinf(value):
            return b"inf" if value > 0 else b"-inf"
        return b"%.*g" % (self.settings.precision, value)

    def value(self, value: Any, depth: int) -> None:
        self.charge(1)
        if value is None or (lua_type(value) == "userdata" and self.is_null(value)):
            self.out.append(b"null")
        elif isinstance(value, bool):
            self.out.append(b"true" if value else b"false")
        elif isinstance(value, int | float):
            self.out.append(self.number(float(value)))
        elif isinstance(value, bytes):
            self.charge(len(value) // 1024)  # in values: a byte costs 1/16 of a unit
            self.out.append(escape(value))
        elif lua_type(value) == "table":
            self.table(value, depth + 1)
        else:
            kind = lua_type(value) or type(value).__name__
            raise JsonError(f"Cannot serialise {kind}: type not supported")

    def table(self, table: Any, depth: int) -> None:
        if depth > self.settings.encode_max_depth:
            raise JsonError(f"Cannot serialise, excessive nesting ({depth})")
        length = self.array_length(table)
        if length > 0:
            self.out.append(b"[")
            for i in range(1, length + 1):
                if i > 1:
                    self.out.append(b",")
                self.value(table[i], depth)
            self.out.append(b"]")
            return
        self.out.append(b"{")
        first = True
        for key, item in table.items():
            if not first:
                self.out.append(b",")
            first = False
            if isinstance(key, bytes):
                self.out.append(escape(key))
            elif isinstance(key, int | float) and not isinstance(key, bool):
                self.out.append(b'"' + self.number(float(key)) + b'"')
            else:
                kind = "boolean" if isinstance(key, bool) else lua_type(key) or "nil"
                raise JsonError(f"Cannot serialise {kind}: table key must be a number or string")
            self.out.append(b":")
            self.value(item, depth)
        self.out.append(b"}")

    def array_length(self, table: Any) -> int:
        """CJSON's `lua_array_length`: the array's length, or -1 (0: empty) for an object."""
        largest, items = 0, 0
        for key in table:
            self.charge(1)
            if isinstance(key, bool) or not isinstance(key, int | float):
                return -1
            if key != math.floor(key) or key < 1:
                return -1
            largest, items = max(largest, int(key)), items + 1
        s = self.settings
        if s.sparse_ratio > 0 and largest > items * s.sparse_ratio and largest > s.sparse_safe:
            if not s.sparse_convert:
                raise JsonError("Cannot serialise table: excessively sparse array")
            return -1
        return largest


# -- decoding -------------------------------------------------------------------------------

_TOKEN = re.compile(
    rb"""[ \t\r\n]*(?:
      (?P<punct>[{}\[\]:,])
    | (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
    | (?P<word>true|false|null)
    | (?P<end>\Z)
    )""",
    re.VERBOSE | re.DOTALL,
)
_NAMES = {
    b"{": "T_OBJ_BEGIN",
    b"}": "T_OBJ_END",
    b"[": "T_ARR_BEGIN",
    b"]": "T_ARR_END",
    b":": "T_COLON",
    b",": "T_COMMA",
}
_SIMPLE_ESCAPES = {
    ord('"'): b'"',
    ord("\\"): b"\\",
    ord("/"): b"/",
    ord("b"): b"\b",
    ord("f"): b"\f",
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
}
_INVALID_NUMBER = re.compile(rb"[ \t\r\n]*-?(?:0[xX]|[iInN])")


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # punctuation itself, "string", "number", "word", "end", "invalid"
    text: bytes
    at: int  # 1-based character position

    def name(self) -> str:
        if self.kind in ("string", "number"):
            return "T_STRING" if self.kind == "string" else "T_NUMBER"
        if self.kind == "word":
            return {b"true": "T_BOOLEAN", b"false": "T_BOOLEAN", b"null": "T_NULL"}[self.text]
        if self.kind == "end":
            return "T_END"
        if self.kind == "invalid":
            return self.text.decode()
        return _NAMES[self.text]


class Decoder:
    """`cjson.decode` of one text into Lua values (built by `make_table`)."""

    def __init__(
        self,
        data: bytes,
        settings: Settings,
        null: Any,
        make_table: Callable[[dict[Any, Any] | list[Any]], Any],
    ) -> None:
        self.data = data
        self.pos = 0
        self.settings = settings
        self.null = null
        self.make_table = make_table
        self.depth = 0

    def decode(self) -> Any:
        """The value of the whole text; `JsonError` with CJSON's message."""
        value = self.value(self.next(), "Expected value")
        token = self.next()
        if token.kind != "end":
            raise self.error("Expected the end", token)
        return value

    def next(self) -> _Token:
        match = _TOKEN.match(self.data, self.pos)
        start = self.pos
        while start < len(self.data) and self.data[start] in b" \t\r\n":
            start += 1
        if match is None:
            self.pos = len(self.data)
            return _Token("invalid", b"invalid token", start + 1)
        self.pos = match.end()
        kind = match.lastgroup or "end"
        text = match.group(kind) if kind != "end" else b""
        return _Token("punct" if kind == "punct" else kind, text, start + 1)

    def error(self, expected: str, token: _Token) -> JsonError:
        return JsonError(f"{expected} but found {token.name()} at character {token.at}")

    def value(self, token: _Token, expected: str) -> Any:
        if token.kind == "string":
            return self.string(token)
        if token.kind == "number":
            return float(token.text)
        if token.kind == "word":
            return {b"true": True, b"false": False, b"null": self.null}[token.text]
        if token.text == b"{":
            return self.nested(token, self.object_items)
        if token.text == b"[":
            return self.nested(token, self.array_items)
        raise self.error(expected, token)

    def nested(self, token: _Token, items: Callable[[], Any]) -> Any:
        self.depth += 1
        if self.depth > self.settings.decode_max_depth:
            raise JsonError(
                f"Found too many nested data structures ({self.depth}) at character {token.at}"
            )
        value = items()
        self.depth -= 1
        return value

    def array_items(self) -> Any:
        values: list[Any] = []
        token = self.next()
        if token.text == b"]" and token.kind == "punct":
            return self.make_table(values)
        while True:
            values.append(self.value(token, "Expected value"))
            token = self.next()
            if token.kind == "punct" and token.text == b"]":
                return self.make_table(values)
            if not (token.kind == "punct" and token.text == b","):
                raise self.error("Expected comma or array end", token)
            token = self.next()

    def object_items(self) -> Any:
        entries: dict[Any, Any] = {}
        token = self.next()
        if token.kind == "punct" and token.text == b"}":
            return self.make_table(entries)
        while True:
            if token.kind != "string":
                raise self.error("Expected object key string", token)
            key = self.string(token)
            token = self.next()
            if not (token.kind == "punct" and token.text == b":"):
                raise self.error("Expected colon", token)
            entries[key] = self.value(self.next(), "Expected value")
            token = self.next()
            if token.kind == "punct" and token.text == b"}":
                return self.make_table(entries)
            if not (token.kind == "punct" and token.text == b","):
                raise self.error("Expected comma or object end", token)
            token = self.next()

    def string(self, token: _Token) -> bytes:
        body = token.text[1:-1]
        if b"\\" not in body:
            return body
        out, i = bytearray(), 0
        while i < len(body):
            c = body[i]
            if c != 0x5C:
                out.append(c)
                i += 1
                continue
            code = body[i + 1]
            if code in _SIMPLE_ESCAPES:
                out += _SIMPLE_ESCAPES[code]
                i += 2
                continue
            if code != ord("u"):
                raise self.error(
                    "Expected value", _Token("invalid", b"invalid escape code", token.at)
                )
            point, i = self.unicode(body, i, token)
            out += chr(point).encode("utf-8", "surrogatepass")
        return bytes(out)

    def unicode(self, body: bytes, i: int, token: _Token) -> tuple[int, int]:
        bad = _Token("invalid", b"invalid unicode escape code", token.at)
        digits = body[i + 2 : i + 6]
        if len(digits) != 4 or not all(d in b"0123456789abcdefABCDEF" for d in digits):
            raise self.error("Expected value", bad)
        point = int(digits, 16)
        i += 6
        if 0xD800 <= point <= 0xDBFF:
            low = body[i + 2 : i + 6]
            if body[i : i + 2] != b"\\u" or len(low) != 4:
                raise self.error("Expected value", bad)
            try:
                second = int(low, 16)
            except ValueError:
                raise self.error("Expected value", bad) from None
            if not 0xDC00 <= second <= 0xDFFF:
                raise self.error("Expected value", bad)
            point = 0x10000 + ((point - 0xD800) << 10) + (second - 0xDC00)
            i += 6
        elif 0xDC00 <= point <= 0xDFFF:
            raise self.error("Expected value", bad)
        return point, i


def script_error(where: bytes, text: str) -> ScriptError:
    """A CJSON error raised into the script as Redis shows it: the caller's position,
    then CJSON's message."""
    return ScriptError(b"ERR " + where + text.encode())
