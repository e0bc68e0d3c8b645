"""Queue and stream workloads for simulated clients on the Redis machine (`cairn.store`).

Theory of operation. The default simulated client (`cairn.sim.region_client`) reads and
writes registers, checked for linearizability. These workloads give it other data types: each
client owns a `ClientLogic` that picks its next command (`Command`: the history's
function, key and value, and the Redis command proposed for it) and turns the machine's
reply into the history's completion. Every command here changes state (RPOP, XREADGROUP
and XAUTOCLAIM move entries), so all are proposed through Raft and their reply is the
reply of the apply. After the run `final_read` reads the leader's applied state the way a
real client would (LRANGE; XRANGE, XPENDING, XINFO GROUPS) and `check_workload` hands the
history to `cairn.check.queue` or `cairn.check.stream`.

- queue: even clients LPUSH unique values on the key, odd clients RPOP it.
- stream: even clients XADD `*` unique payloads; odd clients are the members of group
  `g` (created `XGROUP CREATE s g 0 MKSTREAM` before their first read, not recorded).
  A member reads new entries (XREADGROUP `>` COUNT 1-5), acknowledges one to three of
  the entries it holds (XACK), now and then claims entries idle for more than
  `CLAIM_IDLE_MS` (XAUTOCLAIM); after any operation of unknown outcome it re-reads its
  own pending entries (XREADGROUP `0`), as a consumer does after reconnecting.

Nothing here touches the runner, the event loop or the network. Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cairn.check.history import Op, OpType
from cairn.check.queue import check_queue
from cairn.check.stream import StreamFinal, check_stream
from cairn.resp.reply import Array, Bulk, ErrorReply, Integer, Map, NestedMap, Reply
from cairn.store.machine import StoreMachine

GROUP = "g"
CLAIM_IDLE_MS = 300
"""XAUTOCLAIM's min-idle-time: entries a member has held this long may be taken over."""


class Workload(enum.Enum):
    """What simulated clients do."""

    REGISTER = "register"
    """get/put/append/cas, checked for linearizability (`cairn.sim.region_client`)."""
    QUEUE = "queue"
    STREAM = "stream"
    APPEND = "append"
    """List-append transactions checked by Elle (`cairn.sim.txn_workloads`)."""
    BANK = "bank"
    """Transfers and reads of every balance in transactions (`cairn.sim.txn_workloads`)."""


@dataclass(frozen=True, slots=True)
class Command:
    """One operation: the history's `f`, `key` and invocation `value`, and the Redis
    command (`name`, `args`) proposed for it."""

    f: str
    key: str
    value: object
    name: str
    args: tuple[str, ...]

    def argv(self) -> list[bytes]:
        """The arguments as the machine takes them."""
        return [a.encode() for a in self.args]


def _text(reply: Reply) -> str:
    assert isinstance(reply, Bulk), reply
    return reply.value.decode()


def entries_of(reply: Reply) -> list[list[str]]:
    """`[[id, payload], ...]` from an array of stream entries (payload: field `p`)."""
    out: list[list[str]] = []
    if not isinstance(reply, Array):
        return out
    for entry in reply.items:
        assert isinstance(entry, Array) and isinstance(entry.items[1], Array)
        fields = [_text(f) for f in entry.items[1].items]
        out.append([_text(entry.items[0]), fields[fields.index("p") + 1]])
    return out


class ClientLogic:
    """One client's choices and its reading of replies (subclasses per workload)."""

    def __init__(self, index: int, key: str) -> None:
        self.index = index
        self.key = key
        self.sent = 0
        self.colocated: Callable[[Sequence[str]], bool] = _always
        """Whether keys lie in one region as the client routes them (set by the client:
        a script cannot cross regions)."""

    def choose(self, rng: random.Random) -> Command:
        """The next operation."""
        raise NotImplementedError

    def setup(self) -> Command | None:
        """A command to run (unrecorded, until it succeeds) before the first operation."""
        return None

    def setup_done(self, reply: Reply) -> bool:
        """Whether the setup command's reply means the client may start."""
        return True

    def complete(self, cmd: Command, reply: Reply) -> tuple[OpType, object]:
        """The completion an applied command's reply makes (an error changed nothing)."""
        if isinstance(reply, ErrorReply):
            return OpType.FAIL, None
        return OpType.OK, self._value(cmd, reply)

    def unknown(self, cmd: Command) -> None:
        """`cmd` ended with an unknown outcome."""

    def _value(self, cmd: Command, reply: Reply) -> object:
        raise NotImplementedError

    def _token(self) -> str:
        self.sent += 1
        return f"{self.index}-{self.sent}"


def _always(keys: Sequence[str]) -> bool:
    return True


class QueueLogic(ClientLogic):
    """LPUSH (even clients) or RPOP (odd clients) on the key."""

    def choose(self, rng: random.Random) -> Command:
        if self.index % 2 == 0:
            value = self._token()
            return Command("lpush", self.key, value, "lpush", (self.key, value))
        return Command("rpop", self.key, None, "rpop", (self.key,))

    def _value(self, cmd: Command, reply: Reply) -> object:
        if cmd.f == "lpush":
            return cmd.value
        return reply.value.decode() if isinstance(reply, Bulk) else None


class StreamLogic(ClientLogic):
    """XADD (even clients) or a member of group `g` (odd clients)."""

    def __init__(self, index: int, key: str) -> None:
        super().__init__(index, key)
        self.consumer = f"c{index}"
        self.holding: set[str] = set()
        self.recover = False

    def setup(self) -> Command | None:
        if self.index % 2 == 0:
            return None
        args = ("CREATE", self.key, GROUP, "0", "MKSTREAM")
        return Command("xgroup", self.key, None, "xgroup", args)

    def setup_done(self, reply: Reply) -> bool:
        return not isinstance(reply, ErrorReply) or reply.message.startswith("BUSYGROUP")

    def choose(self, rng: random.Random) -> Command:
        if self.index % 2 == 0:
            payload = self._token()
            return Command("xadd", self.key, payload, "xadd", (self.key, "*", "p", payload))
        if self.recover:
            return self._read("0", 100)
        roll = rng.random()
        if self.holding and roll < 0.45:
            ids = sorted(self.holding)[: rng.randint(1, 3)]
            return Command("xack", self.key, ids, "xack", (self.key, GROUP, *ids))
        if roll > 0.9:
            args = (self.key, GROUP, self.consumer, str(CLAIM_IDLE_MS), "0-0", "COUNT", "5")
            return Command("xautoclaim", self.key, [self.consumer], "xautoclaim", args)
        return self._read(">", rng.randint(1, 5))

    def _read(self, start: str, count: int) -> Command:
        args = ("GROUP", GROUP, self.consumer, "COUNT", str(count), "STREAMS", self.key, start)
        return Command("xreadgroup", self.key, [self.consumer, start], "xreadgroup", args)

    def unknown(self, cmd: Command) -> None:
        if cmd.f != "xadd":
            self.recover = True

    def _value(self, cmd: Command, reply: Reply) -> object:
        if cmd.f == "xadd":
            return _text(reply)
        if cmd.f == "xack":
            assert isinstance(reply, Integer)
            self.holding.difference_update(str(i) for i in cmd.args[2:])
            return reply.value
        if cmd.f == "xautoclaim":
            assert isinstance(reply, Array)
            got = entries_of(reply.items[1])
        else:
            got = _read_entries(reply)
            if cmd.args[-1] == "0":
                self.recover = False
        self.holding.update(i for i, _ in got)
        return got


def _read_entries(reply: Reply) -> list[list[str]]:
    """The entries of an XREADGROUP reply of one key (nil: none)."""
    if isinstance(reply, NestedMap | Map):
        return entries_of(reply.pairs[0][1]) if reply.pairs else []
    return []


def new_logic(workload: Workload, index: int, key: str) -> ClientLogic:
    """Client `index`'s logic for `workload` on `key`."""
    if workload is Workload.QUEUE:
        return QueueLogic(index, key)
    if workload is Workload.STREAM:
        return StreamLogic(index, key)
    if workload is Workload.APPEND:
        from cairn.sim.txn_workloads import AppendLogic

        return AppendLogic(index, key)
    if workload is Workload.BANK:
        from cairn.sim.txn_workloads import BankLogic

        return BankLogic(index, key)
    raise ValueError(f"{workload.value} clients are cairn.sim.region_client's own")


# --- the end of a run ----------------------------------------------------------------------


MachineOf = Callable[[str], StoreMachine | None]
"""The machine whose applied state holds a key at the end of a run (None: none can be
read, e.g. its region's leader has not applied all it committed)."""


def final_read(workload: Workload, machine_of: MachineOf, key: str, now_ms: int) -> object:
    """What the check compares with, each key read from the applied state of the machine
    holding it (None: some key could not be read)."""
    if workload is Workload.APPEND:
        from cairn.sim.txn_workloads import final_lists

        return final_lists(machine_of, key, now_ms)
    if workload is Workload.BANK:
        from cairn.sim.txn_workloads import final_balances

        return final_balances(machine_of, key, now_ms)
    machine = machine_of(key)
    if machine is None:
        return None
    if workload is Workload.QUEUE:
        reply = machine.execute_read("lrange", [key.encode(), b"0", b"-1"], now_ms)
        assert isinstance(reply, Array)
        return {key: [_text(item) for item in reply.items]}
    entries = entries_of(machine.execute_read("xrange", [key.encode(), b"-", b"+"], now_ms))
    pel = machine.execute_read("xpending", [key.encode(), b"g", b"-", b"+", b"1000000"], now_ms)
    pending = [(_text(p.items[0]), _text(p.items[1])) for p in _items(pel)]
    return {key: StreamFinal([(i, p) for i, p in entries], pending, _last_id(machine, key, now_ms))}


def _items(reply: Reply) -> Sequence[Array]:
    items = reply.items if isinstance(reply, Array) else ()
    return [i for i in items if isinstance(i, Array)]


def _last_id(machine: StoreMachine, key: str, now_ms: int) -> str | None:
    reply = machine.execute_read("xinfo", [b"GROUPS", key.encode()], now_ms)
    for group in reply.items if isinstance(reply, Array) else ():
        assert isinstance(group, Map)
        fields = {_text(k): v for k, v in group.pairs}
        if fields.get("name") == Bulk(GROUP.encode()):
            return _text(fields["last-delivered-id"])
    return None


@dataclass(frozen=True, slots=True)
class WorkloadVerdict:
    """A queue or stream check's result: the first anomalies in words (None: clean), and
    whether the leader's state could be read at the end (without it, losses and the final
    PEL are not checked)."""

    failure: str | None
    details: str
    anomalies: int
    final_read: bool


def check_workload(workload: Workload, history: Sequence[Op], final: object) -> WorkloadVerdict:
    """Check a queue or stream history against the final read (None: none was made)."""
    if workload is Workload.QUEUE:
        lists = final if isinstance(final, dict) else None
        q = check_queue(history, lists)
        return _verdict([a.text for a in q.anomalies], q.stats.describe(), q.drained)
    if workload is Workload.APPEND:
        from cairn.sim.txn_workloads import check_append

        return check_append(history, final)
    if workload is Workload.BANK:
        from cairn.sim.txn_workloads import check_bank_run

        return check_bank_run(history, final)
    streams = final if isinstance(final, dict) else None
    s = check_stream(history, streams)
    return _verdict([a.text for a in s.anomalies], s.stats.describe(), s.final_read)


def _verdict(texts: list[str], details: str, final_read: bool) -> WorkloadVerdict:
    failure = "; ".join(texts[:3]) if texts else None
    if not final_read:
        details += " (no final read: the leader had not applied all it committed)"
    return WorkloadVerdict(failure, details, len(texts), final_read)
