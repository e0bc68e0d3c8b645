"""A node's configuration: a TOML file and command-line overrides, validated at start.

Every problem is reported as a `ConfigError` naming the offending key, so `cairn server`
can print it and exit with status 2 instead of failing later in some obscure way.

Example `node.toml`:

    node_id = 1
    cluster_id = "dev"
    client_addr = "127.0.0.1:7001"
    # advertise_client_addr = "10.0.0.1:7001"  # named in MOVED (default: client_addr)
    peer_addr = "127.0.0.1:17001"
    admin_addr = "127.0.0.1:27001"   # HTTP admin API and /metrics ("off": none)
    admin_tokens_file = "/etc/cairn/admin_tokens.json"  # `cairn ctl token create --file`
    # admin_metrics_public = true   # /metrics readable without a token (for scrapers)
    redirect = "auto"   # MOVED to cluster-aware clients ("always", "never")
    initial_regions = 1 # regions a new cluster is founded with (cut evenly by slot)
    data_dir = "/var/lib/cairn/1"
    placement_members = 3  # the placement group: the first 3 founding nodes of [peers]
    down_after_s = 30      # a node silent this long has its replicas rebuilt elsewhere
    # join = "10.0.0.1:17001"  # a node that is no founder: any existing node's peer address
    labels = { zone = "eu-1a" }  # replicas of a region go to different zones when they can
    cluster_secret_file = "/etc/cairn/cluster.secret"  # shared by every node (docs/security.md)
    # insecure_peer_port = true  # instead: no peer authentication (a trusted network only)
    # tls_addr = "127.0.0.1:8001"          # a second client port speaking TLS (Redis's tls-port)
    # tls_cert_file = "/etc/cairn/node.crt" # (client_addr = "off": TLS only, docs/security.md)
    # tls_key_file = "/etc/cairn/node.key"
    # tls_ca_cert_file = "/etc/cairn/ca.crt"
    # tls_auth_clients = "yes"             # client certificates: "yes", "optional", "no"
    # peer_tls = true                      # mutual TLS between nodes (Redis's tls-cluster)
    # peer_tls_cert_file = "/etc/cairn/node.crt"  # default: tls_cert_file (names the node id)
    [peers]
    1 = "127.0.0.1:17001"
    2 = "127.0.0.1:17002"
    3 = "127.0.0.1:17003"
    [raft]
    tick_ms = 10
    election_ticks = 100
    heartbeat_ticks = 10
    [limits]
    max_clients = 10000
    [regions]
    split_size_bytes = 100663296   # split a region this large (merge_size_bytes: merge)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cairn.runtime.peer_auth import MIN_SECRET_BYTES
from cairn.runtime.region_layout import PEER_ID_STRIDE
from cairn.store.slot import SLOT_COUNT


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the key."""


def parse_address(key: str, value: Any) -> tuple[str, int]:
    """`host:port` as a (host, port) pair, or `ConfigError` naming `key`."""
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(f"{key}: expected 'host:port', got {value!r}")
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{key}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535 or not host:
        raise ConfigError(f"{key}: {value!r} is not a valid address")
    return host, port


@dataclass(frozen=True, slots=True)
class RaftSettings:
    """Raft timing, in ticks of `tick_ms` milliseconds."""

    tick_ms: int = 10
    election_ticks: int = 100
    heartbeat_ticks: int = 10
    read_mode: str = "lease"
    """"lease" (leader lease, falls back to ReadIndex) or "readindex"."""
    max_clock_drift_ticks: int = 10
    snapshot_threshold: int = 10000
    max_inflight_msgs: int = 256
    max_size_per_msg: int = 1 << 20


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-client and per-server limits on what clients may send and hold."""

    max_clients: int = 10000
    max_bulk_len: int = 0
    """Redis's `proto-max-bulk-len`: the longest argument, refused at its `$<length>`
    header, before any of it is read (`-ERR Protocol error: invalid bulk length`, then
    the connection is closed, as Redis). 0 (the default): `max_entry_bytes` plus
    `BULK_LEN_MARGIN`, so an argument no write could carry is never received whole (Redis's
    default is 512 MiB: a refused 64 MiB SET was read and parsed, holding the loop).
    See docs/security.md, "Limits"."""
    max_multibulk_len: int = 1024 * 1024
    max_inline_len: int = 64 << 10
    max_query_buffer: int = 1 << 30
    max_pending_replies_bytes: int = 64 << 20
    max_pipeline: int = 1024
    request_timeout_ms: int = 2000
    max_transaction_commands: int = 100_000
    """Commands one MULTI may queue (more: an error, and EXEC answers EXECABORT)."""
    max_transaction_bytes: int = 64 << 20
    """Argument bytes one MULTI may queue: the transaction is ONE Raft entry."""
    max_entry_bytes: int = 16 << 20
    """Argument bytes of one replicated write command (a SET's value, an MSET's pairs): it
    is ONE Raft entry, encoded, written, fsynced and sent to every replica while the
    leader's loop waits. A 64 MiB SET stalled a leader for seconds and forced elections;
    past this a write gets `-ERR value too large for one replicated write` (Redis allows
    `proto-max-bulk-len`, 512 MiB). See docs/security.md, "Limits"."""
    max_watched_keys: int = 10_000
    """Keys one connection may WATCH at once."""
    txn_lock_ttl_ms: int = 3000
    """How long a cross-region transaction's locks protect it: past this, another
    transaction or a reader that meets one may roll it back (`cairn.txn`)."""
    async_commit_max_keys: int = 256
    async_commit_max_key_bytes: int = 4096
    """A cross-region transaction locking at most this many keys of at most this many
    bytes in all commits asynchronously (answered once its prewrites succeed); 0 keys:
    never (`cairn.txn.coordinator`, docs/transactions.md)."""
    idempotency_ttl_ms: int = 600_000
    """How long a request id of IDEMPOTENT is remembered (`cairn.store.idempotency`)."""
    idempotency_max_ids: int = 100_000
    """Live request ids one region remembers; a new one beyond is refused."""
    map_resident_limit_bytes: int = 64 << 20
    """The node's file-backed resident set (LMDB's mapped data file, libraries) past which
    it drops the data file's pages from its mappings (`cairn.runtime.map_trim`: they stay
    in the page cache); checked every tenth of a second. 0: never."""
    map_trim_step_bytes: int = 16 << 20
    """How much of LMDB's map a long pass that does not yield (a Raft log compaction) may
    touch between two checks of `map_resident_limit_bytes` made from inside it (each
    check: about 2 microseconds). 0: only the timed checks."""
    txn_status_retention_ms: int = 600_000
    """How long the outcome of a cross-region transaction is kept with its primary key
    after it was decided (`cairn.store.txn_locks`): a lock of it met later than this
    (a node down that long) reads as rolled back."""
    pubsub_output_hard_limit_bytes: int = 32 << 20
    """A subscriber whose unsent messages pass this is disconnected at once (Redis's
    `client-output-buffer-limit pubsub` hard limit)."""
    pubsub_output_soft_limit_bytes: int = 8 << 20
    pubsub_output_soft_limit_seconds: int = 60
    """... or once they have stayed past the soft limit this long (the soft limit)."""
    normal_output_soft_limit_bytes: int = 0
    """A normal client whose unsent replies stay over this (0: no soft limit, Redis's
    default) for `normal_output_soft_limit_seconds` is disconnected; the hard limit is
    `max_pending_replies_bytes`, which also bounds what a region leader queues for a
    follower's clients (`cairn.runtime.client_limits.forwarded_reply_fits`)."""
    normal_output_soft_limit_seconds: int = 0
    max_unauthenticated_per_source: int = 64
    """Connections one source address may hold before they authenticate (with a
    password set); more are refused, so one host cannot take every client slot."""
    auth_timeout_ms: int = 10_000
    """A connection that has not authenticated within this long is closed."""
    idle_timeout_s: int = 0
    """Redis's `timeout`: a client idle this long is closed (0: never)."""
    max_memory_bytes: int = 0
    """Redis's `maxmemory`, for the node's client memory (query buffers and unsent
    replies, not the dataset, which is in LMDB): over it, commands that would add
    memory get Redis's -OOM error (0: no limit)."""
    tenant_report_ms: int = 1000
    """How often a node reports its tenants' usage (`cairn.runtime.tenants`): the quotas
    on keys and bytes are soft by at most this long's writes."""

    def __post_init__(self) -> None:
        if self.max_bulk_len == 0:  # derived: see the field's docstring
            object.__setattr__(self, "max_bulk_len", default_max_bulk_len(self.max_entry_bytes))


BULK_LEN_MARGIN = 1 << 20
"""How far the default `max_bulk_len` reaches past `max_entry_bytes`: a write a little over
the write limit still gets the error that names `max_entry_bytes`, not a protocol error."""


def default_max_bulk_len(max_entry_bytes: int) -> int:
    """`max_bulk_len` when the config leaves it at 0: `max_entry_bytes` plus the margin
    (at least Redis's own minimum of `proto-max-bulk-len`, 1 MiB, also the margin)."""
    return max(max_entry_bytes, 0) + BULK_LEN_MARGIN


@dataclass(frozen=True, slots=True)
class RegionSettings:
    """When the placement driver splits and merges regions (read by the founding nodes
    that host the placement group, when it starts; the group then keeps them)."""

    split_size_bytes: int = 96 << 20
    """A region this large is split (at the slot boundary nearest its middle key)."""
    split_write_bytes_per_s: int = 32 << 20
    """A region written this fast is split (load-based split)."""
    merge_size_bytes: int = 20 << 20
    """A region smaller than this merges with a small neighbour (0: never merge)."""
    merge_keys: int = 200_000
    """... if it also holds fewer keys than this."""
    split_merge_interval_s: int = 3600
    """A region born of a split is not merged again for this long."""


TLS_AUTH_CLIENTS = ("yes", "optional", "no")


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """The TLS client port and the admin API's HTTPS (`cairn.runtime.tls`), as Redis's
    `tls-port`, `tls-cert-file`, `tls-key-file`, `tls-ca-cert-file`, `tls-auth-clients`.
    The files are read at start and again on SIGHUP."""

    addr: tuple[str, int]
    cert_file: Path
    key_file: Path
    ca_cert_file: Path | None = None
    """The CA client certificates must be signed by (required unless auth_clients is no)."""
    auth_clients: str = "yes"
    """"yes": a client certificate signed by the CA is required; "optional": checked when
    one is presented; "no": not asked for. Redis's default is yes, and so is Cairn's."""
    handshake_timeout_s: float = 10.0
    """A connection that has not finished its TLS handshake within this long is closed."""


@dataclass(frozen=True, slots=True)
class PeerTlsSettings:
    """Mutual TLS on the peer port (`peer_tls = true`, Redis's `tls-cluster yes`): every
    peer connection, both ways, with a certificate signed by `ca_cert_file` that names
    the node's id (`cairn.runtime.peer_auth.certificate_node_id`). The files default to
    the client TLS ones; read at start and again on SIGHUP (`cairn.runtime.tls.PeerTls`)."""

    cert_file: Path
    key_file: Path
    ca_cert_file: Path
    keys: tuple[str, str, str] = (
        "peer_tls_cert_file",
        "peer_tls_key_file",
        "peer_tls_ca_cert_file",
    )
    """The config key each file came from (for messages): `peer_tls_*` or `tls_*`."""


PEER_TLS_KEYS = ("peer_tls", "peer_tls_cert_file", "peer_tls_key_file", "peer_tls_ca_cert_file")


def _peer_tls(raw: dict[str, Any], tls: TlsSettings | None) -> PeerTlsSettings | None:
    """The `peer_tls*` keys: None unless `peer_tls = true` (then no other may be set);
    each file defaults to its `tls_*` counterpart."""
    if not _flag(raw, "peer_tls"):
        stray = sorted(k for k in raw if k.startswith("peer_tls_"))
        if stray:
            raise ConfigError(f"{stray[0]}: set without peer_tls = true")
        return None
    inherited = {
        "cert_file": tls.cert_file if tls else None,
        "key_file": tls.key_file if tls else None,
        "ca_cert_file": tls.ca_cert_file if tls else None,
    }
    files: dict[str, Path] = {}
    keys: list[str] = []
    for name, path in inherited.items():
        own = _path(raw, f"peer_tls_{name}")
        if own is not None:
            files[name], key = own, f"peer_tls_{name}"
        elif path is not None:
            files[name], key = path, f"tls_{name}"
        else:
            raise ConfigError(f"peer_tls_{name}: required with peer_tls (or tls_{name})")
        keys.append(key)
    return PeerTlsSettings(keys=(keys[0], keys[1], keys[2]), **files)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything one `cairn server` process needs."""

    node_id: int
    data_dir: Path
    client_addr: tuple[str, int] = ("127.0.0.1", 6379)
    advertise_client_addr: tuple[str, int] | None = None
    """The address other nodes and cluster clients are told to use (MOVED, CLUSTER SLOTS);
    `client_addr` when not set (set it when binding 0.0.0.0 or behind NAT)."""
    peer_addr: tuple[str, int] = ("127.0.0.1", 16379)
    admin_addr: tuple[str, int] | None = None
    """The HTTP admin API (`cairn ctl`, /metrics); None: not served. From a config file it
    defaults to the client port + `ADMIN_PORT_OFFSET`."""
    admin_tokens_file: Path | None = None
    """The admin API's tokens (hashed, `cairn.runtime.admin_tokens`), read again when it changes;
    None: no token, so the admin API refuses every request, and does not start at all
    when `admin_addr` is not loopback."""
    admin_metrics_public: bool = False
    """Whether `GET /metrics` needs no token (every other request still does)."""
    peers: dict[int, tuple[str, int]] = field(default_factory=dict)
    cluster_id: str = "cairn"
    password: str | None = field(default=None, repr=False)
    """The password clients AUTH with (Redis's `requirepass`): from `password_file`, the
    environment (`CAIRN_PASSWORD`, read by `cairn server`) or inline; never a flag."""
    protected_mode: bool = True
    """Redis's `protected-mode`: with no password, clients from other hosts are refused
    (`cairn.runtime.protected_mode`)."""
    log_level: str = "info"
    raft: RaftSettings = field(default_factory=RaftSettings)
    limits: Limits = field(default_factory=Limits)
    regions: RegionSettings = field(default_factory=RegionSettings)
    initial_regions: int = 1
    """How many regions (Raft groups) a new cluster is founded with, cut at slot
    boundaries, evenly, each on every node of `peers` (`cairn.runtime.region_layout`).
    Read only when the data directory is empty; a restart recovers what is on disk."""
    redirect: str = "auto"
    """When to answer MOVED instead of forwarding: "auto" (to clients that asked for the
    layout or sent READONLY/READWRITE/ASKING), "always" (as Redis Cluster) or "never"."""
    placement_members: int = 3
    """The placement group's size: it runs on the first this many founding nodes of
    `peers` (by id), or on all of them when there are fewer."""
    down_after_s: float = 30.0
    """A node silent this long is down, and its replicas are rebuilt elsewhere."""
    placement_heartbeat_ms: int = 500
    """How often a node heartbeats the placement group (its regions' leaders with it)."""
    labels: dict[str, str] = field(default_factory=dict)
    """This node's labels (`zone`, `rack`, ...): the placement driver spreads a region's
    replicas over the values of the label `cairn ctl placement set --zone-label` names."""
    join: tuple[str, int] | None = None
    """The peer address of any node of an existing cluster: this node is no founder, it
    registers with the placement group and receives replicas (`peers` may list only it)."""
    cluster_secret: bytes | None = field(default=None, repr=False)
    """The secret every node of the cluster shares: peers prove they know it before the
    peer port accepts anything from them (`cairn.runtime.peer_auth`). Required unless
    `insecure_peer_port` is set; from the file `cluster_secret_file` names, or inline."""
    insecure_peer_port: bool = False
    """Run without a cluster secret: anyone who can reach the peer port controls the
    cluster. Only for a network where nothing else can connect; logged loudly."""
    peer_handshake_timeout_s: float = 5.0
    """A peer connection that has not authenticated within this long is closed."""
    tls: TlsSettings | None = None
    """The TLS client port and HTTPS admin API; None: no TLS."""
    peer_tls: PeerTlsSettings | None = None
    """Mutual TLS on the peer port; None: plain TCP (authenticated by the cluster secret)."""
    client_plaintext: bool = True
    """Whether `client_addr` serves plain text. `client_addr = "off"` (Redis's `port 0`)
    turns it off; `client_addr` is then the TLS address (announced, in INFO)."""
    redis_params: dict[str, str] = field(default_factory=dict)
    """The `[redis]` table: CONFIG parameters CONFIG REWRITE saved, applied at start as a
    CONFIG SET (`cairn.runtime.config_rewrite`)."""
    config_file: Path | None = None
    """The TOML file this config was read from (CONFIG REWRITE writes it); None: none."""

    @property
    def advertised_client_addr(self) -> tuple[str, int]:
        """The client address this node announces."""
        return self.advertise_client_addr or self.client_addr

    def validate(self) -> NodeConfig:
        """Return self, or raise `ConfigError` naming the first bad key."""
        if self.node_id <= 0:
            raise ConfigError(f"node_id: must be a positive integer, got {self.node_id}")
        if self.node_id not in self.peers and self.join is None:
            raise ConfigError(f"peers: must list this node ({self.node_id}) with its peer address")
        if max(self.peers.keys() | {self.node_id}) >= PEER_ID_STRIDE:
            raise ConfigError(f"peers: node ids must be below {PEER_ID_STRIDE}")
        if not 1 <= self.initial_regions <= SLOT_COUNT:
            raise ConfigError(f"initial_regions: must be in 1..{SLOT_COUNT}")
        if self.redirect not in REDIRECT_MODES:
            raise ConfigError(f"redirect: expected one of {', '.join(REDIRECT_MODES)}")
        if self.placement_members < 1:
            raise ConfigError(f"placement_members: must be positive, got {self.placement_members}")
        if not self.down_after_s > 0:
            raise ConfigError(f"down_after_s: must be positive, got {self.down_after_s}")
        if self.placement_heartbeat_ms <= 0:
            raise ConfigError("placement_heartbeat_ms: must be a positive integer")
        if self.placement_heartbeat_ms >= self.down_after_s * 1000:
            raise ConfigError("placement_heartbeat_ms: must be shorter than down_after_s")
        _check_peer_auth(self)
        _check_tls(self)
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"log_level: unknown level {self.log_level!r}")
        r = self.raft
        if r.read_mode not in ("lease", "readindex"):
            expected = "expected 'lease' or 'readindex'"
            raise ConfigError(f"raft.read_mode: {expected}, got {r.read_mode!r}")
        _positive("raft", r, ("tick_ms", "election_ticks", "heartbeat_ticks", "snapshot_threshold"))
        if r.heartbeat_ticks >= r.election_ticks:
            raise ConfigError("raft.heartbeat_ticks: must be smaller than raft.election_ticks")
        if not 0 <= r.max_clock_drift_ticks < r.election_ticks:
            raise ConfigError("raft.max_clock_drift_ticks: must be in [0, election_ticks)")
        _positive(
            "limits", self.limits, tuple(f.name for f in fields(Limits) if f.name not in _ZERO_OK)
        )
        for name in _ZERO_OK:
            value = getattr(self.limits, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"limits.{name}: must not be negative, got {value!r}")
        g = self.regions
        _positive("regions", g, ("split_size_bytes", "split_write_bytes_per_s"))
        for name in ("merge_size_bytes", "merge_keys", "split_merge_interval_s"):
            if getattr(g, name) < 0:
                raise ConfigError(f"regions.{name}: must not be negative")
        if 2 * g.merge_size_bytes > g.split_size_bytes:
            raise ConfigError(
                "regions.merge_size_bytes: two merged regions would be split again "
                "(keep it at most half of regions.split_size_bytes)"
            )
        return self


def _check_peer_auth(config: NodeConfig) -> None:
    """A node refuses to start with an open peer port unless told so explicitly."""
    secret = config.cluster_secret
    if config.peer_tls is not None and config.insecure_peer_port:
        raise ConfigError("insecure_peer_port: contradicts peer_tls (TLS authenticates peers)")
    if secret is None and not config.insecure_peer_port and config.peer_tls is None:
        raise ConfigError(
            "cluster_secret_file: required: every node must share a cluster secret that "
            "authenticates the peer port (e.g. `head -c 32 /dev/urandom | base64 > "
            "cluster.secret; chmod 600 cluster.secret`), or turn on peer_tls (mutual TLS "
            "between nodes), or set insecure_peer_port = true "
            "on a network no one else can reach (see docs/security.md)"
        )
    if secret is not None and config.insecure_peer_port:
        raise ConfigError("insecure_peer_port: contradicts the cluster secret that is set")
    if secret is not None and len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"cluster_secret: must be at least {MIN_SECRET_BYTES} bytes long")
    if not 0 < config.peer_handshake_timeout_s <= 600:
        raise ConfigError("peer_handshake_timeout_s: must be in (0, 600] seconds")


def _check_tls(config: NodeConfig) -> None:
    """TLS settings that cannot work together are refused before any file is read."""
    tls = config.tls
    if tls is None:
        if not config.client_plaintext:
            raise ConfigError('client_addr: "off" needs tls_addr (no client port otherwise)')
        return
    if tls.auth_clients not in TLS_AUTH_CLIENTS:
        raise ConfigError(f"tls_auth_clients: expected one of {', '.join(TLS_AUTH_CLIENTS)}")
    if tls.auth_clients != "no" and tls.ca_cert_file is None:
        raise ConfigError(
            f"tls_ca_cert_file: required when tls_auth_clients is {tls.auth_clients} "
            "(the CA client certificates are checked against)"
        )
    if config.client_plaintext and tls.addr == config.client_addr and tls.addr[1] != 0:
        raise ConfigError("tls_addr: must differ from client_addr")
    if not 0 < tls.handshake_timeout_s <= 600:
        raise ConfigError("tls_handshake_timeout_s: must be in (0, 600] seconds")


def _positive(section: str, obj: Any, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{section}.{name}: must be a positive integer, got {value!r}")


_ZERO_OK = (
    "normal_output_soft_limit_bytes",
    "normal_output_soft_limit_seconds",
    "idle_timeout_s",
    "max_memory_bytes",
    "map_resident_limit_bytes",
    "async_commit_max_keys",
    "async_commit_max_key_bytes",
    "map_trim_step_bytes",
)
"""`[limits]` keys where 0 means "no limit", as in Redis (for async commit: never)."""
REDIRECT_MODES = ("auto", "always", "never")
ADMIN_PORT_OFFSET = 20000
"""The admin API listens this far above the client port unless `admin_addr` says otherwise
(the peer port is conventionally the client port + 10000)."""

_TOP_KEYS = {
    "redis",
    "node_id",
    "data_dir",
    "client_addr",
    "advertise_client_addr",
    "admin_addr",
    "admin_tokens_file",
    "admin_metrics_public",
    "redirect",
    "initial_regions",
    "placement_members",
    "down_after_s",
    "placement_heartbeat_ms",
    "join",
    "labels",
    "cluster_secret",
    "cluster_secret_file",
    "insecure_peer_port",
    "peer_handshake_timeout_s",
    "tls_addr",
    "tls_cert_file",
    "tls_key_file",
    "tls_ca_cert_file",
    "tls_auth_clients",
    "tls_handshake_timeout_s",
    *PEER_TLS_KEYS,
    "peer_addr",
    "peers",
    "cluster_id",
    "password",
    "password_file",
    "protected_mode",
    "log_level",
    "raft",
    "limits",
    "regions",
}


def _section(name: str, cls: type[Any], raw: Any) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: expected a table")
    known = {f.name: f for f in fields(cls)}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"{name}.{key}: unknown key")
        default = getattr(cls(), key)
        if type(value) is not type(default):
            expected = type(default).__name__
            raise ConfigError(f"{name}.{key}: expected {expected}, got {value!r}")
    return cls(**raw)


def from_mapping(raw: dict[str, Any]) -> NodeConfig:
    """Build and validate a config from parsed TOML (or any nested mapping)."""
    for key in raw:
        if key not in _TOP_KEYS:
            raise ConfigError(f"{key}: unknown key")
    if "node_id" not in raw:
        raise ConfigError("node_id: required")
    if "data_dir" not in raw:
        raise ConfigError("data_dir: required")
    node_id = raw["node_id"]
    if not isinstance(node_id, int) or isinstance(node_id, bool):
        raise ConfigError(f"node_id: expected an integer, got {node_id!r}")
    peers_raw = raw.get("peers", {})
    if not isinstance(peers_raw, dict):
        raise ConfigError("peers: expected a table of node id = 'host:port'")
    peers: dict[int, tuple[str, int]] = {}
    for key, value in peers_raw.items():
        try:
            peer_id = int(key)
        except ValueError:
            raise ConfigError(f"peers.{key}: node ids must be integers") from None
        peers[peer_id] = parse_address(f"peers.{key}", value)
    for key in ("cluster_id", "log_level", "redirect"):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"{key}: expected a string")
    password = _password(raw)
    tls = _tls(raw)
    plaintext = raw.get("client_addr") != "off"
    if plaintext:
        client_addr = parse_address("client_addr", raw.get("client_addr", "127.0.0.1:6379"))
    elif tls is None:
        raise ConfigError('client_addr: "off" needs tls_addr (no client port otherwise)')
    else:
        client_addr = tls.addr
    config = NodeConfig(
        node_id=node_id,
        data_dir=Path(str(raw["data_dir"])),
        client_addr=client_addr,
        advertise_client_addr=(
            parse_address("advertise_client_addr", raw["advertise_client_addr"])
            if "advertise_client_addr" in raw
            else None
        ),
        admin_addr=_admin_addr(raw, client_addr),
        admin_tokens_file=_path(raw, "admin_tokens_file"),
        admin_metrics_public=_flag(raw, "admin_metrics_public", False),
        redirect=raw.get("redirect", "auto"),
        initial_regions=_integer(raw, "initial_regions", 1),
        placement_members=_integer(raw, "placement_members", 3),
        down_after_s=_seconds(raw, "down_after_s", 30.0),
        placement_heartbeat_ms=_integer(raw, "placement_heartbeat_ms", 500),
        join=parse_address("join", raw["join"]) if "join" in raw else None,
        labels=_labels(raw.get("labels", {})),
        cluster_secret=_cluster_secret(raw),
        insecure_peer_port=_flag(raw, "insecure_peer_port"),
        peer_handshake_timeout_s=_seconds(raw, "peer_handshake_timeout_s", 5.0),
        tls=tls,
        peer_tls=_peer_tls(raw, tls),
        client_plaintext=plaintext,
        peer_addr=parse_address("peer_addr", raw.get("peer_addr", "127.0.0.1:16379")),
        peers=peers,
        cluster_id=raw.get("cluster_id", "cairn"),
        password=password,
        protected_mode=_flag(raw, "protected_mode", True),
        log_level=raw.get("log_level", "info"),
        raft=_section("raft", RaftSettings, raw.get("raft")),
        limits=_section("limits", Limits, raw.get("limits")),
        regions=_section("regions", RegionSettings, raw.get("regions")),
        redis_params=_redis_params(raw.get("redis", {})),
    )
    return config.validate()


def _redis_params(raw: Any) -> dict[str, str]:
    """The `[redis]` table: parameter names and string values (checked at start)."""
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ConfigError("redis: expected a table of CONFIG parameter = \"value\"")
    return {str(k): v for k, v in raw.items()}


def _cluster_secret(raw: dict[str, Any]) -> bytes | None:
    """The secret inline (`cluster_secret`) or read from `cluster_secret_file` (so it is
    never on a command line or in a config file others may read); surrounding
    whitespace (a trailing newline) is not part of it."""
    inline, path = raw.get("cluster_secret"), raw.get("cluster_secret_file")
    if inline is not None and path is not None:
        raise ConfigError("cluster_secret: set it or cluster_secret_file, not both")
    if inline is not None:
        if not isinstance(inline, str) or not inline.strip():
            raise ConfigError("cluster_secret: expected a non-empty string")
        return inline.strip().encode()
    if path is None:
        return None
    if not isinstance(path, str) or not path:
        raise ConfigError("cluster_secret_file: expected a file name")
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cluster_secret_file: cannot read {path}: {exc.strerror}") from None
    if not secret:
        raise ConfigError(f"cluster_secret_file: {path} is empty")
    return secret


def _password(raw: dict[str, Any]) -> str | None:
    """The client password inline (`password`) or the first line of `password_file`
    (so it is never on a command line; a trailing newline is not part of it)."""
    inline, path = raw.get("password"), raw.get("password_file")
    if inline is not None and path is not None:
        raise ConfigError("password: set it or password_file, not both")
    if inline is not None:
        if not isinstance(inline, str) or not inline:
            raise ConfigError("password: expected a non-empty string")
        return inline
    if path is None:
        return None
    if not isinstance(path, str) or not path:
        raise ConfigError("password_file: expected a file name")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"password_file: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"password_file: {path} is not UTF-8 text") from None
    password = text.strip("\r\n")
    if not password:
        raise ConfigError(f"password_file: {path} is empty")
    return password


def _labels(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise ConfigError('labels: expected a table of name = "value"')
    for name, value in raw.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(f"labels.{name}: expected a non-empty string, got {value!r}")
    return dict(raw)


def _path(raw: dict[str, Any], key: str) -> Path | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}: expected a file path, got {value!r}")
    return Path(value)


def _flag(raw: dict[str, Any], key: str, default: bool = False) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    return value


def _integer(raw: dict[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    return value


def _seconds(raw: dict[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ConfigError(f"{key}: expected a number of seconds, got {value!r}")
    return float(value)


def _tls(raw: dict[str, Any]) -> TlsSettings | None:
    """The `tls_*` keys, or None when `tls_addr` is not set (then no other may be)."""
    if "tls_addr" not in raw:
        stray = sorted(k for k in raw if k.startswith("tls_"))
        if stray:
            raise ConfigError(f"{stray[0]}: set without tls_addr (the TLS client port)")
        return None
    cert, key = _path(raw, "tls_cert_file"), _path(raw, "tls_key_file")
    if cert is None:
        raise ConfigError("tls_cert_file: required when tls_addr is set")
    if key is None:
        raise ConfigError("tls_key_file: required when tls_addr is set")
    auth = raw.get("tls_auth_clients", "yes")
    if isinstance(auth, bool):  # TOML's true/false for Redis's yes/no
        auth = "yes" if auth else "no"
    if auth not in TLS_AUTH_CLIENTS:
        expected = ", ".join(TLS_AUTH_CLIENTS)
        raise ConfigError(f"tls_auth_clients: expected one of {expected}, got {auth!r}")
    return TlsSettings(
        addr=parse_address("tls_addr", raw["tls_addr"]),
        cert_file=cert,
        key_file=key,
        ca_cert_file=_path(raw, "tls_ca_cert_file"),
        auth_clients=auth,
        handshake_timeout_s=_seconds(raw, "tls_handshake_timeout_s", 10.0),
    )


def _admin_addr(raw: dict[str, Any], client_addr: tuple[str, int]) -> tuple[str, int] | None:
    value = raw.get("admin_addr")
    if value == "off":
        return None
    if value is not None:
        return parse_address("admin_addr", value)
    host, port = client_addr
    if port == 0:
        return host, 0
    if port + ADMIN_PORT_OFFSET > 65535:
        raise ConfigError(
            f"admin_addr: the client port + {ADMIN_PORT_OFFSET} is over 65535; "
            'set admin_addr or "off"'
        )
    return host, port + ADMIN_PORT_OFFSET


def load(path: Path, overrides: dict[str, Any] | None = None) -> NodeConfig:
    """Read a TOML file, apply command-line overrides (top-level keys), and validate."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from None
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return replace(from_mapping(raw), config_file=path.resolve())


def with_overrides(config: NodeConfig, **changes: Any) -> NodeConfig:
    """A copy with some top-level fields replaced, validated again."""
    return replace(config, **changes).validate()
