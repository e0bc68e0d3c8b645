"""What the `entry` target found once it applied entries as a node does (issue 14,
defect 5): through the node's storage calls (`LmdbHostStore`'s carve, image install and
merge, over an in-memory keyspace) instead of a storage that wrote nothing, with
commit-merges that carry their source's image, and membership changes decoded as
`RegionPeer._on_conf_change` decodes them. Each input is kept in `regressions/entry/`.

7. A split at a key that is not a range key (shorter than its 2-byte slot) or into the
   region's own id raised in the store's carve: it now changes nothing (`EpochNotMatch`).
8. A commit-merge naming the target itself as its source raised in `merge_machines`: it
   now changes nothing.
9. A commit-merge's image was never checked: one that is not msgpack, of another region,
   unfinished, or whose system records the merge reads do not decode (a count of 1
   byte, a request record with a negative expiry) or could overflow (a slot count of
   2**64 - 1) raised as it was installed or merged. The edge now refuses it
   (`cairn.store.merge_image.check_merge_image`).
10. A membership change whose context names its nodes as anything but a list of
    [peer id, node id] raised in apply, and so did an empty context: the edge refuses
    the first (`conf_change_nodes`), the second names no nodes.
11. A placement-group entry whose command held a field of another type (a time that is
    a string) decoded, then raised in `ClusterMetadata.apply`, stopping the placement
    group's apply. The placement codec now checks every decoded field against its
    declared type for commands and messages (`Codec(checked=True)`): such a batch is
    malformed and applies nothing, on every member alike.
"""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
from fuzz_targets import _LEFT, _REGION, _SOURCE, _fresh_region, _source_image, run_one

from cairn.raft.types import Entry, EntryType, Message, MessageType
from cairn.runtime.frame_checks import check_entries
from cairn.runtime.frames import FrameError
from cairn.shard.region_machine import (
    EpochNotMatch,
    MergeDone,
    conf_change_nodes,
    encode_commit_merge,
)
from cairn.shard.replica import decode_request, encode_request
from cairn.store.layout import region_key
from cairn.store.merge_image import check_merge_image
from cairn.store.ranges import SNAPSHOT_FORMAT, ImageError
from cairn.store.scope import Scope

REGRESSIONS = Path(__file__).parent / "regressions" / "entry"
SOURCE_SCOPE = Scope.region(_SOURCE.id, _SOURCE.start, _SOURCE.end)


def _regression(name: str) -> tuple[int, bytes]:
    data = (REGRESSIONS / name).read_bytes()
    return data[0], data[1:]


def _append(body: bytes, etype: EntryType = EntryType.NORMAL) -> Message:
    return Message(MessageType.APP, to=11, frm=12, entries=(Entry(2, 7, etype, body),))


@pytest.mark.parametrize(
    "name", ["split-key-not-a-range-key", "split-into-its-own-id", "merge-into-itself"]
)
def test_structural_entries_that_cannot_apply_change_nothing(name: str) -> None:
    mode, body = _regression(name)
    check_entries(_append(body), region=True)  # well-formed: the edge lets them through
    region = _LEFT if mode & 4 else _REGION
    machine = _fresh_region(region)
    assert machine.apply(7, decode_request(body)[1]) == EpochNotMatch(region)
    assert machine.region == region


@pytest.mark.parametrize(
    "name",
    [
        "merge-image-not-msgpack",
        "merge-image-other-region",
        "merge-image-unfinished",
        "merge-image-short-count",
        "merge-image-huge-slot-count",
        "merge-image-bad-request-record",
    ],
)
def test_a_commit_merge_with_a_bad_image_is_refused_at_the_edge(name: str) -> None:
    _, body = _regression(name)
    with pytest.raises(FrameError, match="commit-merge's image"):
        check_entries(_append(body), region=True)


def test_a_commit_merge_with_its_real_image_applies() -> None:
    image = _source_image()
    check_merge_image(SOURCE_SCOPE, image)
    command = encode_commit_merge(_LEFT.epoch, _SOURCE, image)
    check_entries(_append(encode_request(b"r1", command)), region=True)
    machine = _fresh_region(_LEFT)
    done = machine.apply(7, command)
    assert isinstance(done, MergeDone) and (done.merged.start, done.merged.end) == (b"", b"")
    assert machine.inner.store.scope == Scope.region(1, b"", b"")


def _frame(region_id: int, flat: list[bytes]) -> bytes:
    return bytes(msgpack.packb([SNAPSHOT_FORMAT, region_id, flat, True], use_bin_type=True))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (b"keys", b"\x00" * 7),
        (b"keys", (1 << 62).to_bytes(8, "big")),
        (b"applied", b""),
        (b"merging", b"\x01"),
        (b"slot\x30\x00", b"\xff" * 8),
        (b"slot\xff\xff", b"\x00" * 8),
        (b"slot\x30", b"\x00" * 8),
        (b"idemn", b"\x01"),
        (b"idem:\x30", msgpack.packb([1, b"d", b"k", None])),
        (b"idem:\x30\x00id", b"\xc1"),
        (b"idem:\x30\x00id", msgpack.packb([1, b"d", b"k"])),
        (b"idem:\x30\x00id", msgpack.packb([-1, b"d", b"k", None])),
        (b"idem:\x30\x00id", msgpack.packb(["1", b"d", b"k", None])),
        (b"idem:\x30\x00id", msgpack.packb([1, "d", b"k", None])),
        (b"idem:\x30\x00id", msgpack.packb([1, b"d", b"k", 5])),
    ],
)
def test_system_records_the_merge_reads_must_decode(name: bytes, value: bytes) -> None:
    bad = _frame(2, [region_key(2, name), value])
    with pytest.raises(ImageError):
        check_merge_image(SOURCE_SCOPE, bad)


def test_well_formed_system_records_and_an_empty_image_pass() -> None:
    records = [
        region_key(2, b"keys"), (5).to_bytes(8, "big"),
        region_key(2, b"slot\x30\x00"), (5).to_bytes(8, "big"),
        region_key(2, b"idem:\x30\x00id"), msgpack.packb([9, b"d", b"k", b"+OK\r\n"]),
        region_key(2, b"other"), b"not read by the merge",
    ]
    check_merge_image(SOURCE_SCOPE, _frame(2, records))
    check_merge_image(SOURCE_SCOPE, b"")


def test_membership_change_contexts() -> None:
    assert conf_change_nodes(encode_request(b"r", msgpack.packb([[14, 4]]))) == {14: 4}
    assert conf_change_nodes(encode_request(b"r", b"")) == {}
    assert conf_change_nodes(b"") == {}
    for nodes in (5, [[14]], [[14, -4]], [[True, 4]], [["14", 4]]):
        with pytest.raises(ValueError):
            conf_change_nodes(encode_request(b"r", msgpack.packb(nodes)))
    _, bad = _regression("conf-change-bad-nodes")
    with pytest.raises(FrameError):
        check_entries(_append(bad, EntryType.CONF_CHANGE), region=True)


def test_every_regression_runs_clean() -> None:
    for path in sorted(REGRESSIONS.iterdir()):
        run_one("entry", path.read_bytes())


@pytest.mark.parametrize(
    "name",
    ["placement-time-not-a-number", "placement-labels-not-pairs", "placement-count-a-bool"],
)
def test_placement_commands_of_the_wrong_types_apply_nothing(name: str) -> None:
    from cairn.placement.codec import DecodeError
    from cairn.placement.driver import PlacementDriver
    from cairn.placement.service import PlacementMachine, decode_batch

    _, body = _regression(name)
    command = decode_request(body)[1]
    with pytest.raises(DecodeError, match="not a"):
        decode_batch(command)
    machine = PlacementMachine(PlacementDriver())
    assert machine.apply(7, command) == ()
    assert machine.applied_index == 7


def test_placement_commands_of_the_declared_types_decode() -> None:
    from cairn.placement.commands import AddNode, AllocIds, Tick
    from cairn.placement.service import decode_batch, encode_batch

    batch = (Tick(7), AddNode(2, "a:1", "a:2", (("zone", "a"),), 5), AllocIds(3))
    assert decode_batch(encode_batch(batch)) == batch
