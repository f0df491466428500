"""What runs and what finished, across every host: the data behind `notifyd jobs`.

Running jobs come from the watcher's state file; finished ones from the
inbox, which holds one record per finished (or lost) job, including jobs
whose notification was filtered out. The inbox is read backwards from its
end only as far as the cutoff (inbox.window), so a year of history
costs no more than the last day of it; its lines are counted from their
bytes and only the rows shown are parsed. Whether a job's notification
went out is judged from the state file's outbox, digest batches and
given-up deliveries (deliveries.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from notifyd import state
from notifyd.notify import inbox
from notifyd.notify.deliveries import Deliveries, configured
from notifyd.notify.inbox import LOST_SUFFIX, is_job_record
from notifyd.notify.outcome import BAD, exit_words
from notifyd.notify.targets import INBOX_KEY
from notifyd.paths import Paths
from notifyd.records import NUMBER_MAX, LostJob, OutboxEntry, RunningJob
from notifyd.spool import legacy
from notifyd.spool.events import TIME_MAX

# A lost job that later finishes has a ":lost" and a ":finish" record: the finish wins.
_FAILED = BAD


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
    # A SLURM job: the id users know, its state (PENDING, RUNNING...) and why it waits.
    slurm_job: str = ""
    state: str = ""
    reason: str = ""
    # Who reported it: "pingch", "slurm" or "pingchilling" (the old bash function's file).
    source: str = "pingch"

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
    # A SLURM job: the id users know, the scheduler's state, CPU and memory used of what was asked (0..1).
    slurm_job: str = ""
    slurm_state: str = ""
    cpu_eff: float | None = None
    mem_eff: float | None = None


@dataclass
class Jobs:
    running: list[Running] = field(default_factory=list)
    finished: list[Finished] = field(default_factory=list)
    finished_left_out: int = 0  # older finished jobs cut by the limit
    running_left_out: int = 0  # jobs started earlier, cut by the limit
    finished_bad: int = 0  # failed or lost among all finished ones, before the limit
    notes: list[str] = field(default_factory=list)  # what could not be read, for stderr


# --------------------------------------------------------------------------- small readers


# The inbox and the state's batches hold what jobs claimed: a number no float
# holds (a 401-digit int), NaN, or a time no calendar shows is no number here.
def _num(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and -NUMBER_MAX <= value <= NUMBER_MAX:
        return float(value)  # NaN fails the comparison
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and -NUMBER_MAX <= value <= NUMBER_MAX:
        return value
    return None


def _when(value: Any) -> float | None:
    """A time `notifyd jobs` can show as a date, else None."""
    number = _num(value)
    return number if number is not None and 0 <= number <= TIME_MAX else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


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


# --------------------------------------------------------------------------- building rows


def _outcome(exit_code: int | None, sig: int | None, outcome: str) -> tuple[str, str]:
    """(outcome, words): words as in the messages, 'ok' for a success."""
    if outcome == "lost":
        return "lost", "lost"
    if sig is not None or (exit_code is not None and exit_code != 0):
        return "failed", exit_words(exit_code, sig)
    if exit_code == 0:
        return "ok", "ok"
    if outcome in ("ok", "failed"):
        return outcome, outcome
    return "unknown", "unknown"


def _from_record(record: dict[str, Any], deliveries: Deliveries) -> Finished:
    job = _text(record.get("job"))
    time_ = _when(record.get("time")) or 0.0
    info = record.get("info")
    if isinstance(info, dict):
        exit_code, sig = _int(info.get("exit")), _int(info.get("signal"))
        outcome, words = _outcome(exit_code, sig, _text(info.get("outcome")))
        start, end = _num(info.get("start_ts")), _when(info.get("end_ts")) or time_
        duration = _num(info.get("duration"))
        if duration is None and start is not None and outcome != "lost":
            duration = max(0.0, end - start)
        slurm_state = _text(info.get("slurm_state"))
        if slurm_state:
            # The scheduler's word leads (TIMEOUT, OUT_OF_MEMORY...); FAILED says its exit code.
            outcome = _text(info.get("outcome")) or outcome
            words = words if slurm_state == "FAILED" else slurm_state
        return Finished(
            job=job, title=_text(info.get("title")) or _text(record.get("title")),
            host=_text(info.get("host")) or host_of_job(job), pid=_int(info.get("pid")),
            group=_text(info.get("group")), outcome=outcome, outcome_text=words,
            exit=exit_code, signal=sig, duration=duration, maxrss_kb=_int(info.get("maxrss_kb")),
            start_ts=start, end_ts=end,
            delivery=deliveries.of(job, info.get("silent") is True),
            slurm_job=_text(info.get("slurm_job")), slurm_state=slurm_state,
            cpu_eff=_num(info.get("cpu_eff")), mem_eff=_num(info.get("mem_eff")),
        )
    # A record from before "info" existed: only its kind, title and time say anything.
    if _text(record.get("id")).endswith(LOST_SUFFIX):
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
    start, end = _num(ev.get("start_ts")), _when(ev.get("ts")) or 0.0
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


def _from_lost(job: str, lost: LostJob, deliveries: Deliveries) -> Finished:
    """A job the state holds as lost whose inbox record is not written yet."""
    info = lost.job
    return Finished(
        job=job, title=info.title or info.cmd or "", host=info.host or host_of_job(job), pid=info.pid,
        group=info.group or "", outcome="lost", outcome_text="lost", exit=None,
        signal=None, duration=None, maxrss_kb=None, start_ts=info.start_ts,
        end_ts=_when(lost.at) or 0.0, delivery=deliveries.of(job, False),
    )


def _running(running: dict[str, RunningJob]) -> list[Running]:
    return [Running(job=job, title=r.title or r.cmd or "", host=r.host or host_of_job(job), pid=r.pid,
                    user=r.user or "", cwd=r.cwd or "", group=r.group or "", start_ts=r.start_ts,
                    slurm_job=str(r.slurm.get("slurm_job") or ""),
                    state=str(r.slurm.get("slurm_state") or ""),
                    reason=str(r.slurm.get("slurm_reason") or ""),
                    source="pingch" if r.source == "spool" else r.source)
            for job, r in running.items()]


def legacy_running(saved: state.State) -> list[Running]:
    """The old bash function's jobs still running: `Started` lines of ~/.pingchilling with no `Finished`.

    The legacy source keeps them in its cursor, as {"PID@host": {"title",
    "ts"}} under "open" (watcher/sources/legacy.py), until their Finished line
    comes; they never enter the state's running jobs. The cursor comes from
    the state file: an entry of the wrong shape is left out. The job id is the
    one their finish will carry.
    """
    cursor = saved.cursors.get(state.LEGACY_CURSOR)
    opened = cursor.get("open") if isinstance(cursor, dict) else None
    rows = []
    for key, started in (opened.items() if isinstance(opened, dict) else ()):
        pid, _, host = str(key).partition("@")
        if not (pid.isascii() and pid.isdigit() and len(pid) <= 18 and host) or not isinstance(started, dict):
            continue
        ts = _when(started.get("ts"))
        title = _text(started.get("title")) or f"pid {pid}"
        rows.append(Running(job=legacy.job_id(host, pid, ts), title=title, host=host,
                            pid=int(pid), user="", cwd="", group="", start_ts=ts, source="pingchilling"))
    return rows


def _finished(records: Iterable[dict[str, Any]], saved: state.State, deliveries: Deliveries,
              cutoff: float) -> list[Finished]:
    by_job: dict[str, Finished] = {}
    lost_only: set[str] = set()
    for record in records:
        if not is_job_record(record):
            continue  # a digest or a group's summary: its jobs have records of their own
        job = _text(record.get("job"))
        is_lost = _text(record.get("id")).endswith(LOST_SUFFIX)
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
    for job, item in saved.lost.items():
        lost = _from_lost(job, item, deliveries)
        if job not in by_job and lost.end_ts >= cutoff:
            by_job[job] = lost
    return sorted(by_job.values(), key=lambda f: f.end_ts)


def _not_in_inbox_yet(outbox: list[OutboxEntry], cutoff: float) -> list[dict[str, Any]]:
    """Outbox entries the watcher writes to the inbox in its next round, as inbox records."""
    return [{**entry.to_json(), "time": entry.created} for entry in outbox
            if INBOX_KEY in entry.targets and entry.created >= cutoff]


# --------------------------------------------------------------------------- the one entry


def collect(paths: Paths, *, cutoff: float, failed_only: bool = False,
            group: str | None = None, limit: int | None = None) -> Jobs:
    """Running jobs and the jobs finished at or after `cutoff`, filtered, newest last."""
    jobs = Jobs()
    try:
        # With the journals applied: a delivery journalled since the last save is done.
        saved = state.load(paths.state_file, paths.journal_dir)
    except (state.StateFileError, OSError) as exc:
        # The watcher sets a broken state aside and rebuilds; until then the
        # inbox still tells what finished.
        saved = state.State()
        jobs.notes.append(f"{exc}; running jobs and pending deliveries are unknown until the "
                          "watcher rebuilds it (see notifyd status)")
    jobs.notes.extend(f"{paths.state_file}: skipped {p}" for p in saved.problems)
    deliveries = Deliveries.from_state(saved, configured(paths, saved))
    if deliveries.unconfigured:
        jobs.notes.append(f"{deliveries.unconfigured} deliveries wait for URLs no longer configured (not "
                          "counted as pending): notifyd status names them, notifyd drop drops them")
    # A day of a busy user's history is ~100,000 records: count them from
    # their bytes and parse only the ones shown (bench/: `notifyd jobs`).
    everything = inbox.window(paths.inbox_dir, cutoff)
    superseded = _lost_then_finished(everything)
    window = [line for line in everything
              if line not in superseded and _line_wanted(line, group, failed_only)]
    shown_lines = window if limit is None else window[-(limit + 1):]
    records = [r for r in map(inbox.parse_record, shown_lines) if r is not None]
    finished = _finished(records + _not_in_inbox_yet(saved.outbox, cutoff), saved, deliveries, cutoff)
    running = sorted(_running(saved.running) + legacy_running(saved), key=lambda r: r.start_ts or 0.0)
    if group is not None:
        finished = [f for f in finished if f.group == group]
        running = [r for r in running if r.group == group]
    if failed_only:
        # Running jobs have not failed (yet): --failed is the list of what went wrong.
        finished = [f for f in finished if f.outcome in _FAILED]
        running = []
    # Jobs counted but not parsed: every wanted line before the shown ones.
    unparsed = window[:len(window) - len(shown_lines)]
    unparsed_jobs = sum(1 for line in unparsed if inbox.is_job_line(line))
    jobs.finished_bad = sum(1 for f in finished if f.outcome in _FAILED) + sum(
        1 for line in unparsed if inbox.is_bad_line(line))
    if limit is not None:
        jobs.finished_left_out = max(0, len(finished) - limit) + unparsed_jobs
        jobs.running_left_out = max(0, len(running) - limit)
        finished = finished[len(finished) - min(limit, len(finished)):]
        running = running[len(running) - min(limit, len(running)):]
    jobs.running, jobs.finished = running, finished
    return jobs


def _line_wanted(line: bytes, group: str | None, failed_only: bool) -> bool:
    if group is not None and not inbox.in_group(line, group):
        return False
    return not failed_only or inbox.is_bad_line(line)


def _lost_then_finished(lines: list[bytes]) -> set[bytes]:
    """"Lost" records of jobs whose finish is in the window too: the finish is shown instead."""
    lost = {job: line for line in lines if (job := inbox.lost_job_id(line)) is not None}
    if not lost:
        return set()
    finished = {job for line in lines if (job := inbox.finished_job_id(line)) is not None}
    return {line for job, line in lost.items() if job in finished}


def as_json(jobs: Jobs, now: float) -> dict[str, Any]:
    """The --json document: {"running": [...], "finished": [...]}."""
    return {
        "running": [{**r.__dict__, "elapsed": r.elapsed(now)} for r in jobs.running],
        "finished": [dict(f.__dict__) for f in jobs.finished],
    }
