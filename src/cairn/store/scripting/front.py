"""The node's answer to FUNCTION and FCALL before routing, and the script tail that carries
what a replica needs to run a script: the library code and the caller's ACL rules.

Theory of operation. FUNCTION is answered by the node from its `Libraries` table: reads
(LIST, STATS, DUMP, KILL, HELP) at once, changes (LOAD, DELETE, FLUSH, RESTORE) as a
`functions.Change` that the node proposes to the placement group (`Deferred`: the reply
comes when the change applied) or, without a proposer, applies at once.

FCALL/FCALL_RO name a function of this node's table: an unknown one answers -ERR Function
not found here; FCALL_RO of a function without ``no-writes`` is refused here with Redis'
error. Otherwise the call is routed like EVAL with a *tail* appended to its arguments:

    fcall <function> <numkeys> [key ...] [arg ...] TAIL <library code> <acl rules>

EVAL from a user with restricted permissions gets the same tail (with empty code). The
store (`commands`) strips the tail: the replicated entry carries the code and the rules,
so every replica runs the same library and checks each `redis.call` against the same
permissions, whatever its own tables hold at that moment. The front always appends its
own tail last, so a client cannot forge one: the store reads only the last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cairn.resp.reply import Array, ErrorReply, Reply, SimpleString
from cairn.store.commands.spec import text_of
from cairn.store.scripting.functions import NOT_FOUND, Change, Libraries

TAIL = b"\x00cairn.script\x00"
"""The marker before a script's tail (module docstring): no client sends it by accident."""

NOTBUSY = ErrorReply("NOTBUSY No scripts in execution right now.")
READONLY_REFUSED = ErrorReply("ERR Can not execute a script with write flag using *_ro command.")
CONCURRENT = ErrorReply(
    "ERR the function libraries were changed meanwhile on another node: retry the command"
)
NO_PLACEMENT = ErrorReply(
    "TRYAGAIN the placement group that stores function libraries is unreachable: retry later"
)

_ARITY = {
    "load": -3,
    "delete": 3,
    "flush": -2,
    "kill": 2,
    "list": -2,
    "stats": 2,
    "dump": 2,
    "restore": -3,
    "help": 2,
}
HELP = (
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored "
    "using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a "
    "restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, "
    "replace the old",
    "      libraries with the new libraries (notice that even on this option there is a "
    "chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
)
"""FUNCTION HELP as Redis 7.0.15 prints it."""

Answer = Callable[[Reply], None]
Proposer = Callable[[Change, Callable[[bool | None], None]], bool]
"""Proposes a change to the placement group; its callback gets True (applied), False
(the table changed meanwhile) or None (no answer). False: no group to propose to."""


@dataclass(frozen=True, slots=True)
class Deferred:
    """A reply that comes later: `start(answer)` calls `answer` once it is known."""

    start: Callable[[Answer], None]


def split_tail(args: Sequence[bytes]) -> tuple[Sequence[bytes], bytes | None, bytes | None]:
    """A script command's arguments without the front's tail, and the tail's library code
    and ACL rules (None, None when there is no tail)."""
    if len(args) >= 3 and args[-3] == TAIL:
        return args[:-3], args[-2], args[-1]
    return args, None, None


class FunctionFront:
    """FUNCTION and FCALL on a node (module docstring)."""

    def __init__(self, libraries: Libraries | None = None) -> None:
        self.libraries = libraries if libraries is not None else Libraries()
        self.propose: Proposer | None = None

    def function(self, args: Sequence[bytes]) -> Reply | Deferred:
        """FUNCTION <subcommand> ... (`args` without FUNCTION)."""
        sub = args[0].lower().decode("utf-8", "replace")
        arity = _ARITY.get(sub)
        if arity is None:
            return ErrorReply(f"ERR unknown subcommand '{text_of(args[0])}'. Try FUNCTION HELP.")
        if not (len(args) + 1 == arity or (arity < 0 and len(args) + 1 >= -arity)):
            return ErrorReply(f"ERR wrong number of arguments for 'function|{sub}' command")
        libs = self.libraries
        rest = args[1:]
        if sub == "list":
            return libs.listing(rest)
        if sub == "stats":
            return libs.stats()
        if sub == "dump":
            return libs.dump()
        if sub == "kill":
            return NOTBUSY
        if sub == "help":
            return Array(tuple(SimpleString(line) for line in HELP))
        change = {
            "load": libs.load,
            "delete": lambda a: libs.delete(a[0]),
            "flush": libs.flush,
            "restore": libs.restore,
        }[sub](rest)
        return change if isinstance(change, ErrorReply) else self._commit(change)

    def _commit(self, change: Change) -> Reply | Deferred:
        propose = self.propose
        if propose is None:
            return self.libraries.apply(change)

        def start(answer: Answer) -> None:
            def applied(ok: bool | None) -> None:
                answer(NO_PLACEMENT if ok is None else change.reply if ok else CONCURRENT)

            if not propose(change, applied):
                answer(NO_PLACEMENT)

        return Deferred(start)

    def fcall(self, argv: list[bytes], rules: bytes) -> list[bytes] | Reply:
        """FCALL/FCALL_RO function numkeys ...: the arguments to route (with the tail), or
        the reply to answer now."""
        found = self.libraries.function(argv[1])
        if found is None:
            return NOT_FOUND
        library, info = found
        if argv[0].lower() == b"fcall_ro" and "no-writes" not in info.flags:
            return READONLY_REFUSED
        return [*argv, TAIL, library.code, rules]
