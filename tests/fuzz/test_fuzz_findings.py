"""What the fuzzers found, one test per finding, each at the edge that now refuses it.

1. An admin entry (split, prepare-merge, commit-merge) passed the peer edge as soon as its
   body was msgpack, and `RegionMachine.apply` then raised on it, which stops the region
   for good on every replica: the edge now checks the body's shape.
2. A split whose new peer ids did not fit the region's peers (too few, or the same id
   twice) raised in apply: it now changes nothing (`EpochNotMatch`), as one proposed
   under another membership.
3. `decode_region` converted instead of checking: `bytes(2**40)` from a peer's region map
   or commit-merge allocated a terabyte of zeros. It now accepts only the encoded types.
4. A config file that is not UTF-8 raised `UnicodeDecodeError`, not `ConfigError`.
5. An admin JSON body nested too deep, holding a 5000-digit integer or not UTF-8 was a
   500 with a traceback in the log: it is a 400 now.
6. (the network fuzzer) A malformed HTTP request to the admin port logged a traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path

import msgpack
import pytest

from cairn.admin.json_body import parse_json_body
from cairn.admin.source import BadRequestError
from cairn.meta.region import Peer, Region, RegionEpoch, range_key
from cairn.raft.types import Entry, Message, MessageType
from cairn.runtime.config import ConfigError, load
from cairn.runtime.frame_checks import check_entries
from cairn.runtime.frames import FrameError
from cairn.shard.region_machine import (
    ADMIN_TAG,
    EpochNotMatch,
    SplitDone,
    decode_region,
    encode_region,
    encode_split,
)
from cairn.shard.replica import encode_request

REGION = Region(1, b"", b"", RegionEpoch(1, 1), (Peer(11, 1), Peer(12, 2), Peer(13, 3)))
CUT = range_key(b"m")
"""A split key: a range key (slot, then key) inside the region."""


def _append(command: bytes) -> Message:
    entry = Entry(2, 7, data=encode_request(b"r1", command))
    return Message(MessageType.APP, to=11, frm=12, entries=(entry,))


@pytest.mark.parametrize(
    "body",
    [
        5,
        [],
        ["commit_merga", 1, 1, [], b""],
        ["split", 1, 1, b"m", 2],
        ["split", 1, 1, 7, 2, [21, 22, 23]],
        ["split", 1, -1, b"m", 2, [21, 22, 23]],
        ["prepare_merge", 1, 1, "two"],
        ["commit_merge", 1, 1, [2, 1 << 40, b"", 1, 1, []], b""],
        ["commit_merge", 1, 1, [2, b"", b"a", 1, 1, []], None],
    ],
)
def test_malformed_admin_entries_are_refused_at_the_edge(body: object) -> None:
    with pytest.raises(FrameError):
        check_entries(_append(ADMIN_TAG + msgpack.packb(body)), region=True)


def test_well_formed_admin_entries_pass_the_edge() -> None:
    check_entries(_append(encode_split(RegionEpoch(1, 1), CUT, 2, [21, 22, 23])), region=True)


def test_a_split_whose_peer_ids_do_not_fit_changes_nothing() -> None:
    from fuzz_targets import _fresh_region

    machine = _fresh_region(REGION)
    for wrong in ([21], [21, 22, 21], [21, 22, 23, 24]):
        split = encode_split(REGION.epoch, CUT, 2, wrong)
        assert machine.apply(7, split) == EpochNotMatch(REGION)
    assert machine.region == REGION
    right = encode_split(REGION.epoch, CUT, 2, [21, 22, 23])
    assert isinstance(machine.apply(8, right), SplitDone)


@pytest.mark.parametrize(
    "fields",
    [
        [2, 1 << 40, b"", 1, 1, []],
        [2, b"", b"", True, 1, []],
        [2, b"", b"", 1, 1, [[1, -2, 0]]],
        [2, b"", b"", 1, 1, [[1, 2, 9]]],
        [2, b"", b"", 1, 1],
        "region",
    ],
)
def test_decode_region_refuses_what_encode_region_never_writes(fields: object) -> None:
    with pytest.raises(ValueError):
        decode_region(fields)  # type: ignore[arg-type]


def test_decode_region_inverts_encode_region() -> None:
    assert decode_region(msgpack.unpackb(msgpack.packb(encode_region(REGION)))) == REGION


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_bytes(b'node_id = 1\npassword = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load(path)


@pytest.mark.parametrize(
    "raw",
    [b"[" * 100_000, b'{"replicas": ' + b"9" * 5000 + b"}", b'{"reason": "\xff"}', b"{"],
)
def test_bad_admin_json_bodies_are_bad_requests(raw: bytes) -> None:
    with pytest.raises(BadRequestError):
        parse_json_body(raw, required=True)


def test_admin_json_bodies_parse() -> None:
    assert parse_json_body(b'{"replicas": 3}', required=True) == {"replicas": 3}
    assert parse_json_body(b"  ", required=False) == {}
    with pytest.raises(BadRequestError):
        parse_json_body(b"", required=True)


def _record(exc: BaseException | None) -> logging.LogRecord:
    info = (type(exc), exc, None) if exc is not None else None
    message = "Error handling request from %s"
    return logging.LogRecord("aiohttp", logging.ERROR, __file__, 1, message, ("1.2.3.4",), info)


def test_malformed_http_is_one_short_line_a_second() -> None:
    """Finding 6 (network fuzzer): every unparsable HTTP request to the admin port was an
    ERROR with a traceback, before any token check: a stranger could flood the log."""
    from aiohttp.http_exceptions import BadStatusLine

    from cairn.admin.http_log import MalformedRequestFilter

    quiet = MalformedRequestFilter(interval=3600)
    first = _record(BadStatusLine(b"GET / HTT\xb9"))
    assert quiet.filter(first)
    assert first.exc_info is None and first.levelno == logging.WARNING
    assert first.getMessage().startswith("malformed HTTP request: 400")
    assert not quiet.filter(_record(BadStatusLine(b"again")))
    other = _record(RuntimeError("a handler's bug"))
    assert quiet.filter(other) and other.exc_info is not None
