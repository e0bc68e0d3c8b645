"""The wire form of Raft messages round-trips every field."""

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.raft.types import (
    LOCAL_MESSAGES,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from cairn.raft.wire import WireFormatError, decode_message, encode_message

ints = st.integers(min_value=0, max_value=2**63 - 1)
ids = st.integers(min_value=0, max_value=1000)
entries = st.builds(
    Entry, term=ints, index=ints, type=st.sampled_from(EntryType), data=st.binary(max_size=64)
)
conf_states = st.builds(
    ConfState,
    voters=st.tuples(ids, ids),
    learners=st.tuples(ids),
    voters_outgoing=st.tuples(),
    learners_next=st.tuples(),
    auto_leave=st.booleans(),
)
snapshots = st.builds(
    Snapshot,
    data=st.binary(max_size=64),
    metadata=st.builds(SnapshotMetadata, index=ints, term=ints, conf_state=conf_states),
)
messages = st.builds(
    Message,
    type=st.sampled_from([t for t in MessageType if t not in LOCAL_MESSAGES]),
    to=ids,
    frm=ids,
    term=ints,
    log_term=ints,
    index=ints,
    entries=st.lists(entries, max_size=3).map(tuple),
    commit=ints,
    snapshot=st.none() | snapshots,
    reject=st.booleans(),
    reject_hint=ints,
    hint_term=ints,
    context=st.binary(max_size=16),
    lease_tick=ints,
)


@given(messages)
def test_round_trip_through_msgpack(m: Message) -> None:
    packed = msgpack.packb(encode_message(m))
    assert decode_message(msgpack.unpackb(packed)) == m


@pytest.mark.parametrize("bad", [[], [0, 1], "x", [999] + [0] * 13, None])
def test_malformed_input_is_a_typed_error(bad: object) -> None:
    with pytest.raises(WireFormatError):
        decode_message(bad)


def _fields(**change: object) -> list[object]:
    good = encode_message(Message(MessageType.APP, to=2, frm=1, term=3, entries=(Entry(3, 4),)))
    names = ["type", "to", "frm", "term", "log_term", "index", "entries", "commit", "snapshot"]
    names += ["reject", "reject_hint", "hint_term", "context", "lease_tick"]
    for name, value in change.items():
        good[names.index(name)] = value
    return good


@pytest.mark.parametrize(
    "change",
    [
        {"type": -1},  # a negative index would pick the last type
        {"type": 0},  # MsgHup: local, never on the wire
        {"term": -5},
        {"term": 1 << 64},
        {"term": "7"},
        {"term": True},
        {"to": 1.5},
        {"reject": 1},
        {"context": "text"},
        {"entries": [[1, 2, -1, b""]]},  # entry type by negative index
        {"entries": [[1, 2, 0, "str"]]},
        {"entries": [[1, 2, 0]]},
        {"entries": b"xx"},
        {"snapshot": [1, 1, [[1], [], [], [], 1], b""]},  # auto_leave not a bool
        {"snapshot": [1, 1, [["a"], [], [], [], False], b""]},
    ],
)
def test_out_of_range_or_mistyped_fields_are_typed_errors(change: dict[str, object]) -> None:
    decode_message(_fields())  # the unchanged message is fine
    with pytest.raises(WireFormatError):
        decode_message(_fields(**change))
