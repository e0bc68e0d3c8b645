"""The supervisor of a `cairn dev` cluster, and how another process asks it to start a node.

`cairn dev` keeps serving when one of its nodes exits (kill -9, a crash, a clean stop):
`Supervisor.run` notices it, prints which node, how it ended (exit status or signal) and
the last lines of its log, and keeps the others running, so a person can watch the
placement driver rebuild the node's replicas (`cairn ctl events`). It stops on Ctrl-C or
SIGTERM, or when every node is gone.

Starting a node again goes through the supervisor, so the node is again its child: watched,
logged to its `nodeN.log`, and stopped with the others. While it runs the supervisor keeps

- `DATA_DIR/dev.json` (mode 0600): its pid, its control socket, and every node's ports,
  directories and current pid (`null` while stopped), rewritten on every change;
- a unix socket (mode 0600, `DATA_DIR/dev.sock`, or in a private temporary directory when
  that path is too long for a unix socket) taking one JSON line per connection,
  `{"op": "start", "node": N}`, answered by one JSON line `{"ok": bool, "code": str,
  "message": str}`.

`request_start` is the client side (`cairn ctl node start N --data-dir DATA_DIR`). Both
files are removed when the supervisor ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from cairn.runtime.local_cluster import HOST, LocalCluster

STATE_FILE = "dev.json"
SOCKET_FILE = "dev.sock"
MAX_SOCKET_PATH = 100
"""Longer socket paths do not fit `sockaddr_un` (108 bytes on Linux, 104 elsewhere)."""
MAX_REQUEST_BYTES = 4096
"""A request is one short JSON line; anything longer is refused."""
MAX_STATE_BYTES = 1 << 20
REQUEST_READ_TIMEOUT = 2.0
"""How long the supervisor waits for a connected client's request line."""
START_WAIT = 10.0
"""How long a started node has to listen on its client port before the reply."""
REPLY_TIMEOUT = START_WAIT + 5.0
"""How long `request_start` waits for the supervisor's reply."""
LOG_TAIL_LINES = 12
LOG_TAIL_BYTES = 16384
TICK = 0.2
"""How often the supervisor looks at its nodes (and waits for requests in between)."""


class DevControlError(Exception):
    """A start request that could not be carried out; `status` is the CLI's exit status
    (2: no dev cluster, an unknown node, a node already running; 1: the node did not
    start)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def exit_description(returncode: int) -> str:
    """`exit status 3` or `killed by SIGKILL` for a `Popen.returncode`."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exit status {returncode}"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last `lines` lines of a node's log (at most `LOG_TAIL_BYTES` read)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - LOG_TAIL_BYTES))
            raw = f.read()
    except OSError:
        return []
    return raw.decode(errors="replace").splitlines()[-lines:]


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists (signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Supervisor:
    """Watches the nodes of `cluster` and serves start requests (module doc)."""

    def __init__(self, cluster: LocalCluster, console: Console) -> None:
        self.cluster = cluster
        self.console = console
        self.state_path = cluster.root / STATE_FILE
        self.socket_path = cluster.root / SOCKET_FILE
        self._private_dir: Path | None = None
        self._listener: socket.socket | None = None
        self.alive: set[int] = set()
        self.ready = False

    # -- lifecycle ----------------------------------------------------------------------

    def check_free(self) -> None:
        """Refuse (`DevControlError`) when another live `cairn dev` uses this data
        directory."""
        other = _read_pid(self.state_path)
        if other is not None and other != os.getpid() and pid_alive(other):
            raise DevControlError(
                f"another `cairn dev` (pid {other}) uses {self.cluster.root}; stop it first"
            )

    def open(self) -> None:
        """Bind the control socket (mode 0600) and write the state file (the nodes have
        been started: their pids are recorded)."""
        self.check_free()
        if len(str(self.socket_path)) > MAX_SOCKET_PATH:
            self._private_dir = Path(tempfile.mkdtemp(prefix="cairn-dev-"))
            self.socket_path = self._private_dir / SOCKET_FILE
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # left by a `cairn dev` that was killed
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(str(self.socket_path))
        finally:
            os.umask(old)
        os.chmod(self.socket_path, 0o600)
        listener.listen(8)
        listener.setblocking(False)
        self._listener = listener
        self.alive = {n.node_id for n in self.cluster.specs if self.cluster.running(n.node_id)}
        self.write_state()

    def close(self) -> None:
        """Remove the socket and the state file (the nodes are stopped by the caller)."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
        if _read_pid(self.state_path) == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.state_path.unlink()

    def write_state(self) -> None:
        """Rewrite `dev.json` (atomically, mode 0600) with the nodes' current pids."""
        nodes = []
        for n in self.cluster.specs:
            proc = self.cluster.procs.get(n.node_id)
            running = proc is not None and self.cluster.running(n.node_id)
            nodes.append(
                {
                    "id": n.node_id,
                    "pid": proc.pid if proc is not None and running else None,
                    "client_port": n.client_port,
                    "peer_port": n.peer_port,
                    "admin_port": n.admin_port,
                    "tls_port": n.tls_port,
                    "data_dir": str(n.data_dir),
                    "config": str(n.config_path),
                    "log": str(n.log_path),
                }
            )
        doc = {
            "pid": os.getpid(),
            "socket": str(self.socket_path),
            "root": str(self.cluster.root),
            "ready": self.ready,
            "nodes": nodes,
        }
        tmp = self.state_path.with_suffix(".json.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        os.replace(tmp, self.state_path)

    def mark_ready(self) -> None:
        """The cluster elected its leader: say so in the state file, print how to restart."""
        self.ready = True
        self.write_state()
        self.console.print(
            f"a node that exits is reported here; start it again with:  "
            f"cairn ctl node start N --data-dir {self.cluster.root}",
            soft_wrap=True,
        )

    # -- the loop -----------------------------------------------------------------------

    def run(self, stopping: Callable[[], bool]) -> None:
        """Watch the nodes and serve requests until `stopping()` or every node is gone."""
        while not stopping():
            self.check_nodes()
            if not self.alive:
                self.console.print("[red]every node has exited; stopping[/red]")
                return
            self.serve(TICK)

    def check_nodes(self) -> None:
        """Report every node that exited since the last look."""
        exited = [i for i in sorted(self.alive) if not self.cluster.running(i)]
        for node_id in exited:
            self.alive.discard(node_id)
            self._report_exit(node_id)
        if exited:
            self.write_state()

    def _report_exit(self, node_id: int) -> None:
        spec = self.cluster.spec(node_id)
        proc = self.cluster.procs[node_id]
        how = exit_description(proc.returncode if proc.returncode is not None else 0)
        others = len(self.alive)
        self.console.print(
            f"[yellow]node {node_id} (pid {proc.pid}) exited: {how}; the other {others} "
            f"node(s) keep serving[/yellow]",
            soft_wrap=True,
        )
        tail = log_tail(spec.log_path)
        if tail:
            self.console.print(f"  last lines of {spec.log_path}:", soft_wrap=True)
            for line in tail:
                self.console.print(f"  | {escape(line)}", soft_wrap=True, highlight=False)
        self.console.print(
            f"  start it again with:  cairn ctl node start {node_id} "
            f"--data-dir {self.cluster.root}",
            soft_wrap=True,
        )

    def serve(self, timeout: float) -> None:
        """Wait up to `timeout` for a control connection and answer it."""
        assert self._listener is not None, "open() binds the socket"
        ready, _, _ = select.select([self._listener], [], [], timeout)
        if not ready:
            return
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        with conn:
            conn.setblocking(True)
            conn.settimeout(REQUEST_READ_TIMEOUT)
            try:
                request = _read_line(conn)
                reply = self.handle(request)
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except (OSError, ValueError) as exc:
                with contextlib.suppress(OSError):
                    conn.sendall(_reply(False, "bad-request", str(exc)))

    def handle(self, raw: bytes) -> dict[str, Any]:
        """The answer to one request line (module doc)."""
        try:
            request = json.loads(raw)
        except ValueError:
            return _answer(False, "bad-request", "the request is not JSON")
        if not isinstance(request, dict) or request.get("op") != "start":
            return _answer(False, "bad-request", 'the only request is {"op": "start", "node": N}')
        node_id = request.get("node")
        ids = [n.node_id for n in self.cluster.specs]
        if not isinstance(node_id, int) or isinstance(node_id, bool) or node_id not in ids:
            return _answer(
                False, "unknown-node", f"node {node_id!r} is not one of this dev cluster's {ids}"
            )
        return self.start_node(node_id)

    def start_node(self, node_id: int) -> dict[str, Any]:
        """Start a stopped node with its own config and data; wait until it listens."""
        self.check_nodes()  # an exit not noticed yet is reported before the restart
        proc = self.cluster.procs.get(node_id)
        if self.cluster.running(node_id) and proc is not None:
            return _answer(False, "running", f"node {node_id} is already running (pid {proc.pid})")
        try:
            self.cluster.start(node_id)
        except OSError as exc:  # its log cannot be opened, no more processes, ...
            return _answer(False, "exited", f"node {node_id} could not be started: {exc}")
        proc = self.cluster.procs[node_id]
        self.alive.add(node_id)
        self.write_state()
        spec = self.cluster.spec(node_id)
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline and self.cluster.running(node_id):
            if _listens(spec.client_port):
                message = (
                    f"node {node_id} started again (pid {proc.pid}), serving "
                    f"redis://{HOST}:{spec.client_port}; log: {spec.log_path}"
                )
                self.console.print(f"[green]{message}[/green]", soft_wrap=True)
                return _answer(True, "started", message)
            time.sleep(0.1)
        if not self.cluster.running(node_id):
            self.alive.discard(node_id)
            self._report_exit(node_id)
            self.write_state()
            how = exit_description(proc.returncode or 0)
            tail = "\n".join(log_tail(spec.log_path, 5))
            return _answer(
                False, "exited", f"node {node_id} exited at start ({how}); {spec.log_path}:\n{tail}"
            )
        message = (
            f"node {node_id} started (pid {proc.pid}) but does not listen on "
            f"{HOST}:{spec.client_port} after {START_WAIT:.0f} s; see {spec.log_path}"
        )
        self.console.print(f"[yellow]{message}[/yellow]", soft_wrap=True)
        return _answer(True, "starting", message)


def _answer(ok: bool, code: str, message: str) -> dict[str, Any]:
    return {"ok": ok, "code": code, "message": message}


def _reply(ok: bool, code: str, message: str) -> bytes:
    return json.dumps(_answer(ok, code, message)).encode() + b"\n"


def _read_line(conn: socket.socket) -> bytes:
    """One request line, at most `MAX_REQUEST_BYTES`."""
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(MAX_REQUEST_BYTES + 1 - len(data))
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST_BYTES:
            raise ValueError(f"a request is at most {MAX_REQUEST_BYTES} bytes")
    return data.split(b"\n", 1)[0]


def _listens(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _read_pid(path: Path) -> int | None:
    """The supervisor pid recorded in a state file, if it holds one."""
    try:
        doc = read_state(path)
    except DevControlError:
        return None
    return int(doc["pid"])


def read_state(path: Path) -> dict[str, Any]:
    """The state file `path`, checked: a supervisor pid, a socket path, a node list."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        raise DevControlError(f"no {path}") from None
    except OSError as exc:
        raise DevControlError(f"{path}: {exc}") from None
    try:
        if len(raw) > MAX_STATE_BYTES:
            raise ValueError("too large")
        doc = json.loads(raw)
        pid, sock, nodes = doc["pid"], doc["socket"], doc["nodes"]
        if not (isinstance(pid, int) and pid > 0 and isinstance(sock, str)):
            raise ValueError("bad pid or socket")
        if not isinstance(nodes, list) or not all(
            isinstance(n, dict) and isinstance(n.get("id"), int) for n in nodes
        ):
            raise ValueError("bad node list")
    except (ValueError, KeyError, TypeError) as exc:
        raise DevControlError(f"{path} is not a `cairn dev` state file ({exc})") from None
    return dict(doc)


def request_start(data_dir: Path, node_id: int) -> str:
    """Ask the `cairn dev` supervisor of `data_dir` to start node `node_id` again; its
    message. `DevControlError` (with the CLI's exit status) says why it could not."""
    path = data_dir.resolve() / STATE_FILE
    hint = f"start one with `cairn dev --data-dir {data_dir}` (or give its --data-dir)"
    try:
        doc = read_state(path)
    except DevControlError as exc:
        raise DevControlError(
            f"no `cairn dev` cluster runs in {data_dir} ({exc}); {hint}"
        ) from None
    if not pid_alive(doc["pid"]):
        raise DevControlError(
            f"the `cairn dev` that wrote {path} (pid {doc['pid']}) is gone; {hint}"
        )
    ids = [n["id"] for n in doc["nodes"]]
    if node_id not in ids:
        raise DevControlError(
            f"node {node_id} is not in the dev cluster of {data_dir} (nodes {ids})"
        )
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(REPLY_TIMEOUT)
            conn.connect(doc["socket"])
            conn.sendall(json.dumps({"op": "start", "node": node_id}).encode() + b"\n")
            raw = _read_line(conn)
    except (OSError, ValueError) as exc:
        raise DevControlError(
            f"the `cairn dev` supervisor (pid {doc['pid']}) did not answer on "
            f"{doc['socket']}: {exc}"
        ) from None
    try:
        reply = json.loads(raw)
        ok, code, message = bool(reply["ok"]), str(reply["code"]), str(reply["message"])
    except (ValueError, KeyError, TypeError):
        raise DevControlError(f"unexpected answer from the supervisor: {raw[:200]!r}") from None
    if not ok:
        raise DevControlError(message, 1 if code == "exited" else 2)
    return message
