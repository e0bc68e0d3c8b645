"""The commands of golden interaction files, one small handler per command.

`handle(env, case)` runs one command against an `InteractionEnv` and returns its output.
Node ids are positional arguments; options are `key=value`. Commands:

    add-nodes N [voters=(..) learners=(..) index=I] [pre-vote= check-quorum= read-only=safe|lease
              election-tick= heartbeat-tick= max-inflight= max-size-per-msg=
              max-uncommitted-size= proposal-forwarding=]
    campaign ID                      propose ID DATA
    propose-conf-change ID v4 l5 r2 [transition=auto|implicit|explicit]  (no change: leave joint)
    process-ready ID...              deliver-msgs [ID...] [drop=(ID..)] [type=MsgApp]
    stabilize [ID...]                tick ID [N]        tick-heartbeat ID      tick-election ID
    raft-log ID                      raft-state         status ID              applied ID
    lease ID                         read-states ID
    read-index ID CTX                transfer-leadership from=ID to=ID
    compact ID INDEX                 isolate ID         heal                   restart ID
    report-unreachable ID PEER       report-snapshot ID PEER [ok=true|false]
    log-level none|info              forget-leader ID   messages
"""

from __future__ import annotations

from collections.abc import Callable

from datadriven import CmdArg, TestCase
from interaction_env import InteractionEnv, bootstrap_storage, describe_progress

from cairn.raft.config import Config
from cairn.raft.describe import (
    describe_conf_state,
    describe_entry,
    describe_hard_state,
    describe_message,
    describe_read_state,
    describe_snapshot,
    quote_bytes,
)
from cairn.raft.storage import MemoryStorage
from cairn.raft.types import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfState,
    ReadOnlyOption,
    StateRole,
)

Command = Callable[[InteractionEnv, TestCase], None]

_READ_ONLY = {"safe": ReadOnlyOption.SAFE, "lease": ReadOnlyOption.LEASE_BASED}
_TRANSITIONS = {
    "auto": ConfChangeTransition.AUTO,
    "implicit": ConfChangeTransition.JOINT_IMPLICIT,
    "explicit": ConfChangeTransition.JOINT_EXPLICIT,
}
_CHANGE_TYPES = {
    "v": ConfChangeType.ADD_NODE,
    "l": ConfChangeType.ADD_LEARNER,
    "r": ConfChangeType.REMOVE_NODE,
}


def handle(env: InteractionEnv, case: TestCase) -> str:
    """Run one command and return its output (`ok` when it printed nothing)."""
    command = COMMANDS.get(case.cmd)
    if command is None:
        raise case.fail("unknown command")
    command(env, case)
    return env.out.take()


# -- argument helpers ---------------------------------------------------------------------


def _ids(case: TestCase) -> list[int]:
    return [int(w) for w in case.positional()]


def _one_id(case: TestCase) -> int:
    ids = _ids(case)
    if len(ids) != 1:
        raise case.fail(f"expected one node id, got {ids}")
    return ids[0]


def _int_list(arg: CmdArg | None) -> tuple[int, ...]:
    return tuple(int(v) for v in arg.vals) if arg else ()


def _value(case: TestCase, key: str) -> str | None:
    arg = case.arg(key)
    if arg is None:
        return None
    if len(arg.vals) != 1:
        raise case.fail(f"{key} takes one value")
    return arg.vals[0]


def _int(case: TestCase, key: str, default: int) -> int:
    v = _value(case, key)
    return default if v is None else int(v)


def _bool(case: TestCase, key: str, default: bool) -> bool:
    v = _value(case, key)
    if v is None:
        return default
    if v not in ("true", "false"):
        raise case.fail(f"{key} must be true or false")
    return v == "true"


# -- building nodes ---------------------------------------------------------------------


def _config(case: TestCase, node_id: int) -> Config:
    base = Config(id=node_id)
    read_only = _value(case, "read-only")
    return Config(
        id=node_id,
        election_tick=_int(case, "election-tick", base.election_tick),
        heartbeat_tick=_int(case, "heartbeat-tick", base.heartbeat_tick),
        max_inflight_msgs=_int(case, "max-inflight", base.max_inflight_msgs),
        max_size_per_msg=_int(case, "max-size-per-msg", base.max_size_per_msg),
        max_uncommitted_entries_size=_int(
            case, "max-uncommitted-size", base.max_uncommitted_entries_size
        ),
        check_quorum=_bool(case, "check-quorum", base.check_quorum),
        pre_vote=_bool(case, "pre-vote", base.pre_vote),
        read_only_option=_READ_ONLY[read_only] if read_only else base.read_only_option,
        disable_proposal_forwarding=not _bool(case, "proposal-forwarding", True),
        max_clock_drift_ticks=_int(case, "max-clock-drift", base.max_clock_drift_ticks),
    )


def cmd_add_nodes(env: InteractionEnv, case: TestCase) -> None:
    """Add N nodes with the next free ids, bootstrapped if `voters=` is given."""
    (count,) = _ids(case)
    voters, learners = _int_list(case.arg("voters")), _int_list(case.arg("learners"))
    index = _int(case, "index", 0)
    first = max(env.nodes, default=0) + 1
    for node_id in range(first, first + count):
        config = _config(case, node_id)
        config.validate()
        storage = (
            bootstrap_storage(ConfState(voters=voters, learners=learners), index)
            if voters
            else MemoryStorage()
        )
        env.add_node(config, storage)
        cs = storage.snapshot().metadata.conf_state
        env.out.log(
            f"{node_id} started: first={storage.first_index()} last={storage.last_index()} "
            f"{describe_conf_state(cs)}"
        )
    c = _config(case, first)
    env.out.line(
        f"config: election-tick={c.election_tick} heartbeat-tick={c.heartbeat_tick} "
        f"pre-vote={str(c.pre_vote).lower()} check-quorum={str(c.check_quorum).lower()} "
        f"read-only={c.read_only_option.value} max-inflight={c.max_inflight_msgs}"
    )


# -- driving nodes ----------------------------------------------------------------------


def cmd_campaign(env: InteractionEnv, case: TestCase) -> None:
    """Make a node start an election now."""
    env.act(_one_id(case), lambda raw: raw.campaign())


def cmd_propose(env: InteractionEnv, case: TestCase) -> None:
    """Propose a normal entry: `propose 1 foo`."""
    words = case.positional()
    if len(words) != 2:
        raise case.fail("usage: propose ID DATA")
    data = words[1].encode()
    env.act(int(words[0]), lambda raw: raw.propose(data))


def _parse_change(word: str) -> ConfChangeSingle:
    kind = _CHANGE_TYPES.get(word[:1])
    if kind is None or not word[1:].isdigit():
        raise ValueError(f"bad conf change {word!r}: expected v<id>, l<id> or r<id>")
    return ConfChangeSingle(kind, int(word[1:]))


def cmd_propose_conf_change(env: InteractionEnv, case: TestCase) -> None:
    """Propose a membership change: `propose-conf-change 1 v4 r2 transition=explicit`."""
    words = case.positional() + case.input.split()
    node_id = int(words[0])
    changes = tuple(_parse_change(w) for w in words[1:])
    transition = _TRANSITIONS[_value(case, "transition") or "auto"]
    cc = ConfChange(changes=changes, transition=transition)
    env.act(node_id, lambda raw: raw.propose_conf_change(cc))


def cmd_process_ready(env: InteractionEnv, case: TestCase) -> None:
    """Handle one Ready of each named node, in order."""
    for node_id in _ids(case):
        env.process_ready(node_id)


def cmd_deliver_msgs(env: InteractionEnv, case: TestCase) -> None:
    """Deliver queued messages to the named nodes (all by default), filtered by `type=`.

    `drop=(2,3)` removes the messages to those nodes from the queue instead.
    """
    type_arg = case.arg("type")
    types = set(type_arg.vals) if type_arg else None
    dropped = _int_list(case.arg("drop"))
    if dropped:
        for m in env.take_messages(set(dropped), types):
            env.out.line(f"dropped: {describe_message(m)}")
    ids = _ids(case)
    if ids or not dropped:
        env.deliver(env.take_messages(set(ids) if ids else None, types))


def cmd_stabilize(env: InteractionEnv, case: TestCase) -> None:
    """Process Readies and deliver messages among the named nodes (all) until quiet."""
    env.stabilize(_ids(case) or env.ids())


def _tick_n(env: InteractionEnv, node_id: int, n: int) -> None:
    for _ in range(n):
        env.act(node_id, lambda raw: raw.tick())


def cmd_tick(env: InteractionEnv, case: TestCase) -> None:
    """Tick a node N times (once by default): `tick 1 5`."""
    words = [int(w) for w in case.positional()]
    _tick_n(env, words[0], words[1] if len(words) > 1 else 1)


def cmd_tick_heartbeat(env: InteractionEnv, case: TestCase) -> None:
    """Tick each named node `heartbeat_tick` times."""
    for node_id in _ids(case):
        _tick_n(env, node_id, env.node(node_id).config.heartbeat_tick)


def cmd_tick_election(env: InteractionEnv, case: TestCase) -> None:
    """Tick each named node `election_tick` times."""
    for node_id in _ids(case):
        _tick_n(env, node_id, env.node(node_id).config.election_tick)


def cmd_read_index(env: InteractionEnv, case: TestCase) -> None:
    """Ask a node for a linearizable read: `read-index 1 ctx`."""
    words = case.positional()
    ctx = words[1].encode()
    env.act(int(words[0]), lambda raw: raw.read_index(ctx))


def cmd_transfer_leadership(env: InteractionEnv, case: TestCase) -> None:
    """`transfer-leadership from=1 to=2`."""
    to = _int(case, "to", 0)
    env.act(_int(case, "from", 0), lambda raw: raw.transfer_leader(to))


def cmd_report_unreachable(env: InteractionEnv, case: TestCase) -> None:
    """`report-unreachable 1 2`: node 1's transport could not reach node 2."""
    node_id, peer = _ids(case)
    env.act(node_id, lambda raw: raw.report_unreachable(peer))


def cmd_report_snapshot(env: InteractionEnv, case: TestCase) -> None:
    """`report-snapshot 1 2 ok=false`: the snapshot sent from 1 to 2 arrived (or not)."""
    node_id, peer = _ids(case)
    ok = _bool(case, "ok", True)
    env.act(node_id, lambda raw: raw.report_snapshot(peer, ok))


def cmd_forget_leader(env: InteractionEnv, case: TestCase) -> None:
    """Make a follower forget its leader (only if the core offers it)."""
    node_id = _one_id(case)
    forget = getattr(env.node(node_id).raw, "forget_leader", None)
    if forget is None:
        raise case.fail("RawNode has no forget_leader")
    env.act(node_id, lambda raw: forget())


def cmd_restart(env: InteractionEnv, case: TestCase) -> None:
    """Crash a node (its queued messages are lost) and start it from its storage."""
    for node_id in _ids(case):
        env.restart(node_id)
        r = env.node(node_id).raw.raft
        env.out.log(
            f"{node_id} restarted: {describe_hard_state(env.node(node_id).storage.hard_state)} "
            f"role={r.role.value}"
        )


# -- the network and storage ------------------------------------------------------------


def cmd_isolate(env: InteractionEnv, case: TestCase) -> None:
    """Cut every link of the named nodes (messages are dropped when delivered)."""
    env.isolated.update(_ids(case))


def cmd_heal(env: InteractionEnv, case: TestCase) -> None:
    """Restore every link."""
    env.isolated.clear()


def cmd_compact(env: InteractionEnv, case: TestCase) -> None:
    """`compact 1 5`: snapshot node 1's state machine at index 5 and drop the log up to it."""
    node_id, index = _ids(case)
    snap = env.compact(node_id, index)
    env.out.line(f"snapshot {describe_snapshot(snap)}")


def cmd_log_level(env: InteractionEnv, case: TestCase) -> None:
    """`log-level info` shows everything, `none` hides the INFO lines, `silent` all but errors.

    `silent` keeps the set-up steps of a story short; a comment should say what they did.
    """
    (level,) = case.positional()
    if level not in ("info", "none", "silent"):
        raise case.fail("level must be info, none or silent")
    env.out.verbose = level == "info"
    env.out.silent = level == "silent"


# -- inspection -------------------------------------------------------------------------


def cmd_raft_log(env: InteractionEnv, case: TestCase) -> None:
    """The entries a node has persisted."""
    storage = env.node(_one_id(case)).storage
    first, last = storage.first_index(), storage.last_index()
    if last < first:
        env.out.line(f"log is empty: first index={first}, last index={last}")
        return
    for e in storage.entries(first, last + 1):
        env.out.line(describe_entry(e))


def _role_label(env: InteractionEnv, node_id: int) -> str:
    tracker = env.node(node_id).raw.raft.prs
    if tracker.is_voter(node_id):
        return "(Voter)"
    if node_id in tracker.config.learners:
        return "(Learner)"
    return "(Non-Voter)"


def cmd_raft_state(env: InteractionEnv, case: TestCase) -> None:
    """Every node's role, term, leader and commit index."""
    for node_id in env.ids():
        r = env.node(node_id).raw.raft
        env.out.line(
            f"{node_id}: {r.role.value} {_role_label(env, node_id)} Term:{r.term} "
            f"Lead:{r.lead} Commit:{r.raft_log.committed}"
        )


def cmd_status(env: InteractionEnv, case: TestCase) -> None:
    """A leader's view of its followers (empty for a non-leader)."""
    raft = env.node(_one_id(case)).raw.raft
    if raft.role is not StateRole.LEADER:
        env.out.line(f"not leader ({raft.role.value})")
        return
    for peer in raft.prs.ids():
        env.out.line(describe_progress(peer, raft.prs.progress[peer]))


def cmd_applied(env: InteractionEnv, case: TestCase) -> None:
    """A node's state machine: the applied normal entries."""
    node = env.node(_one_id(case))
    items = " ".join(f"{i}:{quote_bytes(d)}" for i, d in node.applied)
    env.out.line(f"applied={node.applied_index} [{items}]")


def cmd_lease(env: InteractionEnv, case: TestCase) -> None:
    """A node's tick count and whether its leader lease is valid now."""
    raft = env.node(_one_id(case)).raw.raft
    valid = "valid" if raft.lease_valid() else "not valid"
    env.out.line(f"tick:{raft.tick_count} lease {valid}")


def cmd_messages(env: InteractionEnv, case: TestCase) -> None:
    """The messages in flight, in queue order."""
    for m in env.queue:
        env.out.line(describe_message(m))


def cmd_read_states(env: InteractionEnv, case: TestCase) -> None:
    """The read states a node holds that were not yet handed out."""
    states = env.node(_one_id(case)).raw.raft.read_states
    for rs in states:
        env.out.line(describe_read_state(rs))
    if not states:
        env.out.line("no read states")


COMMANDS: dict[str, Command] = {
    "add-nodes": cmd_add_nodes,
    "campaign": cmd_campaign,
    "propose": cmd_propose,
    "propose-conf-change": cmd_propose_conf_change,
    "process-ready": cmd_process_ready,
    "deliver-msgs": cmd_deliver_msgs,
    "stabilize": cmd_stabilize,
    "tick": cmd_tick,
    "tick-heartbeat": cmd_tick_heartbeat,
    "tick-election": cmd_tick_election,
    "read-index": cmd_read_index,
    "transfer-leadership": cmd_transfer_leadership,
    "report-unreachable": cmd_report_unreachable,
    "report-snapshot": cmd_report_snapshot,
    "forget-leader": cmd_forget_leader,
    "restart": cmd_restart,
    "isolate": cmd_isolate,
    "heal": cmd_heal,
    "compact": cmd_compact,
    "log-level": cmd_log_level,
    "raft-log": cmd_raft_log,
    "raft-state": cmd_raft_state,
    "status": cmd_status,
    "applied": cmd_applied,
    "lease": cmd_lease,
    "messages": cmd_messages,
    "read-states": cmd_read_states,
}
