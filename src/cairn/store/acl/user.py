"""ACL users: Redis 7.0's ACL SETUSER rules, and the canonical rule string of a user.

Theory of operation. A `User` is its flags, its passwords, its root selector (the
`Selector` fields it inherits: the rules given outside parentheses) and its further
`selectors`, one per `(...)` group (`cairn.store.acl.selector`). It is mutable while
rules apply (`apply_rules` works on a copy and returns it only when every rule is
valid, as ACL SETUSER changes nothing on an error). Arguments are first merged into
selector groups as Redis's ACLMergeSelectorArguments merges them (`(~a:*` `+get)` is
one group, `(~a:* +get)`), and a group's inside is split as sdssplitargs splits it.

`describe` writes the user back as rules in Redis's canonical order (flags, passwords,
the root selector's keys, channels and commands, then each selector in parentheses):
ACL LIST's line without `user <name> `, and the line Redis writes in an ACL file.
Parsing a description gives the same user back: the description is what the cluster
replicates (`cairn.placement`) and snapshots, and every node parses it into its own
table.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cairn.store.acl.catalog import Catalog
from cairn.store.acl.selector import (
    ALL_PERMS,
    READ,
    SELECTOR_SIMPLE,
    WRITE,
    AclRuleError,
    Selector,
    apply_selector_rule,
    c_string,
    channel_rules,
    command_rules,
    describe_selector,
    key_rules,
    split_args,
)

__all__ = [
    "ALL_PERMS",
    "READ",
    "WRITE",
    "AclRuleError",
    "Selector",
    "User",
    "apply_rules",
    "channel_rules",
    "command_rules",
    "default_user",
    "describe",
    "hash_password",
    "key_rules",
    "new_user",
    "parse_description",
]

ERR_SYNTAX = "Syntax error"
ERR_NO_PASSWORD = "The password you are trying to remove from the user does not exist"
ERR_HASH = (
    "The password hash must be exactly 64 characters and contain only lowercase "
    "hexadecimal characters"
)
ERR_SELECTOR_UTF8 = "Cairn needs the rules of a selector in UTF-8"
ERR_SELECTOR_PAREN = (
    "Cairn refuses a rule ending with ')' inside a selector (ACL LIST could not be read back)"
)
MAX_SELECTORS = 128
"""The most selectors a user may have besides the root one (Redis has no limit; each
costs every command of the user a check, on its node and on the leader)."""
ERR_TOO_MANY_SELECTORS = f"Cairn allows at most {MAX_SELECTORS} selectors per user"
_HEX = frozenset("0123456789abcdef")


@dataclass(slots=True)
class User(Selector):
    """One ACL user (see the module docstring); its own `Selector` fields are the root
    selector's."""

    name: str
    enabled: bool = False
    nopass: bool = False
    sanitize: str = ""
    """"", "sanitize-payload" or "skip-sanitize-payload" (flags only: no DUMP/RESTORE)."""
    passwords: list[str] = field(default_factory=list)
    """SHA-256 hex digests, in the order they were added."""
    selectors: list[Selector] = field(default_factory=list)
    """The selectors besides the root one, in the order added."""

    def copy(self) -> User:
        """A deep enough copy to apply rules to."""
        out = replace(
            self,
            passwords=list(self.passwords),
            selectors=[s.copy() for s in self.selectors],
        )
        self._copy_lists(out)
        return out

    def flags(self) -> list[str]:
        """The flags ACL GETUSER lists, in Redis's order."""
        out = ["on" if self.enabled else "off"]
        if self.nopass:
            out.append("nopass")
        if self.sanitize:
            out.append(self.sanitize)
        return out

    def check_password(self, password: bytes) -> bool:
        """Whether `password` opens this user (enabled users only)."""
        if not self.enabled:
            return False
        return self.nopass or hash_password(password) in self.passwords


def hash_password(password: bytes) -> str:
    """A password as Redis stores it: its SHA-256 in lowercase hex."""
    return hashlib.sha256(password).hexdigest()


def new_user(name: str) -> User:
    """A user ACL SETUSER creates: off, no passwords, keys, channels or commands."""
    return User(name)


def default_user(password: str | None, catalog: Catalog) -> User:
    """The `default` user of a node configured with `password` (None: nopass)."""
    user = User("default", enabled=True, allkeys=True, allchannels=True)
    apply_selector_rule(user, "allcommands", b"allcommands", catalog)
    if password is None:
        user.nopass = True
    else:
        user.passwords.append(hash_password(password.encode()))
    return user


def apply_rules(user: User, rules: Sequence[bytes], catalog: Catalog) -> User:
    """A copy of `user` with every rule applied; `AclRuleError` at the first bad one
    (or for a selector group left open)."""
    out = user.copy()
    for rule in merge_selector_args(rules):
        text = rule.decode("utf-8", "surrogateescape")
        if text[:1] == "(" and text[-1:] == ")":
            if len(out.selectors) >= MAX_SELECTORS:
                raise AclRuleError(text, ERR_TOO_MANY_SELECTORS)
            out.selectors.append(_selector_from_group(text, rule, catalog))
        else:
            _apply(out, text, rule, catalog)
    return out


def merge_selector_args(rules: Sequence[bytes]) -> list[bytes]:
    """ACL SETUSER's arguments with each `(`...`)` group joined by spaces into one, as
    Redis's ACLMergeSelectorArguments joins them (a group opened inside an open group
    replaces it, as there); `AclRuleError` naming the argument an open group started at."""
    merged: list[bytes] = []
    group: bytes | None = None
    start = b""
    for op in rules:
        if op[:1] == b"(" and op[-1:] != b")":
            group = start = op
            continue
        if group is not None:
            group += b" " + op
            if op[-1:] == b")":
                merged.append(group)
                group = None
            continue
        merged.append(op)
    if group is not None:
        text = start.decode("utf-8", "surrogateescape")
        message = f"Unmatched parenthesis in acl selector starting at '{text}'."
        raise AclRuleError(text, "unmatched parenthesis", message)
    return merged


def _selector_from_group(text: str, raw: bytes, catalog: Catalog) -> Selector:
    """The selector a `(...)` group makes (Redis's aclCreateSelectorFromOpSet: its
    inside split as sdssplitargs splits it; unbalanced quotes make an empty one)."""
    sel = Selector()
    for word in split_args(raw[1:-1]) or ():
        try:
            op = word.decode("utf-8")
        except UnicodeDecodeError:
            raise AclRuleError(text, ERR_SELECTOR_UTF8) from None
        if op.endswith(")"):
            raise AclRuleError(text, ERR_SELECTOR_PAREN)
        try:
            apply_selector_rule(sel, op, word, catalog)
        except AclRuleError as exc:
            raise AclRuleError(text, exc.reason) from None
    return sel


def _apply(user: User, op: str, raw: bytes, catalog: Catalog) -> None:
    if not op:
        return  # Redis: an empty rule does nothing
    simple = _USER_SIMPLE.get(c_string(op).lower())
    if simple is not None:
        simple(user, catalog)
    elif op[0] in (">", "<", "#", "!"):
        _password_rule(user, op, raw)
    else:
        apply_selector_rule(user, op, raw, catalog)


def _on(user: User, catalog: Catalog) -> None:
    user.enabled = True


def _off(user: User, catalog: Catalog) -> None:
    user.enabled = False


def _nopass(user: User, catalog: Catalog) -> None:
    user.nopass = True
    user.passwords.clear()


def _resetpass(user: User, catalog: Catalog) -> None:
    user.nopass = False
    user.passwords.clear()


def _sanitize(user: User, catalog: Catalog) -> None:
    user.sanitize = "sanitize-payload"


def _skip_sanitize(user: User, catalog: Catalog) -> None:
    user.sanitize = "skip-sanitize-payload"


def _clearselectors(user: User, catalog: Catalog) -> None:
    user.selectors.clear()


def _reset(user: User, catalog: Catalog) -> None:
    _resetpass(user, catalog)
    apply_selector_rule(user, "resetkeys", b"resetkeys", catalog)
    apply_selector_rule(user, "resetchannels", b"resetchannels", catalog)
    user.enabled = False
    user.sanitize = "sanitize-payload"
    user.selectors.clear()
    apply_selector_rule(user, "nocommands", b"nocommands", catalog)


_USER_SIMPLE = {
    "on": _on,
    "off": _off,
    "nopass": _nopass,
    "resetpass": _resetpass,
    "sanitize-payload": _sanitize,
    "skip-sanitize-payload": _skip_sanitize,
    "clearselectors": _clearselectors,
    "reset": _reset,
}
assert not set(_USER_SIMPLE) & set(SELECTOR_SIMPLE)


def _password_rule(user: User, op: str, raw: bytes) -> None:
    head = op[0]
    if head in (">", "<"):
        digest = hash_password(raw[1:])
    else:
        digest = op[1:]
        if len(digest) != 64 or not set(digest) <= _HEX:
            raise AclRuleError(op, ERR_HASH)
    if head in (">", "#"):
        if digest not in user.passwords:
            user.passwords.append(digest)
        user.nopass = False
    elif digest in user.passwords:
        user.passwords.remove(digest)
    else:
        raise AclRuleError(op, ERR_NO_PASSWORD)


# -- the canonical description ---------------------------------------------------------


def describe(user: User, catalog: Catalog) -> str:
    """The user as rules (ACL LIST without `user <name> `), in Redis's order."""
    parts = user.flags()
    parts.extend(f"#{p}" for p in user.passwords)
    parts.append(describe_selector(user, catalog))
    parts.extend(f"({describe_selector(s, catalog)})" for s in user.selectors)
    return " ".join(parts)


def parse_description(name: str, text: str, catalog: Catalog) -> User:
    """The user a `describe` string stands for (what a node adopts from the cluster).

    Rules naming commands this node does not know are skipped (a newer node's rules).
    A description's words never contain spaces (`cairn.store.acl.selector`), so a
    selector group's inside is split on spaces, not unquoted."""
    user = new_user(name)
    words = [w.encode("utf-8", "surrogateescape") for w in text.split(" ") if w]
    try:
        rules = merge_selector_args(words)
    except AclRuleError:
        return user  # never written by `describe`: a user that may do nothing
    for merged in rules:
        rule = merged.decode("utf-8", "surrogateescape")
        if rule[:1] == "(" and rule[-1:] == ")":
            sel = Selector()
            for word in rule[1:-1].split(" "):
                _try(apply_selector_rule, sel, word, catalog)
            user.selectors.append(sel)
        else:
            _try(_apply, user, rule, catalog)
    return user


def _try(
    apply: Callable[[Any, str, bytes, Catalog], None], target: Selector, rule: str, catalog: Catalog
) -> None:
    """Apply a described rule, skipping one this node refuses (a newer node's)."""
    if not rule:
        return
    with contextlib.suppress(AclRuleError):
        apply(target, rule, rule.encode("utf-8", "surrogateescape"), catalog)
