"""SLURM jobs: how soon their end is told, how many calls the controller gets, what a poll costs.

A real single-node SLURM (tests/slurmlab.py, as root; the jobs and the
watcher run as the lab's non-root test user), the same watcher as the other
figures, Apprise's json:// to a local webhook.

- end -> message: `sbatch` jobs, one every 0-`interval` s at random, so
  their ends fall anywhere between two polls. Without pingch the job's end is
  the time its script's last command wrote (the scheduler marks the job
  ended a few ms later); with `pingch` as the script's last command it is
  the `ts` of pingch's finish event, as in the latency figure. The watcher
  polls at `[slurm] interval = 5s` so the figure takes minutes, not hours;
  the target scales with it.
- controller calls: every squeue, sacct and scontrol the watcher made
  (its own count, `notifyd status --json`), at default settings, while the
  user has no job and while 100 jobs are queued or running.
- a poll's cost: `squeue --me -t all` with 500 of the user's jobs queued
  (wall time, as the test user), and notifyd's parse of its output and pass
  over the job table, in this process.
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import REPO, Dist, Install, Row, ms, quantile, receiver, sec

SLURM_INTERVAL = 5.0  # the watcher's [slurm] interval for the end -> message figure
IDLE_WINDOW = 240.0
BUSY_JOBS = 100
QUEUE_JOBS = 500


def _lab_or_reason() -> tuple[Any, str]:
    import slurmlab

    lacking = slurmlab.missing(accounting=False)
    if lacking:
        return None, f"needs {lacking} (tests/system-deps.sh installs them)"
    import os

    if os.geteuid() != 0:
        return None, "needs root to start the SLURM lab's daemons"
    return slurmlab, ""


def figures(install: Install, part: str, jobs: int, quick: bool) -> list[Row]:
    """One part of the SLURM figures (latency, calls, poll); a row saying what is missing where
    the lab cannot run."""
    sys.path.insert(0, str(REPO / "tests"))
    mod, why = _lab_or_reason()
    if mod is None:
        return [Row(f"SLURM figures ({part})", "not measured", "-", "-", "-", None, [why])]
    from slurmuser import SlurmUser

    lab = mod.SlurmLab(venv=install.venv)
    lab.start(mod.LabConfig(min_job_age=300))
    try:
        with receiver() as rec:
            if part == "latency":
                return _latency(lab, SlurmUser(lab, rec), jobs)
            if part == "calls":
                return _calls(lab, SlurmUser(lab, rec), IDLE_WINDOW / (24 if quick else 1),
                              10 if quick else BUSY_JOBS)
            return _poll_cost(lab, 20 if quick else QUEUE_JOBS)
    finally:
        lab.stop()


# -- end -> message ------------------------------------------------------------------------------
PLAIN = ("#!/bin/bash\n#SBATCH -J plain-{n}\n#SBATCH -o /dev/null\n"
         "python3 -c 'import time; print(repr(time.time()))' > {ends}/plain-{n}\n")
INNER = "#!/bin/bash\n#SBATCH -J inner-{n}\n#SBATCH -o /dev/null\npingch -t inner-{n} true\n"


def _latency(lab: Any, user: Any, jobs: int) -> list[Row]:
    # idle_interval = interval: the steady state of a user with jobs coming. After a quiet
    # spell the source backs off (up to min(idle_interval, MinJobAge/2)), and the first
    # end of a plain job waits for that poll.
    user.configure(interval=f"{SLURM_INTERVAL:g}s", idle_interval=f"{SLURM_INTERVAL:g}s").start_watcher()
    ends = user.root / "ends"
    user._mkdir(ends)
    rng = random.Random(7)
    try:
        # One kind at a time: a pingch finish makes the source poll sooner, which
        # would shorten the wait of plain jobs ending meanwhile.
        for wanted, script in ((jobs, PLAIN), (2 * jobs, INNER)):
            for n in range(jobs):
                lab.submit(script.format(n=n, ends=ends), env=user.env)
                time.sleep(rng.uniform(0, SLURM_INTERVAL))
            deadline = time.monotonic() + 120 + SLURM_INTERVAL * 4
            while len(user.messages()) < wanted and time.monotonic() < deadline:
                time.sleep(0.5)
        plain, inner = _delays(user, ends)
    finally:
        user.stop_watcher()
    if len(plain) < jobs or len(inner) < jobs:
        raise SystemExit(f"bench: SLURM jobs were not all told: {len(plain)} plain, {len(inner)} with "
                         f"pingch, of {jobs} each; watcher log:\n{user.watcher_log()[-3000:]}")
    rows = []
    for d, what, target, ok in (
        (Dist(inner), "with pingch inside", "p95 <= 1.5 s (as plain pingch jobs)",
         quantile(inner, 0.95) <= 1.5),
        (Dist(plain), "squeue only", f"p95 <= interval + 2 s = {SLURM_INTERVAL + 2:g} s",
         quantile(plain, 0.95) <= SLURM_INTERVAL + 2),
    ):
        rows.append(Row(
            f"SLURM job end -> message at a local webhook, {what} ({jobs} sbatch jobs)",
            f"p50 {sec(d.median)}, p95 {sec(quantile(d.samples, 0.95))}, max {sec(max(d.samples))}",
            "-", "-", target, ok,
            [f"[slurm] interval = idle_interval = {SLURM_INTERVAL:g}s (a user with jobs coming: after a "
             "quiet spell the source backs off to min(idle_interval, MinJobAge/2) and a plain job's "
             "first end waits for that poll), jobs submitted 0-{SLURM_INTERVAL:g} s apart at "
             "random so their ends fall anywhere between two polls, the plain jobs first, then those "
             "with pingch; " + ("the end is pingch's finish event's ts, and that finish makes the source "
                                "poll soon (0.5 s, then 1, 2, 4 s...) for the scheduler's word" if
                                what.startswith("with") else
                                "the end is the time the script's last command wrote; found by "
                                "the regular polls alone")],
        ))
    return rows


def _delays(user: Any, ends: Path) -> tuple[list[float], list[float]]:
    end_of = {p.name: float(p.read_text()) for p in ends.iterdir() if p.read_text().strip()}
    for spool in (user.state_dir / "events").glob("*.jsonl"):
        for line in spool.read_text().splitlines():
            ev = json.loads(line)
            if ev.get("ev") == "finish" and str(ev.get("title", "")).startswith("inner-"):
                end_of[ev["title"]] = float(ev["ts"])
    plain: list[float] = []
    inner: list[float] = []
    for arrived, body in user.receiver.arrivals():
        found = re.match(r"\S+ ((plain|inner)-\d+) ", body["title"])
        if found and found.group(1) in end_of:
            (plain if found.group(2) == "plain" else inner).append(arrived - end_of.pop(found.group(1)))
    return plain, inner


# -- controller calls ---------------------------------------------------------------------------
def _calls(lab: Any, user: Any, window: float, busy_jobs: int) -> list[Row]:
    """Calls at default settings: while the user has no jobs, then while `busy_jobs` are queued."""
    user.configure(interval="60s", idle_interval="5m", timeout="30s").start_watcher()
    try:
        idle = _count_over(user, window)
        jobs = [lab.submit("sleep 3600", "-J", f"busy-{i}", "-o", "/dev/null", env=user.env)
                for i in range(busy_jobs)]
        busy = _count_over(user, window)
        for job in jobs:
            lab.cancel(job)
    finally:
        user.stop_watcher()
    rows = []
    for (calls, interval), what, limit in ((idle, "no job", 60), (busy, f"{busy_jobs} jobs queued or "
                                                                   "running", 120)):
        per_hour = sum(calls.values()) * 3600 / window
        settled = 3600 / interval + 1  # + scontrol show config, hourly
        rows.append(Row(
            f"SLURM controller calls per hour, {what}, default settings",
            f"{per_hour:.0f}/h measured over {window:.0f} s ({_calls_text(calls)}); settled: "
            f"{settled:.0f}/h (every {interval:.0f} s)",
            "-", "-", f"<= {limit}/h, never one per job", max(per_hour, settled) <= limit,
            [f"counted by the watcher itself (`notifyd status --json`: slurm.calls) over {window:.0f} s "
             f"from a fresh count; 'settled' is 3600 / the interval the source had settled on at the end "
             "(MinJobAge 300 s: it polls at most every 150 s while idle, 60 s while busy) plus the "
             "hourly scontrol; the first minutes of an idle watcher poll more often while it backs off"],
        ))
    return rows


def _count_over(user: Any, window: float) -> tuple[dict[str, int], float]:
    def calls() -> dict[str, int]:
        return dict((user.status_json().get("slurm") or {}).get("calls") or {})

    before = calls()
    time.sleep(window)
    after = calls()
    interval = float((user.status_json().get("slurm") or {}).get("interval") or 60)
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}, interval


def _calls_text(calls: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(calls.items()) if n) or "none"


# -- a poll's cost --------------------------------------------------------------------------------
def _poll_cost(lab: Any, jobs: int) -> list[Row]:
    from notifyd.slurm import parse
    from notifyd.watcher.sources.slurm import Pass, Settings, SlurmSource, Snapshot

    ids = [lab.submit("true", "-J", f"queued-{i}", "--hold", "-o", "/dev/null") for i in range(jobs)]
    try:
        walls, outputs = [], []
        for _ in range(10):
            t0 = time.perf_counter()
            p = lab.as_user(parse.squeue_argv(), {"SLURM_TIME_FORMAT": "%s"})
            walls.append(time.perf_counter() - t0)
            outputs.append(p.stdout)
    finally:
        lab.admin(["scancel", *map(str, ids)])
    text = outputs[-1]
    passes = []
    for _ in range(10):
        source = SlurmSource(Settings(), "bench", lab.user)
        cursor: dict[str, Any] = {"cluster": "lab", "min_job_age": 300, "config_at": time.time()}
        t0 = time.perf_counter()
        snap = Snapshot(at=time.time(), queue=parse.parse_squeue(text))
        Pass(source, snap, cursor, time.time()).run()
        passes.append(time.perf_counter() - t0)
    seen = len(parse.parse_squeue(text))
    return [
        Row(f"SLURM poll with {jobs} of the user's jobs queued: `squeue --me -t all`, wall",
            Dist(walls).fmt(ms), "-", "-", "report", None,
            [f"10 calls as the test user; {seen} jobs in the answer, {len(text.encode()) / 1024:.0f} KiB"]),
        Row(f"SLURM poll with {jobs} jobs queued: notifyd's parse and pass over the job table",
            Dist(passes).fmt(ms), "-", "-", "report", None,
            ["10 runs in this process on the answer above; each a first sight of every job (a start "
             "event each), the costliest pass"]),
    ]
