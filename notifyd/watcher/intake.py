"""Reading the job sources: pairing starts and finishes, telling nothing twice, routing each end.

The watcher polls every due source (sources/) and hands each event here.
A start becomes a running job; a finish leaves the running table and is
routed (notify/routing.py) unless it was told before: its id is in the
state's `done`, or it is older than the newest id dropped from there and
the inbox, which holds every notification ever made, knows it.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from notifyd import state
from notifyd.config import Config
from notifyd.notify import inbox, message, routing, targets
from notifyd.paths import Paths
from notifyd.records import RunningJob
from notifyd.watcher import pressure
from notifyd.watcher.clock import Clock, Round
from notifyd.watcher.sources import slurm as slurm_source
from notifyd.watcher.sources.base import EventSource
from notifyd.watcher.sources.legacy import LegacyFile
from notifyd.watcher.sources.slurm import SlurmSource
from notifyd.watcher.sources.spool import shown, spool_files

log = logging.getLogger("notifyd")
# A finish this close to (or before) the state's done_horizon is checked
# against the inbox: host clocks may be a little off the watcher's.
HORIZON_MARGIN = 86400.0
INBOX_IDS_FOR = 600.0  # seconds the inbox's job ids stay loaded after they were needed


class InboxIds:
    """The inbox's job ids, loaded when an old finish must be looked up and kept for a while."""

    def __init__(self, load: Callable[[], set[str]]) -> None:
        self._load = load
        self._ids: set[str] | None = None
        self._loaded_at = 0.0

    def expire(self, tick: float) -> None:
        if self._ids is not None and tick - self._loaded_at > INBOX_IDS_FOR:
            self._ids = None

    def contains(self, job: str, tick: float) -> bool:
        if self._ids is None:
            self._ids, self._loaded_at = self._load(), tick
            log.info("looking up old finishes in the inbox (%d jobs)", len(self._ids))
        return job in self._ids

    def add(self, job: str) -> None:
        """A job told now: if the ids are loaded, they must know it as the inbox soon will."""
        if self._ids is not None:
            self._ids.add(job)


class Intake:
    """Events from the sources into the state: running jobs, finished ones routed once."""

    def __init__(self, paths: Paths, clock: Clock,
                 given: list[EventSource] | None = None) -> None:
        self.paths = paths
        self.clock = clock
        self._given = given  # tests: these sources instead of the spool and legacy files
        # The scheduler's source, where this host has SLURM's tools and [slurm] allows it:
        # one object for the watcher's life (its poll runs on a thread of its own).
        self.slurm: SlurmSource | None = None
        self.state = state.State()
        self.inbox_ids = InboxIds(self._told_ids)

    def sources(self, config: Config) -> list[EventSource]:
        """This round's sources: every host's spool file, the legacy file if there is one."""
        if self._given is not None:
            return self._given
        found: list[EventSource] = list(spool_files(str(self.paths.events_dir)))
        legacy = LegacyFile(config.legacy_file)
        if legacy.exists():
            found.append(legacy)
        if self.slurm is not None:
            found.append(self.slurm)
        return found

    def ingest(self, st: state.State, to: list[targets.Target], config: Config, moment: Round) -> bool:
        """Poll every due source; True when the state changed."""
        self.state = st
        self.inbox_ids.expire(moment.tick)
        changed = False
        for source in self.sources(config):
            if not source.due(moment.now):
                continue
            before = st.cursors.get(source.key)
            polled = source.poll(before, moment.now)
            for warning in polled.warnings:
                log.warning("%s", warning)
            st.stats.malformed += polled.malformed
            for job, ts in polled.history:
                # Remembered, so a trimmed and re-read file does not announce it.
                st.remember_done(job, ts)
            st.cursors[source.key] = polled.cursor  # before the events: a held pingch finish goes there
            for ev in polled.events:
                self._take(st, ev, to=to, config=config, now=moment.now, source=source)
            for notice in polled.notices:
                routing.notice(st, to, entry_id=notice.id, title=notice.title, body=notice.body,
                               now=moment.now)
            changed |= polled.changed or polled.cursor != before
        return changed

    def _take(self, st: state.State, ev: dict[str, Any], *, to: list[targets.Target], config: Config,
              now: float, source: EventSource) -> None:
        """Handle one event; one that still breaks us is skipped and counted, never retried forever."""
        try:
            self.handle(st, ev, to=to, config=config, now=now, source=source)
        except Exception as exc:
            # Valid JSON that still breaks us (absurd numbers, a bug): the
            # event is skipped like a malformed one.
            st.stats.malformed += 1
            log.warning("skipping unusable event %s from %s: %s: %s", shown(str(ev.get("job"))),
                        shown(source.key), type(exc).__name__, exc)

    def handle(self, st: state.State, ev: dict[str, Any], *, to: list[targets.Target], config: Config,
               now: float, source: EventSource | None = None) -> None:
        """A start becomes a running job; a finish not told before is routed."""
        self.state = st
        job = ev["job"]
        st.stats.events += 1
        st.stats.last_event = {
            "host": ev.get("host"), "ev": ev.get("ev"), "job": job,
            "title": ev.get("title"), "ts": ev.get("ts"), "read_at": round(now, 3),
        }
        kind = source.kind if source else "spool"
        # A pingch inside a SLURM job: the scheduler tells its end (and may
        # have more to say: an OOM kill, the time limit), so it waits for it.
        in_slurm = self.slurm is not None and kind != self.slurm.kind and bool(ev.get("slurm_job"))
        if ev["ev"] == "start":
            if job not in st.done:
                owned = bool(source and source.owns_liveness) or in_slurm
                st.running[job] = RunningJob.from_event(ev, kind, owned)
                routing.job_started(st, to, config, ev, now)
            return
        st.running.pop(job, None)
        st.missing_since.pop(job, None)
        if in_slurm and self.slurm is not None and not self.told_before(st, job, float(ev.get("ts") or 0.0)):
            slurm_source.hold(st.cursors.setdefault(slurm_source.KEY, {}), ev)
            self.slurm.hurry(now)
            return
        if ev.get("slurm_job") and kind == "slurm":
            ev = self._close_slurm_job(st, ev)
            job = ev["job"]
        if self.told_before(st, job, float(ev.get("ts") or 0.0)):
            routing.already_told(st, ev)
            return  # already notified: a re-read spool must not repeat it
        was_lost = st.lost.pop(job, None)
        if was_lost:
            ev = {**ev, "was_lost": was_lost.reason}
        msg = self._with_memory_note(message.finished(ev), ev, config)
        st.remember_done(job, float(ev["ts"]))
        self.inbox_ids.add(job)
        routing.job_ended(st, to, config, entry_id=f"{job}:finish", ev=ev, msg=msg, now=now)

    def _with_memory_note(self, msg: message.Message, ev: dict[str, Any], config: Config) -> message.Message:
        """A job killed by SIGKILL on a node short of memory says so, with the node's state (pressure.py)."""
        if ev.get("signal") != signal.SIGKILL or ev.get("slurm_state"):
            return msg
        lines = pressure.after_kill(ev, self.paths.procs_dir(config.procs_dir), config)
        return replace(msg, body="\n".join([msg.body, *lines])) if lines else msg

    def _close_slurm_job(self, st: state.State, ev: dict[str, Any]) -> dict[str, Any]:
        """A job's end from the scheduler closes every running entry of that job.

        Its own start (the scheduler's key), and a pingch inside it that never
        wrote its finish (the cgroup's OOM kill or the time limit took it
        too): then the end is told under pingch's id, with its title and
        command, once.
        """
        display, cluster = ev.get("slurm_job"), ev.get("slurm_cluster")
        for job, info in list(st.running.items()):
            if info.slurm.get("slurm_job") != display:
                continue
            if info.source == "slurm" or info.slurm.get("slurm_cluster") in (None, cluster):
                del st.running[job]
            if info.source != "slurm" and not ev.get("slurm_merged"):
                ev = {**ev, **{k: v for k, v in info.as_event(job).items() if v is not None},
                      "slurm_merged": True}
        return ev

    def told_before(self, st: state.State, job: str, ts: float) -> bool:
        """Was this job's finish notified already (it is in `done`, or old and in the inbox)?

        `done` keeps the newest DONE_KEEP jobs. A spool re-read from the top
        (state lost, file replaced) after a long history holds older ones:
        those are looked up in the inbox, loaded once and kept a while.
        """
        if job in st.done:
            return True
        horizon = st.done_horizon
        if not horizon or ts > horizon + HORIZON_MARGIN:
            return False
        return self.inbox_ids.contains(job, self.clock.monotonic())

    def _told_ids(self) -> set[str]:
        # With every job told so far that may not be in the file yet: those
        # waiting in the outbox, and those in `done` (which may be dropped
        # from it while these ids are in use).
        ids = inbox.job_ids(self.paths.inbox_dir)
        ids.update(e.job for e in self.state.outbox if e.job)
        ids.update(self.state.done)
        return ids

