"""`cairn ctl backup DIR` and `cairn ctl restore DIR --to HOST:PORT`.

Backup takes one consistent cut of the whole cluster while it keeps serving (the protocol
is `cairn.admin.backup_api`'s): it pauses client writes on every node (CLIENT PAUSE WRITE),
waits until the writes already admitted are applied, opens a snapshot (a held LMDB read
transaction) on each region's leader, unpauses — writes are held only for this instant,
reported as `pause_ms` — then streams every region's keys from its snapshot into DIR with
a progress bar: a data file per region and `manifest.json` (`cairn.cli.backup_format`).
Every node's admin endpoint must be given (`--endpoint`, repeatable): a node left
unpaused could take a write during the cut. Should leadership move during the cut, so
that the snapshots do not cover the keyspace exactly once, the cut is taken again.

Restore verifies the manifest and every file first (a damaged backup is refused, naming
the file and the damage, exit status 2, before anything is written), refuses a target
that holds keys unless `--force`, then loads every key with RESTORE ... ABSTTL (REPLACE
under `--force`), pipelined, with a progress bar. Keys whose expiry passed since the
backup are not created (RESTORE's own rule).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import click
import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cairn.admin.backup_api import DEFAULT_LIFETIME_S, MAX_LIFETIME_S
from cairn.admin.client import AdminClient
from cairn.admin.views import NodeStatus
from cairn.cli.backup_format import (
    FORMAT,
    VERSION,
    DamagedBackupError,
    RecordWriter,
    file_name,
    read_records,
    verify,
    write_manifest,
)
from cairn.cli.ctl import _call, _ctl, _fail

CUT_ATTEMPTS = 3
PAUSE_TIMEOUT_MS = 10_000
"""How long a node holds writes if the coordinator vanishes mid-cut (it unpauses sooner)."""
DRAIN_MS = 2_000
CHUNK_KEYS = 1000
RESTORE_BATCH = 200


def progress_bar() -> Progress:
    """The progress bar of backup, restore and import, on standard error."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )


@dataclass(slots=True)
class Cut:
    """Open snapshots covering the keyspace: (node client, handle, region doc) per region."""

    parts: list[tuple[AdminClient, str, dict[str, Any]]]
    pause_ms: float
    drained: bool
    nodes: list[int]
    handles: list[tuple[AdminClient, str]] = field(default_factory=list)


def _node_clients(endpoints: list[str], token: str | None, timeout: float) -> list[AdminClient]:
    return [AdminClient([e], token=token, timeout=timeout) for e in endpoints]


def take_cut(nodes: list[AdminClient], up: set[int], lifetime_s: float) -> Cut:
    """Pause every node, open snapshots, unpause; retried when the regions do not tile."""
    for attempt in range(1, CUT_ATTEMPTS + 1):
        cut = _try_cut(nodes, up, lifetime_s)
        problem = _tiling_problem([doc for _, _, doc in cut.parts])
        if problem is None:
            return cut
        close_cut(cut)
        if attempt == CUT_ATTEMPTS:
            _fail(1, f"the snapshots do not cover the keyspace ({problem}); try again")
        time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


def _try_cut(nodes: list[AdminClient], up: set[int], lifetime_s: float) -> Cut:
    paused: dict[int, AdminClient] = {}
    started = time.monotonic()
    drained = True
    handles: list[tuple[AdminClient, str]] = []
    parts: list[tuple[AdminClient, str, dict[str, Any]]] = []
    body = {"timeout_ms": PAUSE_TIMEOUT_MS, "drain_ms": DRAIN_MS}
    try:
        for client in nodes:
            answer = _call(partial(client.request, "POST", "/v1/backup/pause", body))
            paused.setdefault(int(answer["node_id"]), client)
            drained = drained and bool(answer["drained"])
        missing = sorted(up - set(paused))
        if missing:
            _fail(2, f"no admin endpoint given for node(s) {missing}: give every node's")
        for client in paused.values():
            ask = {"lifetime_s": lifetime_s}
            opened = _call(partial(client.request, "POST", "/v1/backup/open", ask))
            handles.append((client, opened["handle"]))
            parts.extend((client, opened["handle"], region) for region in opened["regions"])
    except BaseException:  # a refusal or an error mid-cut (`_fail` exits): free the nodes
        close_cut(Cut([], 0.0, False, [], handles))
        raise
    finally:
        for client in paused.values():
            try:
                client.request("POST", "/v1/backup/unpause", {})
            except Exception as exc:  # the node unpauses by itself after PAUSE_TIMEOUT_MS
                click.echo(f"warning: could not unpause a node: {exc}", err=True)
    pause_ms = (time.monotonic() - started) * 1000
    return Cut(parts, pause_ms, drained, sorted(paused), handles)


def _tiling_problem(regions: list[dict[str, Any]]) -> str | None:
    """Why the regions do not cover the keyspace exactly once, or None."""
    ordered = sorted(regions, key=lambda r: bytes.fromhex(r["start"]))
    edge = ""
    for r in ordered:
        if r["start"] != edge:
            return f"region {r['id']} starts at {r['start'] or 'the start'!r}, expected {edge!r}"
        if r["end"] == "":
            edge = "END"
            continue
        edge = r["end"]
    return None if edge == "END" and ordered else "the keyspace's end is not covered"


def close_cut(cut: Cut) -> None:
    """Close every snapshot of `cut` (best effort: they also expire)."""
    for client, handle in cut.handles:
        try:
            client.request("POST", "/v1/backup/close", {"handle": handle})
        except Exception as exc:
            click.echo(f"warning: could not close snapshot {handle}: {exc}", err=True)


def _dump_region(
    client: AdminClient, handle: str, region: dict[str, Any], directory: Path, bar: Any
) -> dict[str, Any]:
    rid = int(region["id"])
    skipped: list[dict[str, str]] = []
    with (directory / file_name(rid)).open("wb") as out:
        writer = RecordWriter(out)
        cursor = 0
        while True:
            body = {"handle": handle, "region": rid, "cursor": cursor, "limit": CHUNK_KEYS}
            chunk = _call(partial(client.request, "POST", "/v1/backup/chunk", body))
            for key, payload, expire in chunk["entries"]:
                writer.add(base64.b64decode(key), int(expire), base64.b64decode(payload))
            skipped += [{"key": k, "reason": why} for k, why in chunk["skipped"]]
            bar(len(chunk["entries"]) + len(chunk["skipped"]))
            if chunk["next"] is None:
                break
            cursor = int(chunk["next"])
    return {
        "id": rid,
        "start": region["start"],
        "end": region["end"],
        "file": file_name(rid),
        "keys": writer.keys,
        "bytes": writer.bytes,
        "sha256": writer.sha.hexdigest(),
        "skipped": skipped,
    }


@click.command("backup")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--snapshot-lifetime",
    "lifetime_s",
    type=click.FloatRange(1, MAX_LIFETIME_S),
    default=DEFAULT_LIFETIME_S,
    show_default=True,
    help="Seconds the nodes keep the snapshots open (the backup must finish within).",
)
@click.pass_context
def backup(ctx: click.Context, directory: Path, lifetime_s: float) -> None:
    """Back up the whole cluster at one point into DIRECTORY (give every node's
    --endpoint)."""
    state = _ctl(ctx, False)
    main = state.client
    if directory.exists() and any(directory.iterdir()):
        _fail(2, f"{directory} is not empty")
    directory.mkdir(parents=True, exist_ok=True)
    cluster = _call(lambda: main.request("GET", "/v1/status"))
    up = {n.id for n in _call(main.nodes) if n.status is NodeStatus.UP}
    nodes = _node_clients(main.endpoints, main.token, main.timeout)
    created = int(time.time() * 1000)
    cut = take_cut(nodes, up, lifetime_s)
    try:
        total = sum(int(doc["keys"]) for _, _, doc in cut.parts)
        with progress_bar() as progress:
            task = progress.add_task("backup", total=total)

            def advance(n: int) -> None:
                progress.advance(task, n)

            ordered = sorted(cut.parts, key=lambda p: bytes.fromhex(p[2]["start"]))
            regions = [_dump_region(c, h, doc, directory, advance) for c, h, doc in ordered]
    finally:
        close_cut(cut)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "cluster_id": cluster.get("cluster_id"),
        "created_unix_ms": created,
        "cut": {
            "kind": "cluster-wide: client writes paused on every node, one LMDB snapshot per node",
            "pause_ms": round(cut.pause_ms, 3),
            "drained": cut.drained,
            "nodes": cut.nodes,
        },
        "regions": regions,
    }
    write_manifest(directory, manifest)
    keys = sum(r["keys"] for r in regions)
    skipped = [s for r in regions for s in r["skipped"]]
    click.echo(
        f"backed up {keys} keys of {len(regions)} regions into {directory} "
        f"(writes paused {cut.pause_ms:.1f} ms)"
    )
    for s in skipped:
        key = base64.b64decode(s["key"]).decode("utf-8", "replace")
        click.echo(f"not copied: {key!r}: {s['reason']}", err=True)


def _target(to: str, password: str | None) -> redis.Redis:
    host, _, port = to.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"{to!r} is not HOST:PORT", param_hint="--to")
    return redis.Redis(host=host, port=int(port), password=password, socket_timeout=30)


@click.command("restore")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--to", "to", required=True, metavar="HOST:PORT", help="A node of the new cluster.")
@click.option("--password", envvar="CAIRN_PASSWORD", default=None, help="The target's password.")
@click.option("--force", is_flag=True, help="Restore into a cluster that holds keys (REPLACE).")
def restore(directory: Path, to: str, password: str | None, force: bool) -> None:
    """Load a backup DIRECTORY into the cluster at --to (verified first)."""
    try:
        manifest = verify(directory)
    except DamagedBackupError as exc:
        _fail(2, f"the backup in {directory} is damaged: {exc}")
    target = _target(to, password)
    try:
        restore_into(target, directory, manifest, force)
    except redis.RedisError as exc:
        _fail(1, f"{to}: {exc}")


def restore_into(
    target: redis.Redis, directory: Path, manifest: dict[str, Any], force: bool
) -> None:
    """RESTORE every key of a verified backup into `target`."""
    if not force and int(target.dbsize()) > 0:
        _fail(2, "the target holds keys already: restore into a new cluster, or give --force")
    total = sum(r["keys"] for r in manifest["regions"])
    errors: list[str] = []
    done = 0
    with progress_bar() as progress:
        task = progress.add_task("restore", total=total)
        for region in manifest["regions"]:
            batch = []
            for record in read_records(directory / region["file"]):
                batch.append(record)
                if len(batch) >= RESTORE_BATCH:
                    done += _restore_batch(target, batch, force, errors)
                    progress.advance(task, len(batch))
                    batch = []
            done += _restore_batch(target, batch, force, errors)
            progress.advance(task, len(batch))
    click.echo(f"restored {done} of {total} keys from {directory}")
    for line in errors[:20]:
        click.echo(f"not restored: {line}", err=True)
    if errors:
        _fail(1, f"{len(errors)} keys were not restored")


def restore_pipeline(
    target: redis.Redis,
    entries: Iterable[tuple[bytes, bytes, int]],
    *,
    replace: bool,
    absttl: bool,
) -> list[Any]:
    """RESTORE every (key, payload, ttl ms) of `entries` in one pipeline: the replies, an
    error as its exception. `absttl`: the ttl is a Unix time in ms (a backup's), else
    milliseconds from now (an import's PTTL). Restore and import both load through it."""
    pipe = target.pipeline(transaction=False)
    for key, payload, ttl in entries:
        args: list[Any] = ["RESTORE", key, ttl, payload]
        if absttl:
            args.append("ABSTTL")
        if replace:
            args.append("REPLACE")
        pipe.execute_command(*args)  # type: ignore[no-untyped-call]
    return list(pipe.execute(raise_on_error=False))


def _restore_batch(target: redis.Redis, batch: list[Any], force: bool, errors: list[str]) -> int:
    if not batch:
        return 0
    entries = [(r.key, r.payload, r.expire_ms) for r in batch]
    replies = restore_pipeline(target, entries, replace=force, absttl=True)
    ok = 0
    for r, reply in zip(batch, replies, strict=True):
        if isinstance(reply, Exception):
            errors.append(f"{r.key.decode('utf-8', 'replace')!r}: {reply}")
        else:
            ok += 1
    return ok
