"""Transaction workloads for simulated clients on the Redis machine: list-append and bank.

Theory of operation. A transaction is proposed as the one internal entry a real node's
EXEC makes (`cairn.exec`, `cairn.store.transaction.encode_transaction` with no watched
keys) when its keys are in one region, so the simulator replicates exactly what Cairn
replicates for MULTI/EXEC; its reply is the array of the commands' replies. The keys of a
run carry no hash tag: they hash to slots spread over the founding regions (and the
regions split and merge under them), so most transactions name keys in several regions
and the client runs them through the real cross-region coordinator
(`cairn.sim.txn_client`; the reply is the same EXEC array). Every command that meets a
lock (`-LOCKED`) resolves it and runs again.

List-append (`AppendLogic`). Each client sends transactions of one to four micro-operations on
`KEYS` list keys: RPUSH of a
value unique in the run (client index times a million plus a counter), or LRANGE of the
whole list; a transaction of a single read is a plain LRANGE, served by the region
leader as a linearizable read (the path that must not read through a lock). The history
records ``f == "txn"`` with the micro-operations as
`cairn.check.elle` reads them, and after the run every list is read from the leader's
applied state; `check_append` runs Elle's checker (strict serializability: real-time
edges on virtual time) and reports in the simulator's `WorkloadVerdict`.

Bank (`BankLogic`). `ACCOUNTS` accounts open with `OPENING` each: client 0 first runs
MSETNX of all opening balances (unrecorded, until it answers; a retry of an applied one
sets nothing), and every other client reads the first account until it exists (the
MSETNX sets all or none), so the clients do not start with four MSETNXs over the same
keys in several regions, which conflict with each other until their deadlines. Then a
client either transfers a random amount between two accounts or reads every balance (GET
each, one transaction). A third of the transfers between two accounts of one region (as
the client routes them) are one EVAL of `TRANSFER_SCRIPT` (it moves the money only if the
source can pay, else answers 0: FAIL; a script cannot cross regions); the others are
DECRBY and INCRBY in one transaction, which without WATCH cannot look at the balance
first, so overdrafts are allowed here (the chaos bank, which WATCHes, forbids them).
`check_bank` then holds every read and the final balances to the conserved total and
explains the final balances by the transfers.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cairn.check.bank import check_bank
from cairn.check.elle import check_list_append
from cairn.check.history import Op, OpType
from cairn.resp.reply import Array, Bulk, ErrorReply, Integer, Reply
from cairn.sim.workloads import ClientLogic, Command, WorkloadVerdict
from cairn.store.machine import StoreMachine
from cairn.store.transaction import TXN_COMMAND, encode_transaction

TRANSFER_SCRIPT = """
local have = tonumber(redis.call('GET', KEYS[1]))
local amount = tonumber(ARGV[1])
if have < amount then return 0 end
redis.call('DECRBY', KEYS[1], amount)
redis.call('INCRBY', KEYS[2], amount)
return 1
"""
"""A bank transfer as one script (KEYS: from, to; ARGV: amount), atomic without WATCH since
a script is one Raft entry; the chaos bank runs it too. 1: moved, 0: refused."""

KEYS = 4
"""List keys per run: few, so transactions conflict often."""
MAX_OPS = 4


def keys_of(prefix: str) -> list[str]:
    """The run's list keys named after `prefix` (e.g. "la" -> "la:0" ...; no hash tag,
    so they lie in different regions)."""
    return [f"{prefix}:{i}" for i in range(KEYS)]


@dataclass(frozen=True, slots=True)
class TxnCommand(Command):
    """A transaction: `payload` is the encoded `cairn.exec` argument (bytes, which the
    string arguments of `Command` cannot carry); `commands` the same commands as argv
    lists, for the cross-region coordinator."""

    payload: bytes = b""
    commands: tuple[tuple[bytes, ...], ...] = ()

    def argv(self) -> list[bytes]:
        """The one argument of `cairn.exec`."""
        return [self.payload]


class AppendLogic(ClientLogic):
    """One client of the list-append workload; `key` is the prefix of the run's keys."""

    plain_reads = 0.0
    """The share of operations that are a plain LRANGE of one key (besides transactions
    of a single read, which are plain reads too)."""

    def choose(self, rng: random.Random) -> Command:
        if self.plain_reads and rng.random() < self.plain_reads:
            key = rng.choice(keys_of(self.key))
            return Command("txn", self.key, [["r", key, None]], "lrange", (key, "0", "-1"))
        ops: list[list[object]] = []
        commands: list[list[bytes]] = []
        for _ in range(rng.randint(1, MAX_OPS)):
            key = rng.choice(keys_of(self.key))
            if rng.random() < 0.5:
                self.sent += 1
                value = self.index * 1_000_000 + self.sent
                ops.append(["append", key, value])
                commands.append([b"RPUSH", key.encode(), str(value).encode()])
            else:
                ops.append(["r", key, None])
                commands.append([b"LRANGE", key.encode(), b"0", b"-1"])
        if len(ops) == 1 and ops[0][0] == "r":
            return Command("txn", self.key, ops, "lrange", (str(ops[0][1]), "0", "-1"))
        return _txn("txn", self.key, ops, commands)

    def _value(self, cmd: Command, reply: Reply) -> object:
        assert isinstance(reply, Array) and isinstance(cmd.value, list)
        if cmd.name == "lrange":  # a plain read
            return [["r", cmd.value[0][1], _ints(reply)]]
        done: list[list[object]] = []
        for (f, k, v), item in zip(cmd.value, reply.items, strict=True):
            if f == "append":
                assert isinstance(item, Integer), item
                done.append([f, k, v])
            else:
                done.append([f, k, _ints(item)])
        return done


def _ints(reply: Reply) -> list[int]:
    assert isinstance(reply, Array), reply
    out = []
    for item in reply.items:
        assert isinstance(item, Bulk), item
        out.append(int(item.value))
    return out


def final_lists(
    machine_of: Callable[[str], StoreMachine | None], tag: str, now_ms: int
) -> dict[str, list[int]] | None:
    """Every list of the run, each read (LRANGE) from the applied state of the machine
    holding it (None: some list could not be read)."""
    lists: dict[str, list[int]] = {}
    for key in keys_of(tag):
        machine = machine_of(key)
        if machine is None:
            return None
        reply = machine.execute_read("lrange", [key.encode(), b"0", b"-1"], now_ms)
        if isinstance(reply, ErrorReply):  # still locked: the run could not settle it
            return None
        lists[key] = _ints(reply)
    return lists


def check_append(history: Sequence[Op], final: object) -> WorkloadVerdict:
    """Elle's list-append check of `history` against the final lists (None: none read)."""
    lists = final if isinstance(final, dict) else None
    verdict = check_list_append(list(history), lists)
    texts = [str(a) for a in verdict.anomalies]
    failure = "; ".join(texts[:3]) if texts else None
    details = verdict.stats.describe()
    if lists is None:
        details += " (no final read: the leader had not applied all it committed)"
    return WorkloadVerdict(failure, details, len(texts), lists is not None)


# --- bank --------------------------------------------------------------------------------

ACCOUNTS = 5
OPENING = 100


def accounts_of(prefix: str) -> list[str]:
    """The run's account keys named after `prefix` (no hash tag)."""
    return [f"{prefix}:{i}" for i in range(ACCOUNTS)]


def opening_of(tag: str) -> dict[str, int]:
    """The opening balances."""
    return dict.fromkeys(accounts_of(tag), OPENING)


def _txn(f: str, prefix: str, value: object, commands: list[list[bytes]]) -> TxnCommand:
    payload = encode_transaction([], commands)
    argvs = tuple(tuple(c) for c in commands)
    return TxnCommand(f, prefix, value, TXN_COMMAND, (), payload, argvs)


class BankLogic(ClientLogic):
    """One client of the bank; `key` is the prefix of the accounts."""

    def setup(self) -> Command | None:
        if self.index != 0:
            first = accounts_of(self.key)[0]
            return Command("opened", self.key, None, "get", (first,))
        args = [x for a in accounts_of(self.key) for x in (a.encode(), str(OPENING).encode())]
        return _txn("open", self.key, None, [[b"MSETNX", *args]])

    def setup_done(self, reply: Reply) -> bool:
        """The opener is done once its MSETNX answered (1, or 0 for a retry of an applied
        one); a waiting client once the first account exists."""
        if self.index != 0:
            return isinstance(reply, Bulk)
        return isinstance(reply, Array) and isinstance(reply.items[0], Integer)

    def choose(self, rng: random.Random) -> Command:
        names = accounts_of(self.key)
        if rng.random() < 0.3:
            return _txn("read", self.key, None, [[b"GET", a.encode()] for a in names])
        src, dst = rng.sample(names, 2)
        amount = rng.randint(1, 30)
        if rng.random() < 1 / 3 and self.colocated([src, dst]):
            args = (TRANSFER_SCRIPT, "2", src, dst, str(amount))
            return Command("transfer", self.key, [src, dst, amount], "eval", args)
        commands = [
            [b"DECRBY", src.encode(), str(amount).encode()],
            [b"INCRBY", dst.encode(), str(amount).encode()],
        ]
        return _txn("transfer", self.key, [src, dst, amount], commands)

    def complete(self, cmd: Command, reply: Reply) -> tuple[OpType, object]:
        """A script transfer that answered 0 moved nothing (the source could not pay)."""
        if cmd.name == "eval" and reply == Integer(0):
            return OpType.FAIL, cmd.value
        return super().complete(cmd, reply)

    def _value(self, cmd: Command, reply: Reply) -> object:
        if cmd.f == "transfer":
            return cmd.value
        assert isinstance(reply, Array)
        balances: dict[str, int] = {}
        for name, item in zip(accounts_of(self.key), reply.items, strict=True):
            assert isinstance(item, Bulk), item
            balances[name] = int(item.value)
        return balances


def final_balances(
    machine_of: Callable[[str], StoreMachine | None], tag: str, now_ms: int
) -> dict[str, int] | None:
    """Every balance, each read from the applied state of the machine holding it (None:
    some could not be read, or no account was ever opened). A missing account reads as
    0 once another exists (the opening MSETNX sets all or none): the check then finds
    the money gone."""
    out: dict[str, int] = {}
    opened = False
    for name in accounts_of(tag):
        machine = machine_of(name)
        if machine is None:
            return None
        reply = machine.execute_read("get", [name.encode()], now_ms)
        if isinstance(reply, ErrorReply):  # still locked: the run could not settle it
            return None
        opened |= isinstance(reply, Bulk)
        out[name] = int(reply.value) if isinstance(reply, Bulk) else 0
    return out if opened else None


def check_bank_run(history: Sequence[Op], final: object) -> WorkloadVerdict:
    """The bank check of `history` against the final balances (None: none read); the
    accounts' prefix is the history's key."""
    tag = next((op.key for op in history), "bank")
    balances = final if isinstance(final, dict) else None
    verdict = check_bank(history, opening_of(tag), balances, allow_negative=True)
    texts = [str(a) for a in verdict.anomalies]
    failure = "; ".join(texts[:3]) if texts else None
    details = verdict.stats.describe()
    if balances is None:
        details += " (no final read: the leader had not applied all it committed)"
    return WorkloadVerdict(failure, details, len(texts), balances is not None)
