"""SLURM jobs as a job source: one `squeue --me -t all` per poll, on a thread of its own.

Long: the source keeps a job table across polls (which jobs it saw, in which
state, what it told) and turns what changed into events; each step is a
function of the `Pass` below, none long.

What a poll does (on the source's thread, never the loop's):
  1. `scontrol show config` once an hour: MinJobAge (how long a finished job
     stays visible), the cluster's name, whether accounting is kept;
  2. `squeue --me -t all`: every job of the user, pending, running or ended
     within MinJobAge: one call for all of them, never one per job;
  3. `sacct -j id,id,...` once for the jobs that ended or vanished since the
     last poll, where accounting answers (peak memory over the steps, CPU
     time, requested memory); and after the watcher was down for longer than
     MinJobAge, `sacct` over the window it missed, bounded by time (job ids
     are recycled).
The loop then takes the result (poll() returns what is ready) and the Pass
turns it into events: a start for a job first seen and for each change of
its state, a finish for an end (the state told as it is: FAILED 0:9 is a
SIGKILL, TIMEOUT and CANCELLED lead with the state), a requeue (NODE_FAIL
or PREEMPTED, then PENDING with one restart more) as a requeue, not an end,
and a job whose record vanished unseen as "ended, details no longer
available", never as completed. It polls every min(interval, MinJobAge/2)
while the user has jobs and backs off (doubling, up to min(idle_interval,
MinJobAge/2)) while they have none; a call that fails or hangs (cut at
`timeout`) backs off the same way and is tried again.

Array tasks are told together: their ends wait in the cursor until no task
of the array is pending or running, then go out as one group (the routing's
group summary and rate budget). A `pingch` inside the batch script records
the job's ids (its events carry slurm_job); its finish waits in the cursor
(hold()) for the scheduler's end, and the two are told as one (merge()).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from notifyd.slurm import parse, states, tools
from notifyd.slurm.parse import AcctJob, QueueJob
from notifyd.watcher.sources.base import Notice, Polled

log = logging.getLogger("notifyd")
KEY = "slurm"
CONFIG_EVERY = 3600.0  # seconds between two reads of `scontrol show config`
DEFAULT_MIN_JOB_AGE = 300.0  # SLURM's own default, until the config says
HOLD_FOR = 300.0  # a pingch finish waits this long at most for its job's end from the scheduler
TAIL_MAX = 50
FLOOR = 1.0  # never poll more often than this, whatever the config or MinJobAge say
# After a pingch finish from inside a SLURM job: ask soon, then 1, 2, 4... s later, so
# the one message (pingch's and the scheduler's word) goes out about a second after
# the job ends, not up to an interval later; a few calls per burst, never one per job.
HURRY_FIRST = 0.5
# slurmdbd writes a job's final line a moment after the controller has ended it (it
# gets the end through a queue): until then sacct shows the job still running, exit
# 0:0 and no totals. An end waits this long at most for that line, polled soon.
ACCT_WAIT = 10.0


@dataclass(frozen=True)
class Settings:
    """[slurm] in the config (notifyd/config.py)."""

    interval: float = 60.0
    idle_interval: float = 300.0
    timeout: float = 30.0
    tell: frozenset[str] = states.ENDS
    tail: int = 0
    array_failures: bool = False


@dataclass(frozen=True)
class Ask:
    """What the loop's thread hands a poll's thread: a copy, so the two share nothing."""

    at: float
    known: dict[int, dict[str, Any]]
    wants_config: bool
    accounting: bool | None
    last_ok: float | None
    min_age: float


@dataclass
class Snapshot:
    """What one poll's thread brought back (read by the loop's thread once it is done)."""

    at: float
    config: dict[str, str] | None = None
    queue: list[QueueJob] | None = None
    answers: list[tools.Answer] = field(default_factory=list)
    acct: dict[int, AcctJob] = field(default_factory=dict)
    catchup: dict[int, AcctJob] | None = None
    no_accounting: bool = False
    tails: dict[int, str] = field(default_factory=dict)

    @property
    def problem(self) -> str:
        return "; ".join(a.problem for a in self.answers if not a.ok and not a.no_accounting)


def hold(cursor: dict[str, Any], ev: dict[str, Any]) -> None:
    """Keep a pingch finish from inside a SLURM job for that job's end (the intake calls this)."""
    cursor.setdefault("held", {})[str(ev["slurm_job"])] = ev


class SlurmSource:
    kind = "slurm"
    owns_liveness = True  # the scheduler tells its jobs' ends: lost.py keeps away

    def __init__(self, settings: Settings, host: str, user: str,
                 wake: Callable[[], None] | None = None) -> None:
        self.key = KEY
        self._wake = wake  # the loop's wake-up: a finished poll is taken at once, not a round later
        self.settings = settings
        self.host = host
        self.user = user
        self._lock = threading.Lock()
        self._busy = False
        self._done: Snapshot | None = None
        self._next = 0.0
        self._failures = 0
        self._hurry = 0.0  # the next wait while held finishes wait for their ends (0: none)

    # -- the seam --------------------------------------------------------------------------------
    def due(self, now: float, /) -> bool:
        with self._lock:
            return self._done is not None or (not self._busy and now >= self._next)

    def poll(self, cursor: dict[str, Any] | None, now: float, /) -> Polled:
        cur: dict[str, Any] = copy.deepcopy(cursor or {})
        with self._lock:
            done, self._done = self._done, None
            start = done is None and not self._busy and now >= self._next
            self._busy = self._busy or start
        if start:
            ask = Ask(now, {int(k): dict(v) for k, v in (cur.get("jobs") or {}).items() if str(k).isdigit()},
                      now - float(cur.get("config_at") or 0.0) > CONFIG_EVERY, cur.get("accounting"),
                      cur.get("catchup_from") or cur.get("last_ok"),
                      float(cur.get("min_job_age") or DEFAULT_MIN_JOB_AGE))
            threading.Thread(target=self._work, args=(ask,), name="slurm poll", daemon=True).start()
        if done is None:
            return Polled(release_held(cur, now), cur)
        return Pass(self, done, cur, now).run()

    def hurry(self, now: float) -> None:
        """A pingch finish waits for its job's end from the scheduler: poll soon (intake calls this)."""
        with self._lock:
            if not self._hurry:
                self._hurry = HURRY_FIRST
                self._next = min(self._next, now + HURRY_FIRST)

    def settle(self, timeout: float) -> bool:
        """Wait (tests, stop) until no poll is in flight."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._busy:
                    return True
            time.sleep(0.02)
        return False

    # -- the poll's thread -----------------------------------------------------------------------
    def _work(self, ask: Ask) -> None:
        snap = Snapshot(at=ask.at)
        try:
            self._gather(snap, ask)
        except Exception as exc:  # a bug of ours must not stop the polls for good
            snap.answers.append(tools.Answer(("slurm poll",), ok=False,
                                             stderr=f"{type(exc).__name__}: {exc}"))
            snap.queue = None
        with self._lock:
            self._done, self._busy = snap, False
        if self._wake is not None:
            self._wake()

    def _gather(self, snap: Snapshot, ask: Ask) -> None:
        accounting, min_age = ask.accounting, ask.min_age
        if ask.wants_config:
            answer = self._call(snap, ["scontrol", "show", "config"])
            if answer.ok:
                snap.config = parse.parse_config(answer.stdout)
                min_age = parse.min_job_age(snap.config) or min_age
                if not parse.accounting_configured(snap.config):
                    accounting = False
        answer = self._call(snap, parse.squeue_argv())
        if not answer.ok:
            return
        snap.queue = parse.parse_squeue(answer.stdout)
        seen = {j.job_id for j in snap.queue}
        ended = [j.job_id for j in snap.queue if states.is_end(j.state)
                 and not (ask.known.get(j.job_id) or {}).get("told")]
        vanished = [i for i, v in ask.known.items() if i not in seen and not v.get("told")]
        if accounting is not False and (ended or vanished):
            self._sacct(snap, parse.sacct_argv(sorted(ended + vanished)), catchup=False)
        if (accounting is not False and not snap.no_accounting and ask.last_ok is not None
                and snap.at - float(ask.last_ok) > min_age):
            # The minute before too: clocks and purge timers are not exact.
            self._sacct(snap, parse.sacct_window_argv(float(ask.last_ok) - 60.0, snap.at), catchup=True)
        if self.settings.tail:
            for job in snap.queue:
                if job.job_id in ended and job.stdout:
                    snap.tails[job.job_id] = _tail(job.stdout, min(self.settings.tail, TAIL_MAX))

    def _call(self, snap: Snapshot, argv: list[str]) -> tools.Answer:
        answer = tools.run(argv, self.settings.timeout)
        snap.answers.append(answer)
        return answer

    def _sacct(self, snap: Snapshot, argv: list[str], *, catchup: bool) -> None:
        answer = self._call(snap, argv)
        if answer.no_accounting:
            snap.no_accounting = True
        elif answer.ok and catchup:
            snap.catchup = parse.parse_sacct(answer.stdout)
        elif answer.ok:
            snap.acct.update(parse.parse_sacct(answer.stdout))

    # -- cadence ---------------------------------------------------------------------------------
    def ceiling(self, cur: dict[str, Any], idle: bool) -> float:
        """The longest wait between polls: never past half of MinJobAge, so no end can be missed."""
        half_age = float(cur.get("min_job_age") or DEFAULT_MIN_JOB_AGE) / 2
        return max(FLOOR, min(self.settings.idle_interval if idle else self.settings.interval, half_age))

    def schedule(self, cur: dict[str, Any], now: float, *, busy: bool, failed: bool) -> float:
        if failed:
            self._failures += 1
            interval = min(self.ceiling(cur, idle=True),
                           self.settings.interval * 2 ** min(self._failures - 1, 6))
        elif busy:
            self._failures = 0
            interval = self.ceiling(cur, idle=False)
        else:  # no jobs: back off, doubling, never past what MinJobAge allows
            self._failures = 0
            interval = min(self.ceiling(cur, idle=True),
                           max(float(cur.get("interval") or 0) * 2, self.ceiling(cur, idle=False)))
        cur["interval"] = round(interval, 1)
        with self._lock:
            # An end waiting for accounting's final line hurries the polls too (for ACCT_WAIT at most).
            settling = any(v.get("acct_wait") and not v.get("told") for v in (cur.get("jobs") or {}).values())
            if settling and not self._hurry:
                self._hurry = HURRY_FIRST
            if self._hurry and (cur.get("held") or settling) and not failed:
                self._hurry = max(FLOOR, self._hurry * 2) if self._hurry < interval else 0.0
                wait = min(interval, self._hurry or interval)
            else:
                self._hurry, wait = 0.0, interval
            self._next = now + wait
        return float(wait)


class Pass:
    """One poll's answers applied to the job table (the loop's thread): the events they make."""

    def __init__(self, source: SlurmSource, snap: Snapshot, cur: dict[str, Any], now: float) -> None:
        self.source, self.snap, self.cur, self.now = source, snap, cur, now
        self.polled = Polled([], cur)
        self.jobs: dict[str, Any] = cur.setdefault("jobs", {})

    @property
    def cluster(self) -> str:
        return str(self.cur.get("cluster") or "slurm")

    def run(self) -> Polled:
        self._bookkeeping()
        if self.snap.queue is None:
            cur = self.cur
            error = self.snap.problem or "squeue gave no answer"
            delay = self.source.schedule(cur, self.now, busy=False, failed=True)
            # Said when it starts or changes, and hourly while it lasts (a host with the
            # client tools but no cluster would fill the log); `notifyd status` shows it.
            if error != cur.get("error") or self.now - float(cur.get("error_said") or 0) >= 3600:
                cur["error_said"] = round(self.now, 3)
                self.polled.warnings.append(f"SLURM poll failed ({error}); next try in {delay:.0f} s")
            cur["error"] = error
            self.polled.events.extend(release_held(cur, self.now))
            return self.polled
        self.cur.pop("error", None)
        self.cur.pop("error_said", None)
        self._catch_up()
        self._compare(self.snap.queue)
        self.cur["last_ok"] = round(self.snap.at, 3)
        self.polled.events.extend(release_held(self.cur, self.now))
        busy = any(not v.get("told") for v in self.jobs.values())
        self.source.schedule(self.cur, self.now, busy=busy, failed=False)
        return self.polled

    def _bookkeeping(self) -> None:
        cur, snap = self.cur, self.snap
        calls = cur.setdefault("calls", {})
        for answer in snap.answers:
            calls[answer.argv[0]] = int(calls.get(answer.argv[0], 0)) + 1
        cur["last_poll"] = round(snap.at, 3)
        if snap.config is not None:
            cur["config_at"] = round(snap.at, 3)
            cur["cluster"] = snap.config.get("ClusterName") or cur.get("cluster") or "slurm"
            cur["min_job_age"] = parse.min_job_age(snap.config) or DEFAULT_MIN_JOB_AGE
            if not parse.accounting_configured(snap.config):
                cur["accounting"] = False
        if snap.no_accounting and cur.get("accounting") is not False:
            cur["accounting"] = False
            self.polled.warnings.append(
                "SLURM: accounting storage is disabled here; sacct is not asked again (jobs are "
                "told from squeue; memory and CPU time come from pingch where it ran)")
        elif snap.acct or snap.catchup:
            cur["accounting"] = True

    # -- the job table --------------------------------------------------------------------------
    def _compare(self, queue: list[QueueJob]) -> None:
        seen = set()
        for job in queue:
            if not job.pending_tasks:  # a pending array's tasks as one line: no job of their own yet
                seen.add(str(job.job_id))
                self._observe(job)
        for raw, entry in list(self.jobs.items()):
            if raw not in seen:
                if not entry.get("told"):
                    self._vanished(int(raw), entry)
                del self.jobs[raw]  # purged by the controller: forgotten here too
        # A task whose end waits a poll (accounting's final line, a requeue) keeps its array open.
        active = {j.array_job_id for j in queue if not states.is_end(j.state)
                  or not (self.jobs.get(str(j.job_id)) or {}).get("told")}
        arrays: dict[str, list[dict[str, Any]]] = self.cur.get("arrays") or {}
        for array, evs in list(arrays.items()):
            if int(array) not in active:  # its last task has ended: all of them go out now
                self.polled.events.extend(evs)
                del arrays[array]

    def _observe(self, job: QueueJob) -> None:
        raw = str(job.job_id)
        entry = self.jobs.get(raw)
        # A requeue gives the job a new submit time and one restart more; another submit
        # time with no more restarts is another job that got the id (ids are recycled).
        restarts = int((entry or {}).get("restarts") or 0)
        if entry is not None and entry.get("submit") != job.submit and job.restarts <= restarts:
            entry = None
        if entry is None:
            entry = self.jobs[raw] = {"raw": job.job_id, "display": job.display_id, "submit": job.submit,
                                      "state": "", "restarts": job.restarts, "array": job.array_job_id,
                                      "key": job_key(self.cluster, job.display_id, job.submit),
                                      "name": job.name[:200]}
        entry["submit"] = job.submit
        if job.restarts > int(entry.get("restarts") or 0):
            self._requeued(job, entry)
        if entry.get("told"):
            return
        if states.is_end(job.state):
            if job.state in states.REQUEUED_AFTER and entry.get("end_seen") is None:
                entry["end_seen"] = self.snap.at  # told at the next poll, unless requeued by then
                entry["state"] = job.state
                return
            self._ended(job, entry)
            return
        if job.state != entry["state"]:
            entry["state"] = job.state
            entry["reason"] = job.reason
            ev = self._base(job, "start", self.snap.at, entry)
            ev.update(slurm_state=job.state, slurm_reason=job.reason)
            if job.state == "PENDING":
                ev["start_ts"] = job.submit or self.snap.at
            self.polled.events.append(ev)

    def _requeued(self, job: QueueJob, entry: dict[str, Any]) -> None:
        # The end before the requeue, when a poll saw it; else either cause.
        seen = str(entry.get("state"))
        after = seen if states.is_end(seen) else "a node failure or a preemption"
        ev = self._base(job, "start", self.snap.at, entry)
        ev.update(slurm_state=job.state, slurm_reason=job.reason, slurm_requeued=job.restarts,
                  slurm_after=after)
        self.polled.events.append(ev)
        entry.update(restarts=job.restarts, told=False, state=job.state)
        entry.pop("end_seen", None)

    def _ended(self, job: QueueJob, entry: dict[str, Any]) -> None:
        acct = self.snap.acct.get(job.job_id)
        if acct is not None and acct.state != job.state:
            since = float(entry.setdefault("acct_wait", round(self.snap.at, 3)))
            if self.snap.at - since < ACCT_WAIT:
                return  # accounting's line is not final yet: asked again at the next poll, soon
            if not states.is_end(acct.state):
                acct = None  # still not final: told from squeue alone (its exit is the controller's)
        ev = self._base(job, "finish", job.end or self.snap.at, entry)
        ev.update(slurm_state=job.state, slurm_reason=job.reason)
        # Never ran: no node was ever given to it. (A job last seen pending may have run
        # between two polls: an OOM kill a second after it started.)
        if not job.nodes or job.nodes in ("None", "(null)"):
            ev["slurm_never_ran"] = True
            ev["slurm_reason"] = entry.get("reason") or job.reason
        ev.update(states.end_fields(job.state, exit_pair=acct.exit if acct else None, exit_raw=job.exit_raw,
                                    step_signals=tuple(acct.step_signals) if acct else ()))
        duration = (job.end - job.start) if job.end and job.start else job.used
        if duration is not None:
            ev["duration"] = round(max(0.0, duration), 3)
        if acct is not None:
            _enrich(ev, acct)
        if job.job_id in self.snap.tails:
            ev.update(tail=self.snap.tails[job.job_id], tail_file=job.stdout)
        entry.update(told=True, state=job.state)
        self._route(ev, entry)

    def _vanished(self, raw: int, entry: dict[str, Any]) -> None:
        """A job gone from squeue before its end was told: from accounting, or as no longer known."""
        acct = self.snap.acct.get(raw)
        display = str(entry.get("display") or raw)
        key = str(entry.get("key") or job_key(self.cluster, display, entry.get("submit")))
        if acct is not None and states.is_end(acct.state):
            told = _acct_event(acct, self.cluster, self.source.user, entry.get("submit"))
            self._route({**told, "job": key}, entry)
            return
        ev: dict[str, Any] = {
            "v": 1, "ev": "finish", "job": key,
            "user": self.source.user, "host": "-", "pid": 0, "title": str(entry.get("name") or display),
            "ts": round(self.snap.at, 3),
            "exit": None, "signal": None, "slurm_job": display, "slurm_raw": raw,
            "slurm_cluster": self.cluster, "slurm_state": str(entry.get("state") or "UNKNOWN")}
        if not states.is_end(ev["slurm_state"]):
            ev.update(slurm_gone=True, exit_unknown=True)
        self._route(ev, entry)

    def _route(self, ev: dict[str, Any], entry: dict[str, Any]) -> None:
        """An end: merged with a waiting pingch finish, kept for its array's summary, or told now."""
        # `tell` picks among the end states; a job whose end is unknown (its record
        # vanished) is always told: it may well have failed.
        if not ev.get("slurm_gone") and ev.get("slurm_state") not in self.source.settings.tell:
            ev["notify"] = "none"
        held: dict[str, Any] = self.cur.get("held") or {}
        mine = held.pop(str(ev["slurm_job"]), None) or held.pop(str(ev["slurm_raw"]), None)
        if mine is not None:
            ev = merge(mine, ev)
        elif entry.get("pingch_told") and ev.get("slurm_state") == "COMPLETED":
            ev["notify"] = "none"  # pingch told it already, and the scheduler has nothing to add
        array = entry.get("array")
        if isinstance(array, int):
            ev["group"] = f"slurm-{array}"
            if self.source.settings.array_failures and ev.get("slurm_state") != "COMPLETED":
                ev["notify_alone"] = True
            self.cur.setdefault("arrays", {}).setdefault(str(array), []).append(ev)
            return
        self.polled.events.append(ev)

    def _catch_up(self) -> None:
        """After the watcher was down for longer than MinJobAge: what ended meanwhile.

        From accounting where there is some (a failed query is asked again at
        the next poll, from the same time); else one notice says which window
        could not be checked, and `notifyd status` shows it.
        """
        last_ok = self.cur.get("catchup_from") or self.cur.get("last_ok")
        min_age = float(self.cur.get("min_job_age") or DEFAULT_MIN_JOB_AGE)
        if last_ok is None or self.snap.at - float(last_ok) <= min_age:
            return
        since = float(last_ok)
        if self.snap.catchup is not None:
            self.cur.pop("catchup_from", None)
            for raw, acct in self.snap.catchup.items():
                if str(raw) not in self.jobs and (acct.end is None or acct.end >= since - 60):
                    ev = _acct_event(acct, self.cluster, self.source.user)
                    self._route(ev, {"array": ev.get("slurm_array")})
            return
        if self.cur.get("accounting") is not False:
            self.cur["catchup_from"] = since  # sacct did not answer now: asked again next time
            return
        self.cur.pop("catchup_from", None)
        self.cur["gap"] = [round(since, 1), round(self.snap.at, 1)]
        self.polled.notices.append(Notice(
            f"slurm-gap:{int(since)}",
            "⚠️ SLURM jobs that ended while notifyd was down could not be checked",
            f"The watcher was not running from {_local(since)} to {_local(self.snap.at)}, longer than "
            f"the {min_age:.0f} s the controller keeps a finished job (MinJobAge), and this cluster "
            "keeps no accounting to ask afterwards: jobs that ended then are not told. Their output "
            "files say how they ended."))

    def _base(self, job: QueueJob, kind: str, ts: float, entry: dict[str, Any]) -> dict[str, Any]:
        ev = _common(job, self.cluster, self.source.user, job.display_id, job.submit, kind=kind, ts=ts)
        if entry.get("key"):
            ev["job"] = entry["key"]  # the same all the job's life, requeues and all
        if job.work_dir:
            ev["cwd"] = job.work_dir
        if job.array_job_id is not None:
            ev["slurm_array"] = job.array_job_id
            ev["slurm_task"] = job.array_task
        if job.limit is not None:
            ev["slurm_limit"] = job.limit
        if job.cpus:
            ev["cores"] = job.cpus
        if job.min_memory_kb:
            ev["slurm_req_mem_kb"] = job.min_memory_kb
        if job.stdout:
            ev["slurm_stdout"] = job.stdout
        return ev


def release_held(cur: dict[str, Any], now: float) -> list[dict[str, Any]]:
    """pingch finishes that waited too long for their job's end from the scheduler: told alone."""
    held: dict[str, Any] = cur.get("held") or {}
    out = []
    for key, ev in list(held.items()):
        if now - float(ev.get("ts") or 0) >= HOLD_FOR:
            del held[key]
            for entry in (cur.get("jobs") or {}).values():
                if key in (entry.get("display"), str(entry.get("raw"))):
                    entry["pingch_told"] = True
            out.append(ev)
    return out


def job_key(cluster: str, display: str, submit: Any) -> str:
    """The job's id in notifyd: cluster, the id users know and the submit time (ids are recycled)."""
    stamp = int(submit) if isinstance(submit, (int, float)) and not isinstance(submit, bool) else 0
    return f"slurm-{cluster}-{display}-{stamp}"


def _common(job: QueueJob | AcctJob, cluster: str, user: str, display: str, submit: float | None, *,
            kind: str, ts: float) -> dict[str, Any]:
    nodes = job.nodes if job.nodes and job.nodes not in ("None", "(null)") else ""
    ev: dict[str, Any] = {
        "v": 1, "ev": kind, "job": job_key(cluster, display, submit), "user": user,
        "host": nodes.split(",")[0] or "-", "pid": 0, "title": job.name or display,
        "slurm_job": display, "slurm_raw": job.job_id if isinstance(job, QueueJob) else job.raw_id,
        "slurm_cluster": cluster, "slurm_partition": job.partition, "slurm_nodes": nodes,
        "ts": round(ts, 3),
    }
    if job.start:
        ev["start_ts"] = job.start
    return ev


def _acct_event(acct: AcctJob, cluster: str, user: str, submit: float | None = None) -> dict[str, Any]:
    ev = _common(acct, cluster, user, acct.display_id, submit if submit is not None else acct.submit,
                 kind="finish", ts=acct.end or time.time())
    ev["slurm_state"] = acct.state
    ev.update(states.end_fields(acct.state, exit_pair=acct.exit, step_signals=tuple(acct.step_signals)))
    if acct.elapsed is not None:
        ev["duration"] = acct.elapsed
    array, _, task = acct.display_id.partition("_")
    if task and array.isdigit():
        ev["slurm_array"], ev["slurm_task"] = int(array), task
    _enrich(ev, acct)
    return ev


def _enrich(ev: dict[str, Any], acct: AcctJob) -> None:
    """What only accounting knows: peak memory over the steps, CPU time, requested memory, who cancelled."""
    if acct.max_rss_kb is not None:
        ev["maxrss_kb"] = acct.max_rss_kb
        ev["slurm_maxrss_sampled"] = True  # SLURM samples it (every few seconds): short peaks escape it
    if acct.total_cpu is not None:
        ev["cpu_s"] = round(acct.total_cpu, 3)
    if acct.cpus:
        ev["cores"] = acct.cpus
    if acct.req_mem_kb:
        ev["slurm_req_mem_kb"] = acct.req_mem_kb
    if acct.limit is not None:
        ev["slurm_limit"] = acct.limit
    if acct.cancelled_by:
        ev["slurm_cancelled_by"] = acct.cancelled_by
    if acct.derived and (acct.derived[0] or acct.derived[1]):
        ev["slurm_derived"] = f"{acct.derived[0]}:{acct.derived[1]}"


def merge(pingch: dict[str, Any], slurm: dict[str, Any]) -> dict[str, Any]:
    """One event for a job both pingch and the scheduler told of.

    pingch's measures win (its peak RSS from wait4 is exact, SLURM's sampled
    one misses short peaks; its exit code, command, directory and log tail);
    the scheduler's word wins where pingch could not speak (a cgroup OOM
    kill or the time limit take pingch down with the job).
    """
    merged = {**slurm, **{k: v for k, v in pingch.items() if v is not None}}
    for key, value in slurm.items():
        if key.startswith("slurm_") and key != "slurm_maxrss_sampled":
            merged[key] = value
    merged["job"] = pingch["job"]
    if "maxrss_kb" in pingch:
        merged.pop("slurm_maxrss_sampled", None)
    if slurm.get("slurm_state") not in ("COMPLETED", "FAILED"):
        merged.update(exit=None, signal=slurm.get("signal"), oom=slurm.get("oom"))
    merged["slurm_merged"] = True
    return {k: v for k, v in merged.items() if v is not None}


def _tail(path: str, lines: int) -> str:
    """The job's output file's last lines, read from its end (pingch's reader: bounded)."""
    from notifyd.pingch.facts import read_tail

    return read_tail(path, lines)


def _local(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))
