"""Redis 7.0 ACL users, pure: rules, canonical descriptions, the permission check, the log.

The node wires it (`cairn.runtime.acl_commands`); the cluster replicates users as their
canonical descriptions in the placement metadata (`cairn.placement.metadata`).
"""

from cairn.store.acl.catalog import CATEGORIES, Catalog
from cairn.store.acl.check import Denial, check, unrestricted
from cairn.store.acl.log import AclLog, LogEntry
from cairn.store.acl.selector import Selector
from cairn.store.acl.user import (
    AclRuleError,
    User,
    apply_rules,
    default_user,
    describe,
    hash_password,
    new_user,
    parse_description,
)

__all__ = [
    "CATEGORIES",
    "AclLog",
    "AclRuleError",
    "Catalog",
    "Denial",
    "LogEntry",
    "Selector",
    "User",
    "apply_rules",
    "check",
    "default_user",
    "describe",
    "hash_password",
    "new_user",
    "parse_description",
    "unrestricted",
]
