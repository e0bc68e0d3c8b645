"""Redis 7.0's `cjson` library (Lua CJSON 2.1.0 as Redis bundles it): `decode` in Python
behind the sandbox (`encode` walks tables in Lua: `sandbox.PRELUDE`'s `json_value`, called
by `libs.Libraries.cjson_encode`), with CJSON's output and error texts, and its settings
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
instruction hook, so decoding is charged to the script's budget up front by the size of
its input (`libs`), and nesting is bounded by the depth setting (1000).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
        """The value of the whole text; `JsonError` with CJSON's message. Valid JSON is
        read by Python's (C) parser; anything it refuses by the token parser below,
        which gives CJSON's value or error."""
        try:
            parsed = json.loads(self.data, parse_int=float, parse_constant=_refuse)
        except (ValueError, RecursionError):
            return self.slow()
        if _depth_over(parsed, self.settings.decode_max_depth):
            return self.slow()
        return self.lua(parsed)

    def lua(self, value: Any) -> Any:
        """A value `json.loads` made, as Lua values."""
        if isinstance(value, str):
            return value.encode("utf-8", "surrogatepass")
        if value is None:
            return self.null
        if isinstance(value, list):
            return self.make_table([self.lua(v) for v in value])
        if isinstance(value, dict):
            return self.make_table(
                {k.encode("utf-8", "surrogatepass"): self.lua(v) for k, v in value.items()}
            )
        return value

    def slow(self) -> Any:
        """The token parser's value of the whole text."""
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


def _refuse(text: str) -> Any:
    raise ValueError(text)


def _depth_over(value: Any, limit: int) -> bool:
    """Whether `value` nests deeper than `limit` (then the token parser gives the error)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, list | dict):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            pending.extend((c, depth + 1) for c in children if isinstance(c, list | dict))
    return False
