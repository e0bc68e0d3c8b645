"""Tenants: ACL users confined to a key prefix, with quotas enforced cluster-wide.

Theory of operation. A tenant is placement-group state, like the ACL users: `SetTenant`
records its name, key prefix and quotas and, in the same command, its ACL user (same
name, confined to the prefix: `user_rules`), so a tenant never exists without its user
nor its user without the tenant's quotas; `DelTenant` removes both. Usage is soft state:
every node, every report interval, counts the keys and bytes under each tenant's prefix
in the regions it leads and proposes a `ReportTenantUsage`; the metadata keeps the latest
count of each region (replaced by the next report of that region, whichever node leads
it then; dropped when the region is gone) and answers the report with every tenant's
summed usage (`TenantTable`), which is how each node learns the table it enforces. A
tenant's keys hash over every slot, so every region reports for every tenant.

Quotas are therefore soft by at most one report interval's writes (as TiKV's and
Cellar's quotas are): a node refuses a tenant's writes from the first table that shows it
at or over a quota, and lets them through again from the first that shows it under.
Operations per second are a per-node token bucket (`TokenBucket`), decided on each node
without the placement group. Pure: no clock, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_TENANTS = 1000
"""Tenants a cluster may hold (every report carries a count per tenant per region)."""
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
"""A tenant's name, which is also its ACL user's."""
PREFIX_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._/-]{0,63}")
"""A key prefix: no glob characters, so the ACL pattern `~P*` matches exactly it."""
MAX_QUOTA = 2**62
"""The largest quota (0 means unlimited)."""
QUOTAS = ("max-keys", "max-bytes", "max-ops")
"""The quota names, as errors, the admin API and `/metrics` spell them."""


class TenantError(ValueError):
    """A tenant definition that cannot be (bad name, prefix or quota)."""


@dataclass(frozen=True, slots=True)
class TenantSpec:
    """A tenant: its name (and ACL user's), key prefix, and quotas (0: unlimited).
    `max_ops` is per node and per second; the others are cluster-wide."""

    name: str
    prefix: str
    max_keys: int = 0
    max_bytes: int = 0
    max_ops: int = 0

    def validate(self) -> None:
        """`TenantError` unless every field is acceptable."""
        if NAME_PATTERN.fullmatch(self.name) is None or self.name == "default":
            raise TenantError(
                f"invalid tenant name {self.name!r}: 1 to 32 letters, digits, '_' or '-' "
                "(starting with a letter or digit), and not 'default'"
            )
        if PREFIX_PATTERN.fullmatch(self.prefix) is None:
            raise TenantError(
                f"invalid key prefix {self.prefix!r}: 1 to 64 letters, digits or ':._/-' "
                "(starting with a letter or digit)"
            )
        for quota, value in zip(QUOTAS, (self.max_keys, self.max_bytes, self.max_ops), strict=True):
            if not 0 <= value <= MAX_QUOTA:
                raise TenantError(f"invalid {quota} {value}: 0 (unlimited) to {MAX_QUOTA}")


@dataclass(frozen=True, slots=True)
class TenantUsage:
    """A tenant's keys and bytes (in one region, or summed over the cluster)."""

    name: str
    keys: int
    bytes: int


@dataclass(frozen=True, slots=True)
class RegionUsage:
    """One region's usage per tenant, as its leader counted it."""

    region_id: int
    usage: tuple[TenantUsage, ...]


@dataclass(frozen=True, slots=True)
class TenantState:
    """A tenant with its cluster-wide usage (as of the last reports)."""

    spec: TenantSpec
    keys: int = 0
    bytes: int = 0
    regions: int = 0
    """How many regions' reports the usage sums."""

    def over_quota(self) -> str | None:
        """The cluster-wide quota (`max-keys` or `max-bytes`) the tenant is at or over."""
        if self.spec.max_keys and self.keys >= self.spec.max_keys:
            return "max-keys"
        if self.spec.max_bytes and self.bytes >= self.spec.max_bytes:
            return "max-bytes"
        return None


def quota_error(state: TenantState, quota: str) -> str:
    """The error text of a command refused by `quota` (documented in docs/security.md)."""
    spec = state.spec
    if quota == "max-ops":
        return f"ERR tenant '{spec.name}' is over its max-ops quota ({spec.max_ops}/s on this node)"
    limit = spec.max_keys if quota == "max-keys" else spec.max_bytes
    used = state.keys if quota == "max-keys" else state.bytes
    return (
        f"ERR tenant '{spec.name}' is over its {quota} quota ({limit}; {used} used): "
        "delete keys to write again"
    )


def user_rules(prefix: str) -> tuple[str, ...]:
    """The ACL rules (besides the password) of a tenant's user: on, its prefix's keys and
    channels only, every command but the administrative and dangerous ones."""
    return ("on", f"~{prefix}*", f"&{prefix}*", "+@all", "-@admin", "-@dangerous")


def overlapping(prefix: str, others: list[str]) -> str | None:
    """A prefix of `others` that `prefix` starts or is started by (shared keys)."""
    for other in others:
        if other.startswith(prefix) or prefix.startswith(other):
            return other
    return None


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """A token bucket of `rate` tokens per second, holding at most `rate` (one second's
    burst); `take` is pure: it returns the bucket after the attempt."""

    rate: int
    tokens: float
    at: float

    @staticmethod
    def full(rate: int, now: float) -> TokenBucket:
        """A full bucket at `now`."""
        return TokenBucket(rate, float(rate), now)

    def take(self, now: float) -> tuple[bool, TokenBucket]:
        """(whether one token was there, the bucket after) at time `now` (seconds)."""
        tokens = min(float(self.rate), self.tokens + max(0.0, now - self.at) * self.rate)
        if tokens >= 1.0:
            return True, TokenBucket(self.rate, tokens - 1.0, now)
        return False, TokenBucket(self.rate, tokens, now)


class TenantBook:
    """The placement metadata's tenants and their latest usage reports."""

    def __init__(self) -> None:
        self.specs: dict[str, TenantSpec] = {}
        self.usage: dict[int, RegionUsage] = {}
        """The latest report of each region."""

    def refusal(self, spec: TenantSpec, acl_users: dict[str, str]) -> str | None:
        """Why `spec` cannot be created (None: it can)."""
        try:
            spec.validate()
        except TenantError as exc:
            return str(exc)
        if spec.name in self.specs:
            return f"tenant '{spec.name}' exists"
        if spec.name in acl_users:
            return f"an ACL user named '{spec.name}' exists"
        if len(self.specs) >= MAX_TENANTS:
            return f"the cluster holds {MAX_TENANTS} tenants, the most it may"
        other = overlapping(spec.prefix, [s.prefix for s in self.specs.values()])
        if other is not None:
            return f"prefix '{spec.prefix}' overlaps tenant prefix '{other}'"
        return None

    def report(self, regions: tuple[RegionUsage, ...], live: set[int]) -> None:
        """Take the reports of `regions`; forget the reports of regions not in `live`."""
        for usage in regions:
            if usage.region_id in live:
                counts = {u.name: u for u in self._known(usage.region_id)}
                counts.update((u.name, u) for u in usage.usage if u.name in self.specs)
                merged = tuple(counts[n] for n in sorted(counts))
                self.usage[usage.region_id] = RegionUsage(usage.region_id, merged)
        for region_id in [r for r in self.usage if r not in live]:
            del self.usage[region_id]

    def _known(self, region_id: int) -> tuple[TenantUsage, ...]:
        """The region's latest counts of tenants that still exist (a report replaces
        only the tenants it names: a node that does not know a tenant yet keeps the
        region's last count of it)."""
        known = self.usage.get(region_id)
        return () if known is None else tuple(u for u in known.usage if u.name in self.specs)

    def table(self) -> tuple[TenantState, ...]:
        """Every tenant with its usage summed over the regions' latest reports."""
        return sum_usage(self.specs, self.usage.values())


def sum_usage(
    specs: dict[str, TenantSpec], reports: Iterable[RegionUsage]
) -> tuple[TenantState, ...]:
    """Each tenant of `specs` (by name) with the keys and bytes of `reports` summed;
    tenants no report names have zero usage."""
    keys = dict.fromkeys(specs, 0)
    size = dict.fromkeys(specs, 0)
    count = dict.fromkeys(specs, 0)
    for report in reports:
        for usage in report.usage:
            if usage.name in keys:
                keys[usage.name] += usage.keys
                size[usage.name] += usage.bytes
                count[usage.name] += 1
    return tuple(TenantState(specs[n], keys[n], size[n], count[n]) for n in sorted(specs))
