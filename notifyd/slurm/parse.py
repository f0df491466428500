"""What SLURM's client tools print, asked for in a form that parses safely, and read back.

JSON output changes with every release and is wrong on 22.05 (sacct's exit
codes, squeue ignoring --me: shared/design/slurm-facts.md §4.2), so the
tools are asked for text: one field after another, each ended by ASCII's
unit separator (0x1f), which no job name or path holds, the free-text job
name last, times as epoch seconds. A line that does not read is skipped,
never a crash: `notifyd jobs` and the watcher go on with the rest.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

US = "\x1f"

# squeue --me -t all -O: every field a job's message needs, the name last.
SQUEUE_FIELDS = ("JobID", "ArrayJobID", "ArrayTaskID", "State", "Reason", "Partition", "NodeList",
                 "SubmitTime", "StartTime", "EndTime", "TimeUsed", "TimeLimit", "NumCPUs",
                 "MinMemory", "RestartCnt", "exit_code", "WorkDir", "STDOUT", "Name")
# sacct -j ID,... -P: the job line and its steps (MaxRSS is on the steps only).
SACCT_FIELDS = ("JobID", "JobIDRaw", "State", "ExitCode", "DerivedExitCode", "Elapsed", "MaxRSS",
                "TotalCPU", "ReqMem", "NCPUS", "NodeList", "Start", "End", "Submit", "Timelimit",
                "Partition", "JobName")
SINFO_FIELDS = ("NodeHost", "StateLong", "CPUsState", "Memory", "AllocMem", "FreeMem", "CPUsLoad",
                "Partition", "Reason")


def squeue_argv() -> list[str]:
    return ["squeue", "--me", "-t", "all", "-h", "-O", ",".join(f"{f}:{US}" for f in SQUEUE_FIELDS)]


def sacct_argv(job_ids: list[int]) -> list[str]:
    return ["sacct", "-j", ",".join(str(j) for j in job_ids), "-n", "-P", f"--delimiter={US}",
            "-o", ",".join(SACCT_FIELDS)]


def sacct_window_argv(since: float, until: float) -> list[str]:
    """The user's jobs that ended between two times (a catch-up after the watcher was down).

    sacct takes no epoch seconds for -S/-E: local time as YYYY-MM-DDTHH:MM:SS.
    """
    def when(ts: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts))

    return ["sacct", "-X", "-n", "-P", f"--delimiter={US}", "-S", when(since), "-E", when(until),
            "-s", "CD,F,TO,CA,OOM,NF,PR,BF,DL", "-o", ",".join(SACCT_FIELDS)]


def sinfo_argv() -> list[str]:
    return ["sinfo", "-N", "-h", "-O", ",".join(f"{f}:{US}" for f in SINFO_FIELDS)]


# -- numbers in SLURM's words --------------------------------------------------------------------

_CLOCK = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")


def duration(text: str) -> float | None:
    """'1-02:03:04', '02:03:04', '03:04', '00:08.281' as seconds; None for UNLIMITED, INVALID, ''."""
    found = _CLOCK.match(text.strip())
    if not found:
        return None
    days, hours, minutes, seconds = found.groups()
    return (int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds))


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]?)([cn]?)$", re.IGNORECASE)
_SIZE_KB = {"": 1 / 1024, "K": 1, "M": 1024, "G": 1024**2, "T": 1024**3, "P": 1024**4}


def size_kb(text: str, default_unit: str = "") -> int | None:
    """'3312K', '1G', '23081M', '4000Mc' (per cpu) as KiB; None when it is no size."""
    found = _SIZE.match(text.strip())
    if not found:
        return None
    unit = (found.group(2) or default_unit).upper()
    return int(float(found.group(1)) * _SIZE_KB[unit])


def epoch(text: str) -> float | None:
    text = text.strip()
    return float(text) if text.isdigit() and 0 < int(text) < 2**40 else None


def integer(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() and len(text) < 18 else None


def exit_pair(text: str) -> tuple[int, int] | None:
    """'3:0' -> (3, 0): the exit status and the signal, as sacct and scontrol write them."""
    code, sep, sig = text.strip().partition(":")
    if not sep or not (code.isdigit() and sig.isdigit()):
        return None
    return int(code), int(sig)


# -- squeue --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueJob:
    """One line of `squeue --me -t all`: a job (or a pending array's tasks) as the controller sees it."""

    job_id: int  # the job's own id; an array task's (the last task runs under the array's id)
    array_job_id: int | None
    array_task: str  # "4", or "1-6%2" for tasks still pending as one line; "" when not an array
    state: str
    reason: str
    partition: str
    nodes: str
    submit: float | None
    start: float | None
    end: float | None
    used: float | None  # seconds run
    limit: float | None  # seconds allowed, None when unlimited
    cpus: int | None
    min_memory_kb: int | None
    restarts: int
    exit_raw: int | None  # the wait status, as squeue gives it (768 is exit 3)
    work_dir: str
    stdout: str
    name: str

    @property
    def display_id(self) -> str:
        """The id as users know it: 7_4 for task 4 of array 7."""
        if self.array_job_id is not None and self.array_task:
            return f"{self.array_job_id}_{self.array_task}"
        return str(self.job_id)

    @property
    def pending_tasks(self) -> bool:
        """A pending array's tasks shown as one line (574_[1-6%2])."""
        return not self.array_task.isdigit() and bool(self.array_task)


def parse_squeue(text: str) -> list[QueueJob]:
    jobs = []
    for line in text.splitlines():
        parts = line.split(US)
        if len(parts) < len(SQUEUE_FIELDS):
            continue
        f = dict(zip(SQUEUE_FIELDS, parts, strict=False))
        job_id = integer(f["JobID"])
        if job_id is None:
            continue
        array_id = integer(f["ArrayJobID"])
        task = f["ArrayTaskID"].strip()
        task = "" if task in ("N/A", "") else task.strip("[]")
        jobs.append(QueueJob(
            job_id=job_id, array_job_id=array_id if task else None, array_task=task,
            state=f["State"].strip().split()[0] if f["State"].strip() else "UNKNOWN",
            reason=f["Reason"].strip(), partition=f["Partition"].strip(), nodes=f["NodeList"].strip(),
            submit=epoch(f["SubmitTime"]), start=epoch(f["StartTime"]), end=epoch(f["EndTime"]),
            used=duration(f["TimeUsed"]), limit=duration(f["TimeLimit"]), cpus=integer(f["NumCPUs"]),
            min_memory_kb=size_kb(f["MinMemory"], "M"), restarts=integer(f["RestartCnt"]) or 0,
            exit_raw=integer(f["exit_code"]), work_dir=f["WorkDir"].strip(), stdout=f["STDOUT"].strip(),
            name=f["Name"],
        ))
    return jobs


# -- sacct ---------------------------------------------------------------------------------------


@dataclass
class AcctJob:
    """A job as accounting keeps it: its own line, with what its steps add (peak memory, signals)."""

    display_id: str
    raw_id: int
    state: str
    cancelled_by: str  # the uid in "CANCELLED by 1001", '' otherwise
    exit: tuple[int, int] | None
    derived: tuple[int, int] | None  # the worst step's exit and signal
    elapsed: float | None
    max_rss_kb: int | None  # the largest over the steps
    total_cpu: float | None
    req_mem_kb: int | None
    cpus: int | None
    nodes: str
    start: float | None
    end: float | None
    submit: float | None
    limit: float | None
    partition: str
    name: str
    step_signals: list[int] = field(default_factory=list)


def _state(text: str) -> tuple[str, str]:
    words = text.strip().split()
    if not words:
        return "UNKNOWN", ""
    by = words[2] if len(words) >= 3 and words[1] == "by" else ""
    return words[0].rstrip("+"), by


def parse_sacct(text: str) -> dict[int, AcctJob]:
    """Job lines by raw id, each with its steps folded in."""
    jobs: dict[int, AcctJob] = {}
    steps: list[dict[str, str]] = []
    for line in text.splitlines():
        parts = line.split(US)
        if len(parts) < len(SACCT_FIELDS):
            continue
        f = dict(zip(SACCT_FIELDS, parts, strict=False))
        raw = f["JobIDRaw"].strip()
        if "." in raw:
            steps.append(f)
            continue
        raw_id = integer(raw)
        if raw_id is None:
            continue
        state, by = _state(f["State"])
        req = f["ReqMem"].strip()
        jobs[raw_id] = AcctJob(
            display_id=f["JobID"].strip(), raw_id=raw_id, state=state, cancelled_by=by,
            exit=exit_pair(f["ExitCode"]), derived=exit_pair(f["DerivedExitCode"]),
            elapsed=duration(f["Elapsed"]), max_rss_kb=None, total_cpu=duration(f["TotalCPU"]),
            req_mem_kb=size_kb(req.rstrip("cn"), "M"), cpus=integer(f["NCPUS"]), nodes=f["NodeList"].strip(),
            start=epoch(f["Start"]), end=epoch(f["End"]), submit=epoch(f["Submit"]),
            limit=duration(f["Timelimit"]), partition=f["Partition"].strip(), name=f["JobName"],
        )
        if req.endswith("c") and jobs[raw_id].req_mem_kb is not None and jobs[raw_id].cpus:
            jobs[raw_id].req_mem_kb = (jobs[raw_id].req_mem_kb or 0) * (jobs[raw_id].cpus or 1)
    for f in steps:
        owner = integer(f["JobIDRaw"].split(".", 1)[0])
        job = jobs.get(owner) if owner is not None else None
        if job is None:
            continue
        rss = size_kb(f["MaxRSS"])
        if rss is not None:
            job.max_rss_kb = max(job.max_rss_kb or 0, rss)
        pair = exit_pair(f["ExitCode"])
        if pair and pair[1]:
            job.step_signals.append(pair[1])
    return jobs


# -- scontrol show config, sinfo ------------------------------------------------------------------


def parse_config(text: str) -> dict[str, str]:
    """`scontrol show config` as key -> value ("MinJobAge" -> "300 sec")."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            out[key.strip()] = value.strip()
    return out


def min_job_age(config: dict[str, str]) -> float | None:
    """How long the controller keeps a finished job's record (MinJobAge, seconds)."""
    words = config.get("MinJobAge", "").split()
    return float(words[0]) if words and words[0].isdigit() else None


def accounting_configured(config: dict[str, str]) -> bool:
    return config.get("AccountingStorageType", "accounting_storage/none") != "accounting_storage/none"


@dataclass(frozen=True)
class SlurmNode:
    """One node as `sinfo -N` shows it."""

    name: str
    state: str
    cpus_alloc: int | None
    cpus_total: int | None
    mem_total_mb: int | None
    mem_alloc_mb: int | None
    mem_free_mb: int | None
    load: float | None
    partitions: tuple[str, ...]
    reason: str


def parse_sinfo(text: str) -> list[SlurmNode]:
    """Nodes by name: sinfo prints one line per node *per partition*, so they are joined."""
    by_name: dict[str, SlurmNode] = {}
    for line in text.splitlines():
        parts = line.split(US)
        if len(parts) < len(SINFO_FIELDS):
            continue
        f = dict(zip(SINFO_FIELDS, parts, strict=False))
        name = f["NodeHost"].strip()
        if not name:
            continue
        cpus = f["CPUsState"].strip().split("/")  # allocated/idle/other/total
        try:
            load: float | None = float(f["CPUsLoad"])
        except ValueError:
            load = None
        partition = f["Partition"].strip().rstrip("*")
        known = by_name.get(name)
        partitions = (*known.partitions, partition) if known else (partition,)
        by_name[name] = SlurmNode(
            name=name, state=f["StateLong"].strip(), cpus_alloc=integer(cpus[0]) if cpus else None,
            cpus_total=integer(cpus[3]) if len(cpus) == 4 else None, mem_total_mb=integer(f["Memory"]),
            mem_alloc_mb=integer(f["AllocMem"]), mem_free_mb=integer(f["FreeMem"]), load=load,
            partitions=partitions, reason=f["Reason"].strip() if f["Reason"].strip() != "none" else "",
        )
    return list(by_name.values())
