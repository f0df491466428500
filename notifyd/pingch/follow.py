"""pingch -p PID: follow a process started without pingch until it ends.

It is not our child, so its exit code stays unknown; what /proc tells while it
runs (peak RSS, CPU time) is sampled every second.
"""

import os
import sys
import time

from notifyd import procfs
from notifyd.pingch import facts, record
from notifyd.pingch.options import EXIT_USAGE
from notifyd.spool import events

TYPE_CHECKING = False  # typing stays off the hot path
if TYPE_CHECKING:
    import signal

    from notifyd.pingch.options import Options
    from notifyd.pingch.record import HostRecorder
else:
    import _signal as signal  # as in run.py: enum stays unloaded

# The signals that stop pingch -p, by name for the finish event.
STOPPED_BY: dict[int, str] = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


def watch_pid(pid: int, opts: "Options", recorder: "HostRecorder") -> int:
    """Follow a process that is not our child until it ends; its exit code stays unknown."""
    start_ticks, maxrss, cpu = _proc_sample(pid)
    if not start_ticks:
        # A wrong value on the command line, like a pid out of range: 2, and nothing recorded.
        sys.stderr.write(f"pingch: -p {pid}: no running process has that pid; "
                         f"ps -u $USER lists yours\n")
        return EXIT_USAGE
    environ = procfs.environ(pid)  # now: a process's environment is unreadable once it is gone
    start = procfs.boot_time() + int(start_ticks) / procfs.clock_ticks()
    started = _start_event(pid, start, opts, recorder)
    # Caught before the start is recorded: a Ctrl-C right after it must
    # still write the finish ("no longer watched"), or the job would look
    # running forever.
    stopped_by = _stop_on_signals()
    recorder.append(started)
    recorder.ensure_watcher()

    maxrss, cpu = _follow(pid, start_ticks, maxrss, cpu, stopped_by)
    extra = facts.end_fields(opts, environ)
    if stopped_by:
        name = STOPPED_BY.get(stopped_by[0], f"signal {stopped_by[0]}")
        extra.update(unwatched=True,
                     error=f"pingch -p was stopped by {name}; pid {pid} may still be running")
    recorder.finish(record.finish_event(
        started, time.time(), start, exit=None, signal=None, exit_unknown=True, maxrss_kb=maxrss,
        cpu_s=None if cpu is None else round(cpu, 3), **extra))
    return 128 + stopped_by[0] if stopped_by else 0


def _start_event(pid: int, start: float, opts: "Options", recorder: "HostRecorder") -> dict[str, object]:
    """The start event of a watched process: its command line and directory as /proc shows them."""
    argv = procfs.cmdline(pid)
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        cwd = "?"
    shown = " ".join(record.quote(a) for a in argv) or f"pid {pid}"
    if opts.hide_command:
        title = opts.title or (os.path.basename(argv[0]) if argv else "") or f"pid {pid}"
        shown = ""
    else:
        title = opts.title or record.short_title(argv or [shown])
    started = record.start_event(recorder, job=events.new_job_id(recorder.host, pid), pid=pid,
                                 title=title, cmd=shown, start=start, cwd=cwd, opts=opts)
    started["watched"] = True
    return started


def _stop_on_signals() -> list[int]:
    """Catch the signals that stop pingch -p; the list they are appended to as they come.

    Stopping pingch -p (Ctrl-C, logout) ends the watching, not the process:
    it is recorded as "no longer watched", so the job does not stay
    "running" forever and the user learns that no finish will come. A signal
    the caller ignores stays ignored.
    """
    stopped_by: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopped_by.append(signum)

    for sig in STOPPED_BY:
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, stop)
    return stopped_by


def _follow(pid: int, start_ticks: str, maxrss: int | None, cpu: float | None,
            stopped_by: list[int]) -> tuple[int | None, float | None]:
    """Sample the process until it ends or pingch is stopped; its last (peak RSS, cpu seconds).

    A pidfd becomes readable when the process exits: no busy polling. The
    1 s timeout samples peak RSS and CPU time while it still runs.
    """
    import select

    try:
        pidfd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        pidfd = -1
    poller = select.poll()
    if pidfd >= 0:
        poller.register(pidfd, select.POLLIN)
    while not stopped_by:
        sample = _proc_sample(pid)
        if sample[0] != start_ticks:
            break
        maxrss = sample[1] if sample[1] is not None else maxrss
        cpu = sample[2] if sample[2] is not None else cpu
        if poller.poll(1000):
            break
    if pidfd >= 0:
        os.close(pidfd)
    return maxrss, cpu


def _proc_sample(pid: int) -> tuple[str, int | None, float | None]:
    """(start ticks, peak RSS KiB, cpu seconds) of a process from /proc; start '' if gone."""
    try:
        fields = procfs.stat(pid)[1]
    except OSError:
        return "", None, None
    if len(fields) <= procfs.START_TIME or fields[procfs.STATE] == b"Z":
        return "", None, None  # gone, or exited and not yet reaped by its parent
    try:
        cpu = procfs.cpu_ticks(fields) / procfs.clock_ticks()
    except ValueError:
        return fields[procfs.START_TIME].decode(), None, None
    return fields[procfs.START_TIME].decode(), procfs.peak_rss_kb(pid), cpu
