"""`cairn ctl`: look at a running cluster and steer it, through any node's admin API.

    cairn ctl status | nodes | regions          what the cluster looks like
    cairn ctl events [--since N] [--follow]     what the placement driver decided, and why
    cairn ctl node drain ID [--reason TEXT]     move everything off a node
    cairn ctl node start ID [--data-dir DIR]    start a node of a `cairn dev` cluster again
    cairn ctl region split ID [--slot N|--by-size] | merge ID [--into M]
                   | move ID --from A --to B | transfer-leader ID --to N   [--wait S]
    cairn ctl placement set --replicas N --zone-label L [--range START END REPLICAS ...]
    cairn ctl token create --role read|admin | list | revoke ID   the admin tokens file

Endpoints (`--endpoint`, repeatable or comma-separated, or `CAIRN_ADMIN`) are tried in
turn until one answers. The bearer token is `--token`, else `CAIRN_ADMIN_TOKEN`, else the
first line of `--token-file` (or `CAIRN_ADMIN_TOKEN_FILE`), else of `cairn-data/admin.token`
(a default `cairn dev` cluster's) when it exists. Over HTTPS, `--cacert` (or `CAIRN_CACERT`)
is the CA of the nodes' certificates and `--cert`/`--key` (or `CAIRN_CERT`/`CAIRN_KEY`) the
client certificate a node with `tls_auth_clients = "yes"` requires; with either given, a
bare `host:port` endpoint means https. When none is given, those of a default `cairn dev
--tls` cluster (`cairn-data/tls`) are used for https endpoints when they exist. Tables are
for people; `--json` prints the API's JSON for scripts (with `events --follow`, one event
per line). Exit status: 0 done, 1 the cluster refused (for instance 501 while the
placement driver does not run), 2 bad arguments, no endpoint reachable, or no valid token
(401) or not allowed (403).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from cairn.admin.client import (
    DEFAULT_ENDPOINTS,
    AdminClient,
    AdminClientError,
    ApiError,
    UnreachableError,
    tls_context,
)
from cairn.admin.render import event_line, nodes_table, regions_table, status_table
from cairn.admin.views import SchemaError, event_from_json, event_to_json, rules_to_json
from cairn.cli.dev_supervisor import DevControlError, request_start
from cairn.meta.region import slot_bound
from cairn.placement.model import InvalidRulesError, PlacementRules, RangeRule
from cairn.runtime.admin_tokens import (
    DEV_TOKEN_FILE,
    DEV_TOKENS_FILE,
    Role,
    TokenFileError,
    create_token,
    read_tokens,
    revoke_token,
)
from cairn.runtime.config import ADMIN_PORT_OFFSET
from cairn.store.slot import SLOT_COUNT

ENDPOINT_ENV = "CAIRN_ADMIN"
TOKEN_ENV = "CAIRN_ADMIN_TOKEN"
TOKEN_FILE_ENV = "CAIRN_ADMIN_TOKEN_FILE"
DEV_TOKEN_PATH = Path("cairn-data") / DEV_TOKEN_FILE
"""The admin token of a `cairn dev` cluster in its default data directory."""
MAX_TOKEN_FILE_BYTES = 4096
CACERT_ENV = "CAIRN_CACERT"
CERT_ENV = "CAIRN_CERT"
KEY_ENV = "CAIRN_KEY"
DEV_TLS_DIR = Path("cairn-data") / "tls"
"""The throwaway CA and client certificate of a `cairn dev --tls` cluster (default dir)."""

_sleep: Callable[[float], None] = time.sleep
"""How `events --follow` waits between polls (replaced by the tests)."""


@dataclass(slots=True)
class _Ctl:
    client: AdminClient
    json: bool
    console: Console


def _endpoints(given: tuple[str, ...]) -> list[str]:
    raw = list(given) or [os.environ.get(ENDPOINT_ENV, "")]
    found = [e.strip() for item in raw for e in item.split(",") if e.strip()]
    return found or list(DEFAULT_ENDPOINTS)


@click.group()
@click.option(
    "--endpoint",
    "-e",
    "endpoints",
    multiple=True,
    metavar="HOST:PORT",
    help=f"A node's admin address (repeatable, or comma-separated; default ${ENDPOINT_ENV} "
    f"or {','.join(DEFAULT_ENDPOINTS)}).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead of tables.")
@click.option("--token", envvar=TOKEN_ENV, default=None, help=f"Admin token (or ${TOKEN_ENV}).")
@click.option(
    "--token-file",
    envvar=TOKEN_FILE_ENV,
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"A file whose first line is the admin token (or ${TOKEN_FILE_ENV}; default "
    f"{DEV_TOKEN_PATH} when it exists).",
)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True)
@click.option(
    "--cacert",
    envvar=CACERT_ENV,
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"The CA of the nodes' HTTPS certificates (or ${CACERT_ENV}).",
)
@click.option(
    "--cert",
    envvar=CERT_ENV,
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"A client certificate, for nodes with tls_auth_clients = yes (or ${CERT_ENV}).",
)
@click.option(
    "--key",
    envvar=KEY_ENV,
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"The client certificate's key (or ${KEY_ENV}).",
)
@click.pass_context
def ctl(
    ctx: click.Context,
    endpoints: tuple[str, ...],
    as_json: bool,
    token: str | None,
    token_file: Path | None,
    timeout: float,
    cacert: Path | None,
    cert: Path | None,
    key: Path | None,
) -> None:
    """Inspect and steer a running cluster through its admin API."""
    if token is None:
        token = _token_from_file(token_file)
    scheme = "https" if cacert or cert or key else "http"
    if scheme == "http" and (DEV_TLS_DIR / "ca.crt").is_file():
        cacert, cert, key = _dev_tls_files()
    try:
        context = tls_context(cacert, cert, key)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--cacert/--cert/--key") from None
    try:
        client = AdminClient(
            _endpoints(endpoints), token=token, timeout=timeout, ssl_context=context, scheme=scheme
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--endpoint") from None
    ctx.obj = _Ctl(client, as_json, Console(soft_wrap=True))


def _dev_tls_files() -> tuple[Path, Path | None, Path | None]:
    """The CA and (when both exist) client certificate and key of a default `cairn dev
    --tls` cluster, used for https endpoints when no TLS option is given."""
    cert, key = DEV_TLS_DIR / "client.crt", DEV_TLS_DIR / "client.key"
    if cert.is_file() and key.is_file():
        return DEV_TLS_DIR / "ca.crt", cert, key
    return DEV_TLS_DIR / "ca.crt", None, None


def _token_from_file(path: Path | None) -> str | None:
    """The first line of `path`, or of the dev cluster's token file when none is given."""
    if path is None:
        if not DEV_TOKEN_PATH.is_file():
            return None
        path = DEV_TOKEN_PATH
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_TOKEN_FILE_BYTES)
        text = raw.decode().splitlines()[0].strip() if raw.strip() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--token-file") from None
    if not text:
        raise click.BadParameter(f"{path} holds no token", param_hint="--token-file")
    return text


_json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the API's JSON instead of tables."
)


def _ctl(ctx: click.Context, as_json: bool) -> _Ctl:
    state = ctx.find_object(_Ctl)
    assert state is not None, "the ctl group sets its state"
    state.json = state.json or as_json
    return state


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _call(action: Callable[[], Any]) -> Any:
    """Run one API call; failures become a message and an exit status (module doc)."""
    try:
        return action()
    except UnreachableError as exc:
        _fail(2, _unreachable(exc))
    except ApiError as exc:
        _fail(2 if exc.status in (400, 401, 403) else 1, _explain(exc))
    except AdminClientError as exc:
        _fail(1, str(exc))


def _unreachable(exc: UnreachableError) -> str:
    """Every endpoint tried and why it did not answer, with what to do."""
    return (
        f"{exc}; is the cluster running? Name a running node's admin address with "
        f"--endpoint/-e or ${ENDPOINT_ENV} (a node's admin port is its client port + "
        f"{ADMIN_PORT_OFFSET}, as `cairn dev` prints; a stopped dev node starts again with "
        "`cairn ctl node start N`)"
    )


def _explain(exc: ApiError) -> str:
    """The server's refusal, with what to do about a missing or weak token."""
    if exc.status == 401:
        return (
            f"{exc}; give an admin token with --token, ${TOKEN_ENV} or --token-file "
            f"(a `cairn dev` cluster's is <data-dir>/{DEV_TOKEN_FILE}; "
            "new ones: cairn ctl token create)"
        )
    if exc.status == 403 and exc.message.startswith("token "):
        return f"{exc}; use a token of role admin (new ones: cairn ctl token create --role admin)"
    return str(exc)


def _print_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=True))


@ctl.command()
@_json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """The cluster in one table: health and why, nodes, regions, placement."""
    state = _ctl(ctx, as_json)
    if state.json:
        _print_json(_call(lambda: state.client.request("GET", "/v1/status")))
        return
    state.console.print(status_table(_call(state.client.status)))


@ctl.command()
@_json_option
@click.pass_context
def nodes(ctx: click.Context, as_json: bool) -> None:
    """Every node: state, addresses, labels, regions and leaders, last heartbeat."""
    state = _ctl(ctx, as_json)
    if state.json:
        _print_json(_call(lambda: state.client.request("GET", "/v1/nodes")))
        return
    state.console.print(nodes_table(_call(state.client.nodes)))


@ctl.command()
@_json_option
@click.pass_context
def regions(ctx: click.Context, as_json: bool) -> None:
    """Every region: slots, epoch, peers (leader starred), health, size, operator."""
    state = _ctl(ctx, as_json)
    if state.json:
        _print_json(_call(lambda: state.client.request("GET", "/v1/regions")))
        return
    state.console.print(regions_table(_call(state.client.regions)))


@ctl.command()
@click.option("--since", type=click.IntRange(min=0), default=0, help="After this event number.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True)
@_json_option
@click.pass_context
def events(
    ctx: click.Context, since: int, limit: int, follow: bool, interval: float, as_json: bool
) -> None:
    """What the placement driver saw and decided, and why, oldest first."""
    state = _ctl(ctx, as_json)
    doc = _events_page(state, since, limit)
    if state.json and not follow:
        _print_json(doc)
        return
    if not doc.get("placement_running", False):
        state.console.print("no events: the placement driver is not running in this cluster yet")
        return
    try:
        last = _show_events(state, doc, since)
        while follow:
            _sleep(interval)
            last = _show_events(state, _events_page(state, last, 1000), last)
    except KeyboardInterrupt:
        pass


def _events_page(state: _Ctl, since: int, limit: int) -> Any:
    path = f"/v1/events?since={since}&limit={limit}"
    return _call(lambda: state.client.request("GET", path))


def _show_events(state: _Ctl, doc: Any, since: int) -> int:
    """Print a page of events; the number to ask after next time."""
    last = since
    for raw in doc.get("events", []):
        try:
            event = event_from_json(raw)
        except SchemaError as exc:
            _fail(1, f"unexpected answer: {exc}")
        if state.json:
            click.echo(json.dumps(event_to_json(event), sort_keys=True))
        else:
            state.console.print(event_line(event))
        last = max(last, event.seq)
    return last


@ctl.group()
def node() -> None:
    """Act on one node."""


@node.command()
@click.argument("node_id", type=click.IntRange(min=1), metavar="ID")
@click.option("--reason", default="", help="Why (recorded with the event).")
@_json_option
@click.pass_context
def drain(ctx: click.Context, node_id: int, reason: str, as_json: bool) -> None:
    """Move every replica and leader off node ID (it then holds nothing)."""
    state = _ctl(ctx, as_json)
    if state.json:
        body = {"reason": reason} if reason else {}
        path = f"/v1/nodes/{node_id}/drain"
        _print_json(_call(lambda: state.client.request("POST", path, body)))
        return
    message = _call(lambda: state.client.drain_node(node_id, reason))
    state.console.print(message)


@node.command("start")
@click.argument("node_id", type=click.IntRange(min=1), metavar="ID")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("cairn-data"),
    show_default=True,
    help="The data directory of the `cairn dev` cluster.",
)
def node_start(node_id: int, data_dir: Path) -> None:
    """Start node ID of a `cairn dev` cluster on this machine again (after it exited or was
    killed): the running `cairn dev` starts it with its own config and data, and keeps
    supervising it."""
    try:
        message = request_start(data_dir, node_id)
    except DevControlError as exc:
        _fail(exc.status, str(exc))
    click.echo(message)


@ctl.group()
def placement() -> None:
    """Declare where replicas go."""


class BoundParam(click.ParamType[bytes]):
    """A range boundary: a slot number (0..16384, 16384 being the end), `end`, or `0x<hex>`
    for an exact range key (two slot bytes, then a key)."""

    name = "bound"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> bytes:
        if isinstance(value, bytes):
            return value
        text = str(value).strip().lower()
        if text == "end":
            return b""
        if text.startswith("0x"):
            try:
                return bytes.fromhex(text[2:])
            except ValueError:
                self.fail(f"{value!r} is not hex", param, ctx)
        try:
            slot = int(text)
        except ValueError:
            self.fail(f"{value!r} is not a slot number, 'end' or 0x<hex>", param, ctx)
        if not 0 <= slot <= SLOT_COUNT:
            self.fail(f"slot {slot} is not in 0..{SLOT_COUNT}", param, ctx)
        return b"" if slot == 0 else slot_bound(slot)  # the keyspace's start is b"", not 0000


@placement.command("set")
@click.option("--replicas", type=click.IntRange(min=1), required=True, help="Default replicas.")
@click.option(
    "--zone-label",
    default="zone",
    show_default=True,
    help="The node label replicas are spread across.",
)
@click.option(
    "--range",
    "ranges",
    type=(BoundParam(), BoundParam(), click.IntRange(min=1)),
    multiple=True,
    metavar="START END REPLICAS",
    help="A rule for keys in [START, END): slots (16384 or 'end' is the end) or 0x<range key>.",
)
@_json_option
@click.pass_context
def placement_set(
    ctx: click.Context,
    replicas: int,
    zone_label: str,
    ranges: tuple[tuple[bytes, bytes, int], ...],
    as_json: bool,
) -> None:
    """Declare the replica count, the zone label, and per key-range rules."""
    state = _ctl(ctx, as_json)
    rules = PlacementRules(
        replicas,
        zone_label,
        tuple(
            RangeRule(start, end, count, zone_label, f"range-{i}")
            for i, (start, end, count) in enumerate(ranges, 1)
        ),
    )
    try:
        rules.validate()
    except InvalidRulesError as exc:
        raise click.UsageError(f"invalid placement rules: {exc}") from None
    if state.json:
        body = rules_to_json(rules)
        _print_json(_call(lambda: state.client.request("POST", "/v1/placement", body)))
        return
    state.console.print(_call(lambda: state.client.set_placement(rules)))


# -- tokens -----------------------------------------------------------------------------

TOKENS_FILE_ENV = "CAIRN_ADMIN_TOKENS_FILE"
DEV_TOKENS_PATH = Path("cairn-data") / DEV_TOKENS_FILE

_tokens_file_option = click.option(
    "--file",
    "path",
    envvar=TOKENS_FILE_ENV,
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEV_TOKENS_PATH,
    show_default=True,
    help=f"The tokens file a node's admin_tokens_file names (or ${TOKENS_FILE_ENV}).",
)


@ctl.group("token")
def token_group() -> None:
    """Create, list and revoke admin tokens (in a node's tokens file, on this machine:
    copy the file to every node; nodes notice the change on their next request)."""


@token_group.command("create")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--name", default="", help="What the token is for (shown by list and in logs).")
@_tokens_file_option
def token_create(role: str, name: str, path: Path) -> None:
    """Add a token and print it, once: only its SHA-256 is stored."""
    try:
        secret, entry = create_token(path, Role(role), name)
    except (TokenFileError, OSError) as exc:
        _fail(2, str(exc))
    click.echo(secret)
    click.echo(f"token {entry.describe()}, role {entry.role}, added to {path}", err=True)


@token_group.command("list")
@_json_option
@_tokens_file_option
@click.pass_context
def token_list(ctx: click.Context, as_json: bool, path: Path) -> None:
    """The tokens of the file: id, name, role, when created (never the token)."""
    as_json = _ctl(ctx, as_json).json
    try:
        entries = read_tokens(path)
    except TokenFileError as exc:
        _fail(2, str(exc))
    if as_json:
        rows = [
            {"id": e.id, "name": e.name, "role": e.role.value, "created": e.created}
            for e in entries
        ]
        _print_json({"tokens": rows})
        return
    for e in entries:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.created))
        click.echo(f"{e.id}  {e.role.value:<5}  {created} UTC  {e.name}")


@token_group.command("revoke")
@click.argument("which", metavar="ID|NAME")
@_tokens_file_option
def token_revoke(which: str, path: Path) -> None:
    """Remove the token(s) with this id or name."""
    try:
        gone = revoke_token(path, which)
    except (TokenFileError, OSError) as exc:
        _fail(2, str(exc))
    for e in gone:
        click.echo(f"revoked token {e.describe()} ({e.role.value})")


@ctl.group()
def region() -> None:
    """Ask for one operator on a region: split, merge, move a replica, transfer a leader."""


_reason_option = click.option("--reason", default="", help="Why (kept with the operator).")
_wait_option = click.option(
    "--wait",
    type=click.FloatRange(min=0, max=3600),
    default=0,
    help="Wait up to this many seconds for the operator to finish (exit 1 unless it succeeds).",
)


def _request(
    ctx: click.Context,
    region_id: int,
    action: str,
    body: dict[str, Any],
    wait: float,
    as_json: bool,
) -> None:
    """POST the request, print the operator started, and optionally wait for its end."""
    state = _ctl(ctx, as_json)
    path = f"/v1/regions/{region_id}/{action}"
    doc = _call(lambda: state.client.request("POST", path, body))
    op = doc.get("operator", {}) if isinstance(doc, dict) else {}
    if wait > 0 and isinstance(op.get("id"), int):
        op = _wait_operator(state, op["id"], wait)
        doc = {"ok": op.get("status") == "succeeded", "operator": op}
    if state.json:
        _print_json(doc)
    else:
        state.console.print(f"{op.get('status', 'started')}: {op.get('description', '')}")
        if op.get("outcome"):
            state.console.print(f"  {op['outcome']}")
    if wait > 0 and op.get("status") != "succeeded":
        sys.exit(1)


def _wait_operator(state: _Ctl, operator_id: int, wait: float) -> dict[str, Any]:
    deadline = time.monotonic() + wait
    while True:
        op: dict[str, Any] = _call(
            lambda: state.client.request("GET", f"/v1/operators/{operator_id}")
        )
        if op.get("status") != "running" or time.monotonic() >= deadline:
            return op
        _sleep(0.2)


@region.command("split")
@click.argument("region_id", type=click.IntRange(min=1), metavar="ID")
@click.option(
    "--slot",
    type=click.IntRange(1, SLOT_COUNT - 1),
    default=None,
    help="Cut where this slot starts.",
)
@click.option("--by-size", is_flag=True, help="Let the leader cut where half the keys lie.")
@_reason_option
@_wait_option
@_json_option
@click.pass_context
def region_split(
    ctx: click.Context,
    region_id: int,
    slot: int | None,
    by_size: bool,
    reason: str,
    wait: float,
    as_json: bool,
) -> None:
    """Split region ID in two (by default halfway through its slots)."""
    if slot is not None and by_size:
        raise click.BadParameter("give --slot or --by-size, not both")
    body: dict[str, Any] = {"reason": reason} if reason else {}
    if slot is not None:
        body["slot"] = slot
    elif by_size:
        body["policy"] = "size"
    _request(ctx, region_id, "split", body, wait, as_json)


@region.command("merge")
@click.argument("region_id", type=click.IntRange(min=1), metavar="ID")
@click.option(
    "--into",
    type=click.IntRange(min=1),
    default=None,
    help="The neighbour to merge into (default: the right one, else the left).",
)
@_reason_option
@_wait_option
@_json_option
@click.pass_context
def region_merge(
    ctx: click.Context, region_id: int, into: int | None, reason: str, wait: float, as_json: bool
) -> None:
    """Merge region ID into a neighbour (its replicas move to the neighbour's nodes first)."""
    body: dict[str, Any] = {"reason": reason} if reason else {}
    if into is not None:
        body["into"] = into
    _request(ctx, region_id, "merge", body, wait, as_json)


@region.command("move")
@click.argument("region_id", type=click.IntRange(min=1), metavar="ID")
@click.option(
    "--from", "src", type=click.IntRange(min=1), required=True, help="The node losing the replica."
)
@click.option(
    "--to", "dst", type=click.IntRange(min=1), required=True, help="The node receiving it."
)
@_reason_option
@_wait_option
@_json_option
@click.pass_context
def region_move(
    ctx: click.Context, region_id: int, src: int, dst: int, reason: str, wait: float, as_json: bool
) -> None:
    """Move region ID's replica from one node to another."""
    body: dict[str, Any] = {"from": src, "to": dst} | ({"reason": reason} if reason else {})
    _request(ctx, region_id, "move", body, wait, as_json)


@region.command("transfer-leader")
@click.argument("region_id", type=click.IntRange(min=1), metavar="ID")
@click.option("--to", "dst", type=click.IntRange(min=1), required=True, help="The node to lead.")
@_reason_option
@_wait_option
@_json_option
@click.pass_context
def region_transfer(
    ctx: click.Context, region_id: int, dst: int, reason: str, wait: float, as_json: bool
) -> None:
    """Hand region ID's leadership to its voter on another node."""
    body: dict[str, Any] = {"to": dst} | ({"reason": reason} if reason else {})
    _request(ctx, region_id, "transfer-leader", body, wait, as_json)
