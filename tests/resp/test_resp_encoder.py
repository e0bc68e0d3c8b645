"""The reply encoder: a table of every reply type in RESP2 and RESP3, checked by hiredis too.

Expected bytes follow redis-server 7.0.15 (doubles are `%.17g`: ZSCORE of 1.1 answers
`1.1000000000000001`, of 3 answers `3`, of inf answers `inf`).
"""

from __future__ import annotations

import math
from typing import Any

import hiredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.resp import LocalProtocolError, encode, encode_many, format_double
from cairn.resp.reply import (
    NULL,
    NULL_ARRAY,
    OK,
    Array,
    Boolean,
    Bulk,
    Double,
    ErrorReply,
    Integer,
    Map,
    Push,
    Reply,
    Set,
    SimpleString,
    Verbatim,
)

CASES: list[tuple[Reply, bytes, bytes]] = [
    # reply, RESP2, RESP3
    (OK, b"+OK\r\n", b"+OK\r\n"),
    (SimpleString("hello world"), b"+hello world\r\n", b"+hello world\r\n"),
    (ErrorReply("ERR boom"), b"-ERR boom\r\n", b"-ERR boom\r\n"),
    (ErrorReply("WRONGTYPE x"), b"-WRONGTYPE x\r\n", b"-WRONGTYPE x\r\n"),
    (Integer(0), b":0\r\n", b":0\r\n"),
    (Integer(-(2**63)), b":-9223372036854775808\r\n", b":-9223372036854775808\r\n"),
    (Bulk(b""), b"$0\r\n\r\n", b"$0\r\n\r\n"),
    (Bulk(b"a\r\nb"), b"$4\r\na\r\nb\r\n", b"$4\r\na\r\nb\r\n"),
    (NULL, b"$-1\r\n", b"_\r\n"),
    (NULL_ARRAY, b"*-1\r\n", b"_\r\n"),
    (Array(()), b"*0\r\n", b"*0\r\n"),
    (
        Array((Bulk(b"a"), NULL, Integer(3), Array((OK,)))),
        b"*4\r\n$1\r\na\r\n$-1\r\n:3\r\n*1\r\n+OK\r\n",
        b"*4\r\n$1\r\na\r\n_\r\n:3\r\n*1\r\n+OK\r\n",
    ),
    (
        Map(((Bulk(b"k"), Integer(1)), (SimpleString("s"), Bulk(b"v")))),
        b"*4\r\n$1\r\nk\r\n:1\r\n+s\r\n$1\r\nv\r\n",
        b"%2\r\n$1\r\nk\r\n:1\r\n+s\r\n$1\r\nv\r\n",
    ),
    (Set((Bulk(b"x"),)), b"*1\r\n$1\r\nx\r\n", b"~1\r\n$1\r\nx\r\n"),
    (
        Push((Bulk(b"message"), Bulk(b"ch"), Bulk(b"hi"))),
        b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
        b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
    ),
    (Double(1.1), b"$18\r\n1.1000000000000001\r\n", b",1.1000000000000001\r\n"),
    (Double(3.0), b"$1\r\n3\r\n", b",3\r\n"),
    (Double(math.inf), b"$3\r\ninf\r\n", b",inf\r\n"),
    (Double(-math.inf), b"$4\r\n-inf\r\n", b",-inf\r\n"),
    (Double(1e300), b"$23\r\n1.0000000000000001e+300\r\n", b",1.0000000000000001e+300\r\n"),
    (Double(0.0001), b"$6\r\n0.0001\r\n", b",0.0001\r\n"),
    (Boolean(True), b":1\r\n", b"#t\r\n"),
    (Boolean(False), b":0\r\n", b"#f\r\n"),
    (Verbatim(b"Some string"), b"$11\r\nSome string\r\n", b"=15\r\ntxt:Some string\r\n"),
    (Verbatim(b"# x", "mkd"), b"$3\r\n# x\r\n", b"=7\r\nmkd:# x\r\n"),
]


@pytest.mark.parametrize(("reply", "resp2", "resp3"), CASES)
def test_encode_table(reply: Reply, resp2: bytes, resp3: bytes) -> None:
    assert encode(reply, 2) == resp2
    assert encode(reply, 3) == resp3
    assert encode(reply) == resp2


def test_encode_many_is_concatenation() -> None:
    replies = [reply for reply, _, _ in CASES]
    for protocol, column in ((2, 1), (3, 2)):
        expected = b"".join(case[column] for case in CASES)  # type: ignore[misc]
        assert encode_many(replies, protocol) == expected
    assert encode_many([], 3) == b""


def test_large_bulk_is_not_mangled() -> None:
    value = bytes(range(256)) * 1000
    assert encode(Bulk(value)) == b"$256000\r\n" + value + b"\r\n"
    assert encode(Array((Bulk(value), Bulk(b"x")))) == (
        b"*2\r\n$256000\r\n" + value + b"\r\n$1\r\nx\r\n"
    )


def test_texts_cannot_break_framing_and_carry_raw_bytes() -> None:
    assert encode(ErrorReply("ERR a\r\nb")) == b"-ERR a  b\r\n"
    assert encode(SimpleString("a\nb")) == b"+a b\r\n"
    raw = b"ERR unknown command '\xff\xfe'"
    assert encode(ErrorReply(raw.decode("utf-8", "surrogateescape"))) == b"-" + raw + b"\r\n"
    assert encode(SimpleString("caf\u00e9")) == "+caf\u00e9\r\n".encode()
    assert encode(SimpleString("a\ud800")) == b"+a?\r\n"


def test_misuse_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError, match="2 or 3"):
        encode(OK, 4)
    with pytest.raises(LocalProtocolError, match="not a reply"):
        encode(Array((b"raw",)))  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="three characters"):
        encode(Verbatim(b"x", "text"), 3)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, b"0"),
        (-0.0, b"-0"),
        (10.5, b"10.5"),
        (1e-5, b"1.0000000000000001e-05"),
        (-2.5, b"-2.5"),
    ],
)
def test_format_double(value: float, text: bytes) -> None:
    assert format_double(value) == text
    assert format_double(math.nan) == b"nan"


# -- hiredis reads back whatever the encoder writes ------------------------------------

line_st = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]))
leaf_st = st.one_of(
    st.builds(Bulk, st.binary(max_size=30)),
    st.builds(Integer, st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    st.builds(SimpleString, line_st),
    st.builds(ErrorReply, line_st.filter(bool)),
    st.builds(Double, st.floats(allow_nan=False)),
    st.builds(Boolean, st.booleans()),
    st.just(NULL),
)


def _key(pair: tuple[Reply, Reply]) -> Any:
    return _expected(pair[0], 3)


reply_st = st.recursive(
    leaf_st,
    lambda inner: st.one_of(
        st.builds(Array, st.lists(inner, max_size=5).map(tuple)),
        st.builds(Set, st.lists(inner, max_size=5).map(tuple)),
        st.builds(
            Map,
            # hiredis builds a dict: keys must stay distinct once read back
            st.lists(st.tuples(leaf_st, inner), max_size=4, unique_by=_key).map(tuple),
        ),
    ),
    max_leaves=12,
)


def _expected(reply: Reply, protocol: int) -> Any:
    """What hiredis should build from the encoding of `reply`."""
    match reply:
        case Bulk(value):
            return value
        case Integer(value):
            return value
        case SimpleString(value):
            return value.encode()
        case ErrorReply(message):
            return ("error", message)
        case Double(value):
            return value if protocol == 3 else format_double(value)
        case Boolean(value):
            return value if protocol == 3 else int(value)
        case Array(items) | Set(items):
            return [_expected(item, protocol) for item in items]
        case Map(pairs) if protocol == 2:
            return [_expected(x, protocol) for pair in pairs for x in pair]
        case Map(pairs):
            return [[_expected(k, protocol), _expected(v, protocol)] for k, v in pairs]
        case _:
            return None


def _normalise(value: Any) -> Any:
    """hiredis' objects in `_expected`'s shape (errors as tuples, maps as pair lists)."""
    if isinstance(value, hiredis.ReplyError):
        return ("error", str(value))
    if isinstance(value, dict):
        return [[_normalise(k), _normalise(v)] for k, v in value.items()]
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


@settings(max_examples=150, deadline=None)
@given(reply_st, st.sampled_from([2, 3]))
def test_hiredis_reads_back(reply: Reply, protocol: int) -> None:
    reader = hiredis.Reader()
    reader.feed(encode(reply, protocol))
    got = reader.gets()
    assert reader.gets() is False
    assert _normalise(got) == _expected(reply, protocol)
