"""Property tests of the request parser: round trips, path agreement, random bytes.

* Commands encoded as RESP and fed in random chunk sizes come back unchanged.
* The fast path and the Redis-transcribed reference path agree on every stream, valid or
  not, however it is cut (streams are built from valid, quirky and broken fragments).
* Random bytes raise nothing but `RemoteProtocolError`, and the parser never holds more
  than `Limits.max_buffer` bytes.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from resp_support import Outcome, as_resp, run, run_both, split_at

from cairn.resp import Limits

TIGHT = Limits(max_bulk_length=40, max_array_length=6, max_inline_length=60, max_buffer=300)

args_st = st.lists(
    st.binary(max_size=20) | st.sampled_from([b"GET", b"\r\n", b"$3\r\n", b"*1\r\n", b"\x00"]),
    min_size=1,
    max_size=8,
)
cuts_st = st.lists(st.integers(min_value=0, max_value=2000), max_size=30)


@settings(max_examples=200, deadline=None)
@given(st.lists(args_st, max_size=12), cuts_st)
def test_round_trip_in_random_chunks(commands: list[list[bytes]], cuts: list[int]) -> None:
    data = b"".join(as_resp(c) for c in commands)
    outcome = run_both(split_at(data, cuts))
    assert outcome == Outcome(tuple(tuple(c) for c in commands), None)


def _quirky(args: list[bytes], trailer: bytes, after_cr: bytes) -> bytes:
    """A command Redis accepts although it is not well formed RESP."""
    head = b"*%d\r%b" % (len(args), after_cr)
    return head + b"".join(b"$%d\r\n%b%b" % (len(a), a, trailer) for a in args)


inline_st = st.lists(
    st.sampled_from([b"PING", b"a", b'"', b"'", b"\\", b"x", b" ", b"\t", b"\\x4", b"1", b"\v"]),
    max_size=10,
).map(lambda parts: b"".join(parts) + b"\r\n")

fragment_st = st.one_of(
    args_st.map(as_resp),
    st.builds(
        _quirky, args_st, st.binary(min_size=2, max_size=2), st.binary(min_size=1, max_size=1)
    ),
    inline_st,
    st.sampled_from(
        [
            b"*0\r\n",
            b"*-1\r\n",
            b"\r\n",
            b"\n",
            b"*",
            b"$",
            b"*1\r\n",
            b"*2\r\n$1\r\n",
            b"*1\r\n:1\r\n",
            b"*99999999999\r\n",
            b"*1\r\n$99999999999\r\n",
            b"\x00",
            b"*01\r\n",
        ]
    ),
    st.binary(max_size=30),
)


@settings(max_examples=250, deadline=None)
@given(st.lists(fragment_st, max_size=10), cuts_st)
def test_fast_and_reference_paths_agree(fragments: list[bytes], cuts: list[int]) -> None:
    data = b"".join(fragments)
    whole = run_both([data])
    assert run_both(split_at(data, cuts)) == whole


@settings(max_examples=250, deadline=None)
@given(st.lists(fragment_st, max_size=10), cuts_st)
def test_tight_limits_hold_and_paths_agree(fragments: list[bytes], cuts: list[int]) -> None:
    chunks = split_at(b"".join(fragments), cuts)
    seen: list[int] = []
    outcome = run(chunks, TIGHT, max_seen=seen)
    assert max(seen, default=0) <= TIGHT.max_buffer
    assert run(chunks, TIGHT, fast=False) == outcome


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), cuts_st)
def test_random_bytes(data: bytes, cuts: list[int]) -> None:
    chunks = split_at(data, cuts)
    for limits in (None, TIGHT):
        seen: list[int] = []
        outcome = run(chunks, limits, max_seen=seen)  # raises nothing but RemoteProtocolError
        assert max(seen, default=0) <= (limits or Limits()).max_buffer
        assert run(chunks, limits, fast=False) == outcome
    # Below the buffer limit, how TCP cut the stream never changes the outcome.
    assert run(chunks) == run([data])
