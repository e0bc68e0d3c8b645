"""Tests of the text renderings used by golden files and traces."""

from __future__ import annotations

from cairn.raft.describe import (
    describe_conf_change,
    describe_conf_state,
    describe_entries,
    describe_entry,
    describe_hard_state,
    describe_message,
    describe_ready,
    describe_snapshot,
    describe_soft_state,
    quote_bytes,
)
from cairn.raft.ready import Ready
from cairn.raft.types import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Snapshot,
    SnapshotMetadata,
    SoftState,
    StateRole,
    encode_conf_change,
)

V4 = ConfChangeSingle(ConfChangeType.ADD_NODE, 4)
R2 = ConfChangeSingle(ConfChangeType.REMOVE_NODE, 2)
L5 = ConfChangeSingle(ConfChangeType.ADD_LEARNER, 5)


def empty_ready(**fields: object) -> Ready:
    base: dict[str, object] = {
        "number": 1,
        "soft_state": None,
        "hard_state": None,
        "read_states": (),
        "entries": (),
        "snapshot": None,
        "committed_entries": (),
        "messages": (),
        "persisted_messages": (),
        "must_sync": False,
    }
    base.update(fields)
    return Ready(**base)  # type: ignore[arg-type]


def test_quote_bytes_escapes_what_is_not_printable() -> None:
    assert quote_bytes(b"foo") == '"foo"'
    assert quote_bytes(b"") == '""'
    assert quote_bytes(b'a"b\\c\n\xff') == '"a\\"b\\\\c\\x0a\\xff"'


def test_describe_message_of_an_append() -> None:
    m = Message(
        type=MessageType.APP,
        frm=1,
        to=2,
        term=1,
        log_term=1,
        index=2,
        commit=2,
        entries=(Entry(term=1, index=3, data=b"foo"),),
    )
    assert (
        describe_message(m) == '1->2 MsgApp Term:1 Log:1/2 Commit:2 Entries:[1/3 EntryNormal "foo"]'
    )


def test_describe_message_shows_only_fields_that_carry_information() -> None:
    vote = Message(type=MessageType.VOTE, frm=1, to=3, term=2, log_term=1, index=5)
    assert describe_message(vote) == "1->3 MsgVote Term:2 Log:1/5"
    reject = Message(
        type=MessageType.APP_RESP,
        frm=2,
        to=1,
        term=3,
        index=7,
        reject=True,
        reject_hint=4,
        hint_term=2,
    )
    assert describe_message(reject) == "2->1 MsgAppResp Term:3 Log:0/7 Rejected (Hint:4 HintTerm:2)"
    read = Message(type=MessageType.HEARTBEAT, frm=1, to=2, term=1, context=b"r1")
    assert describe_message(read) == '1->2 MsgHeartbeat Term:1 Log:0/0 Context:"r1"'


def test_describe_message_with_entries_and_snapshot() -> None:
    snap = Snapshot(
        data=b"x", metadata=SnapshotMetadata(index=5, term=2, conf_state=ConfState(voters=(1, 2)))
    )
    m = Message(
        type=MessageType.SNAP,
        frm=1,
        to=2,
        term=3,
        snapshot=snap,
        entries=(Entry(1, 1), Entry(1, 2, data=b"b")),
    )
    assert describe_message(m) == (
        '1->2 MsgSnap Term:3 Log:0/0 Entries:[1/1 EntryNormal "", 1/2 EntryNormal "b"] '
        "Snapshot: Index:5 Term:2 ConfState:Voters:[1 2] VotersOutgoing:[] Learners:[] "
        "LearnersNext:[] AutoLeave:false"
    )


def test_conf_change_entries_are_decoded() -> None:
    cc = ConfChange(changes=(V4, L5, R2))
    e = Entry(term=2, index=5, type=EntryType.CONF_CHANGE, data=encode_conf_change(cc))
    assert describe_entry(e) == "2/5 EntryConfChange v4 l5 r2"
    explicit = ConfChange(changes=(V4,), transition=ConfChangeTransition.JOINT_EXPLICIT)
    assert describe_conf_change(explicit) == "v4 transition=JointExplicit"
    assert describe_conf_change(ConfChange()) == "leave-joint"
    bad = Entry(term=1, index=1, type=EntryType.CONF_CHANGE, data=b"\xc1")
    assert describe_entry(bad) == '1/1 EntryConfChange <undecodable "\\xc1">'


def test_describe_entries_one_per_line() -> None:
    assert describe_entries([Entry(1, 1), Entry(2, 2, data=b"a")]) == (
        '1/1 EntryNormal ""\n2/2 EntryNormal "a"'
    )


def test_describe_states() -> None:
    assert (
        describe_hard_state(HardState(term=1, vote=1, commit=2))
        == "HardState Term:1 Vote:1 Commit:2"
    )
    assert (
        describe_soft_state(SoftState(lead=1, role=StateRole.LEADER)) == "Lead:1 State:StateLeader"
    )
    cs = ConfState(voters=(3, 1, 2), voters_outgoing=(1,), learners=(4,), auto_leave=True)
    assert describe_conf_state(cs) == (
        "Voters:[1 2 3] VotersOutgoing:[1] Learners:[4] LearnersNext:[] AutoLeave:true"
    )
    snap = Snapshot(metadata=SnapshotMetadata(index=9, term=3, conf_state=ConfState(voters=(1,))))
    assert describe_snapshot(snap).startswith("Index:9 Term:3 ConfState:Voters:[1] ")


def test_describe_ready_lists_non_empty_sections_indented() -> None:
    app = Message(type=MessageType.APP, frm=1, to=2, term=1, entries=(Entry(1, 1),))
    resp = Message(type=MessageType.VOTE_RESP, frm=1, to=3, term=1)
    rd = empty_ready(
        soft_state=SoftState(lead=1, role=StateRole.LEADER),
        hard_state=HardState(term=1, vote=1, commit=0),
        read_states=(ReadState(index=1, request_ctx=b"q"),),
        entries=(Entry(1, 1),),
        committed_entries=(Entry(1, 1),),
        messages=(app,),
        persisted_messages=(resp,),
        must_sync=True,
    )
    assert describe_ready(rd) == "\n".join(
        [
            "Ready MustSync:true:",
            "Lead:1 State:StateLeader",
            "HardState Term:1 Vote:1 Commit:0",
            "ReadStates:",
            '  Index:1 Ctx:"q"',
            "Entries:",
            '  1/1 EntryNormal ""',
            "CommittedEntries:",
            '  1/1 EntryNormal ""',
            "Messages:",
            '  1->2 MsgApp Term:1 Log:0/0 Entries:[1/1 EntryNormal ""]',
            "PersistedMessages:",
            "  1->3 MsgVoteResp Term:1 Log:0/0",
        ]
    )


def test_describe_ready_of_a_snapshot_and_of_nothing() -> None:
    snap = Snapshot(metadata=SnapshotMetadata(index=4, term=1, conf_state=ConfState(voters=(1,))))
    assert describe_ready(empty_ready()) == "<empty Ready>"
    assert describe_ready(empty_ready(snapshot=snap, must_sync=True)).split("\n") == [
        "Ready MustSync:true:",
        "Snapshot Index:4 Term:1 ConfState:Voters:[1] VotersOutgoing:[] Learners:[] "
        "LearnersNext:[] AutoLeave:false",
    ]
