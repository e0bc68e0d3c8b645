"""Admin API reads (and actions) one node asks another for, over the peer transport.

Theory of operation. The cluster views of the admin API (status, nodes, regions, events)
live on the placement group's leader, and each node's history on that node. So that
every node's admin API, and the dashboard open on it, can show all of them, a node asks
the node that has them in an `ADMIN` frame `[kind, request id, view, [arg, ...]]` and
gets an `ADMIN_REPLY` `[kind, request id, HTTP status, JSON body]`: the very body the
other node's admin API would have answered. Both frames are checked by
`cairn.runtime.frame_checks` (a short view name, at most a few integer or bounded text
arguments; a bounded body) before anything uses them.

Why the peer transport and not HTTP to the other's admin API: the peer links are already
open and mutually authenticated (the cluster secret, TLS when configured), so there is no
admin address to learn, no certificate of the other's admin API to trust and no token to
hold; the caller's token was checked by the node it called (`cairn.admin.access`, its
role included), and the node answering trusts an authenticated peer as it trusts it with
Raft messages. The answering node never forwards again (no loops): a node asked for a
cluster view that it cannot serve answers 503.

What a view means is the admin layer's business (`cairn.admin.forward`): it sets `serve`.
A node whose admin API does not run answers 503. Limits: `timeout` seconds for an
answer (then the asker gives up and says so), `max_pending` questions in flight from
this node and `max_serving` answers in progress here (beyond, 503 at once), and bodies of
at most `max_reply` bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from cairn.raft.types import NodeId
from cairn.runtime.frame_checks import MAX_ADMIN_REPLY, check_admin, check_admin_reply
from cairn.runtime.frames import FrameKind

log = logging.getLogger("cairn.admin")

Args = list[int | str]
Serve = Callable[[NodeId, str, Args], Awaitable[tuple[int, bytes]]]
"""Answers a view another node asked for: (HTTP status, JSON body)."""
Send = Callable[[NodeId, list[Any]], bool]
"""Queues a frame to a peer; false if it is not connected."""

DEFAULT_TIMEOUT = 2.0
DEFAULT_MAX_PENDING = 256
DEFAULT_MAX_SERVING = 64


class PeerUnavailableError(Exception):
    """The other node could not be asked, or did not answer in time."""


def error_json(status: int, code: str, message: str) -> bytes:
    """The admin API's failure body (`cairn.admin.server.error_body`), encoded."""
    body = {"error": {"status": status, "code": code, "message": message}}
    return json.dumps(body, separators=(",", ":")).encode()


class AdminPeer:
    """One node's side of the ADMIN frames: asking others, answering them."""

    def __init__(
        self,
        send: Send,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_serving: int = DEFAULT_MAX_SERVING,
        max_reply: int = MAX_ADMIN_REPLY,
    ) -> None:
        self.send = send
        self.timeout = timeout
        self.max_pending = max_pending
        self.max_serving = max_serving
        self.max_reply = max_reply
        self.serve: Serve | None = None
        """Set by the admin server while it runs; None: this node answers 503."""
        self._next_id = 0
        self._pending: dict[tuple[NodeId, int], asyncio.Future[tuple[int, bytes]]] = {}
        self._serving: set[asyncio.Task[None]] = set()

    async def ask(self, node: NodeId, view: str, args: Args) -> tuple[int, bytes]:
        """The (HTTP status, JSON body) node `node` answers `view` with;
        `PeerUnavailableError` when it cannot be asked or does not answer in time."""
        if len(self._pending) >= self.max_pending:
            raise PeerUnavailableError("too many admin requests to other nodes in flight")
        self._next_id += 1
        key = (node, self._next_id)
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            if not self.send(node, [FrameKind.ADMIN, self._next_id, view, args]):
                raise PeerUnavailableError(f"node {node} is not connected to this node")
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise PeerUnavailableError(
                f"node {node} did not answer within {self.timeout:g} s"
            ) from None
        finally:
            self._pending.pop(key, None)

    def on_request(self, peer: NodeId, frame: list[Any]) -> None:
        """An ADMIN frame from `peer`: answer it (in a task: a view may wait)."""
        asked = check_admin(frame)
        if self.serve is None or len(self._serving) >= self.max_serving:
            why = "no admin API runs on this node" if self.serve is None else "too busy"
            self._reply(peer, asked.request_id, 503, error_json(503, "unavailable", why))
            return
        task = asyncio.get_running_loop().create_task(
            self._answer(self.serve, peer, asked.request_id, asked.view, asked.args)
        )
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _answer(
        self, serve: Serve, peer: NodeId, request_id: int, view: str, args: Args
    ) -> None:
        try:
            status, body = await serve(peer, view, args)
        except Exception:
            log.exception("answering node %d's admin request %r failed", peer, view)
            status, body = 500, error_json(500, "internal", "internal error (see its log)")
        if len(body) > self.max_reply:
            message = f"the answer of {len(body)} bytes is over the limit of {self.max_reply}"
            status, body = 500, error_json(500, "too-large", message)
        self._reply(peer, request_id, status, body)

    def _reply(self, peer: NodeId, request_id: int, status: int, body: bytes) -> None:
        self.send(peer, [FrameKind.ADMIN_REPLY, request_id, status, body])

    def on_reply(self, peer: NodeId, frame: list[Any]) -> None:
        """An ADMIN_REPLY from `peer`: the answer of a question still waited for (a late
        or unknown one is dropped)."""
        request_id, status, body = check_admin_reply(frame)
        future = self._pending.get((peer, request_id))
        if future is not None and not future.done():
            future.set_result((status, body))

    def close(self) -> None:
        """Stop: fail the questions in flight, cancel the answers in progress."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(PeerUnavailableError("this node is stopping"))
        for task in list(self._serving):
            task.cancel()
        self._pending.clear()
