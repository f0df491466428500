"""Reading every node's snapshot from the procs directory, which labmates can write to.

Each file is opened without following symlinks, must be a regular file no
larger than MAX_BYTES, must parse and must match the schema; anything else
is skipped with a one-line note, never a crash. Ages come from file mtimes
against the file server's clock, like the lease, so skewed hosts agree.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from notifyd import fsutil
from notifyd.nodes import history

# The snapshot format `notifyd snapshot` writes. It lives here, with the
# reader, so that the watcher (which reads snapshots to judge lost jobs) does
# not import psutil: ~3 ms and ~2 MB it would carry for its whole life.
SCHEMA_VERSION = 1

MAX_BYTES = 8 * 1024 * 1024  # ~2,000 processes take ~0.5 MB
# A node is busy when this share of its cores is in use (or memory is this short).
BUSY_SHARE = 0.85
IDLE_SHARE = 0.10
LOW_MEMORY_SHARE = 0.10


@dataclass(frozen=True)
class Node:
    host: str
    data: dict[str, Any]
    age: float
    stale: bool

    @property
    def cores(self) -> int:
        return int(self.data["cpu_count"])

    @property
    def busy_cores(self) -> float:
        """Cores in use: the sampled CPU, or the 1-minute load if that is higher."""
        return max(float(self.data.get("cpu_busy", 0.0)), float(self.data["load"][0]))

    @property
    def free_cores(self) -> float:
        return max(0.0, self.cores - self.busy_cores)

    @property
    def mem_total(self) -> int:
        return int(self.data["mem_total"])

    @property
    def mem_free(self) -> int:
        return int(self.data["mem_available"])

    @property
    def gpus(self) -> tuple[int, int]:
        """(busy, total); a GPU with processes or utilisation >= 10 % is busy."""
        gpus = self.data.get("gpus") or []
        busy = sum(1 for g in gpus if g.get("procs") or float(g.get("util", 0)) >= 10)
        return busy, len(gpus)

    @property
    def state(self) -> str:
        if self.stale:
            return "stale"
        share = self.busy_cores / max(1, self.cores)
        if share >= BUSY_SHARE or self.mem_free < LOW_MEMORY_SHARE * self.mem_total:
            return "busy"
        busy_gpus, _ = self.gpus
        if share < IDLE_SHARE and busy_gpus == 0:
            return "idle"
        return "mixed"

    @property
    def history(self) -> list[history.Sample]:
        """The node's recent moments, oldest first, ending with this snapshot's (nodes/history.py)."""
        return history.samples(self.data)

    def memory_users(self, n: int = 3) -> list[tuple[str, int, int]]:
        """(user, processes, RSS bytes) of the users holding the most memory, biggest first."""
        users = self.data.get("users") or {}
        ranked = []
        for name, v in users.items():
            rss, procs = v.get("rss", 0), v.get("procs", 0)
            if history.in_range(rss) and history.in_range(procs) and rss > 0:
                ranked.append((str(name), int(procs), int(rss)))
        return sorted(ranked, key=lambda item: -item[2])[:n]

    def top_users(self, n: int = 3) -> list[tuple[str, float]]:
        """Users by CPU in cores, busiest first."""
        users = self.data.get("users") or {}
        ranked = sorted(((u, float(v.get("cpu", 0)) / 100.0) for u, v in users.items()),
                        key=lambda item: -item[1])
        return [(u, c) for u, c in ranked if c >= 0.05][:n]


MAX_FILES = 1000  # a directory with more is a prank or a mistake: the rest is skipped
MAX_TOTAL_BYTES = 128 * 1024 * 1024
_NUMBER = (int, float)
_PROC_FIELDS: dict[str, type | tuple[type, ...]] = {
    "pid": int, "user": str, "cpu": _NUMBER, "mem": _NUMBER, "rss": int,
    "elapsed": _NUMBER, "state": str, "cmd": str,
}


def _problem(data: Any) -> str | None:
    """What makes `data` unusable as a snapshot, or None."""
    if not isinstance(data, dict):
        return "not a JSON object"
    schema = data.get("schema")
    if not isinstance(schema, int):
        return "no schema version"
    if schema > SCHEMA_VERSION:
        return f"schema {schema} is newer than this notifyd reads ({SCHEMA_VERSION}); upgrade notifyd"
    if schema != SCHEMA_VERSION:
        return f"unknown schema {schema}"
    checks: list[tuple[str, type | tuple[type, ...]]] = [
        ("host", str), ("time", _NUMBER), ("cpu_count", int), ("mem_total", int),
        ("mem_available", int), ("procs", list), ("users", dict), ("load", list),
    ]
    for key, kind in checks:
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            return f"field {key!r} missing or of the wrong type"
    if not (history.in_range(data["cpu_count"], 1, 1_000_000) and len(data["load"]) == 3
            and all(history.in_range(x, 0, 1e7) for x in data["load"])):
        return "cpu_count or load out of range"
    for key in ("time", "mem_total", "mem_available"):
        if not history.in_range(data[key]):
            return f"field {key!r} out of range"
    for row in data["procs"]:
        if not isinstance(row, dict) or any(
                not isinstance(row.get(k), t) for k, t in _PROC_FIELDS.items()):
            return "a process row is missing fields"
        if not all(history.in_range(row[k]) for k in ("pid", "cpu", "mem", "rss", "elapsed")):
            return f"process {row['pid']}: a number out of range"
    # Optional fields: absent is fine, present must be usable.
    for key in ("swap_used", "swap_total", "cpu_busy", "boot_time"):
        if key in data and not history.in_range(data[key]):
            return f"field {key!r} is not a number in range"
    for name, user in data["users"].items():
        if not isinstance(user, dict) or not history.in_range(user.get("cpu", 0)):
            return f"user entry {name!r} is malformed"
    # Every pid with its start time, which watcher/lost.py looks a running job up in.
    pids = data.get("pids", [])
    if not isinstance(pids, list) or not all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], int) and history.in_range(p[0])
            and history.in_range(p[1]) for p in pids):
        return "field 'pids' is not a list of [pid, start time] pairs"
    if "history" in data:
        trouble = history.problem(data["history"])
        if trouble:
            return trouble
    gpus = data.get("gpus", [])
    if not isinstance(gpus, list) or not all(
            isinstance(g, dict) and history.in_range(g.get("util", 0))
            and isinstance(g.get("procs", []), list) for g in gpus):
        return "field 'gpus' is malformed"
    return None


def _no_constant(text: str) -> float:
    raise ValueError(f"{text} is not a number a snapshot can hold")


def read_one(path: Path) -> tuple[dict[str, Any] | None, float, str]:
    """(snapshot, mtime, '') or (None, 0, why it was skipped)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, 0.0, "a symlink (not followed)"
        return None, 0.0, f"cannot open it: {exc.strerror}"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, 0.0, "not a regular file"
        if st.st_size > MAX_BYTES:
            return None, 0.0, f"{st.st_size} bytes, over the {MAX_BYTES // 2**20} MiB bound"
        raw = os.read(fd, MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:
        return None, 0.0, f"over the {MAX_BYTES // 2**20} MiB bound"
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None, 0.0, "not valid JSON (truncated or corrupt)"
    problem = _problem(data)
    if problem:
        return None, 0.0, problem
    return data, st.st_mtime, ""


def load(directory: Path, stale_after: float, host: str) -> tuple[list[Node], list[str]]:
    """Every usable snapshot in `directory` (by host name), and a note per skipped file."""
    notes: list[str] = []
    try:
        names = sorted(e.name for e in os.scandir(directory)
                       if e.name.endswith(".json") and not e.name.startswith("."))
    except FileNotFoundError:
        return [], []  # no snapshot yet: the views say so, with what writes one
    except OSError as exc:
        return [], [f"cannot list {directory}: {exc.strerror}"]
    try:
        now = fsutil.server_now(str(directory), host)
    except OSError:
        now = time.time()  # a directory we cannot write to: trust our own clock
    if len(names) > MAX_FILES:
        notes.append(f"skipped {len(names) - MAX_FILES} files in {directory}: more than "
                     f"{MAX_FILES} snapshots (clean out the directory)")
        names = names[:MAX_FILES]
    nodes = []
    total = 0
    for name in names:
        path = directory / name
        if total > MAX_TOTAL_BYTES:
            notes.append(f"skipped {path}: snapshots read so far exceed "
                         f"{MAX_TOTAL_BYTES // 2**20} MiB in all")
            continue
        data, mtime, why = read_one(path)
        try:
            total += path.lstat().st_size if data is not None else 0
        except OSError:
            pass  # removed since it was read: what was read still counts as read
        if data is None:
            notes.append(f"skipped {path}: {why}")
            continue
        age = max(0.0, now - mtime)
        nodes.append(Node(name[: -len(".json")], data, age, age > stale_after))
    return nodes, notes
