"""What runs and what finished, across every host: the data behind `notifyd jobs`.

Running jobs come from the watcher's state file; finished ones from the
inbox, which holds one record per finished (or lost) job, including jobs
whose notification was filtered out. The inbox is read backwards from its
end only as far as the cutoff (sender.inbox_window), so a year of history
costs no more than the last day of it; its lines are counted from their
bytes and only the rows shown are parsed. Whether a job's notification
went out is judged from the state file's outbox, digest batches and
given-up deliveries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from notifyd import state
from notifyd.notify import targets as sender
from notifyd.notify.message import signal_name
from notifyd.paths import Paths

# A lost job that later finishes has a ":lost" and a ":finish" record: the finish wins.
_LOST_SUFFIX = ":lost"
_FAILED = ("failed", "lost")


@dataclass(frozen=True)
class Running:
    """A job the watcher saw start and not yet end."""

    job: str
    title: str
    host: str
    pid: int | None
    user: str
    cwd: str
    group: str
    start_ts: float | None

    def elapsed(self, now: float) -> float | None:
        # Start times come from the job's host clock: never show a negative age.
        return None if self.start_ts is None else max(0.0, now - self.start_ts)


@dataclass(frozen=True)
class Finished:
    """A finished or lost job and what became of its notification."""

    job: str
    title: str
    host: str
    pid: int | None
    group: str
    outcome: str  # "ok", "failed", "lost" or "unknown"
    outcome_text: str  # "ok", "exit 3", "killed by SIGKILL", "lost", "unknown"
    exit: int | None
    signal: int | None
    duration: float | None
    maxrss_kb: int | None
    start_ts: float | None
    end_ts: float
    # "delivered", "pending", "pending (digest)", "pending (group)", "failed" or "silent"
    delivery: str


@dataclass
class Jobs:
    running: list[Running] = field(default_factory=list)
    finished: list[Finished] = field(default_factory=list)
    finished_left_out: int = 0  # older finished jobs cut by the limit
    running_left_out: int = 0  # jobs started earlier, cut by the limit
    finished_bad: int = 0  # failed or lost among all finished ones, before the limit
    notes: list[str] = field(default_factory=list)  # what could not be read, for stderr


# --------------------------------------------------------------------------- small readers


def _num(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def host_of_job(job: str) -> str:
    """The host in a pingch job id ("host-pid-8hex", events.new_job_id), else ""."""
    parts = job.rsplit("-", 2)
    if len(parts) == 3 and parts[1].isdigit() and len(parts[2]) == 8:
        try:
            int(parts[2], 16)
        except ValueError:
            return ""
        return parts[0]
    return ""


def is_job_record(record: dict[str, Any]) -> bool:
    """A finished or lost job's own record, not a digest or a group's summary
    (a one-job group's summary names that job too, but carries no "info")."""
    job = _text(record.get("job"))
    if not job:
        return False
    return isinstance(record.get("info"), dict) or _text(record.get("id")) in (
        f"{job}:finish", f"{job}{_LOST_SUFFIX}")


def _covered(entry: dict[str, Any]) -> list[str]:
    """The jobs an outbox (or failed) entry is about: one, or a digest's many."""
    jobs = [j for j in _list(entry.get("jobs")) if isinstance(j, str) and j]
    job = _text(entry.get("job"))
    return [job, *jobs] if job else jobs


# --------------------------------------------------------------------------- delivery


@dataclass
class Deliveries:
    """Which jobs still wait for a push, a digest or their group's summary, or were given up on."""

    pending: set[str] = field(default_factory=set)
    digest: set[str] = field(default_factory=set)
    group: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    # Batched finish events by job: a job may wait there before any inbox record exists.
    batched: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_state(cls, saved: dict[str, Any]) -> Deliveries:
        d = cls()
        for entry in map(_dict, _list(saved.get("outbox"))):
            # The inbox is written by the watcher itself; only a push still to
            # go (a URL that failed and is retried, say) makes a job pending.
            if any(t != sender.INBOX_KEY for t in _list(entry.get("targets"))):
                d.pending.update(_covered(entry))
        for batch in _dict(saved.get("batches")).values():
            for ev in map(_dict, _list(_dict(batch).get("jobs"))):
                job = _text(ev.get("job"))
                if job:
                    d.digest.add(job)
                    d.batched[job] = ev
        for value in _dict(saved.get("groups")).values():
            # A finished job of a group still open is told in the group's summary.
            d.group.update(job for job, done in _dict(_dict(value).get("jobs")).items() if done)
        for entry in _list(saved.get("failed")):
            d.failed.update(_covered(_dict(entry)))
        return d

    def of(self, job: str, silent: bool) -> str:
        # Something still being tried says more than an old failure.
        if job in self.pending:
            return "pending"
        if job in self.digest:
            return "pending (digest)"
        if job in self.group and not silent:
            return "pending (group)"
        if job in self.failed:
            return "failed"
        return "silent" if silent else "delivered"


# --------------------------------------------------------------------------- building rows


def _outcome(exit_code: int | None, sig: int | None, outcome: str) -> tuple[str, str]:
    """(outcome, words): words as in the messages, 'ok' for a success."""
    if outcome == "lost":
        return "lost", "lost"
    if sig is not None:
        return "failed", f"killed by {signal_name(sig)}"
    if exit_code is not None:
        return ("ok", "ok") if exit_code == 0 else ("failed", f"exit {exit_code}")
    if outcome in ("ok", "failed"):
        return outcome, outcome
    return "unknown", "unknown"


def _from_record(record: dict[str, Any], deliveries: Deliveries) -> Finished:
    job = _text(record.get("job"))
    time_ = _num(record.get("time")) or 0.0
    info = record.get("info")
    if isinstance(info, dict):
        exit_code, sig = _int(info.get("exit")), _int(info.get("signal"))
        outcome, words = _outcome(exit_code, sig, _text(info.get("outcome")))
        start, end = _num(info.get("start_ts")), _num(info.get("end_ts")) or time_
        duration = _num(info.get("duration"))
        if duration is None and start is not None and outcome != "lost":
            duration = max(0.0, end - start)
        return Finished(
            job=job, title=_text(info.get("title")) or _text(record.get("title")),
            host=_text(info.get("host")) or host_of_job(job), pid=_int(info.get("pid")),
            group=_text(info.get("group")), outcome=outcome, outcome_text=words,
            exit=exit_code, signal=sig, duration=duration, maxrss_kb=_int(info.get("maxrss_kb")),
            start_ts=start, end_ts=end,
            delivery=deliveries.of(job, info.get("silent") is True),
        )
    # A record from before "info" existed: only its kind, title and time say anything.
    if _text(record.get("id")).endswith(_LOST_SUFFIX):
        outcome = "lost"
    else:
        outcome = {"success": "ok", "failure": "failed"}.get(_text(record.get("kind")), "unknown")
    return Finished(
        job=job, title=_text(record.get("title")), host=host_of_job(job), pid=None, group="",
        outcome=outcome, outcome_text=outcome, exit=None, signal=None, duration=None,
        maxrss_kb=None, start_ts=None, end_ts=time_, delivery=deliveries.of(job, False),
    )


def _from_event(ev: dict[str, Any], deliveries: Deliveries) -> Finished:
    """A finish event waiting in a digest batch (see docs/EVENTS.md)."""
    job = _text(ev.get("job"))
    exit_code, sig = _int(ev.get("exit")), _int(ev.get("signal"))
    outcome, words = _outcome(exit_code, sig, "lost" if ev.get("lost") else "")
    start, end = _num(ev.get("start_ts")), _num(ev.get("ts")) or 0.0
    duration = _num(ev.get("duration"))
    if duration is None and start is not None:
        duration = max(0.0, end - start)
    return Finished(
        job=job, title=_text(ev.get("title")) or _text(ev.get("cmd")),
        host=_text(ev.get("host")) or host_of_job(job), pid=_int(ev.get("pid")),
        group=_text(ev.get("group")), outcome=outcome, outcome_text=words, exit=exit_code,
        signal=sig, duration=duration, maxrss_kb=_int(ev.get("maxrss_kb")), start_ts=start,
        end_ts=end, delivery=deliveries.of(job, False),
    )


def _from_lost(job: str, info: dict[str, Any], deliveries: Deliveries) -> Finished:
    """A job the state holds as lost whose inbox record is not written yet."""
    return Finished(
        job=job, title=_text(info.get("title")) or _text(info.get("cmd")),
        host=_text(info.get("host")) or host_of_job(job), pid=_int(info.get("pid")),
        group=_text(info.get("group")), outcome="lost", outcome_text="lost", exit=None,
        signal=None, duration=None, maxrss_kb=None, start_ts=_num(info.get("start_ts")),
        end_ts=_num(info.get("at")) or 0.0, delivery=deliveries.of(job, False),
    )


def _running(saved: dict[str, Any]) -> list[Running]:
    rows = []
    for job, value in _dict(saved.get("running")).items():
        info = _dict(value)
        rows.append(Running(
            job=str(job), title=_text(info.get("title")) or _text(info.get("cmd")),
            host=_text(info.get("host")) or host_of_job(str(job)), pid=_int(info.get("pid")),
            user=_text(info.get("user")), cwd=_text(info.get("cwd")), group=_text(info.get("group")),
            start_ts=_num(info.get("start_ts")),
        ))
    return sorted(rows, key=lambda r: r.start_ts or 0.0)


def _finished(records: Iterable[dict[str, Any]], saved: dict[str, Any], deliveries: Deliveries,
              cutoff: float) -> list[Finished]:
    by_job: dict[str, Finished] = {}
    lost_only: set[str] = set()
    for record in records:
        if not is_job_record(record):
            continue  # a digest or a group's summary: its jobs have records of their own
        job = _text(record.get("job"))
        is_lost = _text(record.get("id")).endswith(_LOST_SUFFIX)
        if job in by_job and is_lost and job not in lost_only:
            continue  # the job's finish came after all and is shown instead
        by_job[job] = _from_record(record, deliveries)
        if is_lost:
            lost_only.add(job)
        else:
            lost_only.discard(job)
    # Jobs the watcher knows of but has not written to the inbox yet.
    for job, ev in deliveries.batched.items():
        finished = _from_event(ev, deliveries)
        if job not in by_job and finished.end_ts >= cutoff:
            by_job[job] = finished
    for job, info in _dict(saved.get("lost")).items():
        lost = _from_lost(str(job), _dict(info), deliveries)
        if job not in by_job and lost.end_ts >= cutoff:
            by_job[str(job)] = lost
    return sorted(by_job.values(), key=lambda f: f.end_ts)


def _not_in_inbox_yet(saved: dict[str, Any], cutoff: float) -> list[dict[str, Any]]:
    """Outbox entries the watcher writes to the inbox in its next round, as inbox records."""
    records = []
    for entry in map(_dict, _list(saved.get("outbox"))):
        created = _num(entry.get("created")) or 0.0
        if sender.INBOX_KEY in _list(entry.get("targets")) and created >= cutoff:
            records.append({**entry, "time": created})
    return records


# --------------------------------------------------------------------------- the one entry


def collect(paths: Paths, *, cutoff: float, failed_only: bool = False,
            group: str | None = None, limit: int | None = None) -> Jobs:
    """Running jobs and the jobs finished at or after `cutoff`, filtered, newest last."""
    jobs = Jobs()
    try:
        # With the journals applied: a delivery journalled since the last save is done.
        saved = state.load(paths.state_file, paths.journal_dir).to_json()
    except (state.StateFileError, KeyError, TypeError, ValueError, AttributeError) as exc:
        # The watcher sets a broken state aside and rebuilds; until then the
        # inbox still tells what finished.
        saved = {}
        where = "" if isinstance(exc, state.StateFileError) else f"{paths.state_file}: "
        jobs.notes.append(f"{where}{exc}; running jobs and pending deliveries are unknown until the "
                          "watcher rebuilds it (see notifyd status)")
    deliveries = Deliveries.from_state(saved)
    # A day of a busy user's history is ~100,000 records: count them from
    # their bytes and parse only the ones shown (bench/: `notifyd jobs`).
    everything = sender.inbox_window(paths.inbox_dir, cutoff)
    superseded = _lost_then_finished(everything)
    window = [line for line in everything
              if line not in superseded and _line_wanted(line, group, failed_only)]
    shown_lines = window if limit is None else window[-(limit + 1):]
    records = [r for r in map(sender.parse_record, shown_lines) if r is not None]
    finished = _finished(records + _not_in_inbox_yet(saved, cutoff), saved, deliveries, cutoff)
    running = _running(saved)
    if group is not None:
        finished = [f for f in finished if f.group == group]
        running = [r for r in running if r.group == group]
    if failed_only:
        # Running jobs have not failed (yet): --failed is the list of what went wrong.
        finished = [f for f in finished if f.outcome in _FAILED]
        running = []
    # Jobs counted but not parsed: every wanted line before the shown ones.
    unparsed = window[:len(window) - len(shown_lines)]
    unparsed_jobs = sum(1 for line in unparsed if _is_job_line(line))
    jobs.finished_bad = sum(1 for f in finished if f.outcome in _FAILED) + sum(
        1 for line in unparsed if _line_bad(line))
    if limit is not None:
        jobs.finished_left_out = max(0, len(finished) - limit) + unparsed_jobs
        jobs.running_left_out = max(0, len(running) - limit)
        finished = finished[len(finished) - min(limit, len(finished)):]
        running = running[len(running) - min(limit, len(running)):]
    jobs.running, jobs.finished = running, finished
    return jobs


# Byte patterns of the records the watcher writes (json.dumps with ","/":"
# separators, keys id, job, time... and an "info" object). Job text cannot
# fake them: a '"' inside a title is written as '\"'.
_INFO = b'"info":{'
_BAD = (b'"outcome":"failed"', b'"outcome":"lost"')
_LOST_ID = re.compile(rb'^\{"id":"([^"\\]*):lost"')


def _is_job_line(line: bytes) -> bool:
    """A job's own record (not a digest or a group summary), judged from its bytes."""
    if _INFO in line:
        return True
    head = line[:300]
    return b':finish","job":"' in head or b':lost","job":"' in head


def _line_bad(line: bytes) -> bool:
    if _INFO in line:
        return any(mark in line for mark in _BAD)
    return _is_job_line(line) and (b'"kind":"failure"' in line or b':lost","job":"' in line[:300])


def _line_wanted(line: bytes, group: str | None, failed_only: bool) -> bool:
    if group is not None and f'"group":{json.dumps(group)}'.encode() not in line:
        return False
    return not failed_only or _line_bad(line)


def _lost_then_finished(lines: list[bytes]) -> set[bytes]:
    """"Lost" records of jobs whose finish is in the window too: the finish is shown instead."""
    lost = {m.group(1): line for line in lines if (m := _LOST_ID.match(line))}
    if not lost:
        return set()
    finished = {line[7:line.find(b'"', 7)].removesuffix(b":finish") for line in lines
                if line.startswith(b'{"id":"') and b':finish","job":"' in line[:300]}
    return {line for job, line in lost.items() if job in finished}


def as_json(jobs: Jobs, now: float) -> dict[str, Any]:
    """The --json document: {"running": [...], "finished": [...]}."""
    return {
        "running": [{**r.__dict__, "elapsed": r.elapsed(now)} for r in jobs.running],
        "finished": [dict(f.__dict__) for f in jobs.finished],
    }
