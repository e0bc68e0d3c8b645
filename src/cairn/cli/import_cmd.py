"""`cairn import redis://[user:pass@]HOST:PORT[/db] --to HOST:PORT`: copy a live Redis.

Theory of operation. The source is walked with SCAN; each batch of keys is read with one
pipeline of DUMP, PTTL and TYPE, and written to Cairn with one pipeline of RESTORE (the
source's remaining TTL, REPLACE with `--replace`), with a progress bar. A key deleted on
the source while the copy runs is counted as gone, not as a failure. A key Cairn refuses is
not copied, and the summary says why, by key and type: a module type (Cairn has none), a
value beyond the target's limits, or a key Cairn holds already (without `--replace`).
Streams go through RESTORE like every other type.

The verify pass DUMPs every copied key on both sides. Equal payloads are a match. Cairn
serializes hash fields and set members in byte order where Redis' hashtable encoding lists
them in its dict's order, so differing payloads are decoded (`cairn.store.rdb`) and
compared by value: a hash or set as a mapping or set, a list in order, a sorted set as
member -> score, a stream by its entries (XRANGE on both sides). A key whose value or TTL
(beyond `TTL_SLACK_MS`) differs, or that is missing on Cairn, is a difference. A key
changed on a live source after it was copied shows up as a difference too: verify a quiet
source. Exit status: 0 everything copied and verified, 1 some key not copied or different,
2 bad arguments or a side unreachable.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlparse

import click
import redis

from cairn.cli.backup import progress_bar, restore_pipeline
from cairn.store.rdb import BadPayloadError, Value, decode, verify_footer

SCAN_COUNT = 500
TTL_SLACK_MS = 5_000
"""How far the TTLs of a key may differ between the two sides (the copy takes time)."""
MAX_REPORTED = 50
DIFFERENT_VALUES = "the values differ"


@dataclass(slots=True)
class ImportReport:
    """What an import did."""

    copied: list[bytes] = field(default_factory=list)
    gone: int = 0
    failed: list[tuple[bytes, str, str]] = field(default_factory=list)
    """(key, type, why) of every key not copied."""
    differences: list[tuple[bytes, str]] = field(default_factory=list)


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def source_client(url: str) -> redis.Redis:
    """A client of the source named by `url` (redis:// or rediss://)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
        raise click.BadParameter(f"{url!r} is not redis://[user:pass@]HOST:PORT[/db]")
    try:
        return redis.Redis.from_url(url, socket_timeout=60)
    except ValueError as exc:
        raise click.BadParameter(f"{url!r}: {exc}") from None


def _scan(source: redis.Redis, match: str | None) -> Iterator[list[bytes]]:
    cursor = 0
    while True:
        cursor, keys = source.scan(cursor, match=match, count=SCAN_COUNT)
        if keys:
            yield [k if isinstance(k, bytes) else k.encode() for k in keys]
        if cursor == 0:
            return


def _read(source: redis.Redis, keys: list[bytes]) -> list[Any]:
    pipe = source.pipeline(transaction=False)
    for key in keys:
        pipe.dump(key)
        pipe.pttl(key)
        pipe.type(key)
    return list(pipe.execute(raise_on_error=False))


def copy_batch(
    source: redis.Redis, target: redis.Redis, keys: list[bytes], replace: bool, report: ImportReport
) -> None:
    """Copy one SCAN batch (module docstring)."""
    replies = _read(source, keys)
    todo: list[tuple[bytes, bytes, int, str]] = []
    for i, key in enumerate(keys):
        payload, ttl, kind = replies[3 * i : 3 * i + 3]
        kind_name = kind.decode() if isinstance(kind, bytes) else str(kind)
        if isinstance(payload, Exception):
            report.failed.append((key, kind_name, f"DUMP on the source: {payload}"))
        elif payload is None or ttl == -2:
            report.gone += 1
        else:
            todo.append((key, payload, max(0, int(ttl)), kind_name))
    for (key, _, _, kind_name), reply in zip(todo, _restore(target, todo, replace), strict=True):
        if isinstance(reply, Exception):
            report.failed.append((key, kind_name, _why(kind_name, reply)))
        else:
            report.copied.append(key)


def _restore(
    target: redis.Redis, todo: list[tuple[bytes, bytes, int, str]], replace: bool
) -> list[Any]:
    """RESTORE replies (or exceptions) for `todo`; a batch that breaks the connection (a
    value beyond the target's limits) is retried one key at a time."""
    try:
        return _restore_pipeline(target, todo, replace)
    except redis.ConnectionError:
        pass
    out: list[Any] = []
    for item in todo:
        try:
            out += _restore_pipeline(target, [item], replace)
        except redis.ConnectionError as exc:
            out.append(exc)
    return out


def _restore_pipeline(
    target: redis.Redis, todo: list[tuple[bytes, bytes, int, str]], replace: bool
) -> list[Any]:
    entries = [(key, payload, ttl) for key, payload, ttl, _ in todo]
    return restore_pipeline(target, entries, replace=replace, absttl=False)


def _why(kind: str, error: Exception) -> str:
    text = str(error)
    if kind not in ("string", "hash", "list", "set", "zset", "stream"):
        return f"type {kind!r} (a module type?) is not a Cairn type: {text}"
    if isinstance(error, redis.ConnectionError):
        return f"the target closed the connection (a value beyond its limits?): {text}"
    if "BUSYKEY" in text:
        return "the key exists on Cairn already (give --replace to overwrite it)"
    return text


# -- verify ------------------------------------------------------------------------------


def verify_batch(
    source: redis.Redis, target: redis.Redis, keys: list[bytes], report: ImportReport
) -> None:
    """Compare copied `keys` on both sides (module docstring)."""
    here, there = _dumps(source, keys), _dumps(target, keys)
    for i, key in enumerate(keys):
        (a, a_ttl), (b, b_ttl) = here[i], there[i]
        problem = _difference(a, a_ttl, b, b_ttl)
        if problem == DIFFERENT_VALUES and _same_stream(source, target, key):
            problem = _ttl_difference(a_ttl, b_ttl)
        if problem is not None:
            report.differences.append((key, problem))


def _same_stream(source: redis.Redis, target: redis.Redis, key: bytes) -> bool:
    """Whether `key` is a stream with the same entries on both sides (a stream's payload
    bytes need not match: its listpacks are laid out by each server)."""
    if source.type(key) != b"stream":
        return False
    return bool(source.xrange(key) == target.xrange(key))


def _dumps(client: redis.Redis, keys: list[bytes]) -> list[tuple[Any, Any]]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.dump(key)
        pipe.pttl(key)
    replies = list(pipe.execute(raise_on_error=False))
    return [(replies[2 * i], replies[2 * i + 1]) for i in range(len(keys))]


def _difference(a: Any, a_ttl: Any, b: Any, b_ttl: Any) -> str | None:
    if a is None:
        return None  # deleted on the source since: nothing to compare
    if b is None or isinstance(b, Exception):
        return f"missing on Cairn ({b})" if b is not None else "missing on Cairn"
    if a != b and not _same_value(a, b):
        return DIFFERENT_VALUES
    return _ttl_difference(a_ttl, b_ttl)


def _ttl_difference(a_ttl: Any, b_ttl: Any) -> str | None:
    if (a_ttl > 0) != (b_ttl > 0) or abs(int(a_ttl) - int(b_ttl)) > TTL_SLACK_MS:
        return f"the TTLs differ: {a_ttl} ms on the source, {b_ttl} ms on Cairn"
    return None


def _same_value(a: bytes, b: bytes) -> bool:
    """Whether two DUMP payloads hold the same value (element order aside, where the type
    has none)."""
    if not (verify_footer(a) and verify_footer(b)):
        return False
    try:
        return _canonical(decode(a)) == _canonical(decode(b))
    except BadPayloadError:
        return False


def _canonical(value: Value) -> object:
    kind = value.kind.name
    if kind == "HASH":
        return kind, dict(value.pairs)
    if kind == "SET":
        return kind, frozenset(value.items)
    if kind == "ZSET":
        return kind, dict(value.scored)
    if kind == "LIST":
        return kind, value.items
    if kind == "STRING":
        return kind, value.string
    return object()  # a type compared otherwise (a stream: `_same_stream`), never equal here


# -- the command -------------------------------------------------------------------------


def run_import(
    source: redis.Redis, target: redis.Redis, match: str | None, replace: bool, check: bool
) -> ImportReport:
    """Copy, then (with `check`) verify; the report."""
    report = ImportReport()
    total = None if match else int(source.dbsize())
    with progress_bar() as progress:
        task = progress.add_task("import", total=total)
        for keys in _scan(source, match):
            copy_batch(source, target, keys, replace, report)
            progress.advance(task, len(keys))
        if check:
            task = progress.add_task("verify", total=len(report.copied))
            for i in range(0, len(report.copied), SCAN_COUNT):
                keys = report.copied[i : i + SCAN_COUNT]
                verify_batch(source, target, keys, report)
                progress.advance(task, len(keys))
    return report


def _show(key: bytes) -> str:
    return repr(key.decode("utf-8", "replace"))


def summarize(report: ImportReport, check: bool) -> int:
    """Print the summary; the exit status."""
    click.echo(
        f"copied {len(report.copied)} keys, {len(report.failed)} not copied, "
        f"{report.gone} deleted on the source during the copy"
    )
    for key, kind, why in report.failed[:MAX_REPORTED]:
        click.echo(f"not copied: {_show(key)} ({kind}): {why}")
    if len(report.failed) > MAX_REPORTED:
        click.echo(f"... and {len(report.failed) - MAX_REPORTED} more not copied")
    if check:
        click.echo(f"verify: {len(report.differences)} differences")
        for key, problem in report.differences[:MAX_REPORTED]:
            click.echo(f"different: {_show(key)}: {problem}")
    return 1 if report.failed or report.differences else 0


@click.command("import")
@click.argument("source_url", metavar="redis://[user:pass@]HOST:PORT[/db]")
@click.option("--to", "to", default="127.0.0.1:6379", show_default=True, metavar="HOST:PORT")
@click.option("--password", envvar="CAIRN_PASSWORD", default=None, help="Cairn's password.")
@click.option("--match", default=None, help="Copy only keys matching this SCAN pattern.")
@click.option("--replace", is_flag=True, help="Overwrite keys Cairn holds already.")
@click.option("--no-verify", "no_verify", is_flag=True, help="Skip the verify pass.")
def import_redis(
    source_url: str,
    to: str,
    password: str | None,
    match: str | None,
    replace: bool,
    no_verify: bool,
) -> None:
    """Copy every key of a live Redis into Cairn (SCAN, DUMP, PTTL; RESTORE), then verify."""
    source = source_client(source_url)
    host, _, port = to.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"{to!r} is not HOST:PORT", param_hint="--to")
    target = redis.Redis(host=host, port=int(port), password=password, socket_timeout=60)
    for name, side in (("the source", source), ("Cairn", target)):
        try:
            side.ping()
        except redis.RedisError as exc:
            _fail(2, f"{name} does not answer: {exc}")
    try:
        report = run_import(source, target, match, replace, not no_verify)
    except redis.RedisError as exc:
        _fail(2, f"the import stopped: {exc}")
    sys.exit(summarize(report, not no_verify))
