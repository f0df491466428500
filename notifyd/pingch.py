"""pingch: run a job, record its start and finish, make sure a watcher will tell you.

    $ pingch -t relax python relax.py > relax.log &
    $ pingch 'make && ./run > out.log'        # one argument with shell syntax: bash -c
    $ pingch -p 4242 -t "old run"             # watch a process started without pingch

The job comes first: pingch runs the command exactly as given, forwards the
signals it receives, exits with the job's status (128+N when killed by signal
N) and never lets notification trouble touch the job. It is on every job's
path, so it imports only the standard library's cheapest modules: no typer,
apprise, psutil, json, subprocess or argparse.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from notifyd import events, fsutil, launch, paths, wake

TYPE_CHECKING = False  # typing/collections.abc stay off the hot path
if TYPE_CHECKING:
    from collections.abc import Callable

USAGE = """\
usage: pingch [-t TITLE] [--] COMMAND [ARGS...]
       pingch -p PID [-t TITLE]

Runs COMMAND, records its start and finish in the notifyd spool and exits with
its status; the notifyd watcher sends the notification. A single argument with
shell syntax ('make && ./run > log') runs under bash -c.

  -t, --title TITLE   name of the job in the notification (default: the command)
  -p, --pid PID       watch a running process instead of starting one
  -h, --help          show this help
"""

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
# Characters that make a lone argument a shell snippet rather than a program name.
SHELL_CHARS = frozenset(" \t\n|&;<>()$`\\\"'*?[]#~=%{}!")
TITLE_MAX = 80
# While a job runs, pingch rewrites alive/<host> this often: the watcher's
# evidence that a host with no snapshots is still up (lost-job detection).
ALIVE_EVERY = 60.0
EXIT_USAGE = 2
EXIT_CANNOT_EXECUTE = 126  # same meaning as in the shell
EXIT_NOT_FOUND = 127


class _Spool:
    """Appends events to this host's spool file; warns once and never raises."""

    def __init__(self) -> None:
        self.host = paths.host_name()
        self.state_dir = paths.state_dir_str()
        self.path = os.path.join(self.state_dir, "events", paths.spool_name(self.host))
        self.warned = False

    def append(self, event: dict[str, object]) -> None:
        try:
            line = events.encode(event)
            # One write() per event: a host's appends are serialised by its
            # kernel, so lines from one host never interleave.
            self._in_state_dir(fsutil.append_line, self.path, line)
        except Exception as exc:  # the job must never suffer for the spool
            self.warn(f"cannot record the job in {self.path}: {exc}; the job runs on, "
                      "but no notification will come for it")

    def finish(self, event: dict[str, object]) -> None:
        """Record a job's end, then wake a watcher on this host to tell of it at once."""
        self.append(event)
        wake.poke(self.state_dir, self.host)

    def _in_state_dir(self, write: Callable[[str, bytes], None], path: str, data: bytes) -> None:
        """write(path, data), creating its directory (0700) the first time it is missing."""
        try:
            write(path, data)
        except FileNotFoundError:
            paths.ensure_private_dir(os.path.dirname(path), self.state_dir)
            write(path, data)

    def mark_alive(self) -> None:
        """Rewrite alive/<host> (its mtime, set by the file server, is the mark)."""
        try:
            self._in_state_dir(fsutil.write_new, os.path.join(self.state_dir, "alive", self.host),
                               b"1\n")
        except Exception:
            pass  # a missed mark only makes the host look quieter

    def warn(self, message: str) -> None:
        if not self.warned:
            self.warned = True
            try:
                sys.stderr.write(f"pingch: warning: {message}\n")
                sys.stderr.flush()
            except Exception:
                pass


def _ensure_watcher(spool: _Spool) -> int:
    """Start a watcher in the background unless one looks alive. Returns its pid or 0."""
    try:
        return launch.start_watcher(spool.state_dir, spool.host, careful=False)
    except Exception as exc:
        spool.warn(f"cannot start the notifyd watcher: {exc}")
        return 0


def _short_title(argv: list[str]) -> str:
    text = " ".join(argv)
    return text if len(text) <= TITLE_MAX else text[: TITLE_MAX - 1] + "…"


def _base_event(spool: _Spool, kind: str, *, job: str, pid: int, title: str, cmd: str,
                start: float, cwd: str) -> dict[str, object]:
    return {
        "v": events.SCHEMA_VERSION,
        "ev": kind,
        "job": job,
        "user": paths.user_name(),
        "host": spool.host,
        "pid": pid,
        "title": title,
        "cmd": cmd,
        "cwd": cwd,
        "start": events.iso_time(start),
        "start_ts": round(start, 3),
        "ts": round(time.time(), 3),
    }


def _finish(base: dict[str, object], end: float, start: float, **fields: object) -> dict[str, object]:
    ev = dict(base)
    ev.update(ev="finish", end=events.iso_time(end), ts=round(end, 3),
              duration=round(end - start, 3))
    ev.update(fields)
    return ev


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return os.environ.get("PWD", "?")


def _parse_args(argv: list[str]) -> tuple[str | None, int | None, list[str]]:
    title: str | None = None
    pid: int | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if arg in ("-h", "--help"):
            sys.stdout.write(USAGE)
            raise SystemExit(0)
        if arg in ("-t", "--title", "-p", "--pid") or arg.startswith(("--title=", "--pid=")):
            if "=" in arg:
                name, value = arg.split("=", 1)
            elif i + 1 < len(argv):
                name, value = arg, argv[i + 1]
                i += 1
            else:
                _usage_error(f"{arg} needs a value")
            if name in ("-t", "--title"):
                title = value
            else:
                if not (value.isascii() and value.isdigit()) or int(value) <= 0:
                    _usage_error(f"{name} needs a process id (a positive number), not {value!r}")
                pid = int(value)
            i += 1
            continue
        if arg.startswith("-") and arg != "-":
            _usage_error(f"unknown option {arg!r} (put -- before a command that starts with '-')")
        break
    return title, pid, argv[i:]


def _usage_error(message: str) -> None:
    sys.stderr.write(f"pingch: {message}\n{USAGE}")
    raise SystemExit(EXIT_USAGE)


def run_job(command: list[str], title: str | None, spool: _Spool) -> int:
    if len(command) == 1 and SHELL_CHARS.intersection(command[0]):
        argv = ["bash", "-c", command[0]]
        shown = command[0]
    else:
        argv = command
        shown = " ".join(_quote(a) for a in command)
    title = title or _short_title(command)

    # Signals are blocked and then collected with sigwaitinfo(): no handler
    # can run between spawning the job and knowing its pid, and the siginfo
    # tells a kernel-generated Ctrl-C from a kill(1). A signal the caller
    # ignores (SIGINT for `cmd &` in a script, SIGHUP under nohup) stays
    # ignored and is inherited by the job unchanged.
    forwarded = [s for s in FORWARDED if signal.getsignal(s) != signal.SIG_IGN]
    if signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN:
        # The one exception to "ignored stays ignored": with SIGCHLD ignored
        # the kernel reaps the job itself and wait4 gets no status or usage.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    waited = {*forwarded, signal.SIGCHLD}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, waited)

    cwd = _cwd()
    start = time.time()
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ, setsigmask=old_mask,
                              setsigdef=PYTHON_IGNORES)
    except OSError as exc:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        code = EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else EXIT_CANNOT_EXECUTE
        reason = "command not found" if code == EXIT_NOT_FOUND else exc.strerror
        sys.stderr.write(f"pingch: {argv[0]}: {reason}\n")
        job = events.new_job_id(spool.host, os.getpid())
        base = _base_event(spool, "start", job=job, pid=os.getpid(), title=title, cmd=shown,
                           start=start, cwd=cwd)
        spool.finish(_finish(base, time.time(), start, exit=code, signal=None,
                             error=f"{argv[0]}: {reason}"))
        _ensure_watcher(spool)
        return code

    floor = _own_peak_rss()  # after the spawn: posix_spawn's own pages count too
    job = events.new_job_id(spool.host, pid)
    base = _base_event(spool, "start", job=job, pid=pid, title=title, cmd=shown, start=start, cwd=cwd)
    spool.append(base)
    helper = _ensure_watcher(spool)

    while True:
        info = signal.sigtimedwait(waited, ALIVE_EVERY)
        if info is None:  # a quiet minute: tell the watcher this host still lives
            spool.mark_alive()
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
            break
    end = time.time()
    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    code = 128 + sig if sig is not None else os.waitstatus_to_exitcode(status)
    spool.finish(_finish(
        base, end, start,
        exit=None if sig is not None else code,
        signal=sig,
        maxrss_kb=usage.ru_maxrss,  # KiB on Linux: getrusage(2)
        maxrss_floor_kb=floor,
        cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
    ))
    return code


def _own_peak_rss() -> int | None:
    """pingch's own peak RSS in KiB, read right after it spawned the job.

    The kernel folds the memory a process had before exec (pingch's, which
    the job shares until then) into the job's ru_maxrss (exec_mmap in
    fs/exec.c), so a job whose ru_maxrss is not above this used less.
    """
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, IndexError, ValueError):
        pass
    return None


def _quote(arg: str) -> str:
    if arg and not SHELL_CHARS.intersection(arg):
        return arg
    return "'" + arg.replace("'", "'\"'\"'") + "'"


def _proc_sample(pid: int) -> tuple[str, int | None, float | None]:
    """(start ticks, peak RSS KiB, cpu seconds) of a process from /proc; start '' if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # After the command name (which may hold ')'): state, ..., utime,
            # stime at 11-12, start time at 19 (proc(5), counted from field 3).
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return "", None, None
    if len(fields) < 20 or fields[0] == b"Z":
        return "", None, None  # gone, or exited and not yet reaped by its parent
    start = fields[19].decode()
    maxrss = cpu = None
    try:
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    maxrss = int(line.split()[1])
    except (OSError, IndexError, ValueError):
        pass
    return start, maxrss, cpu


def _boot_time() -> float:
    with open("/proc/stat", "rb") as f:
        for line in f:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    return 0.0


def watch_pid(pid: int, title: str | None, spool: _Spool) -> int:
    """Follow a process that is not our child until it ends; its exit code stays unknown."""
    start_ticks, maxrss, cpu = _proc_sample(pid)
    if not start_ticks:
        sys.stderr.write(f"pingch: no running process with pid {pid}; check it with: ps -p {pid}\n")
        return 1
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [os.fsdecode(a) for a in f.read().split(b"\0") if a]
    except OSError:
        argv = []
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        cwd = "?"
    shown = " ".join(_quote(a) for a in argv) or f"pid {pid}"
    start = _boot_time() + int(start_ticks) / os.sysconf("SC_CLK_TCK")
    job = events.new_job_id(spool.host, pid)
    base = _base_event(spool, "start", job=job, pid=pid, title=title or _short_title(argv or [shown]),
                       cmd=shown, start=start, cwd=cwd)
    base["watched"] = True
    spool.append(base)
    _ensure_watcher(spool)

    # A pidfd becomes readable when the process exits: no busy polling. The
    # 1 s timeout samples peak RSS and CPU time while it still runs.
    import select

    try:
        pidfd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        pidfd = -1
    poller = select.poll()
    if pidfd >= 0:
        poller.register(pidfd, select.POLLIN)
    # Stopping pingch -p (Ctrl-C, logout) ends the watching, not the process:
    # it is recorded as "no longer watched", so the job does not stay
    # "running" forever and the user learns that no finish will come.
    stopped_by: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopped_by.append(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, stop)
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
    extra: dict[str, object] = {}
    if stopped_by:
        name = signal.Signals(stopped_by[0]).name
        extra = {"unwatched": True,
                 "error": f"pingch -p was stopped by {name}; pid {pid} may still be running"}
    spool.finish(_finish(base, time.time(), start, exit=None, signal=None, exit_unknown=True,
                         maxrss_kb=maxrss, cpu_s=None if cpu is None else round(cpu, 3), **extra))
    return 128 + stopped_by[0] if stopped_by else 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    title, pid, command = _parse_args(args)
    spool = _Spool()
    if pid is not None:
        if command:
            _usage_error("give either -p PID or a COMMAND, not both")
        return watch_pid(pid, title, spool)
    if not command:
        _usage_error("no COMMAND given")
    return run_job(command, title, spool)


if __name__ == "__main__":
    sys.exit(main())
