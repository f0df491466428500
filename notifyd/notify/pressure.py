"""The words for a node short of memory: the watcher's alert, and the note on a job it killed.

    ⚠️ memory pressure on node3
    **node3** · out of memory in ~8 min at this rate
    memory: 1.5 GiB free of 23.5 GiB (6 %), falling 1.2 GiB/min · swap: 2.0 GiB of 4.0 GiB used, growing
    top memory users: bob 14.2 GiB in 12 processes · ana 5.1 GiB in 3
    your jobs there: relax (pid 4242) 4.8 GiB
    biggest of yours: relax (pid 4242, 4.8 GiB) · nodes with room: `notifyd nodes --free`

Host and user names come from snapshots labmates can write, job titles
from the job: all defused (notify/defuse.py) as they are put in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from notifyd.nodes import pressure as rules
from notifyd.nodes.history import Sample
from notifyd.notify import defuse
from notifyd.notify.message import Message
from notifyd.records import RunningJob
from notifyd.text import human_kib

SNAPSHOT, MARK = "snapshot", "liveness mark"


@dataclass(frozen=True)
class YourJob:
    job: str
    info: RunningJob
    rss: int | None  # bytes, from the snapshot's row of its pid; None when not listed


@dataclass(frozen=True)
class Finding:
    """One node to tell of: what fired, what the node shows, who uses it, the user's jobs there."""

    host: str
    reading: rules.Reading
    kinds: tuple[str, ...]  # of "low", "swap", "ahead", "cpu"
    top: Sequence[tuple[str, int, int]] = ()  # (user, processes, RSS bytes), biggest first
    jobs: Sequence[YourJob] = field(default_factory=list)
    source: str = SNAPSHOT  # or MARK: pingch's liveness mark, where the node has no snapshot


def size(n: float) -> str:
    return human_kib(max(0.0, n) / 1024)


def percent(share: float) -> str:
    """'6 %', as the issue and pingch's start warning write it."""
    return f"{share * 100:.0f} %"


def _minutes(seconds: float) -> str:
    return f"~{max(1, round(seconds / 60))} min"


def memory_line(reading: rules.Reading) -> str:
    """'memory: 1.5 GiB free of 23.5 GiB (6 %), falling 1.2 GiB/min · swap: 2.0 GiB of 4.0 GiB used'."""
    now = reading.now
    text = f"memory: {size(now.mem_available)} free of {size(now.mem_total)} ({percent(now.available_share)})"
    line = reading.trend
    if line is not None and line.points >= 3 and line.fit >= rules.MIN_FIT and line.slope:
        way = "falling" if line.slope < 0 else "rising"
        text += f", {way} {size(abs(line.slope) * 60)}/min"
    if now.swap_total:
        text += f" · swap: {size(now.swap_used or 0)} of {size(now.swap_total)} used"
        text += ", growing" if reading.swap_growing else ""
    return text


def _why(f: Finding, settings: rules.Settings) -> str:
    said = []
    if "ahead" in f.kinds and f.reading.seconds_left is not None:
        said.append(f"out of memory in {_minutes(f.reading.seconds_left)} at this rate")
    if "low" in f.kinds:
        said.append(f"under {percent(settings.warn_mem)} of its memory available")
    if "swap" in f.kinds:
        said.append("swap use growing")
    if "cpu" in f.kinds:
        said.append(_load(f.reading.now))
    return " · ".join(said)


def _load(now: Sample) -> str:
    cores = int(now.cores or 0)
    return (f"load {now.load1 or 0:.1f} on {cores} cores for {rules.CPU_FOR / 60:.0f} min "
            f"(over {rules.CPU_FACTOR:g} x the cores)")


def _job_name(y: YourJob, *extra: str) -> str:
    """'relax (pid 4242)', with `extra` facts in the parentheses."""
    name = defuse.line(y.info.title or y.info.cmd or "job")
    facts = [*([f"pid {y.info.pid}"] if y.info.pid is not None else []), *extra]
    return f"{name} ({', '.join(facts)})" if facts else name


def users_line(top: Sequence[tuple[str, int, int]]) -> str:
    """'top memory users: bob 14.2 GiB in 12 processes · ana 5.1 GiB in 3'."""
    parts = [f"{defuse.line(user)} {size(rss)} in {procs}" for user, procs, rss in top]
    if parts:
        parts[0] += " process" if top[0][1] == 1 else " processes"
    return "top memory users: " + " · ".join(parts)


def _node_lines(f: Finding, settings: rules.Settings) -> list[str]:
    host = defuse.line(f.host)
    lines = [f"**{host}** · {_why(f, settings)}"]
    if set(f.kinds) - {"cpu"}:
        lines.append(memory_line(f.reading))
    if f.top:
        lines.append(users_line(f.top))
    elif f.source == MARK:
        lines.append(f"(from pingch's liveness mark: {host} has no fresh snapshot, so who else uses it "
                     "is unknown; `notifyd cron install` there records it)")
    if f.jobs:
        lines.append("your jobs there: " + " · ".join(
            _job_name(y) + (f" {size(y.rss)}" if y.rss is not None else "") for y in f.jobs))
    sized = [y for y in f.jobs if y.rss is not None]
    advice = "nodes with room: `notifyd nodes --free`"
    if sized:
        big = max(sized, key=lambda y: y.rss or 0)
        advice = f"biggest of yours: {_job_name(big, size(big.rss or 0))} · {advice}"
    lines.append(advice)
    return lines


def alert(findings: Sequence[Finding], settings: rules.Settings) -> Message:
    """One message for every node found this round (never one per node: no flood)."""
    hosts = [defuse.line(f.host) for f in findings]
    cpu_only = all(set(f.kinds) == {"cpu"} for f in findings)
    if len(findings) == 1:
        title = f"⚠️ {hosts[0]} is oversubscribed" if cpu_only else f"⚠️ memory pressure on {hosts[0]}"
    else:
        shown = ", ".join(hosts[:3]) + (f" and {len(hosts) - 3} more" if len(hosts) > 3 else "")
        what = "oversubscribed" if cpu_only else "pressure on"
        title = f"⚠️ {what} {len(hosts)} nodes where your jobs run: {shown}"
    sections = ["\n".join(_node_lines(f, settings)) for f in findings]
    return Message(title, "\n\n".join(sections), "warning")


def after_kill(host: str, at_end: rules.Reading, top: Sequence[tuple[str, int, int]],
               taken: str) -> list[str]:
    """The lines for a SIGKILLed job whose node was short of memory (or that the OOM killer named).

    `at_end`: the rules on the node's samples up to its end; `top` from the
    last snapshot before the end (empty when there is none), `taken` when.
    """
    lines = [f"🧠 {defuse.line(host)} was short of memory when it ended: {memory_line(at_end)}"]
    if top:
        lines.append(f"{users_line(top)} (snapshot of {taken})")
    return lines
