"""The clients of a multi-region run: routed clients over registers or a workload, their
transactions, and the final reads of a register run.

Register clients (`cairn.sim.region_client.RoutedClient`) write and read a few keys
spread over the slots, every operation recorded in the history checked for
linearizability; a workload's clients (a queue, a stream, list-append or bank
transactions: `cairn.sim.workloads`) each run their own logic, and the transaction
workloads share one `TxnContext` (cross-region transactions through the placement
driver's timestamp oracle). After convergence, a register run reads every key once more
through the routed path (`final_reads`), so every acknowledged write must have survived
every split, merge and move.

Pure: the random draws come from the run's streams, in the run's order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cairn.sim.invariants import InvariantKind
from cairn.sim.region_client import ClientParams, RoutedClient
from cairn.sim.region_config import MS, RegionSimConfig, drawn, workload_key
from cairn.sim.txn_client import TxnContext
from cairn.sim.txn_run import new_context
from cairn.sim.txn_workloads import AppendLogic
from cairn.sim.workloads import ClientLogic, Workload, new_logic

if TYPE_CHECKING:
    from cairn.sim.region_run import RegionRun

__all__ = [
    "TXN_TIMEOUT_FACTOR",
    "TXN_WORKLOADS",
    "attach_transactions",
    "final_reads",
    "new_clients",
    "new_txn",
]

TXN_WORKLOADS = (Workload.APPEND, Workload.BANK)
"""The workloads whose clients run cross-region transactions."""
TXN_TIMEOUT_FACTOR = 2
"""A transaction client waits this many times `client_timeout`: a cross-region
transaction takes two timestamps and three rounds of proposals in several regions."""


def new_txn(run: RegionRun) -> TxnContext | None:
    """The clients' cross-region transactions (None: not a transaction workload)."""
    config = run.config
    if config.workload not in TXN_WORKLOADS:
        return None
    return new_context(
        config.txn_plants,
        lambda: dict(run.placement.tso_clients),
        config.coordinator_crashes,
        config.crash_stages,
    )


def new_clients(run: RegionRun) -> tuple[ClientParams, list[RoutedClient]]:
    """The clients' shared parameters and the clients of `run` (each its own stream)."""
    config = run.config
    client_rng = run.child_rng()
    params = ClientParams(
        keys=run.keys,
        read_weight=drawn(config.read_weight, client_rng.choice([0.2, 0.4, 0.6])),
        timeout=config.client_timeout * (TXN_TIMEOUT_FACTOR if run.txn else 1),
    )
    clients = [
        RoutedClient(
            i,
            config.clients,
            run.cluster,
            run.child_rng(),
            params,
            run.history,
            run.counts,
            logic=_logic_of(config, i),
            txn=run.txn,
        )
        for i in range(config.clients)
    ]
    return params, clients


def attach_transactions(run: RegionRun) -> None:
    """Give each client of a transaction workload its transactions' stream, and each
    placement member its wall clock's skew (`tso_wall_skew_ms`)."""
    for client in run.clients:
        client.use_txn_rng(run.child_rng())
    skew = run.config.tso_wall_skew_ms
    for member in run.placement.setup.members:
        run.placement.wall_skew_ms[member] = run.root.randint(-skew, skew)


def _logic_of(config: RegionSimConfig, index: int) -> ClientLogic | None:
    """Client `index`'s workload logic (None: a register client), with the list-append's
    share of plain reads from `read_weight`."""
    if config.workload is Workload.REGISTER:
        return None
    logic = new_logic(config.workload, index, workload_key(config))
    if isinstance(logic, AppendLogic) and config.read_weight is not None:
        logic.plain_reads = config.read_weight
    return logic


def final_reads(run: RegionRun) -> None:
    """A register run's last read of every key through the routed path, recorded in the
    history (a workload run reads its keys from the leaders instead)."""
    if run.config.workload is not Workload.REGISTER:
        return
    reader = RoutedClient(
        run.config.clients,
        run.config.clients + 1,
        run.cluster,
        run.child_rng(),
        run.params,
        run.history,
        run.counts,
        script=list(run.keys),
    )
    reader.start()
    deadline = run.loop.now + 10_000 * MS
    while not reader.done and run.loop.now < deadline and run.step():
        pass
    if not reader.done:
        run._fail(InvariantKind.COMMITTED_ENTRY_LOST, "final reads did not complete")
