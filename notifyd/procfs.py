"""Reading /proc: a process's stat fields, start time, peak RSS, uid, command line and environment;
the node's memory, swap, load and boot time.

Standard library only and cheap to import (no typing at run time): pingch
reads through it on every job, the lease on every check of a holder on this
host, `notifyd snapshot` for every process of the node. Field numbers and
formats are proc(5)'s.
"""

import os

from notifyd import fsutil

# Indexes into stat()'s fields, which start after the command name: field N
# of proc(5) is index N-3 here.
STATE = 0  # (3) a letter: R, S, D, Z, T, ...
UTIME = 11  # (14) clock ticks in user mode
STIME = 12  # (15) clock ticks in kernel mode
START_TIME = 19  # (22) clock ticks after boot at which the process started
RSS = 21  # (24) resident pages


def stat(pid: int | str) -> tuple[str, list[bytes]]:
    """(command name, the fields after it) of /proc/PID/stat; OSError if the process is gone.

    The name sits in parentheses and may itself hold ')' or spaces, so the
    fields start after the last ')'.
    """
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    head, _, rest = data.rpartition(b")")
    return head.partition(b"(")[2].decode(errors="replace"), rest.split()


def start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' if it is gone).

    Together with the pid it names one process: a pid reused later has another
    start time.
    """
    try:
        fields = stat(pid)[1]
    except OSError:
        return ""
    return fields[START_TIME].decode() if len(fields) > START_TIME else ""


def cpu_ticks(fields: list[bytes]) -> int:
    """User plus system time, in clock ticks, from stat()'s fields."""
    return int(fields[UTIME]) + int(fields[STIME])


def clock_ticks() -> int:
    """Clock ticks per second: the unit of start and CPU times (sysconf(_SC_CLK_TCK))."""
    return os.sysconf("SC_CLK_TCK")


def _first_number(path: str, key: bytes) -> int:
    """The first number on the line of `path` that starts with `key` ("VmHWM:", "Uid:").

    OSError if the file cannot be read or has no such line; IndexError or
    ValueError if the line is garbled.
    """
    with open(path, "rb") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    raise OSError(f"no {key.decode()} line in {path}")


def peak_rss_kb(pid: int | str = "self") -> int | None:
    """The process's peak resident set size in KiB (VmHWM in /proc/PID/status); None if unreadable."""
    try:
        return _first_number(f"/proc/{pid}/status", b"VmHWM:")
    except (OSError, IndexError, ValueError):
        return None


def real_uid(pid: int) -> int:
    """The process's real uid; OSError if the process is gone (IndexError, ValueError if garbled)."""
    return _first_number(f"/proc/{pid}/status", b"Uid:")


def cmdline(pid: int) -> list[str]:
    """The process's arguments ([] if unreadable or a kernel thread); empty ones are dropped."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [os.fsdecode(a) for a in raw.split(b"\0") if a]


def environ(pid: int) -> dict[str, str]:
    """A process's environment as it was started (/proc/PID/environ); {} if unreadable."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        return {}
    pairs = (os.fsdecode(item).partition("=") for item in data.split(b"\0") if item)
    return {name: value for name, _, value in pairs}


def mem_total_kb() -> int | None:
    """The node's MemTotal from /proc/meminfo (KiB); None if unreadable."""
    try:
        return _first_number("/proc/meminfo", b"MemTotal:")
    except (OSError, IndexError, ValueError):
        return None


# /proc/meminfo's lines pingch reads for the node's figures, by the names the
# liveness mark gives them (spool/alive.py). Its lines read "MemTotal:  16318712 kB".
MEMINFO_KEYS = {b"MemTotal:": "mem_total_kb", b"MemAvailable:": "mem_avail_kb",
                b"SwapTotal:": "swap_total_kb", b"SwapFree:": "swap_free_kb"}
_MEMINFO_LINES = tuple((b"\n" + name, key) for name, key in MEMINFO_KEYS.items())  # at a line's start
# A /proc file holds a few KiB; a crafted one (tests) is not read further.
PROC_READ_MAX = 65536
# KiB figures beyond this (1 EiB) and loads beyond this are not a node's: garbled.
KB_MAX = 1 << 50
LOAD_MAX = 1e6


def node_figures(proc: str = "/proc") -> "dict[str, float]":
    """The node's memory and swap (KiB), its 1-minute load and cores; those unreadable left out.

    Two reads of small files (`proc`/meminfo, `proc`/loadavg), never raising:
    pingch calls it at every job's start and in every liveness mark. `proc`
    is another directory only in the tests. Cores are os.cpu_count(), the
    node's online CPUs, which the load average counts against (it is the
    node's, whatever the job's affinity) and which `notifyd snapshot` records
    too (psutil.cpu_count()), so the watcher compares like with like.
    """
    figures: dict[str, float] = {}
    # Four finds, not a split of every line: a third of the cost, on every job.
    data = b"\n" + fsutil.read_head(proc + "/meminfo", PROC_READ_MAX)
    for needle, key in _MEMINFO_LINES:
        at = data.find(needle)
        if at >= 0:
            end = data.find(b"\n", at + 1)
            words = data[at + len(needle): end if end >= 0 else len(data)].split()
            if words and _whole(words[0]):
                figures[key] = int(words[0])
    first = fsutil.read_head(proc + "/loadavg", 256).split(b" ", 1)[0]  # "0.52 0.58 0.59 1/913 12345"
    if first.replace(b".", b"", 1).isdigit() and float(first) < LOAD_MAX:
        figures["load1"] = float(first)
    cores = os.cpu_count()
    if cores:
        figures["cores"] = cores
    return figures


def _whole(word: bytes) -> bool:
    """ASCII digits of a KiB figure a node can have (bytes.isdigit is ASCII only)."""
    return word.isdigit() and len(word) <= 16 and int(word) < KB_MAX


def boot_time() -> float:
    """When the node booted, in seconds since the epoch (btime in /proc/stat); 0.0 if not said.

    OSError if /proc/stat cannot be read.
    """
    with open("/proc/stat", "rb") as f:
        for line in f:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    return 0.0
