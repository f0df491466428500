"""Lost jobs: started, but their finish will never come (reboot, SIGKILL of both, OOM).

A running job is judged by evidence from its host, all timed by the file
server's clock (see fsutil.server_now):

* host rebooted: a fresh snapshot of the host booted after the job started;
* process gone: a fresh snapshot taken after the job started does not list
  its pid with its start time, and still no finish came `lost_grace` later
  (a finish is written within milliseconds of the exit: the grace is for
  snapshots racing with it);
* host silent: no snapshot, spool write or pingch liveness mark from the host
  for `host_silent_after`.

A job whose host shows a fresh snapshot listing it is never lost. Without
snapshots (no cron) only "host silent" can be judged. Jobs whose source
tells of their end itself (`RunningJob.owned`: a scheduler) are never
judged here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from notifyd.nodes.reader import Node
from notifyd.paths import spool_name
from notifyd.records import LostJob, RunningJob
from notifyd.state import State
from notifyd.text import human_duration

# A job's start time (pingch's clock just before spawning) and its process's
# start time (the kernel's, as psutil reports it) agree this closely.
START_SLACK = 2.0
# A snapshot must have been taken this long after the job started to count
# as evidence that its process is gone.
AFTER_START = 5.0


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except (OSError, ValueError):  # ValueError: a name with a NUL byte
        return 0.0


def last_sign_of_life(host: str, events_dir: str, alive_dir: str, node: Node | None,
                      now: float) -> float:
    """The server time of the newest trace the host left; 0 when it left none."""
    signs = [_mtime(os.path.join(events_dir, spool_name(host))),
             _mtime(os.path.join(alive_dir, host))]
    if node is not None:
        signs.append(now - node.age)
    return max(signs)


def _listed(node: Node, pid: int, start_ts: float) -> bool:
    for entry in node.data.get("pids") or []:
        if (isinstance(entry, list) and len(entry) == 2 and entry[0] == pid
                and isinstance(entry[1], (int, float)) and abs(entry[1] - start_ts) <= START_SLACK):
            return True
    return False


def judge(job: RunningJob, node: Node | None, silent_for: float, missing_for: float | None,
          *, grace: float, silent_after: float) -> tuple[str, bool]:
    """(reason, missing now) for one running job; reason '' while it is not lost.

    `missing_for` is how long (server time) the process has been missing
    from fresh snapshots, None if it was not missing before.
    """
    start = job.start_ts or 0.0
    pid = job.pid or 0
    if node is not None and not node.stale:
        boot = node.data.get("boot_time")
        if isinstance(boot, (int, float)) and start and boot > start + START_SLACK:
            return "its host rebooted", False
        taken = float(node.data["time"])
        if start and taken > start + AFTER_START and not _listed(node, pid, start):
            if missing_for is not None and missing_for >= grace:
                return "its process is gone and no finish was recorded (killed with pingch?)", True
            return "", True
        return "", False
    if silent_for >= silent_after:
        return _silence(silent_for), False
    return "", False


def _silence(seconds: float) -> str:
    """How long the host has been silent, never "0 min" (host_silent_after may be seconds)."""
    if not math.isfinite(seconds):
        return ("its host has been silent for as long as notifyd can tell "
                "(no snapshot, spool write or liveness mark from it)")
    if seconds < 1:
        return "its host has been silent for under a second"
    return f"its host has been silent for {human_duration(seconds)}"


@dataclass(frozen=True)
class Evidence:
    """What the hosts show at one moment of the file server's clock."""

    nodes: Mapping[str, Node]
    events_dir: str
    alive_dir: str
    server_now: float


def sweep(state: State, evidence: Evidence, *, grace: float,
          silent_after: float) -> tuple[bool, list[tuple[str, LostJob]]]:
    """Judge every running job; (state changed, the jobs found lost now, moved to `state.lost`)."""
    now = evidence.server_now
    changed = False
    found: list[tuple[str, LostJob]] = []
    for job, info in list(state.running.items()):
        if info.owned:
            continue
        host = info.host or ""
        node = evidence.nodes.get(host)
        last = last_sign_of_life(host, evidence.events_dir, evidence.alive_dir, node, now)
        silent = now - last if last else math.inf
        since = state.missing_since.get(job)
        reason, missing = judge(info, node, silent, None if since is None else now - since,
                                grace=grace, silent_after=silent_after)
        if missing and since is None:
            state.missing_since[job] = now
            changed = True
        elif not missing and since is not None and not reason:
            del state.missing_since[job]  # listed again: it was a race, not a loss
            changed = True
        if reason:
            del state.running[job]
            state.missing_since.pop(job, None)
            lost = LostJob(info, reason, round(now, 3))
            state.lost[job] = lost
            found.append((job, lost))
            changed = True
    return changed, found
