"""The watcher: one per user across all hosts; reads the job sources, sends notifications.

Each round, every `poll_interval` (or at once when pingch on this host pokes
the wake-up FIFO), with the round's clock read once and passed down:
  1. heartbeat the lease (stop at once if another watcher holds it now);
  2. reload the config if the file changed;
  3. poll every source that is due (sources/: the spool files, the legacy
     file), pair starts and finishes, route a notification for each
     finished job into the outbox; save the state before anything is sent;
  4. every 30 s, judge running jobs lost (lost.py), and tell of memory
     pressure on the nodes where they run (pressure.py); save;
  5. turn due digest batches and finished groups into messages; save;
  6. deliver due outbox entries (delivery.py), journalling each success;
     save what was delivered or given up.
Every save checks the lease first (`_save`): a watcher that lost its lease
writes nothing more.

Long: the one thread that owns the state lives here (the rounds, the fenced
save, start and stop); each step is a method of a few lines, and the flows
it calls (intake, lost, delivery, the sources) have modules of their own.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import select
import signal
import time
from collections.abc import Sequence
from typing import Any

from notifyd import state
from notifyd.config import Config
from notifyd.config import load as load_config
from notifyd.errors import NotifydError, StateFileError
from notifyd.nodes import reader as nodes
from notifyd.notify import inbox, message, routing, targets
from notifyd.paths import Paths
from notifyd.pingch import facts as pingch_facts
from notifyd.spool import wake
from notifyd.watcher import drop, launch, lease, lost, pressure, proctitle
from notifyd.watcher.clock import Clock, Round
from notifyd.watcher.delivery import Delivery
from notifyd.watcher.intake import Intake
from notifyd.watcher.sources.base import EventSource
from notifyd.watcher.sources.slurm import KEY as SLURM_KEY
from notifyd.watcher.sources.slurm import Settings as SlurmSettings
from notifyd.watcher.sources.slurm import SlurmSource

log = logging.getLogger("notifyd")
WAKE_SETTLE = 0.02  # seconds between a poke and the round it triggers
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
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self.delivery = Delivery(self.journal, self.lease, self._save, wake=self._poke)
        self.targets: list[targets.Target] = targets_ or []
        self._given_targets = targets_ is not None
        self._given_sources = list(sources) if sources is not None else None
        self.stopping = False
        self._config_stamp = self._stamp()
        self._fifo: int | None = None  # pingch on this host pokes it when a job ends
        self._wake_up = wake_up
        self.intake = Intake(paths, self.clock, self._given_sources)
        self._next_lost_check = 0.0
        self.pressure = pressure.Watch(str(paths.alive_dir))
        self._nodes: tuple[Round | None, dict[str, nodes.Node]] = (None, {})
        self._save_pending = False  # a save failed: the next round saves before it delivers

    # -- start and stop -------------------------------------------------------
    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.paths.config_file.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _on_signal(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def _poke(self) -> None:
        """Wake the loop for a round now (a courier finished a send); from any thread."""
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass  # the pipe is full: a round is coming anyway

    def install_signals(self) -> None:
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
        if holder is None:
            self.journal.create()
        return holder

    def start(self) -> None:
        """Load state and targets once the lease is ours."""
        self.state = self._load_state()
        if not self.state.cursors:
            self._rebuild_done_from_inbox()
        if not self._given_targets:
            self.targets = targets.build_targets(self.config, self.paths.inbox_dir, self.host)
        if self._given_sources is None:
            self._start_slurm()
        self._know_targets()
        self._tell_pingch()
        if self._wake_up:
            self._listen()
        took = self.lease.took_over_from
        log.info(
            "watcher started: lease generation %d%s; targets: %s",
            self.lease.gen,
            f" (took over from {took.host} pid {took.pid})" if took else "",
            ", ".join(t.display for t in self.targets),
        )

    def _start_slurm(self) -> None:
        """The SLURM source, where this host has the client tools and [slurm] allows it."""
        from notifyd.slurm import tools

        wanted = self.config.slurm != "no"
        if wanted and tools.available():
            self.intake.slurm = SlurmSource(slurm_settings(self.config), self.host, paths_user(),
                                            wake=self._poke)
            log.info("SLURM source on: squeue at most every %.0f s while you have jobs",
                     self.config.slurm_interval)
            return
        if self.config.slurm == "yes":
            log.warning("[slurm] enabled = yes, but this host (%s) has no squeue: SLURM jobs are not "
                        "followed while the watcher runs here", self.host)
        # pingch finishes that waited for a scheduler this watcher cannot ask: told alone now.
        held = (self.state.cursors.get(SLURM_KEY) or {}).pop("held", {}) or {}
        for ev in held.values():
            self.intake.handle(self.state, ev, to=self.targets, config=self.config, now=self.clock.time())

    def _listen(self) -> None:
        fifo = self.paths.wake_fifo(self.host)
        try:
            where = self.paths.private_dir(fifo.parent, in_place=True)
        except FileNotFoundError:
            return  # the state dir was deleted since the lease was taken: the first round stops
        self._fifo = wake.listen(str(where / fifo.name))
        if self._fifo is None:
            log.info("cannot make the wake-up FIFO %s here (sshfs cannot): jobs on this host "
                     "are found by polling alone", fifo)

    def _journal_hosts(self) -> set[str]:
        """The hosts whose journals must be read by name: the previous holder, every spool's host."""
        took = self.lease.took_over_from
        hosts = {self.host, *((took.host,) if took else ())}
        try:
            hosts.update(e.name[: -len(".jsonl")] for e in os.scandir(self.paths.events_dir)
                         if e.name.endswith(".jsonl"))
        except OSError:
            pass
        return hosts

    def _load_state(self) -> state.State:
        try:
            loaded = state.load(self.paths.state_file, self.paths.journal_dir, self._journal_hosts())
        except StateFileError as exc:
            aside = self.paths.state_file.with_name(
                f"watcher-state.broken-{int(time.time())}-{os.getpid()}.json")
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
                    if self._state_dir_gone():
                        self.delivery.close()
                        return 0
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
            if not self._state_dir_gone():
                why = ("no lease file is left (deleted?)" if lease.current(str(self.paths.lease_dir)) is None
                       else "another watcher took over")
                log.warning("lease lost (%s): %s; stopping without sending or saving anything more",
                            exc, why)
            return 0
        try:
            # Sends in flight are let finish (a few seconds at most) so that
            # what they delivered is recorded, not sent again by the next watcher.
            self.delivery.settle(self.state, self.targets, self.config, self.clock.time())
            self.delivery.close()
            self._save()
            self.lease.release()
        except lease.LeaseLost:
            return 0
        except OSError as exc:
            log.error("could not save the state or release the lease on stop: %s", exc)
        log.info("watcher stopped")
        return 0

    def _state_dir_gone(self) -> bool:
        """True (and logged) once the state dir was deleted under us: then we stop.

        Recreating it would leave a watcher heartbeating for a home that is
        gone (a test's, or a reset by `rm -rf`); the next pingch or `notifyd
        ensure` starts one afresh. Only "no such directory" counts: an NFS
        hiccup (EIO, ESTALE) must not stop the only watcher.
        """
        # The lease dir too: a deletion under way (rm -r removes it before
        # the state dir) makes the lease check fail first.
        for directory in (self.paths.state_dir, self.paths.lease_dir):
            if _missing(directory):
                log.warning("%s is gone (deleted?): stopping, recreating nothing; the next "
                            "pingch or `notifyd ensure` starts a watcher afresh", directory)
                return True
        return False

    def round(self) -> None:
        """One pass: read new events, save, judge lost jobs, flush, deliver, save what was delivered."""
        moment = Round(self.clock)
        self._maybe_reload_config()
        self._take_drops()
        # A save that failed (a full disk) is tried again before anything is
        # delivered: nothing may be sent that the state file does not hold.
        if self.ingest(moment) or self._save_pending:
            self._save()
        if moment.tick >= self._next_lost_check:
            self._next_lost_check = moment.tick + min(LOST_CHECK_EVERY, self.config.lost_grace)
            if self.find_lost(moment) | self.check_pressure(moment):
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
        self._save_pending = True  # until the save below went through
        self.lease.check()
        state.save(self.state, self.paths.state_file, self.paths.journal_dir, self._journal_hosts())
        self.journal.clear()
        self.delivery.unsaved = False
        self._save_pending = False

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
        if self.intake.slurm is not None:
            self.intake.slurm.settings = slurm_settings(config)
        self._know_targets()
        self._tell_pingch()
        log.info("config reloaded; targets: %s", ", ".join(t.display for t in new))

    def _tell_pingch(self) -> None:
        """The config's part pingch needs, in a file it reads cheaply (pingch/facts.py)."""
        try:
            pingch_facts.write_settings(str(self.paths.state_dir), self.config.start_warning,
                                        self.config.warn_mem)
        except OSError as exc:
            log.warning("cannot write %s: %s; pingch goes by what it last said (or [pressure]'s "
                        "defaults)", pingch_facts.settings_path(str(self.paths.state_dir)), exc)

    def _know_targets(self) -> None:
        """The targets are new (start, reload): name them in the state, say what waits for others."""
        self.state.name_urls({t.key: t.display for t in self.targets if t.key != targets.INBOX_KEY})
        self._log_orphans()

    def _take_drops(self) -> None:
        """Drop what waits for URLs no longer configured, if `notifyd drop` asked (saved at once)."""
        if not drop.pending(self.paths.drop_dir):
            return
        done = drop.take(self.state, self.paths.drop_dir, {t.key for t in self.targets})
        self._save()  # fenced: a watcher that lost its lease neither saves nor removes the request
        drop.finish(done)

    def _log_orphans(self) -> None:
        """Say when pending deliveries wait for a URL that is not configured now.

        They are kept, not dropped: a config emptied for a moment (an editor
        saving, `init` rewriting it) must not lose them. If the URL stays
        away they are given up after retry_for, like any failing delivery,
        or dropped at once by `notifyd drop` (watcher/drop.py).
        """
        keys = {t.key for t in self.targets}
        waiting = sum(1 for e in self.state.outbox for k in e.targets if k not in keys)
        if waiting:
            log.warning("%d pending deliveries wait for URLs that are not configured now; "
                        "they are kept for retry_for, then given up (notifyd drop drops them now)", waiting)

    def ingest(self, moment: Round | None = None) -> bool:
        """Poll every due source into the state; True when it changed."""
        return self.intake.ingest(self.state, self.targets, self.config, moment or Round(self.clock))

    def handle_event(self, ev: dict[str, Any], now: float) -> None:
        """One event, as if a source had just read it (tests, and the SLURM merge)."""
        self.intake.handle(self.state, ev, to=self.targets, config=self.config, now=now)

    def _snapshots(self, moment: Round) -> dict[str, nodes.Node]:
        """Every node's snapshot by host, read once a round (the lost and pressure checks share it)."""
        if self._nodes[0] is not moment:
            found, _notes = nodes.load(self.paths.procs_dir(self.config.procs_dir),
                                       self.config.stale_after, self.host)
            self._nodes = (moment, {n.host: n for n in found})
        return self._nodes[1]

    def check_pressure(self, moment: Round | None = None) -> bool:
        """Alert the user of memory pressure on nodes where their jobs run; True if the state changed.

        A failure here is logged and the round goes on: deliveries must not
        wait for an optional check.
        """
        moment = moment or Round(self.clock)
        if not self.config.pressure_alerts or not any(not j.owned for j in self.state.running.values()):
            return False
        try:
            return self.pressure.check(self.state, self._snapshots(moment), self.targets, self.config,
                                       server_now=moment.server_now, now=moment.now)
        except Exception:
            log.exception("error in the memory pressure check; trying again at the next one")
            return False

    def find_lost(self, moment: Round | None = None) -> bool:
        """Report running jobs whose finish will never come; True if the state changed."""
        moment = moment or Round(self.clock)
        if not any(not job.owned for job in self.state.running.values()):
            return False
        evidence = lost.Evidence(self._snapshots(moment), str(self.paths.events_dir),
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


def slurm_settings(config: Config) -> SlurmSettings:
    return SlurmSettings(interval=config.slurm_interval, idle_interval=config.slurm_idle_interval,
                          timeout=config.slurm_timeout, tell=config.slurm_tell, tail=config.slurm_tail,
                          array_failures=config.slurm_array_failures)


def paths_user() -> str:
    from notifyd import paths as paths_mod

    return paths_mod.user_name()


def _missing(path: os.PathLike[str]) -> bool:
    try:
        os.stat(path)
    except FileNotFoundError:
        return True
    except OSError:
        pass  # an NFS hiccup is not a missing home
    return False


def refuse_a_missing_home(paths: Paths) -> None:
    """NotifydError when neither the state dir nor the home exists.

    A home deleted while its watcher was starting (a test's temp dir), or an
    NFS home not mounted yet at boot: making the state dir there would leave
    a watcher heartbeating in a directory no pingch writes to. Nothing is
    created, not even the log.
    """
    if _missing(paths.state_dir) and _missing(paths.home):
        raise NotifydError(f"the home directory {paths.home} does not exist (deleted, or not "
                           f"mounted yet): not creating {paths.state_dir} in it; start the watcher "
                           "again once the home is there")


def main(paths: Paths, host: str, background: bool) -> int:
    """`notifyd watch`: returns an exit status; raises NotifydError for the user."""
    os.umask(0o077)  # everything the watcher creates is the user's alone
    os.chdir("/")  # never keep the job's directory (a scratch mount) busy
    refuse_a_missing_home(paths)
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
    launch.clear_cause(str(paths.lease_dir), host)
    return watcher.run()


def run_in_background() -> int:
    """A watcher started by pingch or `notifyd ensure` (launch.watcher_argv): no terminal.

    Its errors go to its log (main() writes them there) and, as one line, to
    lease/cannot-start.<host>, which the next pingch prints; the exit status
    is the one `notifyd watch --background` would have had.
    """
    from notifyd import dirs
    from notifyd import paths as paths_mod

    proctitle.name_watcher(paths_mod.user_name())
    host = paths_mod.host_name()
    try:
        paths = dirs.resolve()
    except NotifydError as exc:
        # No home to resolve the directories in: no log and no note can be
        # written either; the exit status says it (see dirs.resolve).
        return int(exc.status)
    try:
        return main(paths, host, background=True)
    except NotifydError as exc:
        launch.record_cause(str(paths.lease_dir), host, exc.message)
        return int(exc.status)
    except OSError as exc:
        log.error("cannot run: %s", exc)
        where = f"{exc.filename}: " if exc.filename else ""
        launch.record_cause(str(paths.lease_dir), host, f"{where}{exc.strerror or exc}; check that this "
                            "path and its parent directories exist and are yours")
        return 1
