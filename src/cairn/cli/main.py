"""The `cairn` command: a click group; `sim` runs deterministic simulations.

Later commands (`server`, `dev`, `ctl`) join the same group.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

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
from cairn.sim import ALL_FAULTS, Fault, SimConfig, SimResult, run_simulation
from cairn.sim.profiles import PROFILES
from cairn.sim.region_profiles import REGION_PROFILES
from cairn.sim.region_runner import (
    EVERY_FAULT,
    REGION_FAULTS,
    RegionSimConfig,
    RegionSimResult,
    run_region_simulation,
)
from cairn.sim.workloads import Workload


class FaultsParam(click.ParamType[frozenset[Fault]]):
    """`all`, `none`, or a comma-separated list of fault names."""

    name = "faults"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> frozenset[Fault]:
        if isinstance(value, frozenset):
            return value
        text = str(value).strip().lower()
        if text == "all":
            return ALL_FAULTS
        if text == "none":
            return frozenset()
        names = {f.value: f for f in Fault}
        chosen: set[Fault] = set()
        for part in (p.strip() for p in text.split(",")):
            if part not in names:
                known = ", ".join(sorted(names))
                self.fail(f"unknown fault {part!r} (choose all, none or from: {known})", param, ctx)
            chosen.add(names[part])
        return frozenset(chosen)


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
@click.option("--nodes", type=click.Choice(["3", "5", "7"]), default="5", show_default=True)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of a single run.")
@click.option("--seeds", type=click.IntRange(min=1), default=None, help="Sweep this many seeds.")
@click.option("--first-seed", type=int, default=0, show_default=True, help="First seed of a sweep.")
@click.option("--steps", type=click.IntRange(min=0), default=5000, show_default=True)
@click.option(
    "--faults",
    default="all",
    show_default=True,
    help="all, none, or a comma-separated list of: "
    + ", ".join(f.value for f in Fault)
    + "; with --regions: "
    + ", ".join(REGION_FAULTS)
    + " (membership changes there are the placement driver's, always on).",
)
@click.option(
    "--plant",
    "planted",
    multiple=True,
    type=click.Choice([b.value for b in PlantedBug]),
    help="Switch a deliberate bug on (repeatable), to see the harness catch it.",
)
@click.option("--read-mode", type=click.Choice(["seed", "safe", "lease"]), default="seed")
@click.option("--clients", type=click.IntRange(min=1), default=4, show_default=True)
@click.option(
    "--workload",
    type=click.Choice([w.value for w in Workload]),
    default=Workload.REGISTER.value,
    show_default=True,
    help="What clients do: registers (linearizability), or a queue or a stream on the Redis "
    "machine (see docs/simulation.md).",
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Default: CPU count.")
@click.option("--history", type=click.Path(dir_okay=False, writable=True), default=None)
@click.option("--keep-going", is_flag=True, help="In a sweep, do not stop at the first failure.")
@click.option(
    "--profile",
    type=click.Choice(sorted(PROFILES) + sorted(REGION_PROFILES)),
    default=None,
    help="A named schedule (see docs/simulation.md); sets nodes, faults and timing itself. "
    "The region-* ones are for --regions, the others for single-group runs.",
)
@click.option(
    "--regions",
    is_flag=True,
    help="Multi-region mode: splits, merges, replica moves, node loss, the placement driver "
    "(see docs/simulation.md); --nodes defaults to 4; takes --faults, --plant, --read-mode, "
    "--history and the region-* profiles, not --workload.",
)
@click.pass_context
def sim(
    ctx: click.Context,
    nodes: str,
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
    """Run a deterministic simulation of a cluster under faults and check it.

    Exits 1 when an invariant breaks or the history is not linearizable, printing the
    seed that reproduces it.
    """
    modes = {"seed": None, "safe": ReadOnlyOption.SAFE, "lease": ReadOnlyOption.LEASE_BASED}
    bugs = frozenset(PlantedBug(p) for p in planted)
    if history is not None and seeds is not None:
        raise click.UsageError("--history needs a single run (--seed), not --seeds")
    if (profile in REGION_PROFILES) != (regions and profile is not None):
        raise click.UsageError(
            "the region-* profiles need --regions"
            if profile in REGION_PROFILES
            else f"--profile {profile} cannot be combined with --regions (choose a region-* one)"
        )
    if regions:
        _refuse_with_regions(ctx, ("workload",))
        if profile is not None:
            _refuse_with_profile(ctx, ("nodes", "steps", "faults", "read_mode", "clients"))
            base = replace(
                REGION_PROFILES[profile], seed=seed, planted=bugs, keep_history=history is not None
            )
        else:
            explicit = ctx.get_parameter_source("nodes") is not click.core.ParameterSource.DEFAULT
            base = replace(
                EVERY_FAULT,
                seed=seed,
                nodes=int(nodes) if explicit else 4,
                steps=steps,
                clients=clients,
                faults=_region_faults(faults),
                planted=bugs,
                read_mode=modes[read_mode],
                keep_history=history is not None,
            )
        seed_range = (
            range(seed, seed + 1) if seeds is None else range(first_seed, first_seed + seeds)
        )
        ok = _region_sweep(
            Console(), base, seed_range, workers or default_workers(), keep_going, history, profile
        )
        sys.exit(0 if ok else 1)
    fault_set = FaultsParam().convert(faults, None, ctx)
    keep = history is not None and seeds is None
    if profile is not None:
        _refuse_with_profile(ctx, ("nodes", "steps", "faults", "read_mode", "clients"))
        config = replace(
            PROFILES[profile],
            seed=seed,
            planted=bugs,
            keep_history=keep,
            workload=Workload(workload),
        )
    else:
        config = SimConfig(
            seed=seed,
            nodes=int(nodes),
            steps=steps,
            faults=fault_set,
            planted=bugs,
            clients=clients,
            read_mode=modes[read_mode],
            keep_history=keep,
            workload=Workload(workload),
        )
    console = Console()
    if seeds is None:
        ok = _single(console, config, history, profile)
    else:
        seed_range = range(first_seed, first_seed + seeds)
        ok = _sweep(console, config, seed_range, workers or default_workers(), keep_going, profile)
    sys.exit(0 if ok else 1)


def _refuse_with_regions(ctx: click.Context, names: tuple[str, ...]) -> None:
    for name in names:
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
            flag = "--" + name.replace("_", "-")
            raise click.UsageError(f"{flag} cannot be combined with --regions")


def _region_faults(text: str) -> tuple[str, ...]:
    """`--faults` for a multi-region run: all, none, or names from `REGION_FAULTS`."""
    text = text.strip().lower()
    if text == "all":
        return REGION_FAULTS
    if text == "none":
        return ()
    chosen: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if part == Fault.MEMBERSHIP.value:
            raise click.UsageError(
                "with --regions, membership changes are the placement driver's (always on);"
                " drop 'membership' from --faults"
            )
        if part not in REGION_FAULTS:
            known = ", ".join(REGION_FAULTS)
            raise click.UsageError(f"unknown fault {part!r} with --regions (choose from: {known})")
        if part not in chosen:
            chosen.append(part)
    return tuple(f for f in REGION_FAULTS if f in chosen)


def _region_repro(base: RegionSimConfig, seed: int, profile: str | None = None) -> str:
    """The command line that reruns one seed of a multi-region sweep."""
    plants = [f"--plant {b.value}" for b in sorted(base.planted, key=lambda b: b.value)]
    if profile is not None:
        return " ".join(["cairn sim --regions --profile", profile, f"--seed {seed}", *plants])
    flags = [
        f"--seed {seed}",
        f"--steps {base.steps}",
        f"--nodes {base.nodes}",
        f"--clients {base.clients}",
    ]
    if base.faults != REGION_FAULTS:
        flags.append("--faults " + (",".join(base.faults) or "none"))
    flags.extend(plants)
    if base.read_mode is not None:
        lease = base.read_mode is ReadOnlyOption.LEASE_BASED
        flags.append("--read-mode " + ("lease" if lease else "safe"))
    return "cairn sim --regions " + " ".join(flags)


def _region_line(result: RegionSimResult) -> str:
    converged = "-" if result.converged_after is None else f"{result.converged_after / 1e6:.0f}ms"
    return (
        f"seed {result.seed}: {result.steps} steps, {result.virtual_time / 1e9:.2f}s"
        f" virtual, ops {result.ops_ok} ok / {result.ops_failed} failed /"
        f" {result.ops_unknown} unknown, regions {result.regions}, splits"
        f" {result.splits}, merges {result.merges}, moves {result.moves},"
        f" converged after {converged}, {_read_name(result.read_mode)} reads,"
        f" digest {result.digest[:12]}"
    )


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
    """Run the multi-region simulation over `seeds`; one line per run, a total at the end
    (and, for a single run with `history`, its history as JSON lines)."""
    started = time.perf_counter()
    failed: list[int] = []
    totals = {"splits": 0, "merges": 0, "moves": 0, "ops_ok": 0}
    configs = [replace(base, seed=s) for s in seeds]
    columns = (TextColumn("regions sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with (
        ProcessPoolExecutor(max_workers=min(workers, len(configs))) as pool,
        Progress(*columns, console=console, transient=True) as progress,
    ):
        task = progress.add_task("seeds", total=len(configs))
        for result in pool.map(run_region_simulation, configs):
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
                if not keep_going:
                    pool.shutdown(wait=False, cancel_futures=True)
                    break
    elapsed = time.perf_counter() - started
    summary = ", ".join(f"{k} {v}" for k, v in totals.items())
    console.print(f"{len(seeds)} seeds, {len(failed)} failed, {summary}, {elapsed:.1f}s")
    return not failed


def _refuse_with_profile(ctx: click.Context, names: tuple[str, ...]) -> None:
    for name in names:
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
            flag = "--" + name.replace("_", "-")
            raise click.UsageError(f"{flag} cannot be combined with --profile (it sets it)")


def _single(console: Console, config: SimConfig, history: str | None, profile: str | None) -> bool:
    started = time.perf_counter()
    doing = f"simulating seed {config.seed}, {config.steps} steps ..."
    with console.status(doing, refresh_per_second=4):
        result = run_simulation(config)
    elapsed = time.perf_counter() - started
    if history is not None:
        with open(history, "w", encoding="utf-8") as fp:
            write_jsonl(result.history, fp)
    console.print(_summary(result, elapsed))
    if result.failure is not None:
        console.print(f"[bold red]FAILED[/] seed {result.seed}: {result.failure}", soft_wrap=True)
        console.print(f"reproduce: cairn sim {_repro_flags(config, profile)}", soft_wrap=True)
        return False
    console.print(f"[bold green]OK[/] seed {result.seed} digest {result.digest[:16]}")
    return True


def _summary(result: SimResult, elapsed: float) -> Table:
    table = Table(title=f"cairn sim — seed {result.seed}, {result.nodes} nodes", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    ops = f"{result.ops_ok} ok / {result.ops_failed} failed / {result.ops_unknown} unknown"
    table.add_row("operations", ops)
    table.add_row(
        "steps", f"{result.steps} ({result.virtual_time / 1e9:.2f}s virtual, {elapsed:.2f}s real)"
    )
    table.add_row("read mode", result.read_mode.value)
    table.add_row("state machine", result.machine.value)
    table.add_row(
        "elections", f"{result.elections} (terms with a leader: {len(result.leaders_per_term)})"
    )
    table.add_row("commits", str(result.commits))
    faults = ", ".join(f"{k}={v}" for k, v in result.faults.items()) or "none"
    table.add_row("faults injected", faults)
    table.add_row("invariants", "held" if result.violation is None else str(result.violation))
    table.add_row("linearizability", _verdict_text(result))
    if result.workload_verdict is not None:
        check = result.workload_verdict
        text = check.details if check.failure is None else f"FAILED: {check.failure}"
        table.add_row(f"{result.workload.value} check", text)
    table.add_row(
        "settled", "yes" if result.settled else "no (no leader or clients busy at the end)"
    )
    table.add_row("digest", result.digest)
    return table


def _verdict_text(result: SimResult) -> str:
    if result.verdict is None:
        return "not checked"
    if result.verdict.ok:
        return f"linearizable ({result.verdict.ops_checked} operations)"
    if result.verdict.unknown:
        return f"unknown (search budget exhausted on key {result.verdict.key!r})"
    return f"NOT linearizable (key {result.verdict.key!r}): {result.verdict.explanation}"


def _repro_flags(config: SimConfig, profile: str | None) -> str:
    bugs = [f"--plant {b.value}" for b in sorted(config.planted, key=lambda b: b.value)]
    if config.workload is not Workload.REGISTER:
        bugs.append(f"--workload {config.workload.value}")
    if profile is not None:
        return " ".join([f"--profile {profile}", f"--seed {config.seed}", *bugs])
    flags = [f"--seed {config.seed}", f"--nodes {config.nodes}", f"--steps {config.steps}"]
    if config.faults == ALL_FAULTS:
        flags.append("--faults all")
    else:
        flags.append("--faults " + (",".join(sorted(f.value for f in config.faults)) or "none"))
    flags.extend(bugs)
    if config.read_mode is not None:
        flags.append(
            "--read-mode " + ("lease" if config.read_mode is ReadOnlyOption.LEASE_BASED else "safe")
        )
    if config.clients != 4:
        flags.append(f"--clients {config.clients}")
    return " ".join(flags)


def _sweep(
    console: Console,
    config: SimConfig,
    seeds: range,
    workers: int,
    keep_going: bool,
    profile: str | None,
) -> bool:
    failures: list[SimResult] = []
    unknown = 0
    started = time.perf_counter()
    columns = (TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("seeds", total=len(seeds))
        stop = (lambda r: False) if keep_going else (lambda r: r.failure is not None)
        for result in sweep(config, seeds, workers, stop):
            progress.advance(task)
            unknown += result.linearizable is None
            if result.failure is not None:
                failures.append(result)
                message = f"[red]seed {result.seed}[/]: {result.failure}"
                progress.console.print(message, soft_wrap=True)
    elapsed = time.perf_counter() - started
    done = int(progress.tasks[0].completed)
    console.print(
        f"{done} seeds x {config.steps} steps in {elapsed:.1f}s on {workers} workers:"
        f" {len(failures)} failed, {unknown} with an unknown linearizability verdict"
    )
    for result in sorted(failures, key=lambda r: r.seed):
        flags = _repro_flags(replace(config, seed=result.seed), profile)
        console.print(f"reproduce: cairn sim {flags}", soft_wrap=True)
    return not failures
