"""The stream workload: producers XADD, a consumer group reads and acknowledges, against
real nodes; checked by `cairn.check.stream`.

Theory of operation. Each worker thread has one role, fixed by its number: on every key
(`keys`, in different slots, so a cluster of several regions serves them from several)
the first worker produces and the others are members of the consumer group `GROUP`
(worker `w` works on `keys[w % len(keys)]`; of the workers of a key, those numbered
`w // len(keys) % producer_every == 0` produce). A producer XADDs unique payloads
(`worker-n`, field `p`) with `*` ids. A member (consumer `c<w>`):

- reads new entries with XREADGROUP `>` (COUNT 1-5, BLOCK `block` seconds);
- acknowledges one to three of the entries it holds with XACK;
- one time in twelve claims entries idle longer than `claim_idle_ms` (XAUTOCLAIM), as a
  member does for a peer that went away;
- after any operation of unknown outcome or a broken connection, reads its own pending
  entries first (XREADGROUP `0`), as a consumer does after reconnecting: an unknown read
  may have delivered entries it never saw.

The group is created by each member before its first read (XGROUP CREATE key g 0
MKSTREAM; BUSYGROUP means another did it), unrecorded: an error there makes the read an
unknown operation. Producers rest for the last `rest` seconds of every `period`, so the
members wait in XREADGROUP BLOCK and a new XADD must wake them.

The outcome rules are the base `Workload`'s: every stream command changes state (a read
moves entries into the PEL), so an error or a timeout is unknown, `-TRYAGAIN` a failure.
After the run each key is read whole: XRANGE - +, XPENDING extended, XINFO GROUPS.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from cairn.chaos.workload import CheckResult, Workload
from cairn.check.history import OpType
from cairn.check.stream import StreamFinal, check_stream

GROUP = "g"


@dataclass
class _Member:
    """What one consumer holds: entries delivered and not yet acknowledged, and whether it
    must re-read its pending entries (after an unknown outcome)."""

    holding: set[str] = field(default_factory=set)
    recover: bool = False
    groups: set[str] = field(default_factory=set)


@dataclass
class StreamWorkload(Workload):
    """Producers XADD, group members XREADGROUP / XACK / XAUTOCLAIM; see the module."""

    keys: Sequence[str] = ("stream:a", "stream:b")
    producer_every: int = 3
    block: float = 0.5
    claim_idle_ms: int = 3000
    period: float = 5.0
    rest: float = 1.5
    _origin: float = field(default_factory=time.monotonic)
    _members: dict[str, _Member] = field(default_factory=dict)
    _members_lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)

    name = "stream"
    replies = frozenset({"xadd", "xreadgroup", "xautoclaim", "xack"})

    def _member(self, consumer: str) -> _Member:
        with self._members_lock:
            return self._members.setdefault(consumer, _Member())

    def _next_op(self, worker: int, n: int, rng: random.Random) -> tuple[str, str, object]:
        key = self.keys[worker % len(self.keys)]
        if worker // len(self.keys) % self.producer_every == 0:
            self._rest_if_due()
            return "xadd", key, f"{worker}-{n}"
        consumer = f"c{worker}"
        self._local.consumer = consumer
        member = self._member(consumer)
        if member.recover:
            return "xreadgroup", key, [consumer, "0", 1000]
        roll = rng.random()
        if member.holding and roll < 0.45:
            return "xack", key, sorted(member.holding)[: rng.randint(1, 3)]
        if roll > 11 / 12:
            return "xautoclaim", key, [consumer]
        return "xreadgroup", key, [consumer, ">", rng.randint(1, 5)]

    def _rest_if_due(self) -> None:
        into = (time.monotonic() - self._origin) % self.period
        if into >= self.period - self.rest and not self._stop.is_set():
            self._stop.wait(self.period - into)

    def _one(
        self, client: redis.Redis, process: int, f: str, key: str, value: object
    ) -> tuple[OpType, bool]:
        outcome, broken = super()._one(client, process, f, key, value)
        consumer = getattr(self._local, "consumer", None)
        if f != "xadd" and consumer is not None and (outcome is OpType.INFO or broken):
            self._member(consumer).recover = True
        return outcome, broken

    def _call(self, client: redis.Redis, f: str, key: str, value: object) -> object:
        if f == "xadd":
            return client.xadd(key, {"p": str(value)})
        assert isinstance(value, list)
        member = self._member(self._local.consumer)
        if f == "xack":
            count = client.xack(key, GROUP, *value)
            member.holding.difference_update(value)
            return count
        consumer = str(value[0])
        self._ensure_group(client, key, member)
        if f == "xautoclaim":
            reply = client.xautoclaim(key, GROUP, consumer, self.claim_idle_ms, "0-0", count=5)
            got = _entries(reply[1])
        else:
            got = self._read(client, key, consumer, str(value[1]), int(value[2]))
            member.recover = member.recover and value[1] != "0"
        member.holding.update(i for i, _ in got)
        return got

    def _read(
        self, client: redis.Redis, key: str, consumer: str, start: str, count: int
    ) -> list[list[str]]:
        block = int(self.block * 1000) if start == ">" else None
        reply: Any = client.xreadgroup(GROUP, consumer, {key: start}, count=count, block=block)
        if not reply:
            return []
        return _entries(reply[0][1])  # RESP2: [[key, entries]]

    def _ensure_group(self, client: redis.Redis, key: str, member: _Member) -> None:
        if key in member.groups:
            return
        try:
            client.xgroup_create(key, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        member.groups.add(key)

    def final_read(self, client: redis.Redis) -> object:
        """Each key whole: its entries, its group's PEL and last-delivered-id."""
        return {key: _final(client, key) for key in self.keys}

    def check(self, final: object) -> CheckResult:
        """The stream rules of `cairn.check.stream` on the history and the final read."""
        finals = final if isinstance(final, dict) else None
        verdict = check_stream(self.history.snapshot(), finals)
        anomalies = [a.text for a in verdict.anomalies]
        if finals is None:
            anomalies.append("the final read (XRANGE, XPENDING) failed: losses not checked")
        details = verdict.stats.describe()
        if len(anomalies) > 20:
            details += f"; {len(anomalies)} anomalies in all (20 shown)"
        return CheckResult(
            self.name, not anomalies, tuple(anomalies[:20]), verdict.stats.lost, details
        )


def _entries(raw: object) -> list[list[str]]:
    """`[[id, payload], ...]` from redis-py's `[(id, {field: value}), ...]`."""
    out: list[list[str]] = []
    for entry_id, fields in raw if isinstance(raw, list) else []:
        out.append([str(entry_id), str((fields or {}).get("p"))])
    return out


def _final(client: redis.Redis, key: str) -> StreamFinal:
    rows: Any = client.xrange(key, "-", "+")
    entries = [(str(i), str((f or {}).get("p"))) for i, f in rows]
    pending: list[tuple[str, str]] = []
    last: str | None = None
    if client.exists(key):
        groups = client.xinfo_groups(key)
        for group in groups:
            if group["name"] == GROUP:
                last = str(group["last-delivered-id"])
        if last is not None:
            rows = client.xpending_range(key, GROUP, "-", "+", 1_000_000)
            pending = [(str(r["message_id"]), str(r["consumer"])) for r in rows]
    return StreamFinal(entries, pending, last)
