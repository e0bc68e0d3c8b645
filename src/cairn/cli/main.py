"""The `cairn` command: a click group; `sim` runs deterministic simulations.

Later commands (`server`, `dev`, `ctl`) join the same group.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cairn.check.history import write_jsonl
from cairn.cli.backup import backup, restore
from cairn.cli.chaos_cmd import chaos
from cairn.cli.ctl import ctl
from cairn.cli.dev import dev
from cairn.cli.import_cmd import import_redis
from cairn.cli.server_cmd import server
from cairn.cli.sweep import default_workers, sweep
from cairn.cli.tenant_cmd import tenant
from cairn.raft.config import PlantedBug
from cairn.raft.types import ReadOnlyOption
from cairn.sim.region_config import EVERY_FAULT, REGION_FAULTS, RegionSimConfig, RegionSimResult
from cairn.sim.region_profiles import REGION_PROFILES
from cairn.sim.txn_client import TXN_PLANTS
from cairn.sim.workloads import Workload


@click.group()
@click.version_option(package_name="cairn")
def main() -> None:
    """Cairn: a strongly consistent, Raft-replicated key-value store."""


main.add_command(server)
main.add_command(dev)
main.add_command(chaos)
main.add_command(ctl)
ctl.add_command(backup)
ctl.add_command(restore)
ctl.add_command(tenant)
main.add_command(import_redis)


@main.command()
@click.option("--nodes", type=click.IntRange(3, 9), default=4, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of a single run.")
@click.option("--seeds", type=click.IntRange(min=1), default=None, help="Sweep this many seeds.")
@click.option("--first-seed", type=int, default=0, show_default=True, help="First seed of a sweep.")
@click.option("--steps", type=click.IntRange(min=0), default=6000, show_default=True)
@click.option(
    "--faults",
    default="all",
    show_default=True,
    help="all, none, or a comma-separated list of: "
    + ", ".join(REGION_FAULTS)
    + " (membership changes, splits, merges and replica moves are the placement driver's,"
    " always on).",
)
@click.option(
    "--plant",
    "planted",
    multiple=True,
    type=click.Choice([b.value for b in PlantedBug] + list(TXN_PLANTS)),
    help="Switch a deliberate bug on (repeatable), to see the harness catch it: Raft's, or "
    "cross-region transactions' (bank and append workloads).",
)
@click.option("--read-mode", type=click.Choice(["seed", "safe", "lease"]), default="seed")
@click.option("--clients", type=click.IntRange(min=1), default=4, show_default=True)
@click.option(
    "--workload",
    type=click.Choice([w.value for w in Workload]),
    default=Workload.REGISTER.value,
    show_default=True,
    help="What clients do: registers (linearizability), a queue, a stream, list-append or "
    "bank transactions on the real store machine (see docs/simulation.md).",
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Default: CPU count.")
@click.option("--history", type=click.Path(dir_okay=False, writable=True), default=None)
@click.option("--keep-going", is_flag=True, help="In a sweep, do not stop at the first failure.")
@click.option(
    "--profile",
    type=click.Choice(sorted(REGION_PROFILES)),
    default=None,
    help="A named schedule aimed at a kind of bug (see docs/simulation.md); sets nodes, "
    "faults and timing itself.",
)
@click.option(
    "--regions",
    is_flag=True,
    hidden=True,
    help="Accepted for old command lines: every run is multi-region.",
)
@click.pass_context
def sim(
    ctx: click.Context,
    nodes: int,
    seed: int,
    seeds: int | None,
    first_seed: int,
    steps: int,
    faults: str,
    planted: tuple[str, ...],
    read_mode: str,
    clients: int,
    workload: str,
    workers: int | None,
    history: str | None,
    keep_going: bool,
    profile: str | None,
    regions: bool = False,
) -> None:
    """Run a deterministic simulation of a multi-region cluster under faults and check it.

    Region hosts, the placement driver and routed clients over the real store machine,
    with splits, merges, replica moves and node loss. Exits 1 when an invariant breaks,
    the history is not linearizable, a workload check fails or the cluster does not
    converge, printing the command line that reproduces it.
    """
    modes = {"seed": None, "safe": ReadOnlyOption.SAFE, "lease": ReadOnlyOption.LEASE_BASED}
    bugs = frozenset(PlantedBug(p) for p in planted if p not in TXN_PLANTS)
    txn_bugs = frozenset(p for p in planted if p in TXN_PLANTS)
    if history is not None and seeds is not None:
        raise click.UsageError("--history needs a single run (--seed), not --seeds")
    chosen = Workload(workload)
    if profile is not None:
        _refuse_with_profile(ctx, ("nodes", "steps", "faults", "read_mode", "clients"))
        base = replace(
            REGION_PROFILES[profile],
            seed=seed,
            planted=bugs,
            txn_plants=txn_bugs,
            keep_history=history is not None,
        )
        if ctx.get_parameter_source("workload") is not click.core.ParameterSource.DEFAULT:
            base = replace(base, workload=chosen)
    else:
        base = replace(
            EVERY_FAULT,
            seed=seed,
            nodes=nodes,
            steps=steps,
            clients=clients,
            faults=_region_faults(faults),
            planted=bugs,
            txn_plants=txn_bugs,
            read_mode=modes[read_mode],
            keep_history=history is not None,
            workload=chosen,
        )
    seed_range = range(seed, seed + 1) if seeds is None else range(first_seed, first_seed + seeds)
    ok = _region_sweep(
        Console(), base, seed_range, workers or default_workers(), keep_going, history, profile
    )
    sys.exit(0 if ok else 1)


def _region_faults(text: str) -> tuple[str, ...]:
    """`--faults`: all, none, or names from `REGION_FAULTS`."""
    text = text.strip().lower()
    if text == "all":
        return REGION_FAULTS
    if text == "none":
        return ()
    chosen: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if part == "membership":
            raise click.UsageError(
                "membership changes are the placement driver's (always on);"
                " drop 'membership' from --faults"
            )
        if part not in REGION_FAULTS:
            known = ", ".join(REGION_FAULTS)
            raise click.UsageError(f"unknown fault {part!r} (choose all, none or from: {known})")
        if part not in chosen:
            chosen.append(part)
    return tuple(f for f in REGION_FAULTS if f in chosen)


def _region_repro(base: RegionSimConfig, seed: int, profile: str | None = None) -> str:
    """The command line that reruns one seed of a sweep."""
    extra = [f"--plant {b.value}" for b in sorted(base.planted, key=lambda b: b.value)]
    extra += [f"--plant {p}" for p in sorted(base.txn_plants)]
    if base.workload is not Workload.REGISTER:
        extra.append(f"--workload {base.workload.value}")
    if profile is not None:
        return " ".join(["cairn sim --profile", profile, f"--seed {seed}", *extra])
    flags = [
        f"--seed {seed}",
        f"--steps {base.steps}",
        f"--nodes {base.nodes}",
        f"--clients {base.clients}",
    ]
    if base.faults != REGION_FAULTS:
        flags.append("--faults " + (",".join(base.faults) or "none"))
    flags.extend(extra)
    if base.read_mode is not None:
        lease = base.read_mode is ReadOnlyOption.LEASE_BASED
        flags.append("--read-mode " + ("lease" if lease else "safe"))
    return "cairn sim " + " ".join(flags)


def _region_line(result: RegionSimResult) -> str:
    converged = "-" if result.converged_after is None else f"{result.converged_after / 1e6:.0f}ms"
    line = (
        f"seed {result.seed}: {result.steps} steps, {result.virtual_time / 1e9:.2f}s"
        f" virtual, ops {result.ops_ok} ok / {result.ops_failed} failed /"
        f" {result.ops_unknown} unknown, regions {result.regions}, splits"
        f" {result.splits}, merges {result.merges}, moves {result.moves},"
        f" converged after {converged}, {_read_name(result.read_mode)} reads,"
        f" digest {result.digest[:12]}"
    )
    if result.workload_verdict is not None:
        line += f"; {result.workload.value} check: {result.workload_verdict.details}"
    return line


def _read_name(mode: ReadOnlyOption) -> str:
    return "lease" if mode is ReadOnlyOption.LEASE_BASED else "ReadIndex"


def _region_sweep(
    console: Console,
    base: RegionSimConfig,
    seeds: range,
    workers: int,
    keep_going: bool,
    history: str | None = None,
    profile: str | None = None,
) -> bool:
    """Run the simulation over `seeds`; one line per run, a total at the end (and, for a
    single run with `history`, its history as JSON lines)."""
    started = time.perf_counter()
    failed: list[int] = []
    totals = {"splits": 0, "merges": 0, "moves": 0, "ops_ok": 0}
    columns = (TextColumn("sim"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    stop = (lambda r: False) if keep_going else (lambda r: r.failure is not None)
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("seeds", total=len(seeds))
        for result in sweep(base, seeds, min(workers, len(seeds)), stop):
            progress.advance(task)
            for name in totals:
                totals[name] += getattr(result, name)
            console.print(_region_line(result), soft_wrap=True, highlight=False)
            if history is not None:
                with open(history, "w", encoding="utf-8") as fp:
                    write_jsonl(result.history, fp)
            if result.failure is not None:
                failed.append(result.seed)
                console.print(f"[bold red]FAILED[/] seed {result.seed}: {result.failure}")
                repro = _region_repro(base, result.seed, profile)
                console.print(f"reproduce: {repro}", soft_wrap=True)
    elapsed = time.perf_counter() - started
    summary = ", ".join(f"{k} {v}" for k, v in totals.items())
    console.print(f"{len(seeds)} seeds, {len(failed)} failed, {summary}, {elapsed:.1f}s")
    return not failed


def _refuse_with_profile(ctx: click.Context, names: tuple[str, ...]) -> None:
    for name in names:
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
            flag = "--" + name.replace("_", "-")
            raise click.UsageError(f"{flag} cannot be combined with --profile (it sets it)")
