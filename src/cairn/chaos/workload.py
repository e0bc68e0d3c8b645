"""Jepsen-style client workloads against real nodes, recording `cairn.check` histories.

A register workload: each worker thread is one process at a time, running get, put (SET)
and append (APPEND) on a few keys against a node it picks, and recording every invocation
and completion. The outcome rules follow what the node's replies promise:

- a reply: OK (for a get, with the value read);
- `-TRYAGAIN`: definitely not applied (FAIL);
- any other error, a timeout or a dropped connection: unknown (INFO) for a write, after
  which the worker continues as a new process (Jepsen's rule); a read that fails is
  simply FAIL (it changed nothing).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cairn.check.history import Op, OpType

Endpoint = tuple[str, int]


@dataclass
class History:
    """A thread-safe, append-only list of events with a monotonic clock."""

    ops: list[Op] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _next_process: int = 0

    def record(self, process: int, kind: OpType, f: str, key: str, value: object) -> None:
        """Append one event, timestamped now."""
        with self.lock:
            self.ops.append(Op(process, kind, f, key, value, time.monotonic_ns()))

    def new_process(self) -> int:
        """A process id never used before."""
        with self.lock:
            self._next_process += 1
            return self._next_process


@dataclass
class RegisterWorkload:
    """Concurrent get/put/append on `keys`, spread over `endpoints`."""

    endpoints: Sequence[Endpoint]
    keys: Sequence[str] = ("r0", "r1", "r2")
    workers: int = 6
    password: str | None = None
    timeout: float = 3.0
    seed: int = 0
    history: History = field(default_factory=History)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        """Start the worker threads."""
        for w in range(self.workers):
            rng = random.Random(self.seed * 1000 + w)
            t = threading.Thread(target=self._run, args=(w, rng), daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Ask the workers to finish their current operation and wait for them."""
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout * 3)

    def _client(self, rng: random.Random) -> redis.Redis:
        host, port = rng.choice(list(self.endpoints))
        return redis.Redis(
            host=host,
            port=port,
            password=self.password,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            decode_responses=True,
            # No silent retries: a re-sent APPEND could apply twice behind the history's back.
            retry=Retry(NoBackoff(), 0),
        )

    def _run(self, worker: int, rng: random.Random) -> None:
        process = self.history.new_process()
        client = self._client(rng)
        n = 0
        while not self._stop.is_set():
            n += 1
            key = rng.choice(list(self.keys))
            f = rng.choice(("get", "get", "put", "append"))
            value = None if f == "get" else f"{worker}-{n}"
            outcome = self._one(client, process, f, key, value)
            if outcome is OpType.INFO or (f == "get" and outcome is OpType.FAIL):
                client.close()
                client = self._client(rng)
                if outcome is OpType.INFO:
                    process = self.history.new_process()
        client.close()

    def _one(
        self, client: redis.Redis, process: int, f: str, key: str, value: str | None
    ) -> OpType:
        h = self.history
        h.record(process, OpType.INVOKE, f, key, value)
        call: Callable[[], object] = {
            "get": lambda: client.get(key),
            "put": lambda: client.set(key, value),  # type: ignore[arg-type]
            "append": lambda: client.append(key, value),  # type: ignore[arg-type]
        }[f]
        try:
            result = call()
        except redis.ResponseError as exc:
            definite = f == "get" or isinstance(exc, redis.exceptions.TryAgainError)
            kind = OpType.FAIL if definite else OpType.INFO
            h.record(process, kind, f, key, None if f == "get" else value)
            return kind
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            kind = OpType.FAIL if f == "get" else OpType.INFO
            h.record(process, kind, f, key, None if f == "get" else value)
            return kind
        h.record(process, OpType.OK, f, key, result if f == "get" else value)
        return OpType.OK
