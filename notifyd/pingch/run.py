"""The job in the foreground: spawn it, pass on the signals pingch gets, wait, record its end.

The job comes first: pingch runs the command exactly as given, forwards the
signals it receives, exits with the job's status (128+N when killed by signal
N) and never lets notification trouble touch the job.
"""

import os
import sys
import time

from notifyd import procfs
from notifyd.pingch import facts, record
from notifyd.spool import events

TYPE_CHECKING = False  # typing stays off the hot path
# The C half of `signal`: the Python module wraps signal numbers in enums, and
# enum with functools and collections costs ~3 ms of every job's start here
# (bench/: pingch overhead). Same functions and constants, as plain ints;
# mypy checks against the module's stubs.
if TYPE_CHECKING:
    import signal
    from collections.abc import Set
    from resource import struct_rusage

    from notifyd.pingch.options import Options
    from notifyd.pingch.record import HostRecorder
else:
    import _signal as signal

# Signals pingch passes on to the job. SIGKILL and SIGSTOP cannot be caught.
FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
# si_code of a signal the kernel generated itself: a Ctrl-C or Ctrl-\ at the
# terminal, which the tty already sent to the job's process group. Forwarding
# it again would give the job a second SIGINT (many programs treat that as
# "force quit").
SI_KERNEL = 0x80
# Python ignores these at startup (so writes fail with EPIPE instead of
# killing it); a job must get them back at their default, as from a shell,
# or `yes | head` complains of a broken pipe. subprocess does the same.
PYTHON_IGNORES = tuple(getattr(signal, n) for n in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, n))
# While a job runs, pingch rewrites alive/<host> this often: the watcher's
# evidence that a host with no snapshots is still up (lost-job detection).
ALIVE_EVERY = 60.0
EXIT_CANNOT_EXECUTE = 126  # same meaning as in the shell
EXIT_NOT_FOUND = 127


class _Shown:
    """How the job is run (argv) and named: the title, the command line shown, the program."""

    def __init__(self, opts: "Options") -> None:
        command = opts.command
        if len(command) == 1 and record.SHELL_CHARS.intersection(command[0]):
            self.argv = ["bash", "-c", command[0]]
            self.cmd = command[0]
        else:
            self.argv = command
            self.cmd = " ".join(record.quote(a) for a in command)
        # --hide-command: nothing of the command line but the program's name may
        # leave the machine (a snippet's program is bash).
        self.program = os.path.basename(self.argv[0]) or self.argv[0]
        if opts.hide_command:
            self.cmd = ""
        self.title = opts.title or (self.program if opts.hide_command else record.short_title(command))


def run_job(opts: "Options", recorder: "HostRecorder", job: str = "", log: str = "") -> int:
    """Run the job in the foreground; `job` and `log` come from `pingch -d` (else: a new id)."""
    shown = _Shown(opts)
    waited, old_mask = _block_signals()
    cwd = facts.working_dir()
    start = time.time()
    since = time.monotonic()
    try:
        pid = os.posix_spawnp(shown.argv[0], shown.argv, os.environ, setsigmask=old_mask,
                              setsigdef=PYTHON_IGNORES)
    except OSError as exc:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        return _not_started(exc, opts, recorder, shown, job=job, log=log, start=start, cwd=cwd)

    # pingch's own peak RSS, right after the spawn (posix_spawn's own pages
    # count too). The kernel folds the memory a process had before exec
    # (pingch's, which the job shares until then) into the job's ru_maxrss
    # (exec_mmap in fs/exec.c), so a job whose ru_maxrss is not above this used less.
    floor = procfs.peak_rss_kb()
    job = job or events.new_job_id(recorder.host, pid)
    started = record.start_event(recorder, job=job, pid=pid, title=shown.title, cmd=shown.cmd,
                                 start=start, cwd=cwd, opts=opts, log=log)
    recorder.append(started)
    helper = recorder.ensure_watcher()
    if not log:  # a `pingch -d` job's: the pingch that detached it has told the user
        facts.warn_if_busy(recorder.host, recorder.state_dir)
    status, usage = _wait_forwarding(pid, waited, recorder, helper)
    end = time.time()
    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    code = 128 + sig if sig is not None else os.waitstatus_to_exitcode(status)
    extra = facts.end_fields(opts, os.environ)
    if sig == signal.SIGKILL and facts.oom_killed(pid, since):
        extra["oom"] = True
    recorder.finish(record.finish_event(
        started, end, start,
        exit=None if sig is not None else code,
        signal=sig,
        maxrss_kb=usage.ru_maxrss,  # KiB on Linux: getrusage(2)
        maxrss_floor_kb=floor,
        cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
        **extra,
    ))
    return code


def _block_signals() -> "tuple[Set[int], Set[int]]":
    """Block the signals to forward and SIGCHLD; returns (those, the mask before).

    Blocked signals are collected with sigtimedwait(): no handler can run
    between spawning the job and knowing its pid, and the siginfo tells a
    kernel-generated Ctrl-C from a kill(1). A signal the caller ignores
    (SIGINT for `cmd &` in a script, SIGHUP under nohup) stays ignored and is
    inherited by the job unchanged.
    """
    forwarded = [s for s in FORWARDED if signal.getsignal(s) != signal.SIG_IGN]
    if signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN:
        # The one exception to "ignored stays ignored": with SIGCHLD ignored
        # the kernel reaps the job itself and wait4 gets no status or usage.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    waited = {*forwarded, signal.SIGCHLD}
    return waited, signal.pthread_sigmask(signal.SIG_BLOCK, waited)


def _wait_forwarding(pid: int, waited: "Set[int]", recorder: "HostRecorder",
                     helper: int) -> "tuple[int, struct_rusage]":
    """Pass on each signal in `waited` to the job until it ends; its (wait status, rusage).

    `helper` is the watcher pingch just started (0 if none): reaped when it
    ends, so it leaves no zombie behind.
    """
    while True:
        info = signal.sigtimedwait(waited, ALIVE_EVERY)
        if info is None:  # a quiet minute: tell the watcher this host still lives, and its memory
            recorder.mark_alive(facts.proc_root())
            continue
        if info.si_signo != signal.SIGCHLD:
            if info.si_code != SI_KERNEL:
                try:
                    os.kill(pid, info.si_signo)
                except ProcessLookupError:
                    pass
            continue
        if helper:
            try:
                if os.waitpid(helper, os.WNOHANG)[0]:
                    helper = 0
            except ChildProcessError:
                helper = 0
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done == pid:
            return status, usage


def _not_started(exc: OSError, opts: "Options", recorder: "HostRecorder", shown: _Shown, *, job: str,
                 log: str, start: float, cwd: str) -> int:
    """The command could not be run: say so as a shell would, record it as ended, exit 126/127."""
    code = EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else EXIT_CANNOT_EXECUTE
    reason = "command not found" if code == EXIT_NOT_FOUND else exc.strerror
    sys.stderr.write(f"pingch: {shown.argv[0]}: {reason}\n")
    job = job or events.new_job_id(recorder.host, os.getpid())
    started = record.start_event(recorder, job=job, pid=os.getpid(), title=shown.title, cmd=shown.cmd,
                                 start=start, cwd=cwd, opts=opts, log=log)
    recorder.finish(record.finish_event(
        started, time.time(), start, exit=code, signal=None,
        error=f"{shown.program if opts.hide_command else shown.argv[0]}: {reason}",
        **facts.end_fields(opts, os.environ)))
    recorder.ensure_watcher()
    return code
