"""The watcher: one per user across all hosts; reads the job sources, sends notifications.

Each round, every `poll_interval` (or at once when pingch on this host pokes
the wake-up FIFO), with the round's clock read once and passed down:
  1. heartbeat the lease (stop at once if another watcher holds it now);
  2. reload the config if the file changed;
  3. poll every source that is due (sources/: the spool files, the legacy
     file), pair starts and finishes, route a notification for each
     finished job into the outbox; save the state before anything is sent;
  4. every 30 s, judge running jobs lost (lost.py); save;
  5. turn due digest batches and finished groups into messages; save;
  6. deliver due outbox entries (delivery.py), journalling each success;
     save what was delivered or given up.
Every save checks the lease first (`_save`): a watcher that lost its lease
writes nothing more.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import select
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from notifyd import fsutil, state
from notifyd.config import Config
from notifyd.config import load as load_config
from notifyd.errors import NotifydError, StateFileError
from notifyd.nodes import reader as nodes
from notifyd.notify import inbox, message, routing, targets
from notifyd.paths import Paths
from notifyd.records import RunningJob
from notifyd.spool import wake
from notifyd.watcher import lease, lost
from notifyd.watcher.delivery import Delivery
from notifyd.watcher.sources.base import EventSource
from notifyd.watcher.sources.legacy import LegacyFile
from notifyd.watcher.sources.spool import shown, spool_files

log = logging.getLogger("notifyd")
WAKE_SETTLE = 0.02  # seconds between a poke and the round it triggers
# A finish this close to (or before) the state's done_horizon is checked
# against the inbox: host clocks may be a little off the watcher's.
HORIZON_MARGIN = 86400.0
INBOX_IDS_FOR = 600.0  # seconds the inbox's job ids stay loaded after they were needed
LOST_CHECK_EVERY = 30.0


def setup_logging(paths: Paths, host: str, max_bytes: int, to_stderr: bool) -> None:
    """A size-bounded log per host; never a secret (URLs are logged masked only)."""
    paths.private_dir(paths.log_dir)
    handler = logging.handlers.RotatingFileHandler(
        paths.log_file(host), maxBytes=max(4096, max_bytes // 2), backupCount=1, encoding="utf-8",
        errors="backslashreplace",  # a file name that is not UTF-8 must not lose the record
    )
    fmt = logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s")
    handler.setFormatter(fmt)
    # Only our logger writes here; Apprise's words reach the log through
    # targets, with the URL's secret parts scrubbed.
    log.handlers = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    if to_stderr:
        err = logging.StreamHandler()
        err.setFormatter(fmt)
        log.addHandler(err)


class Clock:
    """The watcher's clocks: wall time, a monotonic one for intervals, and the file server's.

    The file server's is read by writing a probe file (fsutil.server_now),
    so a round reads it at most once and only when it needs it (Round).
    Tests pass a Clock of their own with fixed times.
    """

    def __init__(self, server_dir: str, host: str) -> None:
        self._dir, self._host = server_dir, host

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def server_time(self) -> float:
        return fsutil.server_now(self._dir, self._host)


class Round:
    """One round's clocks, read once: `now`, and the server's time the first time it is asked."""

    def __init__(self, clock: Clock) -> None:
        self.now = clock.time()
        self.tick = clock.monotonic()
        self._clock = clock
        self._server: float | None = None

    @property
    def server_now(self) -> float:
        if self._server is None:
            self._server = self._clock.server_time()
        return self._server


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


class Watcher:
    def __init__(self, paths: Paths, host: str, config: Config, *, clock: Clock | None = None,
                 fence: lease.Lease | None = None, sources: Sequence[EventSource] | None = None,
                 targets_: list[targets.Target] | None = None, wake_up: bool = True) -> None:
        """`fence`, `sources`, `targets_` and `clock` default to the real ones; tests pass fakes.

        `wake_up=False` skips the wake-up FIFO (a test that wants no file but the state).
        """
        self.paths = paths
        self.host = host
        self.config = config
        self.lease = fence or lease.Lease(str(paths.lease_dir), host, config.lease_timeout)
        self.clock = clock or Clock(str(paths.lease_dir), host)
        self.state = state.State()
        self.journal = state.Journal(paths.journal_dir, host)
        self.delivery = Delivery(self.journal, self.lease, self._save)
        self.targets: list[targets.Target] = targets_ or []
        self._given_targets = targets_ is not None
        self._given_sources = list(sources) if sources is not None else None
        self.stopping = False
        self._config_stamp = self._stamp()
        self._wake_r, self._wake_w = os.pipe()
        self._fifo: int | None = None  # pingch on this host pokes it when a job ends
        self._wake_up = wake_up
        self.inbox_ids = InboxIds(self._told_ids)
        self._next_lost_check = 0.0

    # -- start and stop -------------------------------------------------------
    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.paths.config_file.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True

    def install_signals(self) -> None:
        os.set_blocking(self._wake_w, False)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def acquire(self) -> lease.LeaseInfo | None:
        """Take the lease; None on success, else who holds it."""
        for directory in (self.paths.events_dir, self.paths.lease_dir, self.paths.journal_dir,
                          self.paths.inbox_dir):
            self.paths.private_dir(directory)
        try:
            holder = self.lease.acquire()
        finally:
            lease.clear_spawn_mark(str(self.paths.lease_dir), self.host)
        return holder

    def start(self) -> None:
        """Load state and targets once the lease is ours."""
        self.state = self._load_state()
        if not self.state.cursors:
            self._rebuild_done_from_inbox()
        if not self._given_targets:
            self.targets = targets.build_targets(self.config, self.paths.inbox_dir, self.host)
        self._log_orphans()
        if self._wake_up:
            self._listen()
        took = self.lease.took_over_from
        log.info(
            "watcher started: lease generation %d%s; targets: %s",
            self.lease.gen,
            f" (took over from {took.host} pid {took.pid})" if took else "",
            ", ".join(t.display for t in self.targets),
        )

    def _listen(self) -> None:
        fifo = self.paths.wake_fifo(self.host)
        self._fifo = wake.listen(str(self.paths.private_dir(fifo.parent) / fifo.name))
        if self._fifo is None:
            log.info("cannot make the wake-up FIFO %s here (sshfs cannot): jobs on this host "
                     "are found by polling alone", fifo)

    def _load_state(self) -> state.State:
        try:
            loaded = state.load(self.paths.state_file, self.paths.journal_dir)
        except StateFileError as exc:
            aside = self.paths.state_file.with_name(f"watcher-state.broken-{int(time.time())}.json")
            os.replace(self.paths.state_file, aside)
            log.error("%s; moved it to %s and rebuilding from the inbox", exc, aside)
            return state.State()
        for problem in loaded.problems:
            log.warning("skipped a record of %s: %s", self.paths.state_file, problem)
        return loaded

    def _rebuild_done_from_inbox(self) -> None:
        """No usable state (first start, or lost): the inbox's jobs were all told already.

        Re-reading the spools from the top must not announce them again; jobs
        not in it are news. Oldest first, so `done` keeps the newest and
        done_horizon covers the rest.
        """
        known = [r for r in inbox.read(self.paths.inbox_dir) if r.get("job")]
        for record in known:
            when = record.get("time")
            ts = float(when) if isinstance(when, (int, float)) and abs(when) < 1e15 else 0.0
            self.state.remember_done(str(record["job"]), ts)
        if known:
            log.warning("no saved state: rebuilt %d finished jobs from the inbox", len(known))

    def run(self) -> int:
        """The main loop; returns when stopped or when the lease is lost."""
        first = True
        try:
            while not self.stopping:
                try:
                    self.lease.heartbeat()
                    if self.lease.stop_requested():
                        log.info("stop requested through %s", self.paths.lease_dir)
                        break
                    self.round()
                    if first:
                        # The moment a restarted watcher is caught up (bench/ times it).
                        log.info("first round done: %d jobs running, %d deliveries pending",
                                 len(self.state.running), len(self.state.outbox))
                        first = False
                except (lease.LeaseLost, KeyboardInterrupt):
                    raise
                except Exception:
                    # A full disk, an unreachable lease dir or a bug must not
                    # kill the only watcher: nothing is sent unless the lease
                    # is verified, and the next round tries again.
                    log.exception("error in a watcher round; retrying next round")
                self._sleep(self.config.poll_interval)
        except lease.LeaseLost as exc:
            log.warning("lease lost (%s): another watcher took over; stopping without "
                        "sending or saving anything more", exc)
            return 0
        try:
            self._save()
            self.lease.release()
        except lease.LeaseLost:
            return 0
        except OSError as exc:
            log.error("could not save the state or release the lease on stop: %s", exc)
        log.info("watcher stopped")
        return 0

    def round(self) -> None:
        """One pass: read new events, save, judge lost jobs, flush, deliver, save what was delivered."""
        moment = Round(self.clock)
        self.inbox_ids.expire(moment.tick)
        self._maybe_reload_config()
        if self.ingest(moment):
            self._save()
        if moment.tick >= self._next_lost_check:
            self._next_lost_check = moment.tick + min(LOST_CHECK_EVERY, self.config.lost_grace)
            if self.find_lost(moment):
                self._save()
        if routing.flush(self.state, self.targets, self.config, moment.now):
            self._save()
        self.delivery.run(self.state, self.targets, self.config, moment.now)
        if self.journal.lines or self.delivery.unsaved:
            self._save()

    def _sleep(self, seconds: float) -> None:
        # A signal writes to the wake-up pipe, so `notifyd stop` is not kept
        # waiting for a whole poll interval; pingch's poke on the FIFO means
        # a job on this host has ended.
        fds = [self._wake_r] if self._fifo is None else [self._wake_r, self._fifo]
        ready, _, _ = select.select(fds, [], [], seconds)
        if self._wake_r in ready:
            try:
                os.read(self._wake_r, 512)
            except BlockingIOError:
                pass
        if self._fifo is not None and self._fifo in ready:
            # Jobs often end together (a loop of runs): a moment's wait lets
            # one round take them all instead of one round each.
            time.sleep(WAKE_SETTLE)
            wake.drain(self._fifo)

    def _save(self) -> None:
        """Save the state, fenced: only while the lease is still ours (raises LeaseLost if not)."""
        self.lease.check()
        state.save(self.state, self.paths.state_file, self.paths.journal_dir)
        self.journal.clear()
        self.delivery.unsaved = False

    # -- configuration --------------------------------------------------------
    def _maybe_reload_config(self) -> None:
        stamp = self._stamp()
        if stamp == self._config_stamp:
            return
        self._config_stamp = stamp
        try:
            config = load_config(self.paths.config_file)
            new = (self.targets if self._given_targets
                   else targets.build_targets(config, self.paths.inbox_dir, self.host))
        except NotifydError as exc:
            log.error("config changed but is not usable, keeping the previous one: %s", exc.message)
            return
        self.config, self.targets = config, new
        self.lease.timeout = config.lease_timeout
        self._log_orphans()
        log.info("config reloaded; targets: %s", ", ".join(t.display for t in new))

    def _log_orphans(self) -> None:
        """Say when pending deliveries wait for a URL that is not configured now.

        They are kept, not dropped: a config emptied for a moment (an editor
        saving, `init` rewriting it) must not lose them. If the URL stays
        away they are given up after retry_for, like any failing delivery.
        """
        keys = {t.key for t in self.targets}
        waiting = sum(1 for e in self.state.outbox for k in e.targets if k not in keys)
        if waiting:
            log.warning("%d pending deliveries wait for URLs that are not configured now; "
                        "they are kept for retry_for, then given up", waiting)

    # -- reading the sources ----------------------------------------------------
    def sources(self) -> list[EventSource]:
        """This round's sources: every host's spool file, the legacy file if there is one."""
        if self._given_sources is not None:
            return self._given_sources
        found: list[EventSource] = list(spool_files(str(self.paths.events_dir)))
        legacy = LegacyFile(self.config.legacy_file)
        if legacy.exists():
            found.append(legacy)
        return found

    def ingest(self, moment: Round | None = None) -> bool:
        """Poll every due source; True when the state changed."""
        moment = moment or Round(self.clock)
        changed = False
        for source in self.sources():
            if not source.due(moment.now):
                continue
            before = self.state.cursors.get(source.key)
            polled = source.poll(before, moment.now)
            for warning in polled.warnings:
                log.warning("%s", warning)
            self.state.stats.malformed += polled.malformed
            for job, ts in polled.history:
                # Remembered, so a trimmed and re-read file does not announce it.
                self.state.remember_done(job, ts)
            for ev in polled.events:
                self._take(ev, source, moment)
            self.state.cursors[source.key] = polled.cursor
            changed |= polled.changed or polled.cursor != before
        return changed

    def _take(self, ev: dict[str, Any], source: EventSource, moment: Round) -> None:
        """Handle one event; one that still breaks us is skipped and counted, never retried forever."""
        try:
            self.handle_event(ev, moment.now, source)
        except Exception as exc:
            # Valid JSON that still breaks us (absurd numbers, a bug): the
            # event is skipped like a malformed one.
            self.state.stats.malformed += 1
            log.warning("skipping unusable event %s from %s: %s: %s", shown(str(ev.get("job"))),
                        shown(source.key), type(exc).__name__, exc)

    def handle_event(self, ev: dict[str, Any], now: float, source: EventSource | None = None) -> None:
        job = ev["job"]
        self.state.stats.events += 1
        self.state.stats.last_event = {
            "host": ev.get("host"), "ev": ev.get("ev"), "job": job,
            "title": ev.get("title"), "ts": ev.get("ts"), "read_at": round(now, 3),
        }
        if ev["ev"] == "start":
            if job not in self.state.done:
                kind = source.kind if source else "spool"
                owned = bool(source and source.owns_liveness)
                self.state.running[job] = RunningJob.from_event(ev, kind, owned)
                routing.job_started(self.state, self.targets, self.config, ev, now)
            return
        self.state.running.pop(job, None)
        self.state.missing_since.pop(job, None)
        if self.told_before(job, float(ev.get("ts") or 0.0)):
            routing.already_told(self.state, ev)
            return  # already notified: a re-read spool must not repeat it
        was_lost = self.state.lost.pop(job, None)
        if was_lost:
            ev = {**ev, "was_lost": was_lost.reason}
        msg = message.finished(ev)
        self.state.remember_done(job, float(ev["ts"]))
        self.inbox_ids.add(job)
        routing.job_ended(self.state, self.targets, self.config, entry_id=f"{job}:finish", ev=ev,
                          msg=msg, now=now)

    def told_before(self, job: str, ts: float) -> bool:
        """Was this job's finish notified already (it is in `done`, or old and in the inbox)?

        `done` keeps the newest DONE_KEEP jobs. A spool re-read from the top
        (state lost, file replaced) after a long history holds older ones:
        those are looked up in the inbox, loaded once and kept a while.
        """
        if job in self.state.done:
            return True
        horizon = self.state.done_horizon
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

    def find_lost(self, moment: Round | None = None) -> bool:
        """Report running jobs whose finish will never come; True if the state changed."""
        moment = moment or Round(self.clock)
        if not any(not job.owned for job in self.state.running.values()):
            return False
        found, _notes = nodes.load(self.paths.procs_dir(self.config.procs_dir),
                                   self.config.stale_after, self.host)
        evidence = lost.Evidence({n.host: n for n in found}, str(self.paths.events_dir),
                                 str(self.paths.alive_dir), moment.server_now)
        changed, gone = lost.sweep(self.state, evidence, grace=self.config.lost_grace,
                                   silent_after=self.config.host_silent_after)
        for job, item in gone:
            info = item.job.as_event(job)
            log.warning("job %s (%s on %s) is lost: %s", job, info.get("title"), info.get("host"),
                        item.reason)
            routing.job_ended(self.state, self.targets, self.config, entry_id=f"{job}:lost",
                              ev={**info, "lost": item.reason, "ts": item.at},
                              msg=message.lost(info, item.reason), now=moment.now)
        return changed


def main(paths: Paths, host: str, background: bool) -> int:
    """`notifyd watch`: returns an exit status; raises NotifydError for the user."""
    os.umask(0o077)  # everything the watcher creates is the user's alone
    os.chdir("/")  # never keep the job's directory (a scratch mount) busy
    try:
        config = load_config(paths.config_file)
    except NotifydError as exc:
        # A background watcher has no terminal: the log is where this is seen.
        setup_logging(paths, host, 1024 * 1024, to_stderr=False)
        log.error("cannot start: %s", exc.message)
        raise
    setup_logging(paths, host, config.log_max_size, to_stderr=not background)
    watcher = Watcher(paths, host, config)
    holder = watcher.acquire()
    if holder is not None:
        text = (f"a watcher already runs for this user: pid {holder.pid} on {holder.host} "
                f"since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(holder.since))}")
        if background:
            log.info("%s; this one exits", text)
            return 0
        raise NotifydError(f"{text}; stop it first with: notifyd stop")
    # Whoever started us may have left signals blocked (an old pingch did):
    # a watcher must always stop on SIGTERM.
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    watcher.install_signals()
    try:
        watcher.start()
    except NotifydError as exc:
        log.error("%s", exc.message)
        watcher.lease.release()
        raise
    return watcher.run()


def run_in_background() -> int:
    """A watcher started by pingch or `notifyd ensure` (launch.watcher_argv): no terminal.

    Its errors go to its log (main() writes them there); the exit status is
    the one `notifyd watch --background` would have had.
    """
    from notifyd import paths as paths_mod

    try:
        return main(paths_mod.resolve(), paths_mod.host_name(), background=True)
    except NotifydError as exc:
        return int(exc.status)
    except OSError as exc:
        log.error("cannot run: %s", exc)
        return 1
