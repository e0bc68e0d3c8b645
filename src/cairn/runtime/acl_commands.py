"""ACL users on a node: AUTH as a user, the permission check, and the ACL command.

Theory of operation. Users are cluster state: ACL SETUSER and DELUSER on any node become
commands of the placement group (`SetAclUser`, `DelAclUsers`), replicated by its Raft log
like the rest of the cluster's control state (etcd and TiKV's PD keep their users the same
way, in their replicated store). A user travels as its canonical rule string
(`cairn.store.acl.describe`); the placement leader pushes the whole table, with its
version, to every node when it changes (`ACL_USERS` frames, `NodePlacement`), before it
answers the node that asked, so a user set through a node works there as soon as the
command has answered and on every other node a network hop later. Each node parses the
table into `User`s, so the per-command check is a dict lookup and a set membership.

SETUSER applies the rules to the user as this node knows it and proposes the result with
the description it started from; the placement group refuses it if the user changed
meanwhile (another node's SETUSER), and the client is told to retry: no update is lost.

The `default` user is the configured `password` (nopass without one) until an ACL
command changes it; from then on the replicated definition wins on every node.
ACL LOG is per node (each node logs the denials and failed AUTHs it saw, with its wall
clock), as each Redis server keeps its own.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from cairn.placement.commands import Ack, AclDeleted, Command, DelAclUsers, Result, SetAclUser
from cairn.resp.reply import (
    OK,
    Array,
    Bulk,
    Double,
    ErrorReply,
    Integer,
    Map,
    NullBulk,
    Reply,
    SimpleString,
)
from cairn.runtime.frame_checks import MAX_ACL_NAME, MAX_ACL_RULES
from cairn.shard.pubsub import PUBSUB_COMMANDS
from cairn.store import COMMANDS
from cairn.store.acl import (
    CATEGORIES,
    AclLog,
    AclRuleError,
    Catalog,
    LogEntry,
    User,
    apply_rules,
    check,
    default_user,
    describe,
    new_user,
    parse_description,
    unrestricted,
)
from cairn.store.acl.check import Denial
from cairn.store.acl.node_categories import NODE_COMMAND_CATEGORIES, NODE_SUBCOMMAND_ARITY
from cairn.store.acl.selector import (
    Selector,
    channel_rules,
    command_rules,
    has_spaces,
    key_rules,
)

if TYPE_CHECKING:
    from cairn.runtime.server import ClientConnection, Done, RespServer

DEFAULT = "default"
WRONGPASS = ErrorReply("WRONGPASS invalid username-password pair or user is disabled.")
NO_PASSWORD = ErrorReply(
    "ERR AUTH <password> called without any password configured for the default user. "
    "Are you sure your configuration is correct?"
)
NO_ACLFILE = ErrorReply(
    "ERR Cairn keeps ACL users in the cluster's replicated metadata: every ACL SETUSER "
    "and DELUSER is durable on a quorum when it answers, so there is no ACL file to "
    "save or load"
)
BAD_USERNAME = ErrorReply("ERR Usernames can't contain spaces or null characters")
NO_PLACEMENT = ErrorReply(
    "TRYAGAIN the placement group that stores ACL users is unreachable: retry later"
)
CONCURRENT = ErrorReply("ERR the user was changed meanwhile on another node: retry the ACL SETUSER")
NOT_UTF8 = ErrorReply("ERR Cairn needs user names and ACL rules (but passwords) in UTF-8")
TOO_LONG = ErrorReply(
    f"ERR Cairn replicates users of at most {MAX_ACL_NAME} characters of name and "
    f"{MAX_ACL_RULES} of rules (as ACL LIST shows them)"
)
MAX_GENPASS_BITS = 4096
_ARITY = {
    "cat": -2,
    "deluser": -3,
    "dryrun": -4,
    "genpass": -2,
    "getuser": 3,
    "help": 2,
    "list": 2,
    "load": 2,
    "log": -2,
    "save": 2,
    "setuser": -3,
    "users": 2,
    "whoami": 2,
}
HELP = (
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Print this help.",
)

KeyInfo = Callable[[list[bytes]], tuple[list[bytes], bool] | None]
"""A command's (keys, is_write), or None when no such command exists."""
Proposer = Callable[[Sequence[Command], Callable[[tuple[Result, ...] | None], None]], bool]
"""Proposes commands to the placement group; False when there is none to propose to."""


_TRANSACTION_NAMES = frozenset({"multi", "exec", "discard", "unwatch"})


def node_catalog(table: Mapping[str, object]) -> Catalog:
    """The ACL catalog of a node whose command table is `table`: the data commands with
    their specs' categories, the node-level ones (and their subcommands) with Redis's."""
    leaves: dict[str, tuple[str, ...]] = {}
    arities: dict[str, int] = {}
    for name, spec in COMMANDS.items():
        if "." not in name:  # internal commands (active expiry) are no client's
            leaves[name] = spec.acl_categories
            arities[name] = spec.arity
    names = set(table) | _TRANSACTION_NAMES | {"watch"}
    for leaf, categories in NODE_COMMAND_CATEGORIES.items():
        if leaf.split("|", 1)[0] in names:
            leaves[leaf] = categories
    for name, meta in table.items():
        arity = getattr(meta, "arity", None)
        if isinstance(arity, int) and name.lower() in leaves:
            arities.setdefault(name.lower(), arity)
    arities.update((k, v) for k, v in NODE_SUBCOMMAND_ARITY.items() if k in leaves)
    return Catalog.build(leaves, arities)


def acl_key_info(argv: list[bytes]) -> tuple[list[bytes], bool] | None:
    """The keys of `argv` and whether it writes (None: no such command), for the check."""
    name = argv[0].lower().decode("utf-8", "replace")
    spec = COMMANDS.get(name)
    if spec is not None:
        return (spec.keys(argv) if spec.arity_ok(len(argv)) else [], spec.is_write)
    if name == "watch":
        return (list(argv[1:]), False)
    if name in _NODE_NAMES or name in PUBSUB_COMMANDS or name in _TRANSACTION_NAMES:
        return ([], False)
    return None


_NODE_NAMES = frozenset(n.split("|", 1)[0] for n in NODE_COMMAND_CATEGORIES)


class AclTable:
    """This node's users: the replicated ones, and the default user's fallback."""

    def __init__(self, catalog: Catalog, password: str | None) -> None:
        self.catalog = catalog
        self.password = password
        self.version = 0
        self.rules: dict[str, str] = {}
        """The replicated users' canonical rules (what SETUSER's proposals start from)."""
        self.users: dict[str, User] = {}
        self.open_users: set[str] = set()
        """Users that may run everything (the check is skipped for them)."""
        self._rebuild()

    def user(self, name: str) -> User | None:
        """User `name`, if it exists."""
        return self.users.get(name)

    def set_password(self, password: str | None) -> None:
        """The configured password changed (CONFIG SET requirepass)."""
        self.password = password
        self._rebuild()

    def adopt(self, version: int, items: Sequence[tuple[str, str]]) -> list[str] | None:
        """Take the cluster's table at `version` (ignored unless newer); the names of the
        users it no longer has (their clients are disconnected), None when ignored."""
        if version <= self.version:
            return None
        before = set(self.users)
        self.version = version
        self.rules = dict(items)
        self._rebuild()
        return sorted(before - set(self.users))

    def _rebuild(self) -> None:
        users = {n: parse_description(n, r, self.catalog) for n, r in self.rules.items()}
        if DEFAULT not in users:
            users[DEFAULT] = default_user(self.password, self.catalog)
        self.users = users
        self.open_users = {n for n, u in users.items() if unrestricted(u, self.catalog)}

    def default_is_open(self) -> bool:
        """Whether a new connection is authenticated as `default` without AUTH."""
        user = self.users[DEFAULT]
        return user.enabled and user.nopass


class AclCommands:
    """The node's ACL front: AUTH, the permission check, the log, the ACL command."""

    def __init__(
        self,
        table: AclTable,
        server: RespServer,
        propose: Proposer,
        key_info: KeyInfo,
        client_info: Callable[[ClientConnection], str],
        wall_ms: Callable[[], int],
    ) -> None:
        self.table = table
        self.server = server
        self.propose = propose
        self.key_info = key_info
        self.client_info = client_info
        self.wall_ms = wall_ms
        self.log = AclLog()
        self._sync_server()

    # -- authentication -------------------------------------------------------------------

    def authenticate(
        self, conn: ClientConnection, username: bytes, password: bytes, one_arg: bool = False
    ) -> Reply | None:
        """AUTH's check; None when `username`/`password` open an enabled user (the
        connection is then that user's)."""
        name = username.decode("utf-8", "surrogateescape")
        user = self.table.user(name)
        if one_arg and user is not None and user.nopass and user.enabled:
            return NO_PASSWORD
        if user is None or not user.check_password(password):
            self.log.add("auth", "auth", name, self.client_info(conn), self.wall_ms())
            return WRONGPASS
        assert conn.state is not None
        conn.state.user = name
        return None

    # -- the permission check -------------------------------------------------------------

    def check(self, conn: ClientConnection, argv: list[bytes]) -> ErrorReply | None:
        """Whether the connection's user may run `argv` (logged and answered NOPERM if not)."""
        state = conn.state
        assert state is not None
        if state.user in self.table.open_users:
            return None
        denial = self._denial(state.user, argv)
        if denial is None:
            return None
        context = "multi" if state.transaction.queued is not None else "toplevel"
        if context == "multi":
            state.transaction.failed = True  # as Redis: EXEC then answers EXECABORT
        info = self.client_info(conn)
        self.log.add(denial.reason, denial.object, state.user, info, self.wall_ms(), context)
        return ErrorReply(denial.error_text())

    def check_forwarded(self, username: str, argv: list[bytes]) -> ErrorReply | None:
        """The leader's check of a command another node forwarded for `username`."""
        if username in self.table.open_users:
            return None
        denial = self._denial(username, argv)
        return None if denial is None else ErrorReply(denial.error_text())

    def _denial(self, username: str, argv: list[bytes]) -> Denial | None:
        user = self.table.user(username)
        if user is None:  # deleted meanwhile (its clients are being closed)
            return Denial("command", self.table.catalog.leaf_of(argv))
        info = self.key_info(argv)
        keys, is_write = info if info is not None else ([], False)
        return check(user, self.table.catalog, argv, keys, is_write)

    # -- the replicated table -------------------------------------------------------------

    def adopt(self, version: int, items: Sequence[tuple[str, str]]) -> None:
        """A table pushed by the placement leader: take it if newer, and close the
        connections of users it deleted (as Redis 7.0's ACL DELUSER does)."""
        gone = self.table.adopt(version, items)
        if gone is None:
            return
        self._sync_server()
        if gone:
            for conn, state in list(self.server.clients.values()):
                if state.user in gone:
                    conn.close_after_reply()
                    if conn.transport is not None:
                        conn.transport.close()

    def follow_password(self, password: str | None) -> None:
        """The configured password (CONFIG SET requirepass): the `default` user's, unless
        an ACL command has set that user for the cluster."""
        if password != self.table.password:
            self.table.set_password(password)
        self._sync_server()

    def _sync_server(self) -> None:
        """New connections start authenticated only if `default` needs no password."""
        self.server.password = None if self.table.default_is_open() else "acl"

    # -- the ACL command ------------------------------------------------------------------

    def intercept(self, conn: ClientConnection, args: list[bytes], done: Done) -> bool:
        """ACL SETUSER and DELUSER, answered once the cluster applied them; False for
        the other subcommands (answered by `command`)."""
        if len(args) < 2:
            return False
        sub = args[1].lower()
        if sub == b"setuser" and len(args) >= 3:
            self._setuser(args[2], args[3:], done)
            return True
        if sub == b"deluser" and len(args) >= 3:
            self._deluser(args[2:], done)
            return True
        return False

    def command(self, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
        """ACL <subcommand> ... (the synchronous subcommands)."""
        sub = args[0].lower().decode("utf-8", "surrogateescape")
        arity = _ARITY.get(sub)
        if arity is None:
            text = args[0].decode("utf-8", "replace")
            return ErrorReply(f"ERR unknown subcommand '{text}'. Try ACL HELP.")
        argc = len(args) + 1
        if argc != arity if arity > 0 else argc < -arity:
            return ErrorReply(f"ERR wrong number of arguments for 'acl|{sub}' command")
        if sub in ("setuser", "deluser"):  # only here inside MULTI (`intercept` otherwise)
            return ErrorReply(f"ERR ACL {sub.upper()} cannot run inside MULTI on Cairn")
        if sub == "log" and len(args) > 2:
            text = args[0].decode("utf-8", "replace")
            return ErrorReply(
                f"ERR unknown subcommand or wrong number of arguments for '{text}'. Try ACL HELP."
            )
        handler = getattr(self, f"_{sub}")
        reply: Reply = handler(conn, list(args[1:]))
        return reply

    def _setuser(self, username: bytes, rules: Sequence[bytes], done: Done) -> None:
        if has_spaces(username):
            done(BAD_USERNAME)
            return
        if not _utf8(username) or not all(r[:1] in (b">", b"<") or _utf8(r) for r in rules):
            done(NOT_UTF8)  # users travel as text (a password, hashed, may be any bytes)
            return
        name = username.decode("utf-8", "surrogateescape")
        base = self.table.user(name) or new_user(name)
        try:
            user = apply_rules(base, rules, self.table.catalog)
        except AclRuleError as exc:
            done(ErrorReply(f"ERR {exc}"))
            return
        text = describe(user, self.table.catalog)
        if len(name) > MAX_ACL_NAME or len(text) > MAX_ACL_RULES:
            done(TOO_LONG)  # every node's ACL_USERS frames would be refused
            return
        expected = self.table.rules.get(name, "")

        def answer(results: tuple[Result, ...] | None) -> None:
            if results is None or len(results) != 1 or not isinstance(results[0], Ack):
                done(NO_PLACEMENT)
            else:
                done(OK if results[0].ok else CONCURRENT)

        if not self.propose((SetAclUser(name, text, expected, 0),), answer):
            done(NO_PLACEMENT)

    def _deluser(self, names: Sequence[bytes], done: Done) -> None:
        decoded = tuple(n.decode("utf-8") for n in names if _utf8(n))  # no other exist
        if DEFAULT in decoded:
            done(ErrorReply("ERR The 'default' user cannot be removed"))
            return

        def answer(results: tuple[Result, ...] | None) -> None:
            if results is None or len(results) != 1 or not isinstance(results[0], AclDeleted):
                done(NO_PLACEMENT)
            else:
                done(Integer(results[0].count))

        if not self.propose((DelAclUsers(decoded, 0),), answer):
            done(NO_PLACEMENT)

    def _cat(self, conn: ClientConnection, args: list[bytes]) -> Reply:
        if not args:
            return Array(tuple(Bulk(c.encode()) for c in CATEGORIES))
        category = args[0].decode("utf-8", "surrogateescape").lower()
        if category not in CATEGORIES:
            return ErrorReply(f"ERR Unknown category '{args[0].decode('utf-8', 'replace')}'")
        names = self.table.catalog.in_category(category)
        return Array(tuple(Bulk(n.encode()) for n in names))

    def _getuser(self, conn: ClientConnection, args: list[bytes]) -> Reply:
        user = self.table.user(args[0].decode("utf-8", "surrogateescape"))
        if user is None:
            return NullBulk()
        fields: tuple[tuple[str, Reply], ...] = (
            ("flags", Array(tuple(Bulk(f.encode()) for f in user.flags()))),
            ("passwords", Array(tuple(Bulk(p.encode()) for p in user.passwords))),
            *self._selector_fields(user),
            ("selectors", Array(tuple(_map(self._selector_fields(s)) for s in user.selectors))),
        )
        return _map(fields)

    def _selector_fields(self, sel: Selector) -> tuple[tuple[str, Reply], ...]:
        """A selector's commands, keys and channels, as ACL GETUSER shows them."""
        return (
            ("commands", Bulk(_encode(command_rules(sel, self.table.catalog)))),
            ("keys", Bulk(_encode(key_rules(sel)))),
            ("channels", Bulk(_encode(channel_rules(sel, for_getuser=True)))),
        )

    def _list(self, conn: ClientConnection, args: list[bytes]) -> Reply:
        catalog = self.table.catalog
        lines = [
            f"user {name} {describe(self.table.users[name], catalog)}"
            for name in sorted(self.table.users)
        ]
        return Array(tuple(Bulk(_encode(line)) for line in lines))

    def _users(self, conn: ClientConnection, args: list[bytes]) -> Reply:
        return Array(tuple(Bulk(_encode(n)) for n in sorted(self.table.users)))

    def _whoami(self, conn: ClientConnection, args: list[bytes]) -> Reply:
        assert conn.state is not None
        return Bulk(_encode(conn.state.user))

    def _genpass(self, conn: ClientConnection, args: list[bytes]) -> Reply:
        bits = 256
        if args:
            try:
                bits = int(args[0])
            except ValueError:
                bits = 0
        if not 0 < bits <= MAX_GENPASS_BITS:
            return ErrorReply(
                "ERR ACL GENPASS argument must be the number of bits for the output "
                "password, a positive number up to 4096"
            )
        chars = (bits + 3) // 4
        return Bulk(secrets.token_hex((chars + 1) // 2)[:chars].encode())

    def _dryrun(self, conn: ClientConnection, args: list[bytes]) -> Reply:
        name = args[0].decode("utf-8", "surrogateescape")
        user = self.table.user(name)
        if user is None:
            return ErrorReply(f"ERR User '{name}' not found")
        argv = list(args[1:])
        info = self.key_info(argv)
        if info is None:
            return ErrorReply(f"ERR Command '{argv[0].decode('utf-8', 'replace')}' not found")
        wrong = self.table.catalog.arity_error(argv)
        if wrong is not None:
            return ErrorReply(wrong)
        denial = check(user, self.table.catalog, argv, info[0], info[1])
        return OK if denial is None else Bulk(_encode(denial.dryrun_text()))

    def _log(self, conn: ClientConnection, args: list[bytes]) -> Reply:
        count = len(self.log.entries)
        if args:
            if args[0].lower() == b"reset":
                self.log.reset()
                return OK
            try:
                count = int(args[0])
            except ValueError:
                return ErrorReply("ERR value is not an integer or out of range")
            if count < 0:
                return ErrorReply("ERR value is out of range, must be positive")
        now = self.wall_ms()
        return Array(tuple(self._log_entry(e, now) for e in self.log.newest(count)))

    def _log_entry(self, entry: LogEntry, now_ms: int) -> Reply:
        age = max(0, now_ms - entry.created_ms) / 1000
        fields: tuple[tuple[str, Reply], ...] = (
            ("count", Integer(entry.count)),
            ("reason", Bulk(entry.reason.encode())),
            ("context", Bulk(entry.context.encode())),
            ("object", Bulk(_encode(entry.object))),
            ("username", Bulk(_encode(entry.username))),
            ("age-seconds", Double(age)),
            ("client-info", Bulk(_encode(entry.client_info))),
        )
        return Map(tuple((Bulk(k.encode()), v) for k, v in fields))

    def _save(self, conn: ClientConnection, args: list[bytes]) -> Reply:
        return NO_ACLFILE

    def _load(self, conn: ClientConnection, args: list[bytes]) -> Reply:
        return NO_ACLFILE

    def _help(self, conn: ClientConnection, args: list[bytes]) -> Reply:
        return Array(tuple(SimpleString(line) for line in HELP))


def _map(fields: Sequence[tuple[str, Reply]]) -> Map:
    return Map(tuple((Bulk(k.encode()), v) for k, v in fields))


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")
