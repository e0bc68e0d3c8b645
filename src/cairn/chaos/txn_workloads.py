"""Transaction workloads for chaos runs: a bank and Elle's list-append.

Both run MULTI/EXEC (and WATCH) over one raw connection per worker, so every command of a
transaction surely goes down the same connection and each reply is read in order: no
client library retries, no pool. The outcome rules:

- EXEC answered with an array: committed (OK); with the null array: aborted because a
  watched key changed (FAIL: nothing applied);
- a failure before EXEC was sent (WATCH, the reads under WATCH, MULTI, queuing; or a
  connection that was never made): FAIL, since a transaction never executed applies nothing;
- EXEC answered ``-TRYAGAIN`` or ``-EXECABORT``: FAIL; any other error, a timeout or a
  dropped connection once EXEC was sent: unknown (INFO), and the worker continues as a new
  process.

The keys carry no hash tag, so with several regions they spread over them: a
transaction whose keys fall in one region is one Raft entry there, any other a
cross-region transaction (`cairn.txn`, docs/transactions.md). ``-TRYAGAIN`` from such a
transaction means it never committed (its locks met others' until its deadline), so it
is a FAIL like any TRYAGAIN.

- `BankWorkload`: `accounts` accounts opened with `opening` each (MSETNX, once). A third
  of the transfers are one EVAL of `TRANSFER_SCRIPT` (it checks the balance and moves the
  money, or answers 0: FAIL; ``-CROSSSLOT`` when the two accounts lie in different
  regions, as scripts run in one region: FAIL, nothing ran); the others WATCH both
  accounts, read them, give up (FAIL) when the source cannot pay, else move a random
  amount in MULTI/EXEC: with DECRBY/INCRBY, or with SET of the balances computed from
  the watched reads (which only WATCH keeps correct). An EVAL answered with an error other
  than TRYAGAIN or CROSSSLOT, or a lost connection once it was sent, is unknown. Readers
  GET every balance in one MULTI/EXEC. Checked by `cairn.check.bank`: every read sums to
  the total, no balance negative, final balances explained by the transfers.
  `transfer_commands` is the hook for other ways to move money in MULTI/EXEC (request ids
  for retries: `IDEMPOTENT <id> EXEC` is not used yet).
- `AppendWorkload`: transactions of 1-4 micro-operations (RPUSH of a unique integer,
  LRANGE of the whole list) on a few list keys, in one MULTI/EXEC; each key is retired
  after `appends_per_key` appends for a fresh one, so lists stay short. After a committed
  transaction that appended, a worker often (`plain_reads`) reads one of the keys it
  appended to (one outside its primary's region when it can) with a plain LRANGE outside MULTI
  (a one-read transaction in the history):
  read-your-writes through the plain read path, which must respect the locks of
  cross-region transactions whose secondaries are still committing. Checked by
  `cairn.check.elle` (cycles in the dependency graph, aborted and intermediate reads, lost
  appends against the final lists).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.connection import Connection
from redis.retry import Retry

from cairn.chaos.workload import CheckResult, Endpoint, Workload, _never_sent
from cairn.check.history import OpType
from cairn.sim.txn_workloads import TRANSFER_SCRIPT

Command = tuple[object, ...]
_Connection: Any = Connection
"""redis-py's raw connection (its methods carry no type hints)."""


class AbortedError(Exception):
    """EXEC answered the null array, EXECABORT or TRYAGAIN: nothing was applied."""


class UnsentError(Exception):
    """The transaction failed before EXEC was sent: nothing was applied."""


class Session:
    """One raw connection to one node; transactions are pipelined on it."""

    def __init__(self, endpoint: Endpoint, password: str | None, timeout: float) -> None:
        host, port = endpoint
        self.conn: Any = _Connection(
            host=host,
            port=port,
            password=password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),
        )

    def call(self, *args: object) -> object:
        """One command, its reply (raises `redis.ResponseError` on an error reply)."""
        self.conn.send_command(*args)
        return self.conn.read_response()

    def exec(self, commands: Sequence[Command], request_id: str | None = None) -> list[object]:
        """MULTI, `commands`, EXEC in one write (``IDEMPOTENT <request_id> EXEC`` when
        given); the replies of EXEC's array.

        Raises `AbortedError` when nothing was applied for sure, `UnsentError` when the connection
        failed before the bytes left, and anything else when the outcome is unknown."""
        try:
            self.conn.connect()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise UnsentError(str(exc)) from exc
        last: Command = ("EXEC",) if request_id is None else ("IDEMPOTENT", request_id, "EXEC")
        batch = [("MULTI",), *commands, last]
        self.conn.send_packed_command(self.conn.pack_commands(batch))
        queuing: redis.ResponseError | None = None
        for _ in range(len(batch) - 1):  # +OK and +QUEUED (or a queuing error)
            try:
                self.conn.read_response()
            except redis.ResponseError as exc:
                queuing = queuing or exc
        try:
            reply = self.conn.read_response()
        except redis.ResponseError as exc:
            if queuing is not None or isinstance(exc, _NEVER_RAN):
                raise AbortedError(str(exc)) from exc
            raise
        if reply is None:
            raise AbortedError("a watched key changed")
        if not isinstance(reply, list):
            raise redis.ResponseError(f"EXEC answered {reply!r}")
        return reply

    def close(self) -> None:
        """Drop the connection."""
        self.conn.disconnect()


@dataclass
class TxnWorkload(Workload):
    """A workload whose operations are transactions on a `Session` per worker."""

    def _run(self, worker: int, rng: random.Random) -> None:
        if self.thread_init is not None:
            self.thread_init()
        process = self.history.new_process()
        session = self._session(rng)
        while not self._stop.is_set():
            outcome = self._transaction(session, process, worker, rng)
            if outcome is OpType.INFO:
                process = self.history.new_process()
            if outcome is not OpType.OK:
                session.close()
                session = self._session(rng)
                time.sleep(0.01)  # no leader or a conflict: do not spin
        session.close()

    def _session(self, rng: random.Random) -> Session:
        return Session(rng.choice(list(self.endpoints)), self.password, self.timeout)

    def _transaction(
        self, session: Session, process: int, worker: int, rng: random.Random
    ) -> OpType:
        raise NotImplementedError

    def _outcome(self, exc: BaseException, exec_sent: bool) -> OpType:
        """FAIL when the transaction surely did not apply, else INFO."""
        if isinstance(exc, AbortedError | UnsentError) or not exec_sent:
            return OpType.FAIL
        if isinstance(exc, redis.ConnectionError | redis.TimeoutError | OSError):
            return OpType.FAIL if _never_sent(exc) else OpType.INFO
        return OpType.INFO


_FAILURES = (AbortedError, UnsentError, redis.RedisError, OSError)
_NEVER_RAN = redis.exceptions.ExecAbortError | redis.exceptions.TryAgainError
"""EXECABORT and TRYAGAIN: nothing was applied (redis-py raises them by their code, and
drops the code from the message)."""
_APPEND_LABEL = "la"
"""The key the history records for every list-append transaction."""


@dataclass
class BankWorkload(TxnWorkload):
    """Transfers between `accounts` accounts and reads of every balance; see the module
    docstring."""

    accounts: int = 8
    opening: int = 100
    max_amount: int = 20
    read_ratio: float = 0.3
    prefix: str = "bank:acct"
    scripts: bool = True
    """A third of the transfers run as one EVAL of `TRANSFER_SCRIPT` instead."""
    retries: int = 3
    """How many times a transfer whose outcome is unknown is sent again with its
    ``IDEMPOTENT`` request id."""
    retry_pause: float = 0.2
    """Seconds before the first retry (the n-th waits n times as long)."""
    _ready: threading.Event = field(default_factory=threading.Event)
    _retried: list[int] = field(default_factory=lambda: [0, 0])
    """Transfers sent again with their request id, and of them those then acknowledged."""
    _retried_lock: threading.Lock = field(default_factory=threading.Lock)

    name = "bank"

    @property
    def names(self) -> list[str]:
        """The account keys."""
        return [f"{self.prefix}{i}" for i in range(self.accounts)]

    @property
    def probe_key(self) -> str:
        """The key a retry watches and writes when it only asks for a first outcome."""
        return f"{self.prefix}-probe"

    @property
    def balances(self) -> dict[str, int]:
        """The opening balances."""
        return {a: self.opening for a in self.names}

    def _run(self, worker: int, rng: random.Random) -> None:
        if worker == 0:
            if self.thread_init is not None:
                self.thread_init()
            self._open_accounts(rng)
        else:
            while not self._ready.wait(0.2) and not self._stop.is_set():
                pass
        super()._run(worker, rng)

    def _open_accounts(self, rng: random.Random) -> None:
        """MSETNX every opening balance (all or nothing, so a retry is harmless)."""
        args = [x for a, v in self.balances.items() for x in (a, v)]
        while not self._stop.is_set():
            session = self._session(rng)
            try:
                session.call("MSETNX", *args)
                self._ready.set()
                return
            except _FAILURES:
                time.sleep(0.2)
            finally:
                session.close()

    def _transaction(
        self, session: Session, process: int, worker: int, rng: random.Random
    ) -> OpType:
        if rng.random() < self.read_ratio:
            return self._read(session, process)
        src, dst = rng.sample(self.names, 2)
        amount = rng.randint(1, self.max_amount)
        roll = rng.random()
        if self.scripts and roll < 1 / 3:
            return self._transfer_by_script(session, process, src, dst, amount)
        return self._transfer(session, process, src, dst, amount, roll < 2 / 3)

    def _read(self, session: Session, process: int) -> OpType:
        h = self.history
        h.record(process, OpType.INVOKE, "read", self.prefix, None)
        try:
            replies = session.exec([("GET", a) for a in self.names])
            values = {a: int(str(v)) for a, v in zip(self.names, replies, strict=True)}
        except (*_FAILURES, ValueError):
            h.record(process, OpType.FAIL, "read", self.prefix, None)
            return OpType.FAIL
        h.record(process, OpType.OK, "read", self.prefix, values)
        return OpType.OK

    def transfer_commands(
        self, src: str, dst: str, amount: int, seen: tuple[int, int], absolute: bool
    ) -> list[Command]:
        """The commands that move `amount` from `src` to `dst`, whose balances were `seen`
        under WATCH: DECRBY/INCRBY, or SET of the new balances when `absolute`.

        The hook for other ways to transfer (a script, a request id for retries)."""
        if absolute:
            return [("SET", src, seen[0] - amount), ("SET", dst, seen[1] + amount)]
        return [("DECRBY", src, amount), ("INCRBY", dst, amount)]

    def _transfer(
        self, session: Session, process: int, src: str, dst: str, amount: int, absolute: bool
    ) -> OpType:
        h = self.history
        value = [src, dst, amount]
        h.record(process, OpType.INVOKE, "transfer", self.prefix, value)
        exec_sent = False
        request_id = uuid.uuid4().hex
        try:
            session.call("WATCH", src, dst)
            seen = session.call("MGET", src, dst)
            assert isinstance(seen, list)
            balances = (int(str(seen[0])), int(str(seen[1])))
            if balances[0] < amount:
                session.call("UNWATCH")
                h.record(process, OpType.FAIL, "transfer", self.prefix, value)
                return OpType.OK  # the rules said no: not a failure of the cluster
            commands = self.transfer_commands(src, dst, amount, balances, absolute)
            exec_sent = True
            session.exec(commands, request_id)
        except (*_FAILURES, ValueError) as exc:
            if isinstance(exc, UnsentError):
                exec_sent = False
            kind = self._outcome(exc, exec_sent)
            if exec_sent and _worth_retrying(exc):
                retry = _Retry(src, dst, amount, balances, commands, request_id, absolute)
                kind = self._retry_transfer(retry, kind)
                self._count_retry(kind)
            h.record(process, kind, "transfer", self.prefix, value)
            return kind
        h.record(process, OpType.OK, "transfer", self.prefix, value)
        return OpType.OK

    def _count_retry(self, kind: OpType) -> None:
        with self._retried_lock:
            self._retried[0] += 1
            self._retried[1] += kind is OpType.OK

    def _retry_transfer(self, retry: _Retry, first: OpType) -> OpType:
        """Send an unknown (or TRYAGAIN) transfer again with its request id, at most
        `retries` times, each on a fresh connection to a random node: OK once a run
        answers EXEC's array (the transfer applied exactly once: by this run or by an
        earlier one, whose recorded reply this is); else INFO if any run's outcome is
        unknown, FAIL if every run surely applied nothing.

        Each run WATCHes both accounts again and reads them. Sending the same commands
        could apply a transfer that never applied before, so that is done only when the
        balances still allow it (the source can pay; for SET of computed balances, both
        still as first seen). Otherwise the run also watches and writes a probe key of
        its own, so its EXEC surely aborts unless the request id is recorded: it only
        asks for the first outcome."""
        unknown = first is OpType.INFO
        for attempt in range(self.retries):
            if self._stop.is_set():
                break
            time.sleep(self.retry_pause * (attempt + 1))
            session = Session(random.choice(list(self.endpoints)), self.password, self.timeout)
            sent = False
            try:
                session.call("WATCH", retry.src, retry.dst)
                now = session.call("MGET", retry.src, retry.dst)
                assert isinstance(now, list)
                if not retry.may_apply((int(str(now[0])), int(str(now[1])))):
                    session.call("WATCH", self.probe_key)
                    session.call("SET", self.probe_key, retry.request_id)  # dirties the WATCH
                sent = True
                session.exec(retry.commands, retry.request_id)
                return OpType.OK
            except (*_FAILURES, ValueError, AssertionError) as exc:
                if sent and not isinstance(exc, AbortedError | UnsentError):
                    unknown = True  # this run's own outcome is unknown too
            finally:
                session.close()
        return OpType.INFO if unknown else OpType.FAIL

    def _transfer_by_script(
        self, session: Session, process: int, src: str, dst: str, amount: int
    ) -> OpType:
        """``IDEMPOTENT <id> EVAL`` of `TRANSFER_SCRIPT`: 1 moved the money, 0 refused
        (the source cannot pay). A run whose outcome is unknown, or that answered
        TRYAGAIN, is sent again with the same id (the script checks the balance itself,
        so any run is safe; a retry answers the first run's reply if it applied)."""
        h = self.history
        value = [src, dst, amount]
        h.record(process, OpType.INVOKE, "transfer", self.prefix, value)
        argv = ("IDEMPOTENT", uuid.uuid4().hex, "EVAL", TRANSFER_SCRIPT, 2, src, dst, amount)
        unknown, answer, retried = False, "", False
        for attempt in range(1 + self.retries):
            if attempt:
                if self._stop.is_set():
                    break
                time.sleep(self.retry_pause * attempt)
                session = Session(random.choice(list(self.endpoints)), self.password, self.timeout)
            answer = _script_run(session, argv)
            if attempt:
                session.close()
                retried = True
            unknown = unknown or answer == _UNKNOWN
            if answer in (_MOVED, _REFUSED, _CROSSSLOT):
                break
        if retried:
            self._count_retry(OpType.OK if answer in (_MOVED, _REFUSED) else OpType.INFO)
        if answer in (_MOVED, _REFUSED):
            h.record(
                process,
                OpType.OK if answer == _MOVED else OpType.FAIL,
                "transfer",
                self.prefix,
                value,
            )
            return OpType.OK
        kind = OpType.INFO if unknown else OpType.FAIL
        h.record(process, kind, "transfer", self.prefix, value)
        return kind

    def final_read(self, client: redis.Redis) -> object:
        """Every balance, read in one MULTI/EXEC."""
        pipe = client.pipeline(transaction=True)
        for a in self.names:
            pipe.get(a)
        return {a: int(str(v)) for a, v in zip(self.names, pipe.execute(), strict=True)}

    def check(self, final: object) -> CheckResult:
        """The rules of `cairn.check.bank` on the history and the final balances."""
        from cairn.check.bank import check_bank

        finals = final if isinstance(final, dict) else None
        verdict = check_bank(self.history.snapshot(), self.balances, finals)
        anomalies = [str(a) for a in verdict.anomalies]
        if finals is None:
            anomalies.append("the final read of the balances failed")
        details = verdict.stats.describe()
        details += (
            f"; {self._retried[0]} transfers sent again with their request id "
            f"({self._retried[1]} then acknowledged)"
        )
        if len(anomalies) > 20:
            details += f"; {len(anomalies)} anomalies in all (20 shown)"
        return CheckResult(self.name, not anomalies, tuple(anomalies[:20]), 0, details)


@dataclass
class AppendWorkload(TxnWorkload):
    """List-append transactions checked by Elle; see the module docstring."""

    active_keys: int = 5
    appends_per_key: int = 150
    max_ops: int = 4
    prefix: str = "la:k"
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _values: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _active: list[int] = field(default_factory=list)
    _written: dict[int, int] = field(default_factory=dict)
    _next_key: int = 0
    plain_reads: float = 0.5
    """The chance of a plain LRANGE of a key just appended to, after a committed append."""
    _appended: dict[int, list[str]] = field(default_factory=dict)
    """Per worker: the keys its last committed transaction appended to (those in another
    region than its primary's when there are any)."""
    region_of: Callable[[str], object] | None = None
    """The region of a key, as far as the runner knows (None: every key its own)."""

    name = "append"

    def _pick(self, rng: random.Random, append: bool) -> tuple[str, int | None]:
        """A live key (and a fresh value when appending); retires full keys."""
        with self._lock:
            while len(self._active) < self.active_keys:
                self._active.append(self._next_key)
                self._written[self._next_key] = 0
                self._next_key += 1
            key = rng.choice(self._active)
            if not append:
                return f"{self.prefix}{key}", None
            self._written[key] += 1
            if self._written[key] >= self.appends_per_key:
                self._active.remove(key)
            return f"{self.prefix}{key}", next(self._values)

    def _plan(self, rng: random.Random) -> list[list[object]]:
        ops: list[list[object]] = []
        for _ in range(rng.randint(1, self.max_ops)):
            append = rng.random() < 0.5
            key, value = self._pick(rng, append)
            ops.append(["append", key, value] if append else ["r", key, None])
        return ops

    def _transaction(
        self, session: Session, process: int, worker: int, rng: random.Random
    ) -> OpType:
        h = self.history
        appended = self._appended.pop(worker, [])
        if appended and rng.random() < self.plain_reads:
            return self._plain_read(session, process, rng.choice(appended))
        ops = self._plan(rng)
        h.record(process, OpType.INVOKE, "txn", _APPEND_LABEL, ops)
        commands: list[Command] = [
            ("RPUSH", k, v) if f == "append" else ("LRANGE", k, 0, -1) for f, k, v in ops
        ]
        try:
            replies = session.exec(commands)
            done = [
                [f, k, v] if f == "append" else [f, k, [int(str(x)) for x in _as_list(reply)]]
                for (f, k, v), reply in zip(ops, replies, strict=True)
            ]
        except (*_FAILURES, ValueError) as exc:
            kind = self._outcome(exc, True)
            h.record(process, kind, "txn", _APPEND_LABEL, ops)
            return kind
        h.record(process, OpType.OK, "txn", _APPEND_LABEL, done)
        primary = str(ops[0][1])  # a transaction's first key is its primary (`cairn.txn`)
        appended = [str(k) for f, k, _ in ops if f == "append"]
        region_of = self.region_of or (lambda key: key)
        secondary = [k for k in appended if region_of(k) != region_of(primary)]
        self._appended[worker] = secondary or appended
        return OpType.OK

    def _plain_read(self, session: Session, process: int, key: str) -> OpType:
        """LRANGE of `key` outside MULTI, recorded as a one-read transaction (a read that
        failed changed nothing: FAIL)."""
        h = self.history
        ops: list[list[object]] = [["r", key, None]]
        h.record(process, OpType.INVOKE, "txn", _APPEND_LABEL, ops)
        try:
            values = [int(str(x)) for x in _as_list(session.call("LRANGE", key, 0, -1))]
        except (*_FAILURES, ValueError):
            h.record(process, OpType.FAIL, "txn", _APPEND_LABEL, ops)
            return OpType.FAIL
        h.record(process, OpType.OK, "txn", _APPEND_LABEL, [["r", key, values]])
        return OpType.OK

    def final_read(self, client: redis.Redis) -> object:
        """Every list ever written, whole."""
        with self._lock:
            keys = [f"{self.prefix}{k}" for k in range(self._next_key)]
        return {k: [int(x) for x in client.lrange(k, 0, -1)] for k in keys}

    def check(self, final: object) -> CheckResult:
        """Elle's list-append check (`cairn.check.elle`), strict serializability; the
        first anomalies listed are up to three of each class."""
        from cairn.check.elle import check_list_append

        finals = final if isinstance(final, dict) else None
        verdict = check_list_append(self.history.snapshot(), finals)
        by_name: dict[str, list[str]] = {}
        for a in verdict.anomalies:
            by_name.setdefault(a.name, []).append(str(a))
        anomalies = [text for texts in by_name.values() for text in texts[:3]]
        anomalies += [text for texts in by_name.values() for text in texts[3:]]
        if finals is None:
            anomalies.append("the final read of the lists failed: losses not checked")
        details = verdict.stats.describe()
        if len(anomalies) > 20:
            details += f"; {len(anomalies)} anomalies in all (20 shown)"
        return CheckResult(self.name, not anomalies, tuple(anomalies[:20]), verdict.lost, details)


def _as_list(reply: object) -> list[object]:
    if isinstance(reply, redis.ResponseError):
        raise reply
    if not isinstance(reply, list):
        raise ValueError(f"LRANGE answered {reply!r}")
    return reply


_MOVED, _REFUSED, _NOTHING, _CROSSSLOT, _UNKNOWN = "moved", "refused", "nothing", "xslot", "?"


def _script_run(session: Session, argv: Command) -> str:
    """One run of a tagged transfer script: `_MOVED` (it answered 1), `_REFUSED` (0),
    `_NOTHING` (surely not run: no connection, TRYAGAIN), `_CROSSSLOT` (the accounts lie
    in different regions: it never will), `_UNKNOWN` (sent, no answer)."""
    try:
        session.conn.connect()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return _NOTHING
    try:
        moved = session.call(*argv)
    except redis.exceptions.ClusterCrossSlotError:
        return _CROSSSLOT
    except redis.ResponseError as exc:  # refused before running: nothing applied
        return _NOTHING if isinstance(exc, _NEVER_RAN) else _UNKNOWN
    except (redis.RedisError, OSError):
        return _UNKNOWN
    return _MOVED if moved == 1 else _REFUSED


def _worth_retrying(exc: BaseException) -> bool:
    """Whether a transfer's EXEC that failed with `exc` is sent again with its request
    id: an unknown outcome (no reply, a timeout, -UNCERTAIN, any other error after EXEC
    was sent) or -TRYAGAIN; never a watched key that changed, EXECABORT or a failure
    before EXEC was sent (nothing applied, and the rules may have changed)."""
    if isinstance(exc, UnsentError):
        return False
    if isinstance(exc, AbortedError):
        return isinstance(exc.__cause__, redis.exceptions.TryAgainError)
    return True


@dataclass(frozen=True)
class _Retry:
    """What a retry of a MULTI/EXEC transfer sends again, and what it first saw."""

    src: str
    dst: str
    amount: int
    seen: tuple[int, int]
    commands: list[Command]
    request_id: str
    absolute: bool

    def may_apply(self, balances: tuple[int, int]) -> bool:
        """Whether running the transfer now is right even if it never applied before:
        the source can pay, and SET of computed balances still sees the same ones."""
        if self.absolute:
            return balances == self.seen
        return balances[0] >= self.amount
