"""Run the benchmarks: `python3 -m bench` from the repository root (see bench/README.md).

    python3 -m bench                 # full run (~15 min): prints the table, writes bench/results.md
    python3 -m bench --quick --venv .venv --out /tmp/r.md   # smoke run, tiny sizes, no targets
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import busy, latency, overhead, procview, slurm, watcher_load
from bench.harness import REPO, Row, prepare_install


@dataclass(frozen=True)
class Sizes:
    """How much of each figure to run: the full run's sizes by default."""

    overhead_rounds: int = 5
    overhead_runs: int = 40
    hook_rounds: int = 5
    hook_runs: int = 20
    busy_runs: int = 200
    busy_calls: int = 10_000
    latency_jobs: int = 200
    old_period: float = 10.0
    idle_runs: int = 3
    idle_seconds: float = 60.0
    burst_runs: int = 3
    burst_jobs: int = 1000
    history_runs: int = 5
    history_events: int = 1_000_000
    procs_runs: int = 10
    procs_nodes: int = 100
    procs_per_node: int = 40
    snapshot_runs: int = 5
    snapshot_processes: int = 2000
    slurm_jobs: int = 40


QUICK = Sizes(overhead_rounds=2, overhead_runs=3, hook_rounds=1, hook_runs=2, busy_runs=3, busy_calls=100,
              latency_jobs=6, old_period=1.0, idle_runs=1, idle_seconds=2.0, burst_runs=1, burst_jobs=30,
              history_runs=1, history_events=2000, procs_runs=2, procs_nodes=3, procs_per_node=10,
              snapshot_runs=1, snapshot_processes=50, slurm_jobs=2)


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{platform.node()}: {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, "
            f"{platform.system()} {platform.release()}; load average at start {load}")


def table(rows: list[Row]) -> str:
    lines = ["| figure | notifyd: median (spread, runs) | baseline, same run | ratio | target | met |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        met = {True: "yes", False: "**NO**", None: "report"}[r.met]
        lines.append(f"| {r.figure} | {r.value} | {r.baseline} | {r.ratio} | {r.target} | {met} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, a few seconds: proves the suite runs (CI); no targets judged")
    parser.add_argument("--venv", type=Path,
                        help="measure the notifyd installed in this venv as is (default: install this "
                        "tree, non-editable, into bench/.venv)")
    parser.add_argument("--out", type=Path, help="results file (default: bench/results.md; "
                        "--quick writes none unless given)")
    parser.add_argument("--only", action="append", default=[],
                        help="run only figures whose group name is given (repeatable): overhead, hook, "
                        "busy, latency, idle, burst, history, procs, snapshot, slurm-latency, slurm-calls, "
                        "slurm-poll")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else Sizes()
    out = args.out or (None if args.quick else REPO / "bench" / "results.md")

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    install = prepare_install(args.venv, say)
    started = time.time()
    host = machine()
    groups: list[tuple[str, Callable[[], list[Row]]]] = [
        # Instructions are counted under valgrind (a few seconds): full runs only.
        ("overhead", lambda: overhead.pingch_overhead(install, size.overhead_rounds,
                                                      size.overhead_runs, instructions=not args.quick)),
        ("hook", lambda: overhead.hook_overhead(install, size.hook_rounds, size.hook_runs)),
        ("busy", lambda: busy.start_check(install, size.busy_runs, size.busy_calls,
                                          instructions=not args.quick)),
        ("latency", lambda: latency.finish_to_message(install, size.latency_jobs,
                                                      size.old_period)),
        ("idle", lambda: watcher_load.idle(install, size.idle_runs, size.idle_seconds)),
        ("burst", lambda: watcher_load.burst(install, size.burst_runs, size.burst_jobs)),
        ("history", lambda: watcher_load.history(install, size.history_runs,
                                                 size.history_events)),
        ("procs", lambda: procview.procs_view(install, size.procs_runs, size.procs_nodes,
                                              size.procs_per_node)),
        ("snapshot", lambda: procview.snapshot_cpu(install, size.snapshot_runs,
                                                   size.snapshot_processes)),
        # A SLURM cluster of its own (root) for each: full runs, or --only slurm-*.
        ("slurm-latency", lambda: slurm.figures(install, "latency", size.slurm_jobs, args.quick)),
        ("slurm-calls", lambda: slurm.figures(install, "calls", size.slurm_jobs, args.quick)),
        ("slurm-poll", lambda: slurm.figures(install, "poll", size.slurm_jobs, args.quick)),
    ]
    rows: list[Row] = []
    for name, run in groups:
        if args.only and name not in args.only:
            continue
        if name.startswith("slurm") and args.quick and not args.only:
            continue  # the suite's own SLURM lab may be running: one lab at a time
        say(f"bench: {name} ...")
        t0 = time.monotonic()
        got = run()
        rows += got
        say(f"bench: {name} done in {time.monotonic() - t0:.0f} s: " + "; ".join(r.value for r in got))
    if args.quick:
        for r in rows:
            r.met = None  # tiny sizes: the targets do not apply
    text = table(rows)
    print(text)
    if out is not None:
        command = "python3 -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
        notes = "\n".join(f"- **{r.figure}**: " + " ".join(n[0].upper() + n[1:].rstrip(".") + "."
                                                          for n in r.notes)
                          for r in rows if r.notes)
        out.write_text(
            f"# notifyd benchmark results\n\n"
            f"- date: {time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(started))}, "
            f"took {time.time() - started:.0f} s\n"
            f"- command: `{command.strip()}` (from the repository root)\n"
            f"- machine: {host}\n- measured: {install.describe()}\n"
            f"- mode: {'QUICK (smoke sizes; targets not judged)' if args.quick else 'full'}\n\n"
            f"{text}\n\n## How each figure was measured\n\n{notes}\n"
        )
        say(f"bench: wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
