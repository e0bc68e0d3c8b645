"""Scripts confined to their declared keys: how a script runs inside a cross-region
transaction (docs/scripting.md, "Scripts over several regions").

Theory of operation. A script whose declared keys lie in several regions runs as a
cross-region transaction (`cairn.txn`): the coordinator locks the declared keys, reads
their values, and runs the script once on a scratch machine holding only those values
(`cairn.store.txn_scratch`). A key the script did not declare is neither locked nor
loaded: reading it there would silently answer "absent", writing it would write a key no
lock protects. So on that machine a script may name only its declared keys, and no
command that names no key (DBSIZE, KEYS, SCAN ...: the scratch keyspace is not the
region's). The scratch machine's scope is `DECLARED_KEYS_ONLY`; the engine
(`engine._Run`) sees it and checks each `redis.call` against the script's KEYS. A call
outside them fails in the script, and the whole run then ends with `UNDECLARED` or
`KEYLESS` as its reply, its writes discarded, whether or not the script caught the
error (`redis.pcall`): the script never saw a value it could not be given, and nothing it
did after that is kept. Redis Cluster refuses such a script as well (its undeclared key
hashes to another node).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from cairn.resp.reply import ErrorReply
from cairn.store.scope import Scope

__all__ = [
    "CROSS_REGION_SCRIPTS",
    "DECLARED_KEYS_ONLY",
    "KEYLESS",
    "UNDECLARED",
    "DeclaredKeysScope",
    "confined",
]

CROSS_REGION_SCRIPTS = frozenset({"eval", "eval_ro", "fcall", "fcall_ro"})
"""The script commands (as routed: EVALSHA arrives as EVAL) that run as a cross-region
transaction when their declared keys lie in several regions."""

UNDECLARED = ErrorReply(
    "ERR Script attempted to access a key it did not declare: a script whose keys lie in "
    "several regions may use only its declared keys (its writes were discarded)"
)
KEYLESS = ErrorReply(
    "ERR Script attempted to run a command that names no key: a script whose keys lie in "
    "several regions may use only its declared keys (its writes were discarded)"
)


@dataclass(frozen=True, slots=True)
class DeclaredKeysScope(Scope):
    """The whole keyspace's records (a scratch machine's), where a script may use only
    the keys it declares (module docstring)."""


DECLARED_KEYS_ONLY = DeclaredKeysScope()


def confined(scope: Scope) -> bool:
    """Whether scripts run under `scope` may use only their declared keys."""
    return isinstance(scope, DeclaredKeysScope)
