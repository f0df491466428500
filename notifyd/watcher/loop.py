"""The watcher: one per user across all hosts; reads the spools, sends notifications.

Each round, every `poll_interval`:
  1. heartbeat the lease (stop at once if another watcher holds it now);
  2. read new lines of events/*.jsonl and ~/.pingchilling, pair starts and
     finishes, put a notification for each finished job in the outbox;
  3. save the state (before anything is sent);
  4. deliver due outbox entries to every target, journalling each success;
     a failing target backs off exponentially and its entries wait.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import select
import signal
import time
from typing import Any

from notifyd import state
from notifyd.config import Config
from notifyd.config import load as load_config
from notifyd.errors import NotifydError
from notifyd.nodes import reader as nodeview
from notifyd.notify import message, routing
from notifyd.notify import targets as sender
from notifyd.paths import Paths
from notifyd.spool import legacy, wake
from notifyd.spool.events import decode
from notifyd.spool.reader import Cursor, read_new
from notifyd.watcher import lease, lost

log = logging.getLogger("notifyd")
LEGACY_KEY = "legacy:.pingchilling"
WAKE_SETTLE = 0.02  # seconds between a poke and the round it triggers
# A finish this close to (or before) the state's done_horizon is checked
# against the inbox: host clocks may be a little off the watcher's.
HORIZON_MARGIN = 86400.0
INBOX_IDS_FOR = 600.0  # seconds the inbox's job ids stay loaded after they were needed


def setup_logging(paths: Paths, host: str, max_bytes: int, to_stderr: bool) -> None:
    """A size-bounded log per host; never a secret (URLs are logged masked only)."""
    paths.private_dir(paths.log_dir)
    handler = logging.handlers.RotatingFileHandler(
        paths.log_file(host), maxBytes=max(4096, max_bytes // 2), backupCount=1, encoding="utf-8"
    )
    fmt = logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s")
    handler.setFormatter(fmt)
    # Only our logger writes here; Apprise's words reach the log through
    # sender, with the URL's secret parts scrubbed.
    log.handlers = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    if to_stderr:
        err = logging.StreamHandler()
        err.setFormatter(fmt)
        log.addHandler(err)


class Watcher:
    def __init__(self, paths: Paths, host: str, config: Config) -> None:
        self.paths = paths
        self.host = host
        self.config = config
        self.lease = lease.Lease(str(paths.lease_dir), host, config.lease_timeout)
        self.state = state.State()
        self.journal = state.Journal(paths.journal_dir, host)
        self.targets: list[sender.Target] = []
        self.stopping = False
        self._config_stamp = self._stamp()
        self._wake_r, self._wake_w = os.pipe()
        self._fifo: int | None = None  # pingch on this host pokes it when a job ends
        self._unsaved = False  # a delivery failed for good since the last save
        self._inbox_ids: tuple[float, set[str]] | None = None  # (loaded at, ids), see told_before
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
        try:
            self.state = state.load(self.paths.state_file, self.paths.journal_dir)
        except state.StateFileError as exc:
            aside = self.paths.state_file.with_name(f"watcher-state.broken-{int(time.time())}.json")
            os.replace(self.paths.state_file, aside)
            log.error("%s; moved it to %s and rebuilding from the inbox", exc, aside)
            self.state = state.State()
        if not self.state.cursors:
            # No usable state (first start, or lost): every job the inbox
            # already holds was notified, so re-reading the spools from the
            # top must not announce it again. Jobs not in it are news. Oldest
            # first, so `done` keeps the newest and done_horizon covers the rest.
            known = [r for r in sender.read_inbox(self.paths.inbox_dir) if r.get("job")]
            for record in known:
                self.state.remember_done(str(record["job"]), float(record.get("time") or 0.0))
            if known:
                log.warning("no saved state: rebuilt %d finished jobs from the inbox", len(known))
        self.targets = sender.build_targets(self.config, self.paths.inbox_dir, self.host)
        self._log_orphans()
        fifo = self.paths.wake_fifo(self.host)
        self._fifo = wake.listen(str(self.paths.private_dir(fifo.parent) / fifo.name))
        if self._fifo is None:
            log.info("cannot make the wake-up FIFO %s here (sshfs cannot): jobs on this host "
                     "are found by polling alone", fifo)
        took = self.lease.took_over_from
        log.info(
            "watcher started: lease generation %d%s; targets: %s",
            self.lease.gen,
            f" (took over from {took.host} pid {took.pid})" if took else "",
            ", ".join(t.display for t in self.targets),
        )

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
            self.lease.check()
            self.save()
            self.lease.release()
        except lease.LeaseLost:
            return 0
        except OSError as exc:
            log.error("could not save the state or release the lease on stop: %s", exc)
        log.info("watcher stopped")
        return 0

    def round(self) -> None:
        """One pass: read new events, save, deliver, save what was delivered."""
        if self._inbox_ids and time.monotonic() - self._inbox_ids[0] > INBOX_IDS_FOR:
            self._inbox_ids = None  # a long history's ids, needed for a re-read now over
        self._maybe_reload_config()
        if self.ingest():
            self.lease.check()
            self.save()
        if time.monotonic() >= self._next_lost_check:
            self._next_lost_check = time.monotonic() + min(30.0, self.config.lost_grace)
            if self.find_lost():
                self.lease.check()
                self.save()
        if routing.flush(self.state, self.targets, self.config, time.time()):
            self.lease.check()
            self.save()
        self.deliver()
        if self.journal.lines or self._unsaved:
            self.lease.check()
            self.save()

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

    def save(self) -> None:
        state.save(self.state, self.paths.state_file, self.paths.journal_dir)
        self.journal.lines = 0
        self._unsaved = False

    # -- configuration --------------------------------------------------------
    def _maybe_reload_config(self) -> None:
        stamp = self._stamp()
        if stamp == self._config_stamp:
            return
        self._config_stamp = stamp
        try:
            config = load_config(self.paths.config_file)
            targets = sender.build_targets(config, self.paths.inbox_dir, self.host)
        except NotifydError as exc:
            log.error("config changed but is not usable, keeping the previous one: %s", exc.message)
            return
        self.config, self.targets = config, targets
        self.lease.timeout = config.lease_timeout
        self._log_orphans()
        log.info("config reloaded; targets: %s", ", ".join(t.display for t in targets))

    def _log_orphans(self) -> None:
        """Say when pending deliveries wait for a URL that is not configured now.

        They are kept, not dropped: a config emptied for a moment (an editor
        saving, `init` rewriting it) must not lose them. If the URL stays
        away they are given up after retry_for, like any failing delivery.
        """
        keys = {t.key for t in self.targets}
        waiting = sum(1 for e in self.state.outbox for k in e["targets"] if k not in keys)
        if waiting:
            log.warning("%d pending deliveries wait for URLs that are not configured now; "
                        "they are kept for retry_for, then given up", waiting)

    # -- reading the spools ---------------------------------------------------
    def ingest(self) -> bool:
        """Read every new event; True when the state changed."""
        changed = False
        try:
            entries = sorted(os.scandir(self.paths.events_dir), key=lambda e: e.name)
        except FileNotFoundError:
            entries = []
        for entry in entries:
            if entry.name.endswith(".jsonl") and entry.is_file(follow_symlinks=False):
                changed |= self._read_file(f"events/{entry.name}", entry.path, self._spool_line)
        legacy_path = self.config.legacy_file
        if legacy_path and os.path.isfile(legacy_path):
            changed |= self._read_file(LEGACY_KEY, legacy_path, self._legacy_line, follow=True)
        return changed

    def _read_file(self, key: str, path: str, handle: Any, follow: bool = False) -> bool:
        cursor = self.state.cursors.get(key)
        first_time = cursor is None
        cursor = cursor or Cursor()
        before = cursor.to_json()
        chunk = read_new(path, cursor, follow_symlinks=follow)
        if chunk.reset:
            log.warning("%s was %s; reading it again from the top", path, chunk.reset)
        for offset in chunk.oversized:
            self.state.stats.malformed += 1
            log.warning("skipping oversized line in %s at byte %d", path, offset)
        for offset, line in chunk.lines:
            try:
                handle(line, history=first_time and key == LEGACY_KEY)
            except ValueError as exc:  # MalformedEvent, or a legacy line that is not one
                self.state.stats.malformed += 1
                log.warning("skipping malformed line in %s at byte %d: %s", path, offset, exc)
            except Exception as exc:
                # Valid JSON that still breaks us (absurd numbers, a bug): the
                # line is skipped like a malformed one, never retried forever.
                self.state.stats.malformed += 1
                log.warning("skipping unusable line in %s at byte %d: %s: %s",
                            path, offset, type(exc).__name__, exc)
        self.state.cursors[key] = cursor
        return cursor.to_json() != before or bool(chunk.oversized)

    def _spool_line(self, line: bytes, history: bool) -> None:
        self.handle_event(decode(line))

    def _legacy_line(self, line: bytes, history: bool) -> None:
        # On the first read of ~/.pingchilling its finished jobs are history
        # (the old bot told about them); jobs still running are followed.
        item = legacy.parse(line)
        if item.kind == "start":
            self.state.legacy_open[item.key] = {"title": item.arg, "ts": item.ts}
            return
        started = self.state.legacy_open.pop(item.key, None)
        start_ts = started["ts"] if started else None
        job = f"legacy-{item.host}-{item.pid}-{int(start_ts or item.ts)}"
        if history:
            # Remembered, so a trimmed and re-read file does not announce it.
            self.state.remember_done(job, item.ts)
            return
        arg = item.arg.strip()
        self.handle_event({
            "v": 1, "ev": "finish", "legacy": True,
            "job": job,
            "host": item.host, "pid": item.pid,
            "title": started["title"] if started else f"pid {item.pid}",
            "start_ts": start_ts, "ts": item.ts,
            "exit": int(arg) if arg.lstrip("-").isdigit() else None,
        })

    def handle_event(self, ev: dict[str, Any]) -> None:
        job = ev["job"]
        self.state.stats.events += 1
        self.state.stats.last_event = {
            "host": ev.get("host"), "ev": ev.get("ev"), "job": job,
            "title": ev.get("title"), "ts": ev.get("ts"), "read_at": round(time.time(), 3),
        }
        if ev["ev"] == "start":
            if job not in self.state.done:
                self.state.running[job] = {k: ev.get(k) for k in ("host", "pid", "title", "cmd", "cwd",
                                                                   "start_ts", "user", "group")}
                routing.job_started(self.state, self.targets, self.config, ev, time.time())
            return
        self.state.running.pop(job, None)
        self.state.missing_since.pop(job, None)
        if self.told_before(job, float(ev.get("ts") or 0.0)):
            routing.already_told(self.state, ev)
            return  # already notified: a re-read spool must not repeat it
        was_lost = self.state.lost.pop(job, None)
        if was_lost:
            ev = {**ev, "was_lost": was_lost.get("reason", "")}
        msg = message.finished(ev)
        self.state.remember_done(job, float(ev["ts"]))
        if self._inbox_ids is not None:
            self._inbox_ids[1].add(job)  # the loaded ids stay the inbox's, as it gets this one
        routing.job_ended(self.state, self.targets, self.config, entry_id=f"{job}:finish", ev=ev,
                          msg=msg, now=time.time())

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
        now = time.monotonic()
        if self._inbox_ids is None or now - self._inbox_ids[0] > INBOX_IDS_FOR:
            # With every job told so far that may not be in the file yet:
            # those waiting in the outbox, and those in `done` (which may be
            # dropped from it while these ids are in use).
            ids = sender.inbox_job_ids(self.paths.inbox_dir)
            ids.update(str(e.get("job")) for e in self.state.outbox)
            ids.update(self.state.done)
            self._inbox_ids = (now, ids)
            log.info("looking up old finishes in the inbox (%d jobs)", len(self._inbox_ids[1]))
        return job in self._inbox_ids[1]

    def find_lost(self) -> bool:
        """Report running jobs whose finish will never come; True if the state changed."""
        if not self.state.running:
            return False
        nodes, _notes = nodeview.load(self.paths.procs_dir(self.config.procs_dir),
                                      self.config.stale_after, self.host)
        by_host = {n.host: n for n in nodes}
        now = lease.server_now(str(self.paths.lease_dir), self.host)
        changed = False
        for job, info in list(self.state.running.items()):
            host = str(info.get("host") or "")
            node = by_host.get(host)
            silent = now - lost.last_sign_of_life(host, str(self.paths.events_dir),
                                                  str(self.paths.alive_dir), node, now)
            since = self.state.missing_since.get(job)
            reason, missing = lost.judge(info, node, silent, None if since is None else now - since,
                                         grace=self.config.lost_grace,
                                         silent_after=self.config.host_silent_after)
            if missing and since is None:
                self.state.missing_since[job] = now
                changed = True
            elif not missing and since is not None and not reason:
                del self.state.missing_since[job]  # listed again: it was a race, not a loss
                changed = True
            if reason:
                del self.state.running[job]
                self.state.missing_since.pop(job, None)
                self.state.lost[job] = {**info, "reason": reason, "at": round(now, 3)}
                log.warning("job %s (%s on %s) is lost: %s", job, info.get("title"), host, reason)
                routing.job_ended(self.state, self.targets, self.config, entry_id=f"{job}:lost",
                                  ev={**info, "job": job, "lost": reason, "ts": now},
                                  msg=message.lost(info, reason), now=time.time())
                changed = True
        return changed

    # -- delivering -----------------------------------------------------------
    def deliver(self) -> None:
        now = time.time()
        for target in self.targets:
            backoff = self.state.backoff.get(target.key)
            if backoff and backoff["next_try"] > now:
                continue
            for entry in list(self.state.outbox):
                if target.key not in entry["targets"]:
                    continue
                if not routing.may_send(self.state, target.key, self.config, time.time()):
                    break  # this URL's budget is spent: the rest wait for the next rounds
                self.lease.heartbeat()
                self.lease.check()  # a watcher that lost its lease sends nothing more
                ok, detail = target.send(entry)
                if ok:
                    # In memory first: if the journal cannot be written (disk
                    # full) this watcher must still not send it again.
                    self.state.mark_delivered(entry["id"], target.key)
                    self.state.stats.delivered += 1
                    if self.state.backoff.pop(target.key, None):
                        log.info("%s works again", target.display)
                    try:
                        self.journal.append(entry["id"], target.key)
                    except OSError as exc:
                        log.error("cannot record a delivery in %s (%s); trying a full state "
                                  "save instead", self.journal.path, exc)
                        self.lease.check()
                        self.save()  # if this fails too, the round ends here
                    continue
                if target.last_status in sender.PERMANENT:
                    self._give_up(entry, target, detail)
                    continue
                failures = (backoff or {}).get("failures", 0) + 1
                delay = min(self.config.retry_max, self.config.retry_initial * 2 ** (failures - 1))
                backoff = {
                    "failures": failures, "next_try": time.time() + delay,
                    "since": (backoff or {}).get("since", now), "error": detail,
                    "display": target.display,
                }
                self.state.backoff[target.key] = backoff
                log.warning("delivery to %s failed (%s); retry %d in %.0f s",
                            target.display, detail, failures, delay)
                break
        self._give_up_old(now)

    def _give_up(self, entry: dict[str, Any], target: sender.Target, detail: str) -> None:
        """A permanent refusal (sender.PERMANENT): no retry will help, so this delivery is failed now."""
        log.error("delivery of %s to %s failed for good (%s: %s); not retried",
                  entry["id"], target.display, detail, sender.hint(target.last_status))
        self.state.failed.append({**entry, "targets": [target.key], "failed_at": round(time.time(), 3),
                                  "error": detail, "url": target.display,
                                  "status": target.last_status})
        self.state.mark_delivered(entry["id"], target.key)  # off the outbox for this URL only
        # Saved at the round's end, not per delivery: a wrong token with
        # hundreds queued would otherwise rewrite the state hundreds of times.
        # A crash before then costs one more refused try, never a message.
        self._unsaved = True

    def _give_up_old(self, now: float) -> None:
        keep = []
        for entry in self.state.outbox:
            if now - entry["created"] > self.config.retry_for:
                log.error("giving up on %s after %.0f h of failed deliveries to %d URL(s)",
                          entry["id"], (now - entry["created"]) / 3600, len(entry["targets"]))
                self.state.failed.append({**entry, "failed_at": round(now, 3)})
            else:
                keep.append(entry)
        self.state.outbox = keep


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
