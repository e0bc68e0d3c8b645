"""Tables for Redis' `string2ll` and `sdssplitargs` as reproduced in `cairn.resp.inline`."""

from __future__ import annotations

import pytest

from cairn.resp.inline import parse_ll, split_inline


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"0", 0),
        (b"1", 1),
        (b"-1", -1),
        (b"1024", 1024),
        (b"9223372036854775807", 2**63 - 1),
        (b"-9223372036854775808", -(2**63)),
        (b"9223372036854775808", None),
        (b"-9223372036854775809", None),
        (b"", None),
        (b"-", None),
        (b"-0", None),
        (b"01", None),
        (b"00", None),
        (b"+1", None),
        (b" 1", None),
        (b"1 ", None),
        (b"1_000", None),
        (b"1\x00", None),
        (b"\xd9\xa1", None),  # an Arabic-Indic digit is no ASCII digit
        (b"1" * 21, None),
    ],
)
def test_parse_ll(text: bytes, value: int | None) -> None:
    assert parse_ll(text) == value


@pytest.mark.parametrize(
    ("line", "args"),
    [
        (b"", []),
        (b"   ", []),
        (b"PING", [b"PING"]),
        (b"  SET  k\tv  ", [b"SET", b"k", b"v"]),
        (b"\v\fPING", [b"PING"]),  # leading blanks are isspace()
        (b"a\vb", [b"a\vb"]),  # but \v does not end an unquoted token
        (b'SET k "a b"', [b"SET", b"k", b"a b"]),
        (b'"a\\x41\\n\\q"', [b"aA\nq"]),
        (b'"\\xZZ"', [b"xZZ"]),
        (b'"\\r\\t\\b\\a\\\\\\""', [b'\r\t\b\a\\"']),
        (b"'it\\'s'", [b"it's"]),
        (b"'a\\nb'", [b"a\\nb"]),
        (b'ab"cd"', [b"abcd"]),
        (b"ab'cd' e", [b"abcd", b"e"]),
        (b'""', [b""]),
        (b"''", [b""]),
        (b'"a"\t"b"', [b"a", b"b"]),
        (b'"a"\v', [b"a"]),  # \v after a closing quote counts as a blank
        (b"a\x00b c", [b"a"]),  # C stops at NUL
        (b"\xff\xfe x", [b"\xff\xfe", b"x"]),
        (b'"abc', None),
        (b"'abc", None),
        (b'"a"b', None),
        (b"'a'b", None),
        (b'"a\\"', None),
        (b'"a\\', None),
    ],
)
def test_split_inline(line: bytes, args: list[bytes] | None) -> None:
    assert split_inline(line) == args
