"""A SLURM job's end in words: like any job's message, with what the scheduler adds.

The job id as users know it (7_4), its name, partition and nodes; the state
in words (the state leads: TIMEOUT and CANCELLED carry no exit code of
their own); elapsed time against the limit; CPU efficiency (TotalCPU over
elapsed times cpus) and memory used against requested, in the style of `seff`;
a hint where one helps (out of memory: ask for more, the peak was X; the
time limit: it was Y; under half of what was asked for: ask for less); the
last lines of the job's output file when [slurm] tail asks for them. All
job text (names, paths, output) is defused like any job's.
"""

from __future__ import annotations

import pwd
import time
from collections.abc import Sequence
from typing import Any

from notifyd.notify import defuse
from notifyd.notify.outcome import Outcome, exit_words
from notifyd.slurm.states import WORDS
from notifyd.text import human_duration, human_kib

_MARK = {Outcome.OK: "✅", Outcome.FAILED: "❌", Outcome.LOST: "❓", Outcome.UNKNOWN: "🏁"}
HALF = 0.5  # under half of what was asked for: the hint to ask for less
SETTLED = 300.0  # a job shorter than this says little about what it needs: no "ask for less" hint


def _num(ev: dict[str, Any], key: str) -> float | None:
    value = ev.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _who(uid: object) -> str:
    text = str(uid)
    if text.isdigit():
        try:
            return pwd.getpwuid(int(text)).pw_name
        except (KeyError, OverflowError):
            return f"uid {text}"
    return text


def words(ev: dict[str, Any]) -> str:
    """How the job ended, in a few words: 'hit its time limit', 'failed: exit 3', 'was cancelled by ana'."""
    state = str(ev.get("slurm_state") or "")
    if ev.get("slurm_gone"):
        return "ended, details no longer available"
    if state == "FAILED":
        return f"failed: {exit_words(ev.get('exit'), ev.get('signal'))}"
    if state == "COMPLETED" and (ev.get("exit") not in (0, None) or ev.get("signal")):
        return f"completed, but {exit_words(ev.get('exit'), ev.get('signal'))}"  # pingch's command failed
    text = WORDS.get(state, state.lower() or "ended")
    if state == "CANCELLED" and ev.get("slurm_cancelled_by"):
        text += f" by {_who(ev['slurm_cancelled_by'])}"
    if ev.get("slurm_never_ran"):
        text += " before it started"
    return text


def _job_line(ev: dict[str, Any]) -> str:
    facts = [f"job {defuse.line(ev.get('slurm_job'))}"]
    if ev.get("slurm_partition"):
        facts.append(f"partition {defuse.line(ev['slurm_partition'])}")
    nodes = ev.get("slurm_nodes") or (ev.get("host") if ev.get("host") not in (None, "-") else "")
    if nodes:
        facts.append(f"on {defuse.line(nodes)}")
    cpus = _num(ev, "cores")
    if cpus:
        facts.append(f"{cpus:.0f} cpu" + ("s" if cpus != 1 else ""))
    return " · ".join(facts)


def _time_line(ev: dict[str, Any]) -> str:
    duration, limit = _num(ev, "duration"), _num(ev, "slurm_limit")
    if duration is None:
        return ""
    text = f"ran {human_duration(duration)}"
    if limit:
        text += f" of its {human_duration(limit)} limit ({duration / limit:.0%})"
    return text


def _efficiency(ev: dict[str, Any]) -> list[str]:
    """seff's two figures: CPU efficiency and memory used against requested."""
    out = []
    duration, cpus, cpu = _num(ev, "duration"), _num(ev, "cores"), _num(ev, "cpu_s")
    if cpu is not None and duration and cpus:
        out.append(f"CPU efficiency {cpu / (duration * cpus):.0%} ({human_duration(cpu)} of "
                   f"{human_duration(duration * cpus)} core-walltime)")
    peak, asked = _num(ev, "maxrss_kb"), _num(ev, "slurm_req_mem_kb")
    if peak is not None:
        text = f"memory peak {human_kib(peak)}"
        if asked:
            text += f" of {human_kib(asked)} requested ({peak / asked:.0%})"
        text += " (sampled by SLURM: a short peak may be missed)" if ev.get("slurm_maxrss_sampled") else ""
        out.append(text)
    return out


def efficiency(ev: dict[str, Any]) -> dict[str, float]:
    """seff's figures as numbers (0..1), for `notifyd jobs`: cpu_eff, mem_eff where known."""
    out = {}
    duration, cpus, cpu = _num(ev, "duration"), _num(ev, "cores"), _num(ev, "cpu_s")
    if cpu is not None and duration and cpus:
        out["cpu_eff"] = round(cpu / (duration * cpus), 3)
    peak, asked = _num(ev, "maxrss_kb"), _num(ev, "slurm_req_mem_kb")
    if peak is not None and asked:
        out["mem_eff"] = round(peak / asked, 3)
    return out


def _hints(ev: dict[str, Any]) -> list[str]:
    state = ev.get("slurm_state")
    peak, asked = _num(ev, "maxrss_kb"), _num(ev, "slurm_req_mem_kb")
    duration, limit = _num(ev, "duration"), _num(ev, "slurm_limit")
    cpus, cpu = _num(ev, "cores"), _num(ev, "cpu_s")
    hints = []
    if state == "OUT_OF_MEMORY" or ev.get("oom"):
        peak_text = f"; the peak was {human_kib(peak)}" if peak is not None else ""
        asked_text = f" than the {human_kib(asked)} asked" if asked else ""
        hints.append(f"💡 ask for more memory{asked_text} (sbatch --mem){peak_text}")
    elif state == "TIMEOUT":
        hints.append(f"💡 ask for more time (sbatch -t): the limit was {human_duration(limit)}"
                     if limit else "💡 ask for more time (sbatch -t)")
    elif state == "COMPLETED" and duration is not None and duration >= SETTLED:
        if peak is not None and asked and peak < HALF * asked:
            enough = max(1, int(peak * 1.5 / 1024))
            hints.append(f"💡 it used under half the memory it asked for: --mem={enough}M would do, "
                         "and may start sooner")
        if cpu is not None and duration and cpus and cpus > 1 and cpu < HALF * duration * cpus:
            hints.append(f"💡 it kept under half its {cpus:.0f} cpus busy: ask for fewer (-c)")
        if limit and duration and duration < HALF * limit and limit >= 3600:
            hints.append("💡 it ran under half its time limit: a shorter one (-t) may start sooner")
    return hints


def finished(ev: dict[str, Any]) -> Any:
    """The notification for a SLURM job's end (a finish event with slurm_* fields)."""
    from notifyd.notify.message import Message, attach_note, possibly_oom, private_path
    from notifyd.notify.message import _where as where

    outcome = Outcome.of(ev)
    name = defuse.line(ev.get("title") or ev.get("slurm_job") or "?")
    job = defuse.line(ev.get("slurm_job") or "?")
    said = words(ev)
    if outcome is Outcome.OK:
        head, kind = f"✅ {name} (job {job}) {said}", "success"
    elif outcome is Outcome.UNKNOWN:
        head, kind = f"🏁 {name} (job {job}) {said}", "info"
    else:
        head, kind = f"❌ {name} (job {job}) {said}", "failure"
    facts = [f"**{ev.get('slurm_state')}**" if not ev.get("slurm_gone") else "**record purged**"]
    if ev.get("exit") not in (None, 0) or ev.get("signal"):
        facts.append(exit_words(ev.get("exit"), ev.get("signal")))
    if possibly_oom(ev) and ev.get("slurm_state") != "OUT_OF_MEMORY":
        facts.append("possibly out of memory")
    lines = [" · ".join(facts), _job_line(ev)]
    timing = "" if ev.get("slurm_never_ran") else _time_line(ev)
    if timing:
        lines.append(timing + _span(ev))
    elif ev.get("slurm_never_ran"):
        reason = f" (waiting: {defuse.line(ev['slurm_reason'])})" if ev.get("slurm_reason") else ""
        lines.append(f"it was still pending{reason}; it never ran")
    if ev.get("slurm_gone"):
        lines.append("its record was gone from the controller before notifyd saw it end, and no "
                     "accounting keeps it: how it ended is unknown (look at its output file)")
    lines.extend(where(ev))
    lines.extend(_efficiency(ev))
    lines.extend(_hints(ev))
    if ev.get("slurm_derived"):
        lines.append(f"a step of it ended badly: {defuse.line(ev['slurm_derived'])} (exit:signal)")
    if ev.get("slurm_merged"):
        lines.append("(told once for pingch inside the job and the scheduler)")
    attach = str(ev.get("attach") or "")
    if ev.get("attach_error"):
        lines.append(attach_note(private_path(ev, attach), str(ev["attach_error"])))
        attach = ""
    tail = ev.get("tail")
    if isinstance(tail, str) and tail.strip():
        source = private_path(ev, ev.get("tail_file"))
        lines.append(f"last lines of {defuse.code(source)}:" if source else "last lines:")
        lines.extend(defuse.code_block(tail))
    return Message(head, "\n".join(line for line in lines if line), kind, attach)


def _span(ev: dict[str, Any]) -> str:
    start, end = _num(ev, "start_ts"), _num(ev, "ts")
    if not start or not end or not (0 < start < 2**33 and 0 < end < 2**33):
        return ""
    fmt = "%H:%M:%S" if time.localtime(start)[:3] == time.localtime(end)[:3] else "%Y-%m-%d %H:%M"
    return (f" ({time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(start))} → "
            f"{time.strftime(fmt, time.localtime(end))})")


def requeued(ev: dict[str, Any]) -> Any:
    """A job the scheduler put back in the queue (its node failed, it was preempted)."""
    from notifyd.notify.message import Message

    name = defuse.line(ev.get("title") or ev.get("slurm_job") or "?")
    job = defuse.line(ev.get("slurm_job") or "?")
    after = defuse.line(ev.get("slurm_after") or "a node failure or a preemption")
    restart = ev.get("slurm_requeued")
    body = (f"after {after.replace('_', ' ').lower()} it is pending again (restart {restart}); "
            "you will be told how it ends\n" + _job_line(ev))
    return Message(f"🔁 {name} (job {job}) was requeued", body, "warning")


def array_done(array: str, members: Sequence[dict[str, Any]], limit: int) -> Any:
    """One summary for an array's tasks: counts by state, failures by task id, longest run, peak memory."""
    from notifyd.notify.message import Message, fit

    by_state: dict[str, int] = {}
    for m in members:
        state = str(m.get("slurm_state") or m.get("outcome") or "?")
        by_state[state] = by_state.get(state, 0) + 1
    bad = [m for m in members if m.get("outcome") in ("failed", "lost", "unknown")]
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(by_state.items(), key=lambda p: -p[1]))
    name = defuse.line(next((m.get("title") for m in members if m.get("title")), "") or "")
    head = (f"{'❌' if bad else '✅'} array {defuse.line(array)}{f' ({name})' if name else ''} done: "
            f"{len(members)} task{'s' if len(members) != 1 else ''}: {counts}")
    facts = []
    durations = [(float(d), m) for m in members if isinstance(d := m.get("duration"), (int, float))
                 and not isinstance(d, bool)]
    if durations:
        longest, who = max(durations, key=lambda p: p[0])
        facts.append(f"longest: task {defuse.line(who.get('task') or '?')} ({human_duration(longest)})")
    peaks = [(float(p), m) for m in members if isinstance(p := m.get("maxrss_kb"), (int, float))
             and not isinstance(p, bool)]
    if peaks:
        peak, who = max(peaks, key=lambda p: p[0])
        facts.append(f"peak memory {human_kib(peak)} (task {defuse.line(who.get('task') or '?')})")
    lines = [" · ".join(facts)] if facts else []
    for m in sorted(bad, key=lambda m: str(m.get("task") or "")):
        lines.append(f"{_MARK[Outcome.named(m.get('outcome'))]} task {defuse.line(m.get('task') or '?')} · "
                     f"{defuse.line(m.get('words') or m.get('outcome'))}")
    return fit(Message(head, "\n".join(lines), "failure" if bad else "success"), limit)
