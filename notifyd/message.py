"""From a finished job to the words people read on their phone.

Plain text that also reads well as Discord/Matrix markdown and in email.
Everything that comes from the job (title, command, cwd) is neutralised so
it can never mention anyone: a title of '@everyone' must not ping a lab.
"""

from __future__ import annotations

import re
import signal
import time
from dataclasses import dataclass
from typing import Any

ZWSP = "\u200b"  # zero-width space: breaks a mention without changing what people read
_MENTION = re.compile(r"@(everyone|here)\b", re.IGNORECASE)
_TAG = re.compile(r"<([@#!&]|:)")  # <@123>, <@&role>, <#channel>, <:emoji:>
_MATRIX_ROOM = re.compile(r"@room\b", re.IGNORECASE)


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    kind: str  # "success", "failure", "warning" or "info": Apprise's notify types


def neutralise(text: str) -> str:
    """Defuse @everyone, @here, @room and <@id>-style tags in job-supplied text."""
    text = _MENTION.sub(lambda m: "@" + ZWSP + m.group(1), text)
    text = _MATRIX_ROOM.sub("@" + ZWSP + "room", text)
    return _TAG.sub(lambda m: "<" + ZWSP + m.group(1), text)


def signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def describe_exit(ev: dict[str, Any]) -> str:
    """'exit 0', 'exit 3', 'killed by SIGKILL' or 'exit unknown'."""
    sig = ev.get("signal")
    if isinstance(sig, int) and not isinstance(sig, bool):
        return f"killed by {signal_name(sig)}"
    code = ev.get("exit")
    if isinstance(code, int) and not isinstance(code, bool):
        return f"exit {code}"
    return "exit unknown"


def succeeded(ev: dict[str, Any]) -> bool | None:
    """True for exit 0, False for a failure, None when nobody can know (pingch -p)."""
    if isinstance(ev.get("signal"), int):
        return False
    code = ev.get("exit")
    if isinstance(code, int) and not isinstance(code, bool):
        return code == 0
    return None


def human_duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h} h {m:02d} min"
    d, h = divmod(h, 24)
    return f"{d} d {h:02d} h"


def human_kib(kib: float) -> str:
    value = float(kib) * 1024
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit in ("B", "KiB") else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _local(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _span(start: float | None, end: float) -> str:
    offset = time.strftime("%z", time.localtime(end))
    tz = f"{offset[:3]}:{offset[3:]}" if len(offset) == 5 else offset
    if start is None:
        return f"ended {_local(end)} ({tz})"
    same_day = time.localtime(start)[:3] == time.localtime(end)[:3]
    end_text = time.strftime("%H:%M:%S", time.localtime(end)) if same_day else _local(end)
    return f"{_local(start)} → {end_text} ({tz})"


def _number(ev: dict[str, Any], key: str) -> float | None:
    value = ev.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def finished(ev: dict[str, Any]) -> Message:
    """The notification for one finished job (a finish event, see docs/EVENTS.md)."""
    title = neutralise(str(ev.get("title") or ev.get("cmd") or f"pid {ev.get('pid')}"))
    host = neutralise(str(ev.get("host", "?")))
    outcome = describe_exit(ev)
    ok = succeeded(ev)
    end = _number(ev, "ts") or time.time()
    start = _number(ev, "start_ts")
    duration = _number(ev, "duration")
    if duration is None and start is not None:
        duration = max(0.0, end - start)

    if ev.get("unwatched"):
        head, kind = f"👀 {title} on {host} is no longer watched", "warning"
    elif ok is True:
        head, kind = f"✅ {title} finished on {host}", "success"
    elif ok is False:
        head, kind = f"❌ {title} failed on {host} ({outcome})", "failure"
    else:
        head, kind = f"🏁 {title} ended on {host}", "info"

    facts = [outcome]
    if duration is not None:
        facts.append(f"after {human_duration(duration)}")
    lines = [" · ".join(facts)]
    lines.append(f"{host} · pid {ev.get('pid')} · {_span(start, end)}")
    usage = []
    maxrss = _number(ev, "maxrss_kb")
    floor = _number(ev, "maxrss_floor_kb")
    if maxrss is not None and floor is not None and maxrss <= floor:
        usage.append(f"peak RSS ≤ {human_kib(maxrss)}")  # see maxrss_floor_kb in EVENTS.md
    elif maxrss is not None:
        usage.append(f"peak RSS {human_kib(maxrss)}")
    cpu = _number(ev, "cpu_s")
    if cpu is not None:
        usage.append(f"CPU {human_duration(cpu)}")
    if usage:
        lines.append(" · ".join(usage))
    if ev.get("cwd"):
        lines.append(f"in {neutralise(str(ev['cwd']))}")
    if ev.get("cmd"):
        lines.append(f"$ {neutralise(str(ev['cmd']))}")
    if ev.get("error"):
        lines.append(neutralise(str(ev["error"])))
    if ev.get("legacy"):
        lines.append("(from ~/.pingchilling)")
    if ev.get("was_lost"):
        lines.append(f"(reported lost earlier: {neutralise(str(ev['was_lost']))}; this is how it ended)")
    return Message(head, "\n".join(lines), kind)


def lost(job: dict[str, Any], reason: str) -> Message:
    """A job whose finish will never come, and why notifyd thinks so."""
    title = neutralise(str(job.get("title") or job.get("cmd") or f"pid {job.get('pid')}"))
    host = neutralise(str(job.get("host", "?")))
    start = _number(job, "start_ts")
    lines = [f"lost: {reason}",
             f"{host} · pid {job.get('pid')} · started {_local(start) if start else 'at an unknown time'}"]
    if job.get("cwd"):
        lines.append(f"in {neutralise(str(job['cwd']))}")
    if job.get("cmd"):
        lines.append(f"$ {neutralise(str(job['cmd']))}")
    lines.append("If it does finish after all, you will get its result too.")
    return Message(f"❓ {title} lost on {host}", "\n".join(lines), "failure")


def test_message(host: str) -> Message:
    return Message(
        f"🔔 notifyd test from {host}",
        f"If you read this, notifyd can reach you. Sent {_local(time.time())}.",
        "info",
    )
