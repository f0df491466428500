"""One node's snapshot: who runs what, how busy the node is; written by cron every minute.

    $ notifyd snapshot
    $ cat ~/.local/state/notifyd/procs/node5.json | python -m json.tool | head

CPU is sampled, not read from ps: ps's %CPU is a lifetime average, and a
process's first psutil cpu_percent() is 0.0. So one run primes every process,
sleeps `interval` and samples again (psutil's scripts do the same).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import psutil

from notifyd import fsutil, procfs
from notifyd.errors import NotifydError
from notifyd.nodes import history, reader
from notifyd.nodes.reader import SCHEMA_VERSION

CMD_MAX = 200  # characters of a command line kept per process


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid the name service cannot resolve: show the number, as ps does
        return str(uid)


def _gpus() -> list[dict[str, Any]] | None:
    """Per-GPU use from nvidia-smi, or None where there is none (not an error)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        gpus_csv = subprocess.run(
            [exe, "--query-gpu=index,uuid,name,utilization.gpu,memory.used,memory.total",
             "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10, check=True,
        ).stdout
        apps_csv = subprocess.run(
            [exe, "--query-compute-apps=pid,gpu_uuid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    gpus: list[dict[str, Any]] = []
    by_uuid: dict[str, dict[str, Any]] = {}
    for line in gpus_csv.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 6:
            continue
        try:
            gpu = {"index": int(parts[0]), "name": parts[2], "util": float(parts[3]),
                   "mem_used": int(float(parts[4])) * 1024**2,
                   "mem_total": int(float(parts[5])) * 1024**2, "procs": []}
        except ValueError:
            continue  # "[N/A]" on some boards
        gpus.append(gpu)
        by_uuid[parts[1]] = gpu
    for line in apps_csv.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[1] in by_uuid and parts[0].isdigit():
            mem = int(float(parts[2])) * 1024**2 if parts[2].replace(".", "").isdigit() else None
            by_uuid[parts[1]]["procs"].append({"pid": int(parts[0]), "mem": mem})
    return gpus


# /proc/PID/stat's state letter, as psutil and ps name it (proc(5)).
_STATES = {"R": "running", "S": "sleeping", "D": "disk-sleep", "Z": "zombie", "T": "stopped",
           "t": "tracing-stop", "X": "dead", "x": "dead", "I": "idle", "P": "parked",
           "W": "waking", "K": "wake-kill"}


class _Proc(NamedTuple):
    """One process as the scan saw it."""

    pid: int
    name: str  # the command name in /proc/PID/stat, shown when there is no command line
    user: str
    cpu: float  # percent of one core over the sampling interval
    rss: int  # bytes
    created: float  # seconds since the epoch
    state: str

    @property
    def cpu_shown(self) -> float:
        """The CPU percent as the snapshot lists it (and selects by): one decimal."""
        return round(self.cpu, 1)


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def take(interval: float, min_cpu: float, top: int) -> dict[str, Any]:
    """Sample every process over `interval` seconds and describe the node.

    Processes are read from /proc directly: psutil's per-process objects
    cost ~0.3 s of CPU for 2,000 processes against ~0.1 s this way, and cron
    runs this every minute on every node (bench/: `notifyd snapshot`). The
    command line is read only for the processes listed.
    """
    started = time.time()
    primed = _prime()
    time.sleep(interval)

    vm = psutil.virtual_memory()
    swap = psutil.swap_memory()
    boot = psutil.boot_time()
    now = time.time()
    procs, scan = _scan(primed, boot)
    snapshot: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "host": "",  # filled in by the caller, which knows NOTIFYD_HOST
        "time": round(now, 3),
        "sample_started": round(started, 3),
        "interval": interval,
        "boot_time": boot,
        "cpu_count": psutil.cpu_count() or 1,
        "load": [round(x, 2) for x in os.getloadavg()],
        "mem_total": vm.total,
        "mem_available": vm.available,
        "swap_used": swap.used,
        "swap_total": swap.total,
        "cpu_busy": round(sum(p.cpu_shown for p in procs) / 100.0, 2),  # cores' worth in use
        "users": _per_user(procs),
        "procs": [_row(p, vm.total, now) for p in _select(procs, min_cpu, top)],
        "pids": [[p.pid, round(p.created, 2)] for p in procs],
        "scan": scan,
    }
    gpus = _gpus()
    if gpus is not None:
        snapshot["gpus"] = gpus
    return snapshot


def _prime() -> dict[int, tuple[bytes, int, float]]:
    """Every process's CPU ticks now: pid -> (start ticks, cpu ticks, when)."""
    primed: dict[int, tuple[bytes, int, float]] = {}
    for pid in _pids():
        try:
            fields = procfs.stat(pid)[1]
            primed[pid] = (fields[procfs.START_TIME], procfs.cpu_ticks(fields), time.monotonic())
        except (OSError, IndexError, ValueError):
            pass
    return primed


def _scan(primed: dict[int, tuple[bytes, int, float]], boot: float) -> tuple[list[_Proc], dict[str, int]]:
    """Every process now, its CPU use since the priming; and the scan's counts (seen, vanished, denied)."""
    tick = procfs.clock_ticks()
    page = os.sysconf("SC_PAGE_SIZE")
    procs: list[_Proc] = []
    user_of: dict[int, str] = {}
    vanished = denied = 0
    for pid in _pids():
        try:
            name, fields = procfs.stat(pid)
            uid = procfs.real_uid(pid)
            start_ticks, ticks = fields[procfs.START_TIME], procfs.cpu_ticks(fields)
            rss = int(fields[procfs.RSS]) * page
            when = time.monotonic()
        except (FileNotFoundError, ProcessLookupError):
            vanished += 1
            continue
        except PermissionError:
            denied += 1
            continue
        except (OSError, IndexError, ValueError):
            vanished += 1  # gone halfway through the read
            continue
        before = primed.get(pid)
        # A process born after the priming (or a pid reused since) has no
        # CPU sample yet: 0, as psutil's first cpu_percent() gives.
        cpu = (100.0 * (ticks - before[1]) / tick / max(when - before[2], 1e-6)
               if before is not None and before[0] == start_ticks else 0.0)
        user = user_of.get(uid)
        if user is None:
            user = user_of[uid] = _user_name(uid)
        procs.append(_Proc(pid, name, user, cpu, rss, boot + int(start_ticks) / tick,
                           _STATES.get(fields[procfs.STATE].decode(errors="replace"), "?")))
    return procs, {"seen": len(procs) + vanished + denied, "vanished": vanished, "denied": denied}


def _per_user(procs: list[_Proc]) -> dict[str, dict[str, float]]:
    """Each user's process count, CPU percent and RSS bytes, summed."""
    users: dict[str, dict[str, float]] = {}
    for p in procs:
        u = users.setdefault(p.user, {"procs": 0, "cpu": 0.0, "rss": 0})
        u["procs"] += 1
        u["cpu"] = round(u["cpu"] + p.cpu, 1)
        u["rss"] += p.rss
    return users


def _select(procs: list[_Proc], min_cpu: float, top: int) -> list[_Proc]:
    """The processes listed, busiest first: at least `min_cpu`, or in the top N by CPU or by memory.

    The top N count only processes that use any: idle kernel threads would
    otherwise fill the list on a quiet node.
    """
    keep = {p.pid for p in procs if p.cpu_shown >= min_cpu}
    keep |= {p.pid for p in sorted(procs, key=lambda p: -p.cpu_shown)[:top] if p.cpu_shown > 0}
    keep |= {p.pid for p in sorted(procs, key=lambda p: -p.rss)[:top] if p.rss > 0}
    return sorted((p for p in procs if p.pid in keep), key=lambda p: -p.cpu_shown)


def _row(p: _Proc, mem_total: int, now: float) -> dict[str, Any]:
    """A listed process as the snapshot holds it; its command line is read only now."""
    cmd = " ".join(procfs.cmdline(p.pid)) or f"[{p.name or '?'}]"
    return {
        "pid": p.pid, "user": p.user, "cpu": p.cpu_shown,
        "mem": round(100.0 * p.rss / mem_total, 1) if mem_total else 0.0,
        "rss": p.rss, "elapsed": round(max(0.0, now - p.created), 1),
        "state": p.state,
        "cmd": cmd if len(cmd) <= CMD_MAX else cmd[: CMD_MAX - 1] + "…",
    }


def file_mode_for(directory: Path) -> int:
    """0600, plus read for group/others when the directory lets them list it.

    A directory made for the lab (group rwx, setgid) shares the snapshots;
    the private default (<state dir>/procs, 0700) keeps them private.
    """
    dmode = directory.stat().st_mode
    mode = 0o600
    if dmode & (stat.S_IRGRP | stat.S_IXGRP) == (stat.S_IRGRP | stat.S_IXGRP):
        mode |= stat.S_IRGRP
    if dmode & (stat.S_IROTH | stat.S_IXOTH) == (stat.S_IROTH | stat.S_IXOTH):
        mode |= stat.S_IROTH
    return mode


def with_history(directory: Path, host: str, snapshot: dict[str, Any]) -> dict[str, Any]:
    """`snapshot` with the node's recent rows carried from its previous file (nodes/history.py).

    The previous file is read like any other snapshot in a shared directory
    (nodes/reader.py): one that is not a valid snapshot starts the history afresh.
    """
    previous, _mtime, _why = reader.read_one(directory / f"{host}.json")
    return {**snapshot, "history": history.carry(previous, snapshot)}


def write(directory: Path, host: str, snapshot: dict[str, Any]) -> Path:
    """Write <directory>/<host>.json atomically (temp file + rename in the same dir)."""
    import json

    if not directory.is_dir():
        raise NotifydError(
            f"the procs directory {directory} does not exist; create it (for a lab, with its "
            f"group for LAB: mkdir -p {directory} && chgrp LAB {directory} && chmod 3770 "
            f"{directory}; README: Setting it up for a lab) or fix [procs] dir"
        )
    target = directory / f"{host}.json"
    data = json.dumps({**snapshot, "host": host}, separators=(",", ":")).encode()
    mode = file_mode_for(directory)
    tmp = directory / f".{host}.json.tmp"
    try:
        # mkstemp creates a random name exclusively: a labmate cannot plant
        # a FIFO or a file there for us to hang on or overwrite.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{host}.json.", suffix=".tmp", dir=directory)
        tmp = Path(tmp_name)
        try:
            fsutil.write_all(fd, data)
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise NotifydError(
            f"cannot write the snapshot {target}: {exc.strerror or exc}; check that you may write "
            f"to {directory} (another user's snapshot for {host} in a sticky directory cannot be "
            "replaced: one snapshot writer per node)"
        ) from None
    return target
