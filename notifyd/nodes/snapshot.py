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
from typing import Any

import psutil

from notifyd import fsutil
from notifyd.errors import NotifydError
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
_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _stat(pid: int) -> tuple[str, list[bytes]]:
    """(command name, the fields after it) of /proc/PID/stat; OSError if the process is gone.

    The name sits in parentheses and may itself hold ')' or spaces, so the
    fields start after the last ')'. Field N of proc(5) is index N-3 here.
    """
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    head, _, rest = data.rpartition(b")")
    return head.partition(b"(")[2].decode(errors="replace"), rest.split()


def _ticks(fields: list[bytes]) -> int:
    return int(fields[11]) + int(fields[12])  # utime + stime


def _real_uid(pid: int) -> int:
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"Uid:"):
                return int(line.split()[1])
    raise OSError(f"no Uid line for {pid}")


def _cmdline(pid: int, name: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        raw = b""
    args = [os.fsdecode(a) for a in raw.split(b"\0") if a]
    return " ".join(args) or f"[{name or '?'}]"


def take(interval: float, min_cpu: float, top: int) -> dict[str, Any]:
    """Sample every process over `interval` seconds and describe the node.

    Processes are read from /proc directly: psutil's per-process objects
    cost ~0.3 s of CPU for 2,000 processes against ~0.1 s this way, and cron
    runs this every minute on every node (bench/: `notifyd snapshot`). The
    command line is read only for the processes listed.
    """
    started = time.time()
    primed: dict[int, tuple[bytes, int, float]] = {}  # pid -> (start ticks, cpu ticks, when)
    for pid in _pids():
        try:
            fields = _stat(pid)[1]
            primed[pid] = (fields[19], _ticks(fields), time.monotonic())
        except (OSError, IndexError, ValueError):
            pass
    time.sleep(interval)

    vm = psutil.virtual_memory()
    boot = psutil.boot_time()
    now = time.time()
    rows: list[dict[str, Any]] = []
    users: dict[str, dict[str, float]] = {}
    pids: list[list[float]] = []
    names: dict[int, str] = {}
    user_of: dict[int, str] = {}
    vanished = denied = 0
    for pid in _pids():
        try:
            name, fields = _stat(pid)
            uid = _real_uid(pid)
            start_ticks, ticks = fields[19], _ticks(fields)
            rss = int(fields[21]) * _PAGE
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
        cpu = (100.0 * (ticks - before[1]) / _TICK / max(when - before[2], 1e-6)
               if before is not None and before[0] == start_ticks else 0.0)
        user = user_of.get(uid)
        if user is None:
            user = user_of[uid] = _user_name(uid)
        created = boot + int(start_ticks) / _TICK
        pids.append([pid, round(created, 2)])
        u = users.setdefault(user, {"procs": 0, "cpu": 0.0, "rss": 0})
        u["procs"] += 1
        u["cpu"] = round(u["cpu"] + cpu, 1)
        u["rss"] += rss
        names[pid] = name
        rows.append({
            "pid": pid, "user": user, "cpu": round(cpu, 1),
            "mem": round(100.0 * rss / vm.total, 1) if vm.total else 0.0,
            "rss": rss, "elapsed": round(max(0.0, now - created), 1),
            "state": _STATES.get(fields[0].decode(errors="replace"), "?"),
        })

    keep = {r["pid"] for r in rows if r["cpu"] >= min_cpu}
    # The top N by CPU and by memory, among processes that use any: idle
    # kernel threads would otherwise fill the list on a quiet node.
    keep |= {r["pid"] for r in sorted(rows, key=lambda r: -r["cpu"])[:top] if r["cpu"] > 0}
    keep |= {r["pid"] for r in sorted(rows, key=lambda r: -r["rss"])[:top] if r["rss"] > 0}
    for row in rows:
        if row["pid"] in keep:
            cmd = _cmdline(row["pid"], names[row["pid"]])
            row["cmd"] = cmd if len(cmd) <= CMD_MAX else cmd[: CMD_MAX - 1] + "…"
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
        "swap_used": psutil.swap_memory().used,
        "cpu_busy": round(sum(r["cpu"] for r in rows) / 100.0, 2),  # cores' worth in use
        "users": users,
        "procs": sorted((r for r in rows if r["pid"] in keep), key=lambda r: -r["cpu"]),
        "pids": pids,
        "scan": {"seen": len(rows) + vanished + denied, "vanished": vanished, "denied": denied},
    }
    gpus = _gpus()
    if gpus is not None:
        snapshot["gpus"] = gpus
    return snapshot


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


def write(directory: Path, host: str, snapshot: dict[str, Any]) -> Path:
    """Write <directory>/<host>.json atomically (temp file + rename in the same dir)."""
    import json

    if not directory.is_dir():
        raise NotifydError(
            f"the procs directory {directory} does not exist; create it (for a lab: "
            f"mkdir -p {directory} && chmod 2775 {directory}) or fix [procs] dir"
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
