"""The leader's side of `Raft.step`: one small handler per message type (etcd's stepLeader).

These are functions of the `Raft` they are given rather than methods, so the core's
module stays readable; dispatch is by the tables at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cairn.raft.errors import ProposalDroppedError, StepPeerNotFoundError
from cairn.raft.progress import Progress, ProgressState
from cairn.raft.quorum import VoteResult
from cairn.raft.types import (
    NONE,
    Entry,
    EntryType,
    Message,
    MessageType,
    NodeId,
    ReadOnlyOption,
    decode_conf_change,
    is_response,
)

if TYPE_CHECKING:
    from cairn.raft.raft import Raft

MT = MessageType


def step_leader(r: Raft, m: Message) -> None:
    """Handle a message as leader."""
    local = LEADER_LOCAL_HANDLERS.get(m.type)
    if local is not None:
        local(r, m)
        return
    pr = r.prs.progress.get(m.frm)
    if pr is None:
        if is_response(m.type):
            raise StepPeerNotFoundError(f"no progress for node {m.frm}")
        return
    peer = LEADER_PEER_HANDLERS.get(m.type)
    if peer is not None:
        peer(r, m, pr)


def leader_beat(r: Raft, m: Message) -> None:
    r.bcast_heartbeat()


def leader_check_quorum(r: Raft, m: Message) -> None:
    if not r.prs.quorum_active():
        r.become_follower(r.term, NONE)
    for node_id, pr in r.prs.progress.items():
        if node_id != r.id:
            pr.recent_active = False


def leader_prop(r: Raft, m: Message) -> None:
    if not m.entries:
        raise AssertionError("stepped an empty proposal")
    if r.id not in r.prs.progress:
        raise ProposalDroppedError("this node was removed from the configuration")
    if r.lead_transferee != NONE:
        raise ProposalDroppedError(f"leadership is moving to {r.lead_transferee}")
    first = r.raft_log.last_index() + 1
    entries = [vet_conf_change(r, e, first + i) for i, e in enumerate(m.entries)]
    if not r.append_entries(entries):
        raise ProposalDroppedError("too many uncommitted entries")
    r.bcast_append()


def vet_conf_change(r: Raft, e: Entry, index: int) -> Entry:
    """Refuse a membership change that may not start now (replace it by a no-op)."""
    if e.type is not EntryType.CONF_CHANGE:
        return e
    cc = decode_conf_change(e.data)
    joint = r.prs.config.voters.is_joint()
    refused = (
        r.pending_conf_index > r.raft_log.applied
        or (joint and not cc.leave_joint())
        or (not joint and cc.leave_joint())
    )
    if refused:
        return Entry(term=e.term, index=e.index, type=EntryType.NORMAL)
    r.pending_conf_index = index
    return e


def leader_read_index(r: Raft, m: Message) -> None:
    if r.prs.is_singleton():
        r.respond_read_index(m, r.raft_log.committed)
        return
    if not r.committed_entry_in_current_term():
        r.pending_read_index.append(m)
        return
    serve_read_index(r, m)


def serve_read_index(r: Raft, m: Message) -> None:
    if r.config.read_only_option is ReadOnlyOption.LEASE_BASED and r.lease_valid():
        r.respond_read_index(m, r.raft_log.committed)
        return
    r.read_only.add_request(r.raft_log.committed, m)
    r.read_only.recv_ack(r.id, m.context)
    r.bcast_heartbeat(m.context)


def leader_transfer(r: Raft, m: Message, pr: Progress) -> None:
    transferee = m.frm
    if pr.is_learner or transferee == r.id:
        return
    if r.lead_transferee == transferee:
        return
    r.abort_leader_transfer()
    r.lead_transferee = transferee
    r.election_elapsed = 0
    if pr.match == r.raft_log.last_index():
        r.send_timeout_now(transferee)
    else:
        r.send_append(transferee)


def leader_app_resp(r: Raft, m: Message, pr: Progress) -> None:
    pr.recent_active = True
    if m.reject:
        handle_append_reject(r, m, pr)
        return
    was_paused = pr.is_paused()
    if not pr.maybe_update(m.index):
        return
    on_progress_advanced(r, m.frm, pr)
    if r.maybe_commit():
        r.bcast_append()
    elif was_paused:
        r.send_append(m.frm)
    while r.send_append(m.frm, send_if_empty=False):
        pass
    if m.frm == r.lead_transferee and pr.match == r.raft_log.last_index():
        r.send_timeout_now(m.frm)


def on_progress_advanced(r: Raft, node_id: NodeId, pr: Progress) -> None:
    if pr.state is ProgressState.PROBE:
        pr.become_replicate()
    elif pr.state is ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
        pr.become_probe()
        pr.become_replicate()
    elif pr.state is ProgressState.REPLICATE:
        pr.inflights.free_le(pr.match)


def handle_append_reject(r: Raft, m: Message, pr: Progress) -> None:
    next_probe = m.reject_hint
    if m.hint_term > 0:
        next_probe, _ = r.raft_log.find_conflict_by_term(m.reject_hint, m.hint_term)
    if pr.maybe_decr_to(m.index, next_probe):
        if pr.state is ProgressState.REPLICATE:
            pr.become_probe()
        r.send_append(m.frm)


def leader_heartbeat_resp(r: Raft, m: Message, pr: Progress) -> None:
    pr.recent_active = True
    pr.probe_sent = False
    if pr.state is ProgressState.REPLICATE and pr.inflights.full():
        pr.inflights.free_first_one()
    if r.prs.is_voter(m.frm):
        r.lease_acks[m.frm] = max(r.lease_acks.get(m.frm, 0), m.lease_tick)
    if pr.match < r.raft_log.last_index():
        r.send_append(m.frm)
    if not m.context:
        return
    acks = r.read_only.recv_ack(m.frm, m.context)
    if acks is None or r.prs.config.voters.vote_result(acks) is not VoteResult.WON:
        return
    for status in r.read_only.advance(m.context):
        r.respond_read_index(status.request, status.index)


def leader_snap_status(r: Raft, m: Message, pr: Progress) -> None:
    if pr.state is not ProgressState.SNAPSHOT:
        return
    if m.reject:
        pr.pending_snapshot = 0
    pr.become_probe()
    # Wait for a heartbeat answer before probing again.
    pr.probe_sent = True


def leader_unreachable(r: Raft, m: Message, pr: Progress) -> None:
    if pr.state is ProgressState.REPLICATE:
        pr.become_probe()


LEADER_LOCAL_HANDLERS: dict[MessageType, Callable[[Raft, Message], None]] = {
    MT.BEAT: leader_beat,
    MT.CHECK_QUORUM: leader_check_quorum,
    MT.PROP: leader_prop,
    MT.READ_INDEX: leader_read_index,
}

LEADER_PEER_HANDLERS: dict[MessageType, Callable[[Raft, Message, Progress], None]] = {
    MT.APP_RESP: leader_app_resp,
    MT.HEARTBEAT_RESP: leader_heartbeat_resp,
    MT.SNAP_STATUS: leader_snap_status,
    MT.UNREACHABLE: leader_unreachable,
    MT.TRANSFER_LEADER: leader_transfer,
}
