"""Bitmap commands, BITFIELD, LCS and SUBSTR: tables checked against redis-server 7.0,
hypothesis runs against simple per-bit Python models, and a seeded random comparison with a
real redis-server."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_harness import FakeClock, MachineClient, RawRedis, Step, resp2, run_steps

from cairn.resp.reply import NULL, OK, Array, Bulk, ErrorReply, Integer, Map, Reply
from cairn.store.commands import bitmaps, lcs

WRONGTYPE = ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")
NOT_INT = ErrorReply("ERR value is not an integer or out of range")
SYNTAX = ErrorReply("ERR syntax error")
BIT_OFFSET = ErrorReply("ERR bit offset is not an integer or out of range")
BIT_VALUE = ErrorReply("ERR bit is not an integer or out of range")
BAD_TYPE = ErrorReply(
    "ERR Invalid bitfield type. Use something like i16 u8. "
    "Note that u64 is not supported but i64 is."
)
TOO_BIG = ErrorReply("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
STRING_LIMIT = ErrorReply(
    "ERR string exceeds maximum allowed size (Cairn's string limit is 16777216 bytes)"
)
LCS_TOO_BIG = ErrorReply(
    "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"
)


def ints(*values: int | None) -> Array:
    """An array of integers (None: a null bulk)."""
    return Array(tuple(NULL if v is None else Integer(v) for v in values))


SETBIT_GETBIT: list[Step] = [
    ("SETBIT k 7 1", Integer(0)),
    ("GET k", Bulk(b"\x01")),
    ("SETBIT k 7 1", Integer(1)),
    ("SETBIT k 7 0", Integer(1)),
    ("SETBIT k 100 1", Integer(0)),
    ("STRLEN k", Integer(13)),
    ("GETBIT k 100", Integer(1)),
    ("GETBIT k 101", Integer(0)),
    ("GETBIT k 4294967295", Integer(0)),
    ("GETBIT missing 3", Integer(0)),
    ("SETBIT z 20 0", Integer(0)),
    ("GET z", Bulk(b"\x00\x00\x00")),
    ("SETBIT k 4294967296 1", BIT_OFFSET),
    ("SETBIT k -1 1", BIT_OFFSET),
    ("SETBIT k x 1", BIT_OFFSET),
    ("SETBIT k 0 2", BIT_VALUE),
    ("SETBIT k 0 x", BIT_VALUE),
    ("GETBIT k 4294967296", BIT_OFFSET),
    ("SET num 255", OK),
    ("GETBIT num 2", Integer(1)),
]

BITCOUNT_BITPOS: list[Step] = [
    ("SET s foobar", OK),
    ("BITCOUNT s", Integer(26)),
    ("BITCOUNT s 1 1", Integer(6)),
    ("BITCOUNT s -2 -1", Integer(7)),
    ("BITCOUNT s 5 30 BIT", Integer(17)),
    ("BITCOUNT s -1 -2 foo", Integer(0)),
    ("BITCOUNT s 0 1 foo", SYNTAX),
    ("BITCOUNT s 0", SYNTAX),
    ("BITCOUNT s a 1", NOT_INT),
    ("BITCOUNT missing a b", Integer(0)),
    ('SET p "\\x00\\xff\\xf0"', OK),
    ("BITPOS p 1", Integer(8)),
    ("BITPOS p 0 1", Integer(20)),
    ("BITPOS p 1 2 -1 BYTE", Integer(16)),
    ("BITPOS p 0 8 19 BIT", Integer(-1)),
    ("BITPOS p 0 8 20 BIT", Integer(20)),
    ('SET ones "\\xff\\xff"', OK),
    ("BITPOS ones 0", Integer(16)),
    ("BITPOS ones 0 0 -1", Integer(-1)),
    ("BITPOS ones 0 2", Integer(-1)),
    ("BITPOS missing 0", Integer(0)),
    ("BITPOS missing 1", Integer(-1)),
    ("BITPOS p 2", ErrorReply("ERR The bit argument must be 1 or 0.")),
    ("BITPOS p 1 0 a foo", SYNTAX),
    ("BITPOS p 1 a", NOT_INT),
]

BITOP: list[Step] = [
    ('SET a "\\x0f\\xf0"', OK),
    ('SET b "\\xff"', OK),
    ("BITOP AND d a b", Integer(2)),
    ("GET d", Bulk(b"\x0f\x00")),
    ("BITOP OR d a b missing", Integer(2)),
    ("GET d", Bulk(b"\xff\xf0")),
    ("BITOP XOR d a b", Integer(2)),
    ("GET d", Bulk(b"\xf0\xf0")),
    ("BITOP NOT d a", Integer(2)),
    ("GET d", Bulk(b"\xf0\x0f")),
    ("BITOP OR d missing", Integer(0)),
    ("EXISTS d", Integer(0)),
    ("BITOP NOT d a b", ErrorReply("ERR BITOP NOT must be called with a single source key.")),
    ("BITOP NAND d a", SYNTAX),
    ("HSET h f v", Integer(1)),
    ("BITOP AND d a h", WRONGTYPE),
    ("BITOP OR h a", Integer(2)),
    ("GET h", Bulk(b"\x0f\xf0")),
]

BITFIELD: list[Step] = [
    ("BITFIELD bf SET u8 0 255 GET u8 0 GET i8 0 GET u4 #1", ints(0, 255, -1, 15)),
    ("BITFIELD bf INCRBY u8 0 10", ints(9)),
    ("BITFIELD bf OVERFLOW SAT INCRBY u8 0 1000 OVERFLOW FAIL INCRBY u8 0 1", ints(255, None)),
    ("BITFIELD bf OVERFLOW WRAP INCRBY i8 0 1 SET i8 0 200", ints(0, 0)),
    ("BITFIELD bf GET i8 0", ints(-56)),
    ("BITFIELD bf OVERFLOW SAT SET u8 0 -1 SET i63 8 -4611686018427387905", ints(200, 0)),
    ("BITFIELD bf GET i63 8", ints(4611686018427387903)),
    ("BITFIELD bf GET i8 #2305843009213693952", ints(-1)),
    ("BITFIELD grow OVERFLOW FAIL SET u8 100 999", ints(None)),
    ("STRLEN grow", Integer(14)),
    ("BITFIELD nokey GET u8 0", ints(0)),
    ("EXISTS nokey", Integer(0)),
    ("BITFIELD bf GET u64 0", BAD_TYPE),
    ("BITFIELD bf GET I8 0", BAD_TYPE),
    ("BITFIELD bf GET u8 #536870912", BIT_OFFSET),
    ("BITFIELD bf OVERFLOW", SYNTAX),
    ("BITFIELD bf OVERFLOW X GET u8 0", ErrorReply("ERR Invalid OVERFLOW type specified")),
    ("BITFIELD bf SET u8 0 x", NOT_INT),
    ("HSET h f v", Integer(1)),
    ("BITFIELD h GET u8 0", WRONGTYPE),
    ("BITFIELD_RO bf GET u8 0", ints(255)),
    ("BITFIELD_RO h SET u8 0 1", ErrorReply("ERR BITFIELD_RO only supports the GET subcommand")),
    ("BITFIELD_RO h GET u8 0", WRONGTYPE),
    # Cairn refuses what would grow past proto-max-bulk-len (Redis would allocate it), and
    # past its own 16 MiB string limit (Redis would build a 512 MiB string).
    ("BITFIELD big SET i64 4294967295 1", TOO_BIG),
    ("BITFIELD big SET u8 4294967288 1 GET u8 0", STRING_LIMIT),
    ("BITFIELD big SET u8 134217720 1 GET u8 0", ints(0, 0)),
    ("EXISTS big", Integer(1)),
    ("DEL big", Integer(1)),
]

LCS_STEPS: list[Step] = [
    ("SET a ohmytext", OK),
    ("SET b mynewtext", OK),
    ("LCS a b", Bulk(b"mytext")),
    ("LCS a b LEN", Integer(6)),
    (
        "LCS a b IDX MINMATCHLEN 2 WITHMATCHLEN",
        Map(
            (
                (
                    Bulk(b"matches"),
                    Array(
                        (
                            Array((ints(4, 7), ints(5, 8), Integer(4))),
                            Array((ints(2, 3), ints(0, 1), Integer(2))),
                        )
                    ),
                ),
                (Bulk(b"len"), Integer(6)),
            )
        ),
    ),
    ("LCS a missing", Bulk(b"")),
    (
        "LCS a b IDX LEN",
        ErrorReply("ERR If you want both the length and indexes, please just use IDX."),
    ),
    ("LCS a b MINMATCHLEN", SYNTAX),
    ("HSET h f v", Integer(1)),
    ("LCS a h", ErrorReply("ERR The specified keys must contain string values")),
    ("SETBIT big 95000 1", Integer(0)),
    ("LCS big big LEN", LCS_TOO_BIG),
    ("SUBSTR a 2 3", Bulk(b"my")),
    ("SUBSTR a -4 -1", Bulk(b"text")),
    ("SUBSTR missing 0 -1", Bulk(b"")),
    ("SUBSTR h 0 1", WRONGTYPE),
]

WRONG_TYPES: list[Step] = [
    ("HSET h f v", Integer(1)),
    ("SETBIT h 0 1", WRONGTYPE),
    ("GETBIT h 0", WRONGTYPE),
    ("BITCOUNT h", WRONGTYPE),
    ("BITPOS h 1", WRONGTYPE),
    ("BITOP NOT d h", WRONGTYPE),
    ("BITFIELD h INCRBY u8 0 1", WRONGTYPE),
    ("BITFIELD_RO h", WRONGTYPE),
    ("HGET h f", Bulk(b"v")),
]

KEYSPACE: list[Step] = [
    ('SET t "\\x00" PX 1000', OK),
    ("SETBIT t 9 1", Integer(0)),
    ("BITFIELD t INCRBY u8 0 3", ints(3)),
    ("PTTL t", Integer(1000)),
    ("BITOP OR d t", Integer(2)),
    ("PTTL d", Integer(-1)),
    ("SET d x PX 500", OK),
    ("BITOP AND d t", Integer(2)),
    ("PTTL d", Integer(-1)),
    ("@+1000", OK),
    ("GETBIT t 9", Integer(0)),
    ("SETBIT t 1 1", Integer(0)),
    ("PTTL t", Integer(-1)),
    ("GET t", Bulk(b"\x40")),
    ("RENAME t u", OK),
    ("BITCOUNT u", Integer(1)),
    ("BITFIELD_RO u GET u8 0", ints(64)),
    ("DEL u", Integer(1)),
    ("BITCOUNT u", Integer(0)),
]


@pytest.mark.parametrize(
    "steps",
    [SETBIT_GETBIT, BITCOUNT_BITPOS, BITOP, BITFIELD, LCS_STEPS, WRONG_TYPES, KEYSPACE],
    ids=["setbit", "bitcount-bitpos", "bitop", "bitfield", "lcs-substr", "wrongtype", "keys"],
)
def test_steps(steps: list[Step]) -> None:
    run_steps(steps)


# ---- models ---------------------------------------------------------------------------


def _bit(data: bytes | bytearray, i: int) -> int:
    return data[i // 8] >> (7 - i % 8) & 1 if i // 8 < len(data) else 0


def _clamp(start: int, end: int, total: int) -> tuple[int, int]:
    start, end = start + total if start < 0 else start, end + total if end < 0 else end
    return max(start, 0), min(max(end, 0), total - 1)


def model_bitcount(data: bytes, start: int, end: int, unit_bit: bool) -> int:
    if start < 0 and end < 0 and start > end:
        return 0
    lo, hi = _clamp(start, end, len(data) * (8 if unit_bit else 1))
    if not unit_bit:
        lo, hi = lo * 8, hi * 8 + 7
    return sum(_bit(data, i) for i in range(lo, hi + 1))


def model_bitpos(data: bytes, bit: int, start: int, end: int | None, unit_bit: bool) -> int:
    total = len(data) * (8 if unit_bit else 1)
    lo, hi = _clamp(start, total - 1 if end is None else end, total)
    if lo > hi:
        return -1
    if not unit_bit:
        lo, hi = lo * 8, hi * 8 + 7
    found = next((i for i in range(lo, hi + 1) if _bit(data, i) == bit), -1)
    return hi + 1 if found < 0 and bit == 0 and end is None else found


class FieldModel:
    """BITFIELD on a list of bits, with Redis' overflow rules stated plainly."""

    def __init__(self, data: bytes) -> None:
        self.bits = [_bit(data, i) for i in range(len(data) * 8)]

    def get(self, signed: bool, width: int, offset: int) -> int:
        raw = [self.bits[i] if i < len(self.bits) else 0 for i in range(offset, offset + width)]
        value = int("".join(map(str, raw)), 2)
        return value - (1 << width) if signed and raw[0] else value

    def grow(self, last_bit: int) -> None:
        """Zero-pad to whole bytes up to `last_bit`."""
        self.bits += [0] * max(0, (last_bit // 8 + 1) * 8 - len(self.bits))

    def put(self, width: int, offset: int, value: int) -> None:
        self.grow(offset + width - 1)
        for k in range(width):
            self.bits[offset + k] = value >> (width - 1 - k) & 1

    @staticmethod
    def fit(signed: bool, width: int, value: int, mode: str, redis_set: bool) -> int | None:
        lo = -(1 << (width - 1)) if signed else 0
        hi = (1 << (width - 1)) - 1 if signed else (1 << width) - 1
        if lo <= value <= hi:
            return value
        if mode == "FAIL":
            return None
        if mode == "WRAP":
            wrapped = value % (1 << width)
            return wrapped - (1 << width) if signed and wrapped > hi else wrapped
        # Redis computes max - value in int64: past 2**63 - 1 it reads as an overflow.
        over = value > hi or (redis_set and width < 64 and hi - value > 2**63 - 1)
        return hi if over else lo

    def data(self) -> bytes:
        return bytes(
            int("".join(map(str, self.bits[i : i + 8])), 2) for i in range(0, len(self.bits), 8)
        )


# ---- hypothesis: SETBIT / GETBIT / BITCOUNT / BITPOS / BITFIELD against the models --------

_offsets = st.integers(0, 80)
_indexes = st.integers(-30, 30)
_bytes = st.sampled_from([0, 0xFF, 0x0F, 0x80]) | st.integers(0, 255)
_strings = st.lists(_bytes, max_size=8).map(bytes)
_setbit = st.tuples(st.just("setbit"), _offsets, st.integers(0, 1))
_getbit = st.tuples(st.just("getbit"), _offsets)
_bitcount = st.tuples(st.just("bitcount"), _indexes, _indexes, st.booleans())
_bitpos = st.tuples(
    st.just("bitpos"), st.integers(0, 1), _indexes, st.none() | _indexes, st.booleans()
)
_widths = st.sampled_from([1, 2, 8, 13, 32, 62, 63, 64]) | st.integers(1, 64)
_extremes = st.sampled_from([2**63 - 1, -(2**63), 2**62, -(2**62) - 1, 2**31, -1, 0])
_field = st.tuples(
    st.sampled_from(["GET", "SET", "INCRBY"]),
    st.booleans(),
    _widths,
    _offsets,
    _extremes | st.integers(-(2**63), 2**63 - 1) | st.integers(-300, 300),
    st.sampled_from(["WRAP", "SAT", "FAIL"]),
)
_bitfield = st.tuples(st.just("bitfield"), st.lists(_field, min_size=1, max_size=4))
_ops = st.lists(st.one_of(_setbit, _getbit, _bitcount, _bitpos, _bitfield), max_size=25)


def _run_bitfield(
    client: MachineClient, model: FieldModel, fields: list[tuple[str, bool, int, int, int, str]]
) -> None:
    argv: list[str] = ["BITFIELD", "k"]
    expected: list[int | None] = []
    fields = [(k, s, 63 if w == 64 and not s else w, o, a, m) for k, s, w, o, a, m in fields]
    writes = [offset + width - 1 for kind, _, width, offset, _, _ in fields if kind != "GET"]
    if writes:  # Redis grows the string first, to the farthest write
        model.grow(max(writes))
    for kind, signed, width, offset, arg, mode in fields:
        argv += ["OVERFLOW", mode, kind, f"{'i' if signed else 'u'}{width}", str(offset)]
        old = model.get(signed, width, offset)
        if kind == "GET":
            expected.append(old)
            continue
        argv.append(str(arg))
        value = old + arg if kind == "INCRBY" else (arg if signed else arg % 2**64)
        new = FieldModel.fit(signed, width, value, mode, redis_set=kind == "SET" and signed)
        if new is not None:
            model.put(width, offset, new)
        expected.append(None if new is None else new if kind == "INCRBY" else old)
    assert client.call(*argv) == ints(*expected), argv


@settings(max_examples=300, deadline=None)
@given(initial=_strings, ops=_ops)
def test_bit_commands_match_a_per_bit_model(initial: bytes, ops: list[tuple[object, ...]]) -> None:
    client = MachineClient(clock=FakeClock())
    client.call("SET", "k", initial)
    model = FieldModel(initial)
    for op in ops:
        data = model.data()
        match op:
            case ("setbit", int(offset), int(on)):
                assert client.call("SETBIT", "k", str(offset), str(on)) == Integer(
                    _bit(data, offset)
                )
                model.put(1, offset, on)
            case ("getbit", int(offset)):
                assert client.call("GETBIT", "k", str(offset)) == Integer(_bit(data, offset))
            case ("bitcount", int(start), int(end), bool(unit_bit)):
                unit = ["BIT"] if unit_bit else []
                got = client.call("BITCOUNT", "k", str(start), str(end), *unit)
                assert got == Integer(model_bitcount(data, start, end, unit_bit)), op
            case ("bitpos", int(bit), int(start), end, bool(unit_bit)):
                args = [str(start)] + ([] if end is None else [str(end)])
                unit_bit = unit_bit and end is not None
                args += ["BIT"] if unit_bit else []
                got = client.call("BITPOS", "k", str(bit), *args)
                want = model_bitpos(
                    data, bit, start, end if isinstance(end, int) else None, unit_bit
                )
                assert got == Integer(want), op
            case ("bitfield", list(fields)):
                _run_bitfield(client, model, fields)
        assert client.call("GET", "k") == Bulk(model.data())


# ---- the scans on long strings (small chunks make every path reachable) -----------------


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=40)
    | st.lists(st.sampled_from([0, 0xFF]), min_size=1, max_size=40).map(bytes),
    bounds=st.tuples(st.integers(0, 319), st.integers(0, 319)),
    bit=st.integers(0, 1),
)
def test_popcount_and_find_bit_in_chunks(data: bytes, bounds: tuple[int, int], bit: int) -> None:
    lo, hi = sorted(b % (len(data) * 8) for b in bounds)
    want_pos = next((i for i in range(lo, hi + 1) if _bit(data, i) == bit), -1)
    with small_chunks():
        assert bitmaps.find_bit(data, bit, lo, hi) == want_pos
        assert bitmaps.popcount(data, lo, hi) == sum(_bit(data, i) for i in range(lo, hi + 1))


@contextmanager
def small_chunks() -> Iterator[None]:
    """Scan in 3-byte chunks (restored afterwards), so short strings take every path."""
    saved = bitmaps._CHUNK
    bitmaps._CHUNK = 3
    try:
        yield
    finally:
        bitmaps._CHUNK = saved


@small_chunks()
def test_bitop_in_chunks_matches_whole_ints() -> None:
    client = MachineClient(clock=FakeClock())
    rng = random.Random(5)
    values = [bytes(rng.randrange(256) for _ in range(n)) for n in (10, 7, 0, 11)]
    for i, value in enumerate(values):
        client.call("SET", f"s{i}", value)
    size = max(map(len, values))
    ints_ = [int.from_bytes(v.ljust(size, b"\0"), "big") for v in values]
    expected = {
        "AND": ints_[0] & ints_[1] & ints_[2] & ints_[3],
        "OR": ints_[0] | ints_[1] | ints_[2] | ints_[3],
        "XOR": ints_[0] ^ ints_[1] ^ ints_[2] ^ ints_[3],
    }
    for op, want in expected.items():
        assert client.call("BITOP", op, "d", "s0", "s1", "s2", "s3") == Integer(size)
        assert client.call("GET", "d") == Bulk(want.to_bytes(size, "big"))
    assert client.call("BITOP", "NOT", "d", "s3") == Integer(11)
    assert client.call("GET", "d") == Bulk(bytes(b ^ 0xFF for b in values[3]))


# ---- LCS against Redis' algorithm written plainly ---------------------------------------


def redis_lcs(a: bytes, b: bytes, min_len: int) -> tuple[bytes, list[tuple[int, int, int, int]]]:
    """Redis' full table and walk back, cell by cell."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                table[i][j] = table[i - 1][j - 1] + 1
            else:
                table[i][j] = max(table[i - 1][j], table[i][j - 1])
    out, ranges, i, j = bytearray(), [], len(a), len(b)
    current: list[int] | None = None
    while i > 0 and j > 0:
        if a[i - 1] == b[j - 1]:
            out.append(a[i - 1])
            current = [
                i - 1,
                current[1] if current else i - 1,
                j - 1,
                current[3] if current else j - 1,
            ]
            i, j = i - 1, j - 1
            done = i == 0 or j == 0
        else:
            if table[i - 1][j] > table[i][j - 1]:
                i -= 1
            else:
                j -= 1
            done = current is not None
        if done and current is not None:
            if current[1] - current[0] + 1 >= min_len:
                ranges.append((current[0], current[1], current[2], current[3]))
            current = None
    return bytes(reversed(out)), ranges


_texts = st.binary(max_size=30) | st.text("ab", max_size=60).map(str.encode)


@settings(max_examples=300, deadline=None)
@given(a=_texts, b=_texts, min_len=st.integers(0, 3))
def test_lcs_matches_redis_walk(a: bytes, b: bytes, min_len: int) -> None:
    common, ranges = redis_lcs(a, b, min_len)
    assert lcs.lcs_length(a, b) == len(common)
    assert lcs.walk(a, b, lcs.LcsTable(a, b), min_len) == (common, ranges)


def test_lcs_refuses_tables_past_redis_bound() -> None:
    client = MachineClient(clock=FakeClock())
    client.call("SET", "a", b"x" * 11584)
    client.call("SET", "b", b"x" * 11584)
    assert client.call("LCS", "a", "b", "LEN") == Integer(11584)
    client.call("APPEND", "b", "x")
    assert client.call("LCS", "a", "b", "LEN") == LCS_TOO_BIG
    client.call("SET", "b", b"y" * 11000 + b"x")
    assert client.call("LCS", "a", "b") == Bulk(b"x")


# ---- a seeded random comparison with a real redis-server --------------------------------


def _random_command(rng: random.Random) -> list[bytes]:
    key = rng.choice([b"a", b"b", b"c"])
    num = str(rng.randint(-20, 40)).encode()
    unit = rng.choice([[], [b"BIT"], [b"byte"]])
    kind = rng.randrange(8)
    if kind == 0:
        return [b"SET", key, bytes(rng.choice([0, 255, rng.randrange(256)]) for _ in range(5))]
    if kind == 1:
        return [b"SETBIT", key, str(rng.randint(0, 60)).encode(), rng.choice([b"0", b"1"])]
    if kind == 2:
        return [b"BITCOUNT", key, num, str(rng.randint(-20, 40)).encode(), *unit]
    if kind == 3:
        return [
            b"BITPOS",
            key,
            rng.choice([b"0", b"1"]),
            num,
            str(rng.randint(-20, 40)).encode(),
            *unit,
        ]
    if kind == 4:
        op = rng.choice([b"AND", b"OR", b"XOR"])
        return [b"BITOP", op, key, b"a", b"b", b"missing"]
    if kind == 5:
        width = rng.randint(1, 63)
        return [
            b"BITFIELD", key, b"OVERFLOW", rng.choice([b"WRAP", b"SAT", b"FAIL"]),
            rng.choice([b"SET", b"INCRBY"]), rng.choice([b"i", b"u"]) + str(width).encode(),
            str(rng.randint(0, 50)).encode(), str(rng.randint(-(2**63), 2**63 - 1)).encode(),
        ]  # fmt: skip
    if kind == 6:
        return [b"LCS", key, rng.choice([b"a", b"b", b"c"]), *rng.choice([[], [b"IDX"], [b"LEN"]])]
    return [b"GET", key]


def test_random_commands_match_real_redis(redis_server_port: int) -> None:
    redis = RawRedis(redis_server_port)
    cairn = MachineClient(clock=lambda: int(time.time() * 1000))
    rng = random.Random(2024)
    redis.call([b"FLUSHALL"])
    mismatches = []
    for _ in range(1500):
        argv = _random_command(rng)
        theirs, ours = redis.call(argv), resp2(cairn.call(*argv))
        if theirs != ours:
            mismatches.append(f"{argv!r}: {theirs!r} != {ours!r}")
    redis.close()
    assert not mismatches, "\n".join(mismatches[:10])


def test_replies_are_typed_for_resp3() -> None:
    client = MachineClient(clock=FakeClock())
    client.call("SET", "a", "ab")
    reply: Reply = client.call("LCS", "a", "a", "IDX")
    assert isinstance(reply, Map)
    assert reply.pairs[1] == (Bulk(b"len"), Integer(2))
    assert client.call("BITFIELD", "a", "GET", "u8", "0") == ints(ord("a"))
