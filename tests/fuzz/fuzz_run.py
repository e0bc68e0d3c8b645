"""Run the fuzz targets with atheris (libFuzzer): a bounded pass, or a long one.

    python tests/fuzz/fuzz_run.py --target all --runs 200000
    python tests/fuzz/fuzz_run.py --target resp --target frame --runs 2000000 --seconds 3600

Each target runs in its own subprocess (this file with `--worker`), with libFuzzer's
`-runs=` (inputs), `-max_total_time=` (seconds), `-rss_limit_mb=` (a process over it is an
out-of-memory failure), `-timeout=` (one input taking longer is a hang) and a fresh corpus
under a temporary directory, seeded with the target's valid inputs and its checked-in
regressions (`fuzz_targets.seeds`, `regressions/<target>/`). The modules each target
exercises are instrumented for coverage (`INSTRUMENTED`). A failing input is saved as
`crash-*`, `timeout-*` or `oom-*` in the target's artifact directory, which is printed.
The exit status is 0 only when every target ran clean.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
SRC = HERE.parent.parent / "src"
TARGET_NAMES = ("resp", "frame", "envelope", "raft", "entry", "config", "admin_json")
"""Every target of `fuzz_targets.TARGETS` (named here too, so the runner imports no cairn)."""
MAX_LEN = 4096
INSTRUMENTED: dict[str, tuple[str, ...]] = {
    "resp": ("cairn.resp",),
    "frame": (
        "cairn.runtime.frames", "cairn.runtime.frame_checks", "cairn.runtime.peer_auth",
        "cairn.runtime.envelope_codec", "cairn.raft.wire", "cairn.placement.codec",
        "cairn.placement.service", "cairn.shard.region_machine", "cairn.store.acl",
        "cairn.runtime.acl_commands", "cairn.store.scripting.functions",
        "cairn.runtime.admin_peer",
    ),
    "envelope": ("cairn.runtime.envelope_codec", "cairn.raft.wire", "cairn.runtime.frame_checks"),
    "raft": ("cairn.raft.wire", "cairn.raft.types", "cairn.runtime.frame_checks"),
    "entry": (
        "cairn.storage.records", "cairn.runtime.frame_checks", "cairn.shard.region_machine",
        "cairn.meta.region", "cairn.store.machine", "cairn.runtime.range_store",
        "cairn.store.ranges", "cairn.store.carve", "cairn.store.merge_image",
        "cairn.store.idempotency", "cairn.store.idempotency_entries",
        "cairn.store.idempotency_table", "cairn.store.reply_codec", "cairn.placement",
    ),
    "config": ("cairn.runtime.config",),
    "admin_json": ("cairn.admin.views", "cairn.admin.server", "cairn.placement.model"),
}
"""The modules whose coverage guides each target (instrumenting all of cairn would cost
each worker half a minute of start-up, for code the target never reaches). A package
whose classes cross module boundaries (placement's commands, codec and errors) is listed
whole: instrumented modules are imported afresh, and a fresh module catching an error
class of the fresh codec would miss the one an old, uninstrumented module raises."""

PREIMPORTED = (
    "msgpack", "aiohttp.web", "redis", "lmdb", "cryptography.x509", "rich.console", "click",
    "prometheus_client", "tomllib", "json", "asyncio", "uvloop",
)
"""Third-party and standard modules the targets' imports pull in, imported before the
instrumenting import hook is installed."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one target's libFuzzer run reported."""

    target: str
    runs: int
    seconds: float
    peak_rss_mb: int
    failure: str
    """"" when clean, else "crash", "timeout", "oom" or "exit <status>"."""
    artifacts: str
    tail: str
    """The end of the output, for a failure's report."""

    @property
    def rate(self) -> float:
        """Inputs per second."""
        return self.runs / self.seconds if self.seconds > 0 else 0.0


def _failure(status: int, output: str) -> str:
    if "libFuzzer: timeout" in output:
        return "timeout"
    if "libFuzzer: out-of-memory" in output:
        return "oom"
    if any(s in output for s in ("Uncaught Python exception", "deadly signal", "target exited")):
        return "crash"
    return "" if status == 0 else f"exit {status}"


def _stat(output: str, name: str) -> int:
    found = re.findall(rf"stat::{name}:\s*(\d+)", output)
    return int(found[-1]) if found else 0


def run_target(
    target: str,
    runs: int,
    seconds: int,
    rss_mb: int,
    timeout: int,
    workdir: Path,
    nice: int = 0,
    seed: int = 1,
) -> Outcome:
    """Fuzz `target` for `runs` inputs (or `seconds`, whichever ends first)."""
    corpus, seeds, artifacts = (workdir / target / d for d in ("corpus", "seeds", "artifacts"))
    for d in (corpus, seeds, artifacts):
        d.mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable, str(Path(__file__).resolve()), "--worker", target, str(seeds),
        str(corpus), f"-runs={runs}", f"-rss_limit_mb={rss_mb}", f"-timeout={timeout}",
        f"-max_len={MAX_LEN}", "-print_final_stats=1", f"-artifact_prefix={artifacts}/",
        f"-seed={seed + TARGET_NAMES.index(target)}",
    ]
    if seconds > 0:
        args.append(f"-max_total_time={seconds}")
    if nice:
        args = ["nice", "-n", str(nice), *args]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(HERE)]))
    start = time.monotonic()
    proc = subprocess.run(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, check=False
    )  # one stream, in order: atheris prints a crash's traceback on stdout
    elapsed = time.monotonic() - start
    output = proc.stdout
    return Outcome(
        target=target,
        runs=_stat(output, "number_of_executed_units"),
        seconds=elapsed,
        peak_rss_mb=_stat(output, "peak_rss_mb"),
        failure=_failure(proc.returncode, output),
        artifacts=str(artifacts),
        tail=output[-3000:],
    )


def _instrumented_targets(target: str) -> ModuleType:
    """`fuzz_targets` with the modules of `INSTRUMENTED[target]` instrumented.

    Every module is imported once normally (under atheris' import hook each import costs
    about ten times as much); then the instrumented ones, and `fuzz_targets`, are dropped
    from `sys.modules` and imported again under the hook, so the target calls their
    instrumented copies."""
    import atheris

    for module in PREIMPORTED:
        importlib.import_module(module)
    importlib.import_module("fuzz_targets")
    prefixes = INSTRUMENTED[target]
    for name in list(sys.modules):
        if name == "fuzz_targets" or any(name == p or name.startswith(p + ".") for p in prefixes):
            del sys.modules[name]
    with atheris.instrument_imports(include=list(prefixes)):
        return importlib.import_module("fuzz_targets")


def worker(argv: list[str]) -> None:
    """The child: write the seeds, instrument cairn, fuzz one target (libFuzzer args)."""
    import atheris

    target, seeds, rest = argv[0], argv[1], argv[2:]
    sys.path.insert(0, str(HERE))
    fuzz_targets = _instrumented_targets(target)
    fuzz_targets.write_seeds(target, seeds)

    def test_one_input(data: bytes) -> None:
        fuzz_targets.run_one(target, data)

    atheris.Setup([sys.argv[0], *rest, seeds], test_one_input)
    atheris.Fuzz()


def report(outcomes: list[Outcome]) -> str:
    """A table of the outcomes, one line a target, and the totals."""
    lines = [f"{'target':<11} {'inputs':>10} {'seconds':>8} {'inputs/s':>9} {'peak MB':>8}  result"]
    for o in outcomes:
        result = o.failure or "clean"
        lines.append(
            f"{o.target:<11} {o.runs:>10} {o.seconds:>8.1f} {o.rate:>9.0f} {o.peak_rss_mb:>8}  "
            f"{result}" + (f" (see {o.artifacts})" if o.failure else "")
        )
    total = sum(o.runs for o in outcomes)
    bad = sum(1 for o in outcomes if o.failure)
    lines.append(f"total: {total} inputs, {bad} failing target(s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", action="append", choices=[*TARGET_NAMES, "all"])
    parser.add_argument("--runs", type=int, default=100_000, help="inputs per target")
    parser.add_argument("--seconds", type=int, default=0, help="time cap per target (0: none)")
    parser.add_argument("--rss-mb", type=int, default=1024, help="libFuzzer -rss_limit_mb")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take")
    parser.add_argument("--workdir", type=Path, help="corpus and artifacts (default: a tempdir)")
    parser.add_argument("--nice", type=int, default=0, help="run the workers under nice -n")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer -seed of the first target")
    args = parser.parse_args(argv)
    names = TARGET_NAMES if not args.target or "all" in args.target else tuple(args.target)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cairn-fuzz-"))
    outcomes = []
    for name in names:
        outcome = run_target(
            name, args.runs, args.seconds, args.rss_mb, args.timeout, workdir, args.nice,
            args.seed,
        )
        outcomes.append(outcome)
        print(report([outcome]).splitlines()[1], flush=True)
        if outcome.failure:
            print(outcome.tail, file=sys.stderr)
    print(report(outcomes))
    return 1 if any(o.failure for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
