"""The admin API's backup endpoints: pause writes, open snapshots, read them in chunks.

Theory of operation. `cairn ctl backup` (`cairn.cli.backup`) takes one consistent cut of
the whole cluster through every node's admin API:

1. `POST /v1/backup/pause` on every node: CLIENT PAUSE WRITE (`cairn.runtime.client_pause`)
   holds back every new client write, then the node waits (bounded) until the writes it
   already admitted are applied: nothing forwarded is outstanding and every region it leads
   has applied its whole log.
2. `POST /v1/backup/open` on every node: one LMDB read transaction (a stable view of every
   region of the node, since all live in one environment) becomes a snapshot handle, for
   the regions this node leads with a valid lease (their state holds every acknowledged
   write).
3. `POST /v1/backup/unpause` on every node: writes go on; the handles keep their view.
4. `POST /v1/backup/chunk` reads a region's keys from a handle in key order, a chunk at a
   time (key, DUMP payload, absolute expiry) from a cursor the previous chunk handed out;
   `POST /v1/backup/close` ends the handle.

No write is admitted anywhere between the last node's pause and the first unpause, and
every snapshot is opened in between, so the cut is one point of the cluster's history. A
held read transaction keeps LMDB from reusing the pages it sees, so handles are few
(`MAX_HANDLES`) and expire (`lifetime_s`, at most `MAX_LIFETIME_S`). Every endpoint is a
POST, so it needs an admin token (the snapshot holds every value of the cluster).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cairn.admin.json_body import parse_json_object
from cairn.admin.source import AdminError, BadRequestError, NotFoundError
from cairn.runtime.client_pause import PauseMode
from cairn.storage.lmdb_keyspace import KeyspaceView
from cairn.store.commands.dump import serialize
from cairn.store.commands.errors import CommandError
from cairn.store.db import Db
from cairn.store.scope import Scope

if TYPE_CHECKING:
    import lmdb

    from cairn.runtime.node import Node

MAX_HANDLES = 4
DEFAULT_LIFETIME_S = 600.0
MAX_LIFETIME_S = 3600.0
MAX_PAUSE_MS = 60_000
MAX_DRAIN_MS = 10_000
MAX_CHUNK_KEYS = 5000
CHUNK_BYTES = 4 << 20
"""A chunk stops growing once its payloads pass this many bytes (one large key alone may)."""
DRAIN_POLL_S = 0.005


class TooManyHandlesError(AdminError):
    """Every snapshot slot of the node is taken (HTTP 429)."""

    status = 429
    code = "too-many-snapshots"


@dataclass(slots=True)
class _RegionCut:
    scope: Scope
    now_ms: int
    keys: int
    cursors: dict[int, bytes] = field(default_factory=dict)
    """Cursor -> the internal position to read on from: the last one handed out, and the
    one before it (so a chunk asked again after a lost answer is served again)."""
    issued: int = 0


@dataclass(slots=True)
class Snapshot:
    """One held LMDB read transaction and the regions it covers."""

    id: str
    txn: lmdb.Transaction[bytes]
    view: KeyspaceView
    regions: dict[int, _RegionCut]
    expires: float
    timer: asyncio.TimerHandle | None = field(default=None)


class NodeBackup:
    """The backup side of one node (module docstring)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.snapshots: dict[str, Snapshot] = {}

    async def pause(self, timeout_ms: int, drain_ms: int) -> dict[str, Any]:
        """Hold new writes for `timeout_ms`; wait up to `drain_ms` for admitted ones."""
        started = time.monotonic()
        self.node.context.pause.pause(timeout_ms, PauseMode.WRITE)
        deadline = started + drain_ms / 1000
        while not self._drained() and time.monotonic() < deadline:
            await asyncio.sleep(DRAIN_POLL_S)
        return {
            "node_id": self.node.config.node_id,
            "drained": self._drained(),
            "waited_ms": round((time.monotonic() - started) * 1000, 3),
        }

    def _drained(self) -> bool:
        node = self.node
        if node._forwards:
            return False
        for peer in node.host.peers.values():
            replica = peer.replica
            if replica.is_leader and replica.raw.log.last_index() > replica.applied:
                return False
        return True

    def unpause(self) -> dict[str, Any]:
        """Let writes go on (the held ones run now)."""
        self.node.context.pause.unpause()
        return {"node_id": self.node.config.node_id}

    def open(self, lifetime_s: float) -> dict[str, Any]:
        """A snapshot handle over the regions led here (module docstring, step 2)."""
        self._expire()
        if len(self.snapshots) >= MAX_HANDLES:
            raise TooManyHandlesError(f"{MAX_HANDLES} snapshots are open on this node already")
        node = self.node
        if node.stopping or node.lmdb is None:
            raise BadRequestError("the node is starting or stopping")
        led = [
            (rid, peer)
            for rid, peer in sorted(node.host.peers.items())
            if peer.replica.is_leader and peer.replica.can_read_now() and rid in node.machines
        ]
        txn = node.lmdb.read()
        view = KeyspaceView(node.node_store.keyspace, txn)
        wall = int(time.time() * 1000)
        regions = {}
        for rid, _ in led:
            machine = node.machines[rid]
            now_ms = machine.effective_now(wall)
            keys = Db(view, None, now_ms, machine.scope).key_count()
            regions[rid] = _RegionCut(machine.scope, now_ms, keys)
        handle = Snapshot(secrets.token_hex(8), txn, view, regions, time.monotonic() + lifetime_s)
        handle.timer = asyncio.get_running_loop().call_later(lifetime_s, self._expire)
        self.snapshots[handle.id] = handle
        return {
            "node_id": node.config.node_id,
            "handle": handle.id,
            "regions": [
                {
                    "id": rid,
                    "start": _hex(peer.region.start),
                    "end": _hex(peer.region.end),
                    "version": peer.region.epoch.version,
                    "keys": regions[rid].keys,
                    "now_ms": regions[rid].now_ms,
                }
                for rid, peer in led
            ],
        }

    def chunk(self, handle_id: str, region_id: int, cursor: int, limit: int) -> dict[str, Any]:
        """Up to `limit` live keys of a region from `cursor` on (0: its start; then the
        `next` of the previous chunk): key, DUMP payload, absolute expiry; what could not
        be dumped; and the next cursor (None: done). Positions stay on the node, so a
        long key never has to travel back in a request."""
        handle = self._handle(handle_id)
        cut = handle.regions.get(region_id)
        if cut is None:
            raise NotFoundError(f"snapshot {handle_id} holds no region {region_id}")
        after = b"" if cursor == 0 else cut.cursors.get(cursor)
        if after is None:
            raise BadRequestError(f"cursor {cursor} of region {region_id} is not current")
        db = Db(handle.view, None, cut.now_ms, cut.scope)
        settings = self.node.context.redis_config.object_settings
        entries: list[list[Any]] = []
        skipped: list[list[str]] = []
        size = 0
        walked = db.walk(after or db.start_position, limit)
        last = None
        for entry in walked:
            last = entry.position
            if entry.meta.expired(cut.now_ms):
                continue
            try:
                payload = serialize(db, entry.key, entry.meta, settings)
            except CommandError as exc:
                skipped.append([_b64(entry.key), exc.reply.message])
                continue
            entries.append([_b64(entry.key), _b64(payload), entry.meta.expire_ms or 0])
            size += len(payload) + len(entry.key)
            if size >= CHUNK_BYTES:
                break
        more = len(walked) == limit or size >= CHUNK_BYTES
        following = None
        if last is not None and more:
            cut.issued += 1
            following = cut.issued
            cut.cursors = {k: v for k, v in cut.cursors.items() if k == cursor}
            cut.cursors[following] = last + b"\x00"
        return {"entries": entries, "skipped": skipped, "next": following}

    def close(self, handle_id: str) -> dict[str, Any]:
        """End a snapshot handle (its read transaction)."""
        self._drop(self._handle(handle_id))
        return {"closed": handle_id}

    def _handle(self, handle_id: str) -> Snapshot:
        self._expire()
        handle = self.snapshots.get(handle_id)
        if handle is None:
            raise NotFoundError(f"no open snapshot {handle_id!r} (closed or expired)")
        return handle

    def _expire(self) -> None:
        now = time.monotonic()
        for handle in [h for h in self.snapshots.values() if h.expires <= now]:
            self._drop(handle)

    def _drop(self, handle: Snapshot) -> None:
        self.snapshots.pop(handle.id, None)
        if handle.timer is not None:
            handle.timer.cancel()
        handle.txn.abort()

    def close_all(self) -> None:
        """End every handle (the node stops)."""
        for handle in list(self.snapshots.values()):
            self._drop(handle)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _hex(data: bytes) -> str:
    return data.hex()


# -- HTTP -------------------------------------------------------------------------------

BACKUP_KEY = web.AppKey("backup", NodeBackup)
ENDPOINTS = (
    "POST /v1/backup/pause",
    "POST /v1/backup/unpause",
    "POST /v1/backup/open",
    "POST /v1/backup/chunk",
    "POST /v1/backup/close",
)


async def _body(request: web.Request) -> dict[str, Any]:
    return parse_json_object(await request.read())


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequestError(f"{name} must be a number")
    if not low <= value <= high:
        raise BadRequestError(f"{name}: {value} is not in [{low}, {high}]")
    return value


def _text(body: dict[str, Any], name: str, most: int) -> str:
    value = body.get(name, "")
    if not isinstance(value, str) or len(value) > most:
        raise BadRequestError(f"{name} must be a string of at most {most} characters")
    return value


def _json(doc: dict[str, Any]) -> web.Response:
    return web.json_response(doc)


async def post_pause(request: web.Request) -> web.Response:
    """`POST /v1/backup/pause` {"timeout_ms", "drain_ms"}."""
    body = await _body(request)
    timeout = int(_number(body, "timeout_ms", 10_000, 1, MAX_PAUSE_MS))
    drain = int(_number(body, "drain_ms", 2_000, 0, MAX_DRAIN_MS))
    return _json(await request.app[BACKUP_KEY].pause(timeout, drain))


async def post_unpause(request: web.Request) -> web.Response:
    """`POST /v1/backup/unpause`."""
    return _json(request.app[BACKUP_KEY].unpause())


async def post_open(request: web.Request) -> web.Response:
    """`POST /v1/backup/open` {"lifetime_s"}."""
    body = await _body(request)
    lifetime = _number(body, "lifetime_s", DEFAULT_LIFETIME_S, 1, MAX_LIFETIME_S)
    return _json(request.app[BACKUP_KEY].open(lifetime))


async def post_chunk(request: web.Request) -> web.Response:
    """`POST /v1/backup/chunk` {"handle", "region", "cursor", "limit"}."""
    body = await _body(request)
    handle = _text(body, "handle", 64)
    region = int(_number(body, "region", 0, 1, 2**63 - 1))
    cursor = int(_number(body, "cursor", 0, 0, 2**63 - 1))
    limit = int(_number(body, "limit", 1000, 1, MAX_CHUNK_KEYS))
    return _json(request.app[BACKUP_KEY].chunk(handle, region, cursor, limit))


async def post_close(request: web.Request) -> web.Response:
    """`POST /v1/backup/close` {"handle"}."""
    body = await _body(request)
    return _json(request.app[BACKUP_KEY].close(_text(body, "handle", 64)))


def add_routes(app: web.Application, backup: NodeBackup) -> None:
    """Serve the backup endpoints of `backup` on `app`."""
    app[BACKUP_KEY] = backup
    app.router.add_post("/v1/backup/pause", post_pause)
    app.router.add_post("/v1/backup/unpause", post_unpause)
    app.router.add_post("/v1/backup/open", post_open)
    app.router.add_post("/v1/backup/chunk", post_chunk)
    app.router.add_post("/v1/backup/close", post_close)
