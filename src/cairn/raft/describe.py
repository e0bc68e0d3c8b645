"""Stable, compact text renderings of the core's values, in etcd-raft's style.

Golden interaction tests (`tests/raft/testdata/*.txt`), traces and debug logs all print
core values through these functions, so the text must not depend on anything but the
value: no ids of objects, no dict ordering, no floats. Examples::

    1->2 MsgApp Term:1 Log:1/2 Commit:2 Entries:[1/3 EntryNormal "foo"]
    HardState Term:1 Vote:1 Commit:2
    Voters:[1 2 3] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false

Conf-change entries are decoded and shown as their changes (`v4` add voter 4, `l5` add
learner 5, `r2` remove 2), so a reader never has to decode msgpack by hand.
"""

from __future__ import annotations

from collections.abc import Iterable

from cairn.raft.ready import Ready
from cairn.raft.types import (
    ConfChange,
    ConfChangeTransition,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    NodeId,
    ReadState,
    Snapshot,
    SoftState,
    decode_conf_change,
)

INDENT = "  "
"""The indentation of the sections of a described `Ready`."""

_CHANGE_LETTER = {
    ConfChangeType.ADD_NODE: "v",
    ConfChangeType.ADD_LEARNER: "l",
    ConfChangeType.REMOVE_NODE: "r",
}


def quote_bytes(data: bytes) -> str:
    """`data` in double quotes, printable ASCII kept, everything else escaped as `\\xNN`."""
    out = ['"']
    for b in data:
        ch = chr(b)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\x{b:02x}")
    out.append('"')
    return "".join(out)


def describe_ids(ids: Iterable[NodeId]) -> str:
    """Node ids in increasing order, space separated, in brackets: `[1 2 3]`."""
    return "[" + " ".join(str(i) for i in sorted(ids)) + "]"


def describe_conf_change(cc: ConfChange) -> str:
    """A membership change as `v4 l5 r2`, its transition named unless it is `AUTO`.

    The empty change that leaves a joint configuration is shown as `leave-joint`.
    """
    parts = [f"{_CHANGE_LETTER[c.type]}{c.node_id}" for c in cc.changes] or ["leave-joint"]
    if cc.transition is not ConfChangeTransition.AUTO:
        parts.append(f"transition={cc.transition.value}")
    if cc.context:
        parts.append(f"context={quote_bytes(cc.context)}")
    return " ".join(parts)


def describe_entry(e: Entry) -> str:
    """One entry as `term/index type payload`: `1/3 EntryNormal "foo"`, `2/5 EntryConfChange v4`."""
    head = f"{e.term}/{e.index} {e.type.value}"
    if e.type is EntryType.CONF_CHANGE:
        return f"{head} {_describe_conf_change_data(e.data)}"
    return f"{head} {quote_bytes(e.data)}"


def _describe_conf_change_data(data: bytes) -> str:
    try:
        return describe_conf_change(decode_conf_change(data))
    except Exception:  # a corrupt payload must still print, not crash a trace
        return f"<undecodable {quote_bytes(data)}>"


def describe_entries(entries: Iterable[Entry], sep: str = "\n") -> str:
    """Entries, one per line by default (`sep=", "` gives the inline form of messages)."""
    return sep.join(describe_entry(e) for e in entries)


def describe_hard_state(hs: HardState) -> str:
    """`HardState Term:1 Vote:1 Commit:2`."""
    return f"HardState Term:{hs.term} Vote:{hs.vote} Commit:{hs.commit}"


def describe_soft_state(ss: SoftState) -> str:
    """`Lead:1 State:StateLeader`."""
    return f"Lead:{ss.lead} State:{ss.role.value}"


def describe_conf_state(cs: ConfState) -> str:
    """`Voters:[1 2 3] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false`."""
    return (
        f"Voters:{describe_ids(cs.voters)} VotersOutgoing:{describe_ids(cs.voters_outgoing)} "
        f"Learners:{describe_ids(cs.learners)} LearnersNext:{describe_ids(cs.learners_next)} "
        f"AutoLeave:{str(cs.auto_leave).lower()}"
    )


def describe_snapshot(snap: Snapshot) -> str:
    """`Index:5 Term:1 ConfState:Voters:[1 2 3] ...` (the data itself is not shown)."""
    meta = snap.metadata
    return f"Index:{meta.index} Term:{meta.term} ConfState:{describe_conf_state(meta.conf_state)}"


def describe_read_state(rs: ReadState) -> str:
    """`Index:5 Ctx:"a"`."""
    return f"Index:{rs.index} Ctx:{quote_bytes(rs.request_ctx)}"


def describe_message(m: Message) -> str:
    """One message on one line, fields shown only when they carry information.

    `1->2 MsgApp Term:1 Log:1/2 Commit:2 Entries:[1/3 EntryNormal "foo"]`;
    a rejection shows its hint: `2->1 MsgAppResp Term:1 Log:0/5 Rejected (Hint:3 HintTerm:1)`.
    """
    parts = [f"{m.frm}->{m.to} {m.type.value} Term:{m.term} Log:{m.log_term}/{m.index}"]
    if m.reject and (m.reject_hint or m.hint_term):
        parts.append(f"Rejected (Hint:{m.reject_hint} HintTerm:{m.hint_term})")
    elif m.reject:
        parts.append("Rejected")
    if m.commit:
        parts.append(f"Commit:{m.commit}")
    if m.entries:
        parts.append(f"Entries:[{describe_entries(m.entries, sep=', ')}]")
    if m.snapshot is not None and not m.snapshot.is_empty():
        parts.append(f"Snapshot: {describe_snapshot(m.snapshot)}")
    if m.context:
        parts.append(f"Context:{quote_bytes(m.context)}")
    return " ".join(parts)


def describe_messages(messages: Iterable[Message]) -> str:
    """Messages, one per line."""
    return "\n".join(describe_message(m) for m in messages)


def describe_ready(rd: Ready) -> str:
    """A `Ready` as a header and its non-empty sections, each section's lines indented.

    ```
    Ready MustSync:true:
    Lead:1 State:StateLeader
    HardState Term:1 Vote:1 Commit:0
    Entries:
      1/1 EntryNormal ""
    Messages:
      1->2 MsgApp Term:1 Log:0/0 Entries:[1/1 EntryNormal ""]
    ```
    An empty Ready is `<empty Ready>`.
    """
    if rd.is_empty():
        return "<empty Ready>"
    lines = [f"Ready MustSync:{str(rd.must_sync).lower()}:"]
    if rd.soft_state is not None:
        lines.append(describe_soft_state(rd.soft_state))
    if rd.hard_state is not None:
        lines.append(describe_hard_state(rd.hard_state))
    _section(lines, "ReadStates", [describe_read_state(rs) for rs in rd.read_states])
    _section(lines, "Entries", [describe_entry(e) for e in rd.entries])
    if rd.snapshot is not None and not rd.snapshot.is_empty():
        lines.append(f"Snapshot {describe_snapshot(rd.snapshot)}")
    _section(lines, "CommittedEntries", [describe_entry(e) for e in rd.committed_entries])
    _section(lines, "Messages", [describe_message(m) for m in rd.messages])
    _section(lines, "PersistedMessages", [describe_message(m) for m in rd.persisted_messages])
    return "\n".join(lines)


def _section(lines: list[str], title: str, items: list[str]) -> None:
    if items:
        lines.append(f"{title}:")
        lines.extend(INDENT + item for item in items)
