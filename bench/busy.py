"""What pingch's busy-node check adds to a job's start (warn_if_busy in notifyd/pingch/facts.py).

The check is timed inside the interpreter, where a shared machine's noise
does not drown it (`pingch true` itself swings by milliseconds between runs):
its first call in a fresh interpreter that has loaded every module pingch
loads (the code of the check comes with pingch/facts.py, which every job
loads anyway), which is what a job pays; warm, the check alone over many
calls, on this node and on a crafted busy one (the line written to
/dev/null); and where valgrind is installed, the instructions of that first
call, which do not move with the machine's load.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from bench.harness import Dist, Install, Row, home

# Run by the venv's python, from "/" (so the installed code is what runs).
LOADED = "import sys, time\nfrom notifyd.pingch import entry\n"  # every module pingch loads
COLD = LOADED + """t0 = time.perf_counter()
from notifyd.pingch import facts
facts.warn_if_busy(sys.argv[1], sys.argv[2])
print(time.perf_counter() - t0)
"""
WARM = """import sys, time
from notifyd.pingch import facts
n = int(sys.argv[3])
facts.warn_if_busy(sys.argv[1], sys.argv[2])
t0 = time.perf_counter()
for _ in range(n):
    facts.warn_if_busy(sys.argv[1], sys.argv[2])
print((time.perf_counter() - t0) / n)
"""
CHECK = "from notifyd.pingch import facts\nfacts.warn_if_busy(sys.argv[1], sys.argv[2])\n"
BUSY_MEMINFO = "MemTotal: 16000000 kB\nMemAvailable: 800000 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n"


def us(x: float) -> str:
    return f"{x * 1e6:.0f} µs"


def _run(install: Install, code: str, env: dict[str, str], *args: str) -> float:
    p = subprocess.run([install.python, "-c", code, *args], env=env, cwd="/", text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True)
    return float(p.stdout)


def _instructions(install: Install, env: dict[str, str], *args: str) -> str:
    """The first check's instructions: pingch's modules loaded and one check, minus the modules alone."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return ""
    counts = []
    for code in (LOADED, LOADED + CHECK):
        p = subprocess.run([valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", install.python,
                            "-c", code, *args], env=env, cwd="/", capture_output=True, text=True, check=False)
        found = re.search(r"Collected : (\d+)", p.stderr)
        if found is None:
            return ""
        counts.append(int(found.group(1)))
    return f"the first check executes {(counts[1] - counts[0]) / 1e6:.2f} M instructions (valgrind)"


def start_check(install: Install, runs: int, calls: int, instructions: bool = True) -> list[Row]:
    with home() as h:
        # pingch.conf as the watcher writes it at its start: read on every check.
        h.state_dir.mkdir(parents=True, exist_ok=True)
        (h.state_dir / "pingch.conf").write_text("start_warning=yes\nwarn_mem=10\n")
        where = (h.host, str(h.state_dir))
        cold = Dist([_run(install, COLD, h.env, *where) for _ in range(runs)])
        warm = Dist([_run(install, WARM, h.env, *where, str(calls)) for _ in range(3)])
        proc = Path(h.root) / "busy-proc"
        proc.mkdir()
        (proc / "meminfo").write_text(BUSY_MEMINFO)
        (proc / "loadavg").write_text("99.00 90.00 80.00 100/1000 4242\n")
        busy_env = {**h.env, "NOTIFYD_TEST_PROC_ROOT": str(proc)}
        warm_busy = Dist([_run(install, WARM, busy_env, *where, str(calls)) for _ in range(3)])
        counted = _instructions(install, h.env, *where) if instructions else ""
    notes = [f"{runs} fresh interpreters of the venv, each having loaded every module pingch loads "
             "(pingch/entry.py and its imports), then timing one check: reading pingch.conf, "
             "/proc/meminfo and /proc/loadavg; this node was not busy",
             f"warm, the check alone: {warm.fmt(us)} per call on this node, {warm_busy.fmt(us)} on a "
             f"crafted busy node (its line written to /dev/null), {calls} calls per run",
             "it runs after the job is spawned, so the job itself never waits for it"]
    if counted:
        notes.append(counted)
    return [Row(
        "pingch's busy-node check at a job's start (first call, in a fresh interpreter)",
        cold.fmt(us), "-", "-", "<= 0.5 ms added", cold.median <= 0.0005, notes,
    )]
