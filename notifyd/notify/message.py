"""From a finished job to the words people read on their phone.

Markdown that renders in Discord and Matrix and still reads as plain text in
email: no tables, no HTML, "·" between facts, bold only for the outcome, code
spans for paths and commands, a fenced block for the job's last lines.

Everything that comes from the job (title, command, cwd, host, group, file
names, its output, errors) is defused (notifyd.notify.defuse) as it is put in.

Long: every kind of message (a job's end, a start, a lost job, the test
message, a digest, a small batch, a group's summary) and the fitting to a service's length
that they share; a SLURM job's own words are in notify/slurm.py.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from notifyd.notify import defuse
from notifyd.notify.outcome import Outcome, exit_words, succeeded
from notifyd.records import NUMBER_MAX
from notifyd.text import human_duration, human_kib, short_duration

# Apprise joins title and body with "\r\n" where a service has one text field
# (Discord's 2,000 characters include the title), so fit() counts two more.
JOINER = 2
CUT_NOTE = "… (cut to fit; `notifyd jobs` lists every job)"
DIGEST_TITLE_CHARS = 60  # one job's title in a digest line: room for more lines
FEW_TAIL_LINES = 5  # a job's output in a small batch (few()): enough to see how it ended
FEW_LINE_CHARS = 160  # and each of those lines at most this long


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    severity: str  # "success", "failure", "warning" or "info": Apprise's notify types
    attach: str = ""  # a file to attach where the service can ("" for none)


# -- words for numbers --------------------------------------------------------------------


def describe_exit(ev: dict[str, Any]) -> str:
    """'exit 0', 'exit 3', 'killed by SIGKILL' or 'exit unknown'."""
    return exit_words(ev.get("exit"), ev.get("signal"))


def possibly_oom(ev: dict[str, Any]) -> bool:
    """Killed by SIGKILL and either the kernel said OOM, or the job had ≥ 90 % of the node's memory."""
    if ev.get("signal") != signal.SIGKILL:
        return False
    if ev.get("oom") is True:
        return True
    maxrss, total = _number(ev, "maxrss_kb"), _number(ev, "mem_total_kb")
    return maxrss is not None and bool(total) and maxrss >= 0.9 * (total or 0)


def outcome(ev: dict[str, Any]) -> str:
    """describe_exit, plus 'possibly out of memory' where that is the likely cause."""
    if ev.get("slurm_state"):
        from notifyd.notify import slurm

        return slurm.words(ev)
    words = describe_exit(ev)
    return f"{words}, possibly out of memory" if possibly_oom(ev) else words


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _localtime(ts: float) -> time.struct_time | None:
    """The local time of `ts`; None for one the platform cannot show (1e308, the year 10000)."""
    try:
        return time.localtime(ts)
    except (OverflowError, OSError, ValueError):
        return None


def _local(ts: float) -> str:
    lt = _localtime(ts)
    return time.strftime("%Y-%m-%d %H:%M:%S", lt) if lt else f"at Unix time {ts:.6g} (not a date)"


def _span(start: float | None, end: float) -> str:
    lt_end = _localtime(end)
    offset = time.strftime("%z", lt_end) if lt_end else ""
    tz = f" ({offset[:3]}:{offset[3:]})" if len(offset) == 5 else f" ({offset})" if offset else ""
    if start is None:
        return f"ended {_local(end)}{tz}"
    lt_start = _localtime(start)
    same_day = lt_start is not None and lt_end is not None and lt_start[:3] == lt_end[:3]
    end_text = time.strftime("%H:%M:%S", lt_end) if same_day and lt_end else _local(end)
    return f"{_local(start)} → {end_text}{tz}"


def _number(ev: dict[str, Any], key: str) -> float | None:
    """A finite number within ±NUMBER_MAX, else None: job text is never trusted to be one."""
    value = ev.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and -NUMBER_MAX <= value <= NUMBER_MAX:
        return float(value)  # NaN fails the comparison
    return None


def _duration(ev: dict[str, Any]) -> float | None:
    duration = _number(ev, "duration")
    start, end = _number(ev, "start_ts"), _number(ev, "ts")
    if duration is None and start is not None and end is not None:
        duration = max(0.0, end - start)
    return duration


def _title(ev: dict[str, Any]) -> str:
    cmd = "" if ev.get("hide_command") else ev.get("cmd")
    pid = ev.get("pid")
    return defuse.line(ev.get("title") or cmd or (f"pid {pid}" if pid is not None else "?"))


def _cores(ev: dict[str, Any]) -> int | None:
    cores = ev.get("cores")
    if isinstance(cores, int) and not isinstance(cores, bool) and 0 < cores <= NUMBER_MAX:
        return cores
    return None


# -- one job -------------------------------------------------------------------------------


def _usage(ev: dict[str, Any], duration: float | None) -> str:
    """'peak RSS 1.2 GiB (40 % of the node's memory) · CPU 2 h 00 min (97 % of 4 cores)'."""
    usage = []
    maxrss = _number(ev, "maxrss_kb")
    floor = _number(ev, "maxrss_floor_kb")
    total = _number(ev, "mem_total_kb")
    if maxrss is not None and floor is not None and maxrss <= floor:
        usage.append(f"peak RSS ≤ {human_kib(maxrss)}")  # see maxrss_floor_kb in EVENTS.md
    elif maxrss is not None:
        share = f" ({maxrss / total:.0%} of the node's memory)" if total else ""
        usage.append(f"peak RSS {human_kib(maxrss)}{share}")
    cpu = _number(ev, "cpu_s")
    if cpu is not None:
        text = f"CPU {human_duration(cpu)}"
        cores = _cores(ev)
        if duration and cores:
            text += f" ({cpu / (duration * cores):.0%} of {_plural(cores, 'core')})"
        elif duration:
            text += f" ({cpu / duration:.1f} cores busy on average)"
        usage.append(text)
    return " · ".join(usage)


def private_path(ev: dict[str, Any], path: object) -> str:
    """A file named in the message: only its name with --hide-command, whose paths stay home."""
    text = str(path or "")
    if not ev.get("hide_command"):
        return text
    return os.path.basename(text.rstrip("/")) or text


def _where(ev: dict[str, Any]) -> list[str]:
    """The lines about what ran where: cwd and command (unless hidden), detached log.

    --hide-command leaves out the directory as well as the command (pingch
    records neither; an older pingch's event may still hold the directory).
    """
    lines = []
    if ev.get("cwd") and not ev.get("hide_command"):
        lines.append(f"in {defuse.code(ev['cwd'])}")
    cmd = "" if ev.get("hide_command") else str(ev.get("cmd") or "")
    if "\n" in cmd.strip():
        lines.append("command:")
        lines.extend(defuse.code_block(cmd))
    elif cmd.strip():
        lines.append(defuse.code("$ " + cmd.strip()))
    if ev.get("detached"):
        log = ev.get("log")
        lines.append(f"detached; output in {defuse.code(private_path(ev, log))}" if log else "detached")
    return lines


def _host_line(ev: dict[str, Any], host: str, when: str) -> str:
    facts = [host, f"pid {defuse.line(ev.get('pid'))}"]
    if ev.get("group"):
        facts.append(f"group {defuse.line(ev['group'])}")
    facts.append(when)
    return " · ".join(facts)


def finished(ev: dict[str, Any]) -> Message:
    """The notification for one finished job (a finish event, see docs/EVENTS.md)."""
    if ev.get("slurm_state"):  # the scheduler's end (with pingch's, when it ran inside)
        from notifyd.notify import slurm

        message: Message = slurm.finished(ev)
        return message
    title = _title(ev)
    host = defuse.line(ev.get("host", "?"))
    words = outcome(ev)
    ok = succeeded(ev)
    end = _number(ev, "ts") or time.time()
    start = _number(ev, "start_ts")
    duration = _duration(ev)

    if ev.get("unwatched"):
        head, kind = f"👀 {title} on {host} is no longer watched", "warning"
    elif ok is True:
        head, kind = f"✅ {title} finished on {host}", "success"
    elif ok is False:
        head, kind = f"❌ {title} failed on {host} ({words})", "failure"
    else:
        head, kind = f"🏁 {title} ended on {host}", "info"

    facts = [f"**{describe_exit(ev)}**"]
    if possibly_oom(ev):
        facts.append("possibly out of memory")
    if duration is not None:
        facts.append(f"after {human_duration(duration)}")
    lines = [" · ".join(facts)]
    if ev.get("signal") == signal.SIGHUP and not ev.get("detached"):
        lines.append("(the terminal closed: run it with pingch -d to keep it going after logout)")
    lines.append(_host_line(ev, host, _span(start, end)))
    lines.extend(_where(ev))
    usage = _usage(ev, duration)
    if usage:
        lines.append(usage)
    if ev.get("error"):
        lines.append(f"⚠️ {defuse.line(ev['error'])}")
    attach = str(ev.get("attach") or "")
    if ev.get("attach_error"):
        lines.append(attach_note(private_path(ev, attach), str(ev["attach_error"])))
        attach = ""  # the watcher found it cannot be sent: do not try again
    elif attach:
        lines.append(f"📎 {defuse.code(private_path(ev, attach))}")
    if ev.get("legacy"):
        lines.append("(from ~/.pingchilling)")
    if ev.get("was_lost"):
        lines.append(f"(reported lost earlier: {defuse.line(ev['was_lost'])}; this is how it ended)")
    tail = ev.get("tail")
    if isinstance(tail, str) and tail.strip():
        source = private_path(ev, ev.get("tail_file"))
        lines.append(f"last lines of {defuse.code(source)}:" if source else "last lines:")
        lines.extend(defuse.code_block(tail))
    return Message(head, "\n".join(lines), kind, attach)


def attach_note(path: str, why: str) -> str:
    """The line saying a file was not attached, and why (both from the job: defused)."""
    what = f" {defuse.code(path)}" if path else ""
    return f"⚠️ could not attach{what}: {defuse.line(why)}"


def started(ev: dict[str, Any]) -> Message:
    """The notification for a job's start (notify_start = yes)."""
    title = _title(ev)
    host = defuse.line(ev.get("host", "?"))
    start = _number(ev, "start_ts") or _number(ev, "ts")
    when = f"started {_local(start)}" if start is not None else "started"
    lines = [_host_line(ev, host, when), *_where(ev)]
    return Message(f"▶️ {title} started on {host}", "\n".join(lines), "info")


def lost(job: dict[str, Any], reason: str) -> Message:
    """A job whose finish will never come, and why notifyd thinks so."""
    title = _title(job)
    host = defuse.line(job.get("host", "?"))
    start = _number(job, "start_ts")
    when = f"started {_local(start)}" if start else "started at an unknown time"
    lines = [f"lost: {defuse.line(reason)}", _host_line(job, host, when), *_where(job),
             "If it does finish after all, you will get its result too."]
    return Message(f"❓ {title} lost on {host}", "\n".join(lines), "failure")


def make_test_message(host: str) -> Message:
    """What `notifyd test` sends to every URL."""
    return Message(
        f"🔔 notifyd test from {host}",
        f"If you read this, notifyd can reach you. Sent {_local(time.time())}.",
        "info",
    )


# -- fitting a service's limit -------------------------------------------------------------


def _cut(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)].rstrip() + "…" if width > 0 else ""


def _cut_title(title: str, limit: int) -> str:
    return _cut(title, limit // 2)


def fit(msg: Message, limit: int) -> Message:
    """`msg` with len(title) + len(body) <= limit (less JOINER, for the line break between them).

    A title over limit // 2 is cut; the body is cut at a line boundary, ends
    with CUT_NOTE, and a code block left open is closed first.
    """
    title = _cut_title(msg.title, limit)
    room = limit - len(title) - JOINER
    if len(msg.body) <= room:
        return replace(msg, title=title)
    note = "\n" + CUT_NOTE
    kept: list[str] = []
    used = 0
    in_code = False
    for line in msg.body.split("\n"):
        fence = line.startswith("```")
        now_in_code = in_code != fence
        cost = len(line) + (1 if kept else 0)
        closing = len("\n```") if now_in_code else 0
        if used + cost + closing + len(note) > room:
            if not kept and not fence:
                # A first line longer than the whole room: better part of it than nothing.
                kept.append(_cut(line, room - len(note)))
            break
        kept.append(line)
        used += cost
        in_code = now_in_code
    if in_code:
        kept.append("```")
    body = "\n".join([*kept, CUT_NOTE]) if kept else CUT_NOTE
    return replace(msg, title=title, body=body[: max(0, room)])


def _fill(lines: Sequence[str], room: int, more: Any) -> list[str]:
    """As many of `lines` as fit in `room` characters, then more(n) for the n left out."""
    if len("\n".join(lines)) <= room:
        return list(lines)
    kept: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        cost = len(line) + (1 if kept else 0)
        tail = more(len(lines) - i - 1)
        if used + cost + 1 + len(tail) > room:
            break
        kept.append(line)
        used += cost
    return [*kept, more(len(lines) - len(kept))]


# -- many jobs -----------------------------------------------------------------------------


def _counts(ok: int, failed: int, lost_: int, unknown: int) -> str:
    parts = [f"{ok} ok"]
    if failed:
        parts.append(f"{failed} failed")
    if lost_:
        parts.append(f"{lost_} lost")
    if unknown:
        parts.append(f"{unknown} unknown")
    return ", ".join(parts)


def _hosts(hosts: Sequence[str]) -> str:
    if len(hosts) <= 3:
        return ", ".join(hosts)
    return f"{', '.join(hosts[:3])} and {_plural(len(hosts) - 3, 'more host')}"


_ORDER = {"failed": 0, "lost": 1, "unknown": 2, "ok": 3}
_MARK = {"failed": "❌", "lost": "❓", "unknown": "🏁", "ok": "✅"}


def _digest_head(jobs: Sequence[dict[str, Any]]) -> tuple[str, list[str], str]:
    """'37 jobs finished on node2, node5: 35 ok, 2 failed', each job's outcome, the severity."""
    states = [Outcome.of(ev).value for ev in jobs]
    hosts = sorted({defuse.line(ev.get("host", "?")) for ev in jobs})
    n = {s: states.count(s) for s in _ORDER}
    head = (f"{_plural(len(jobs), 'job')} finished on {_hosts(hosts)}: "
            f"{_counts(n['ok'], n['failed'], n['lost'], n['unknown'])}")
    return head, states, "failure" if n["failed"] or n["lost"] else "success"


def digest(jobs: Sequence[dict[str, Any]], limit: int) -> Message:
    """Many finished jobs in one message: failures and lost ones first; never over `limit`.

    `jobs` are finish events as in the spool; a lost job carries "lost": reason.
    """
    head, states, kind = _digest_head(jobs)
    title = _cut_title(head, limit)
    lines = []
    for state, ev in sorted(zip(states, jobs, strict=True), key=lambda p: _ORDER[p[0]]):
        facts = [f"{_MARK[state]} {_cut(_title(ev), DIGEST_TITLE_CHARS)}", defuse.line(ev.get("host", "?"))]
        if state == "lost":
            facts.append(f"lost: {defuse.line(ev['lost'])}")
        elif state != "ok":
            facts.append(outcome(ev))
        duration = _duration(ev)
        if duration is not None and state != "lost":
            facts.append(short_duration(duration))
        lines.append(" · ".join(facts))
    room = limit - len(title) - JOINER
    body = "\n".join(_fill(lines, room, lambda k: f"… and {k} more: `notifyd jobs --since 1h`"))
    return Message(title, body[: max(0, room)], kind)


def few(jobs: Sequence[dict[str, Any]], msgs: Sequence[Message], limit: int) -> Message:
    """A small batch (routing.SMALL_BATCH jobs at most) in one message: each job's own, shortened.

    The digest's title, then each job's message (failures first): its title
    line and its key lines (how it ended, the duration, host and times, the
    directory and command, memory), with the job's output cut to its last
    FEW_TAIL_LINES lines. Each job gets an equal share of `limit`; a share
    too small for a job's message cuts that job's message, never another's.
    """
    head, states, kind = _digest_head(jobs)
    title = _cut_title(head, limit)
    order = sorted(range(len(jobs)), key=lambda i: _ORDER[states[i]])
    room = limit - len(title) - JOINER
    share = max(0, (room - 2 * (len(order) - 1)) // max(1, len(order)))  # blank lines between jobs
    sections = []
    for i in order:
        own = fit(Message(msgs[i].title, _shortened(msgs[i].body), msgs[i].severity), share)
        sections.append(f"{own.title}\n{own.body}" if own.body else own.title)
    return Message(title, "\n\n".join(sections)[: max(0, room)], kind)


def _shortened(body: str) -> str:
    """A job's message body with each fenced block cut to FEW_TAIL_LINES lines.

    Our bodies' fences are lines of exactly three backticks (defuse.code_block;
    job text cannot make one). A command block keeps its first lines, output its last.
    """
    out: list[str] = []
    block: list[str] | None = None
    for line in body.split("\n"):
        if line != "```":
            if block is None:
                out.append(line)
            else:
                block.append(_cut(line, FEW_LINE_CHARS))
            continue
        if block is None:
            block = []
            continue
        command = bool(out) and out[-1] == "command:"
        kept = block[:FEW_TAIL_LINES] if command else block[-FEW_TAIL_LINES:]
        if len(block) > FEW_TAIL_LINES:
            kept = [*kept, "…"] if command else ["…", *kept]
        out.extend(["```", *kept, "```"])
        block = None
    if block is not None:  # not one of our bodies after all: keep what was there
        out.extend(["```", *block])
    return "\n".join(out)


def group_done(name: str, jobs: Sequence[dict[str, Any]], limit: int) -> Message:
    """A group's summary once its last job ended.

    `jobs`: dicts with title, host, outcome ("ok", "failed", "lost" or "unknown"),
    duration (seconds or None), exit and signal. A SLURM array's group
    (slurm-ID) is summarised as an array: by task.
    """
    if name.startswith("slurm-") and all(j.get("task") for j in jobs):
        from notifyd.notify import slurm

        summary: Message = slurm.array_done(name.removeprefix("slurm-"), jobs, limit)
        return summary
    states = [o if isinstance(o := j.get("outcome"), str) and o in _ORDER else "unknown" for j in jobs]
    n = {s: states.count(s) for s in _ORDER}
    head = (f"📦 group {defuse.line(name)} done: {_plural(len(jobs), 'job')}: "
            f"{_counts(n['ok'], n['failed'], n['lost'], n['unknown'])}")
    durations = [(d, j) for j in jobs if (d := _number(j, "duration")) is not None]
    facts = []
    if durations:
        facts.append(f"total run time {human_duration(sum(d for d, _j in durations))}")
        longest, job = max(durations, key=lambda p: p[0])
        facts.append(f"longest: {_cut(_title(job), DIGEST_TITLE_CHARS)} ({human_duration(longest)})")
    else:
        facts.append("run time unknown")
    lines = [" · ".join(facts)]
    for state, job in sorted(zip(states, jobs, strict=True), key=lambda p: _ORDER[p[0]]):
        if state == "ok":
            continue
        words = {"failed": outcome(job), "lost": "lost", "unknown": "exit unknown"}[state]
        lines.append(f"{_MARK[state]} {_cut(_title(job), DIGEST_TITLE_CHARS)} · "
                     f"{defuse.line(job.get('host', '?'))} · {words}")
    kind = "failure" if n["failed"] or n["lost"] else "success"
    return fit(Message(head, "\n".join(lines), kind), limit)
