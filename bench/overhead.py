"""What wrapping a job and logging in cost: `pingch true` and the login hook.

Each round runs the command and its baseline alternately (so drift on a shared
machine hits both alike) and takes the difference of their medians; the
figure is the median of the rounds, with the rounds' spread. `pingch true` is
also set against the bare interpreter of the same venv (`python -I -S -c
pass`), the floor of any wrapper written in Python, as a ratio of medians.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from bench.harness import REPO, Dist, Home, Install, Row, home, ms, start_watcher, stop_watchers, timed

# The labmate's original, written again from its description: run the command
# in the background with eval, append a Started and a Finished line with
# `date` and `hostname`, wait, return its status.
OLD_PINGCH = r'''
pingch_old() {
  local title="$*"
  eval "$@" &
  local pid=$!
  echo "$pid@$(hostname): Started [$title] $(date)" >> "$HOME/.pingchilling"
  wait "$pid"
  local rc=$?
  echo "$pid@$(hostname): Finished [$rc] $(date)" >> "$HOME/.pingchilling"
  return "$rc"
}
'''


def _added(runs: dict[str, list[float]], cmd: str, base: str) -> float:
    return statistics.median(runs[cmd]) - statistics.median(runs[base])


def pingch_overhead(install: Install, rounds: int, per_round: int, instructions: bool = True) -> list[Row]:
    with home() as h:
        # As in real use a watcher runs (the login hook started it), so pingch
        # finds it alive and starts none.
        start_watcher(install, h)
        commands = {
            "true": ["true"],
            "pingch": [install.pingch, "true"],
            "bash": ["bash", "-c", "true"],
            "bash_old": ["bash", "-c", OLD_PINGCH + "pingch_old true"],
            # The floor of any wrapper written in Python: the same venv's
            # interpreter started with nothing to do (no site, no script).
            "python": [install.python, "-I", "-S", "-c", "pass"],
            # The floor of any script in the venv: its interpreter with site
            # (which a script's #!python cannot skip) and nothing to do.
            "site": [install.python, "-c", "pass"],
        }
        added, added_old, ratios, over_python, over_site = [], [], [], [], []
        raw_pingch, raw_true, raw_python = [], [], []
        for _ in range(rounds):
            runs: dict[str, list[float]] = {k: [] for k in commands}
            for _ in range(per_round):
                for name, argv in commands.items():
                    runs[name].append(timed(argv, h.env)[0])
            a = _added(runs, "pingch", "true")
            b = _added(runs, "bash_old", "bash")
            added.append(a)
            added_old.append(b)
            ratios.append(a / b)
            over_python.append(statistics.median(runs["pingch"]) / statistics.median(runs["python"]))
            over_site.append(statistics.median(runs["site"]) / statistics.median(runs["python"]))
            raw_pingch += runs["pingch"]
            raw_true += runs["true"]
            raw_python += runs["python"]
        counted = _instruction_counts(h.env, commands) if instructions else None
        stop_watchers(h)
    d, old, r, py, site = Dist(added), Dist(added_old), Dist(ratios), Dist(over_python), Dist(over_site)
    rows = [Row(
        "pingch overhead per job (wall, `pingch true` minus `true`)",
        d.fmt(ms),
        f"old bash function: {old.fmt(ms)} added over `bash -c true`; bare interpreter "
        f"(`python -I -S -c pass`): {Dist(raw_python).fmt(ms)}",
        f"{r.median:.2f}x ({r.spread[0]:.2f}-{r.spread[1]:.2f}) the bash function's; `pingch true` "
        f"{py.median:.2f}x ({py.spread[0]:.2f}-{py.spread[1]:.2f}) the bare interpreter",
        "<= 20 ms added; <= 4x the bash baseline's added time; `pingch true` <= 1.4x the bare "
        "interpreter",
        d.median <= 0.020 and r.median <= 4.0 and py.median <= 1.4,
        [f"{rounds} rounds of {per_round} runs of each command, interleaved; `pingch true` "
         f"itself {Dist(raw_pingch).fmt(ms)}, `true` {Dist(raw_true).fmt(ms)} over all runs",
         "the bare interpreter is the venv's own python with no site and no script: the floor "
         "of any wrapper written in Python; the ratio is `pingch true` over it, round by round",
         f"`python -c pass` (site, which a script cannot skip, and nothing else) is "
         f"{site.median:.2f}x ({site.spread[0]:.2f}-{site.spread[1]:.2f}) the bare interpreter",
         "a watcher was running for the user (as after login), so pingch starts none"],
    )]
    if counted:
        rows.append(counted)
    return rows


def _instruction_counts(env: dict[str, str], commands: dict[str, list[str]]) -> Row | None:
    """Instructions each start executes (valgrind's callgrind): the same every run, load or not.

    Wall time on a shared machine swings by tens of percent; instruction
    counts do not, so they show what a change to pingch's start did. Only
    the process itself is counted (pingch's job, `true`, is not traced).
    """
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    counts = {}
    for name in ("pingch", "python", "site"):
        p = subprocess.run([valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null",
                            *commands[name]], env=env, capture_output=True, text=True, check=False)
        found = re.search(r"Collected : (\d+)", p.stderr)
        if found is None:
            return None
        counts[name] = int(found.group(1))
    ratio = counts["pingch"] / counts["python"]
    return Row(
        "`pingch true` start, instructions (valgrind), over the bare interpreter",
        f"{counts['pingch'] / 1e6:.1f} M", f"`python -I -S -c pass`: {counts['python'] / 1e6:.1f} M; "
        f"`python -c pass` (with site): {counts['site'] / 1e6:.1f} M",
        f"{ratio:.2f}x", "-", None,
        ["counted once each: instruction counts repeat exactly; pingch's job (`true`) is not traced",
         "`python -c pass` includes Python's shutdown, which pingch skips (os._exit after flushing)"],
    )


def _wait_for_ensures(h: Home, timeout: float = 30.0) -> None:
    """Until no `notifyd ensure` of this home runs (each login's hook starts one, detached)."""
    deadline = time.monotonic() + timeout
    home_var = f"HOME={h.root}".encode()
    while time.monotonic() < deadline:
        running = False
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if b"ensure" in cmd and home_var in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    running = True
                    break
            except OSError:
                continue
        if not running:
            return
        time.sleep(0.02)


def hook_overhead(install: Install, rounds: int, per_round: int) -> list[Row]:
    with home() as h:
        start_watcher(install, h)  # the usual case: the hook finds a watcher running
        bashrc = h.root / ".bashrc"
        plain = h.root / ".bashrc-plain"
        plain.write_text("")
        hooked = h.root / ".bashrc-hooked"
        hooked.write_text(f"NOTIFYD_BIN={install.notifyd}\nsource {REPO / 'hooks' / 'notifyd.bash'}\n")
        argv = ["bash", "--rcfile", "", "-ic", "exit"]
        added = []
        for _ in range(rounds):
            with_hook: list[float] = []
            without: list[float] = []
            for _ in range(per_round):
                for rc, out in ((plain, without), (hooked, with_hook)):
                    argv[2] = str(rc)
                    out.append(timed(argv, h.env)[0])
                # The hook leaves `notifyd ensure` running in the background
                # (~0.1-0.3 s of CPU); let it finish so it does not weigh on
                # the next login's figure.
                _wait_for_ensures(h)
            added.append(statistics.median(with_hook) - statistics.median(without))
        bashrc.write_text("")
        _wait_for_ensures(h)  # one still running would start a watcher after this figure ends
        stop_watchers(h)
    d = Dist(added)
    return [Row(
        "`hooks/notifyd.bash` added to a bash login (`bash -ic exit`)",
        d.fmt(ms), "the same login without the hook", "-",
        "<= 30 ms added", d.median <= 0.030,
        [f"{rounds} rounds of {per_round} logins with and without the hook, interleaved; "
         "the hook's `notifyd ensure` runs after the shell is ready, in the background"],
    )]
