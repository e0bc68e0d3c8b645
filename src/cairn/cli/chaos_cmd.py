"""`cairn chaos`: a Jepsen-style run against real `cairn server` processes.

Exit status 0 when every check passed, 1 when an anomaly was found, 2 on bad usage.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cairn.chaos.faults import (
    ALL_FAULTS,
    BASIC_FAULTS,
    PLACEMENT_FAULTS,
    REGION_FAULTS,
    FaultKind,
)
from cairn.chaos.network import leftover_namespaces
from cairn.chaos.runner import WORKLOADS, ChaosConfig, ChaosResult, run_chaos
from cairn.runtime.plants import PLANTS

_GROUPS = {
    "all": ALL_FAULTS,
    "basic": BASIC_FAULTS,
    "regions": REGION_FAULTS,
    "placement": PLACEMENT_FAULTS,
    "none": frozenset(),
}


def parse_faults(text: str) -> frozenset[FaultKind]:
    """A comma-separated list of faults and groups: `all` (node, network and disk faults),
    `basic` (kill, pause, partition), `regions` (split, merge, move, transfer, drain),
    `placement` (placement-kill, placement-transfer: for the `tso` workload), `none`."""
    names = {f.value: frozenset({f}) for f in FaultKind} | _GROUPS
    chosen: set[FaultKind] = set()
    for part in (p.strip() for p in text.strip().lower().split(",")):
        if part not in names:
            known = ", ".join(f.value for f in FaultKind)
            raise click.BadParameter(
                f"unknown fault {part!r} (all, basic, regions, placement, none, or: {known})"
            )
        chosen |= names[part]
    return frozenset(chosen)


def parse_workloads(text: str) -> tuple[str, ...]:
    """`all` or a comma-separated list of register, set, counter, queue, stream, bank,
    append, tso."""
    if text.strip().lower() == "all":
        return WORKLOADS
    parts = tuple(p.strip().lower() for p in text.split(",") if p.strip())
    bad = [p for p in parts if p not in WORKLOADS]
    if bad or not parts:
        raise click.BadParameter(f"unknown workload {bad} (all, or: {', '.join(WORKLOADS)})")
    return parts


@click.command()
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 9))
@click.option("--duration", default=60.0, show_default=True, help="Seconds of faults.")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option(
    "--faults",
    "faults_text",
    default="all",
    show_default=True,
    help="A list of faults and groups: all, basic, regions, placement, none, "
    + ",".join(f.value for f in FaultKind),
)
@click.option(
    "--workload",
    "workload_text",
    default="register",
    show_default=True,
    help="all, or a list of: " + ",".join(WORKLOADS),
)
@click.option("--workers", default=4, show_default=True, help="Client threads per workload.")
@click.option(
    "--network",
    type=click.Choice(["auto", "netns", "loopback"]),
    default="auto",
    show_default=True,
    help="auto: namespaces when permitted, else loopback proxies.",
)
@click.option(
    "--plant",
    type=click.Choice(PLANTS),
    default=None,
    help="Test only: run every node with a planted bug (the run should fail).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("chaos-out"),
    show_default=True,
)
@click.option("--keep-data", is_flag=True, help="Keep the nodes' data directories.")
@click.option(
    "--cleanup",
    is_flag=True,
    help="Only delete namespaces left by runs that were killed, then exit.",
)
def chaos(
    nodes: int, duration: float, seed: int, faults_text: str, workload_text: str, workers: int,
    network: str, plant: str | None, out: Path, keep_data: bool, cleanup: bool,
) -> None:  # fmt: skip
    """Run a real cluster under faults, check the histories, write a report."""
    console = Console(stderr=True)
    if cleanup:
        _cleanup(console)
        return
    config = ChaosConfig(
        out=out, nodes=nodes, duration=duration, seed=seed, faults=parse_faults(faults_text),
        workloads=parse_workloads(workload_text), workers=workers, network=network,
        plant=plant, keep_data=keep_data,
    )  # fmt: skip
    columns = (
        TextColumn("[bold]chaos[/] seed {task.fields[seed]}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("starting", total=duration, seed=seed)

        def on_progress(t: float, message: str) -> None:
            progress.update(task, completed=min(t, duration), description=message[:70])
            progress.console.log(f"[{t:6.1f}s] {message}")

        try:
            result = run_chaos(config, on_progress)
        except KeyboardInterrupt:
            console.print("[red]interrupted[/]: every process and namespace was removed")
            sys.exit(130)
    _print_result(console, result)
    sys.exit(0 if result.ok else 1)


def _cleanup(console: Console) -> None:
    import subprocess

    for name in leftover_namespaces():
        subprocess.run(["ip", "netns", "del", name], check=False)
        console.print(f"deleted namespace {name}")


def _print_result(console: Console, result: ChaosResult) -> None:
    out = Console()
    out.print(f"network: {result.network}")
    out.print(
        f"seed {result.config.seed}; schedule: " + "; ".join(p.describe() for p in result.plan)
    )
    table = Table(title="faults injected")
    for col in ("fault", "target", "what happened"):
        table.add_column(col)
    for f in result.faults:
        table.add_row(f.kind.value, f.target, f.detail + "".join(f" [{n}]" for n in f.notes))
    out.print(table)
    checks = Table(title="checks")
    for col in ("workload", "ok", "fail", "unknown", "verdict", "details"):
        checks.add_column(col)
    for c in result.checks:
        counts = result.ops.get(c.name, {})
        verdict = "[green]ok[/]" if c.ok else "[red]ANOMALY[/]"
        checks.add_row(c.name, str(counts.get("ok", 0)), str(counts.get("fail", 0)),
                       str(counts.get("info", 0)), verdict, c.details)  # fmt: skip
    out.print(checks)
    for a in result.anomalies:
        out.print(f"[red]anomaly[/]: {a}")
    verdict = (
        "[green]no anomalies[/]" if result.ok else f"[red]{len(result.anomalies)} anomalies[/]"
    )
    out.print(f"verdict: {verdict}; acknowledged writes lost: {result.lost}")
    for name, path in result.histories.items():
        out.print(f"history ({name}): {path}")
    out.print(f"report: {result.report}")
