"""pingch: run a job, record its start and finish, make sure a watcher will tell you.

    $ pingch -t relax python relax.py > relax.log &
    $ pingch 'make && ./run > out.log'        # one argument with shell syntax: bash -c
    $ pingch -p 4242 -t "old run"             # watch a process started without pingch
    $ pingch -d -g sweep --tail out.log ./run # survives logout; last lines in the message

The job comes first: pingch runs the command exactly as given, forwards the
signals it receives, exits with the job's status (128+N when killed by signal
N) and never lets notification trouble touch the job. It is on every job's
path, so it imports only the standard library's cheapest modules: no typer,
apprise, psutil, json, subprocess or argparse.
"""

from __future__ import annotations

import os
import stat
import sys
import time

from notifyd import fsutil, paths
from notifyd.spool import events, wake
from notifyd.watcher import launch

TYPE_CHECKING = False  # typing/collections.abc stay off the hot path
# The C half of `signal`: the Python module wraps signal numbers in enums, and
# enum with functools and collections costs ~3 ms of every job's start here
# (bench/: pingch overhead). Same functions and constants, as plain ints;
# mypy checks against the module's stubs.
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import NoReturn

USAGE = """\
usage: pingch [OPTIONS] [--] COMMAND [ARGS...]
       pingch -p PID [OPTIONS but -d and -o]

Runs COMMAND, records its start and finish in the notifyd spool and exits with
its status; the notifyd watcher sends the notification. A single argument with
shell syntax ('make && ./run > log') runs under bash -c.

  -t, --title TITLE     name of the job in the notification (default: the command)
  -g, --group NAME      put the job in group NAME (1-64 of A-Z a-z 0-9 . _ -)
      --notify WHEN     failure: tell only if it fails; none: record it, tell nobody;
                        all: always (default)
      --tail FILE       send the last lines of FILE (the job's log) with the notification
  -n, --lines N         how many lines --tail sends: 1 to 50 (default 10)
      --attach FILE     attach FILE to the notification where the service allows it
      --hide-command    keep the command line out of the notification; the default
                        title is then the program's name only
  -d, --detach          run the job in the background so it survives logout; prints
                        its job id and returns at once
  -o, --output FILE     with -d: append the job's output to FILE
                        (default: $STATE/joblogs/JOB_ID.log)
  -p, --pid PID         watch a running process instead of starting one
  -h, --help            show this help
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
EXIT_ERROR = 1  # pingch -d could not start the job (its log or the spawn failed)

GROUP_MAX = 64
NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
NOTIFY_WHEN = ("failure", "all", "none")
# --tail reads only the end of the file, backwards in blocks, so a job's
# multi-gigabyte log on NFS costs a few reads, never a scan.
TAIL_LINES = 10
TAIL_LINES_MAX = 50
TAIL_BLOCK = 8192
TAIL_READ_MAX = 65536
TAIL_LINE_MAX = 300
TAIL_FIELD_MAX = events.FIELD_LIMITS["tail"]
# The variables a job's thread count comes from: OpenMP, Slurm, Grid Engine.
CORES_VARS = ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK", "NSLOTS")
# Reading the kernel log for an OOM kill stops after this much: the lines
# for a job that just died are the newest, and pingch must stay cheap.
KMSG_READ_MAX = 1 << 20
# How the outer `pingch -d` hands the job to the pingch it starts; the inner
# one removes them from the environment so the job (or a pingch inside it)
# never sees them.
ENV_JOB_ID = "NOTIFYD_JOB_ID"
ENV_JOB_LOG = "NOTIFYD_JOB_LOG"
# The inner pingch of -d. Not `python -m`: that puts the working directory
# first on sys.path, where a user's events.py could shadow ours (as in launch.py).
# Only a leading '' goes: with PYTHONSAFEPATH there is none to remove.
_INNER_ENTRY = ("import sys; sys.path[:1] = [p for p in sys.path[:1] if p]; sys.argv[0] = 'pingch'; "
                "from notifyd.pingch.run import main; sys.exit(main())")


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
                start: float, cwd: str, opts: _Options, log: str = "") -> dict[str, object]:
    ev: dict[str, object] = {
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
    # In the start event too (the finish repeats it): the watcher needs the
    # group and the wish about notifying while the job still runs.
    if opts.group is not None:
        ev["group"] = opts.group
    if opts.notify != "all":
        ev["notify"] = opts.notify
    if opts.hide_command:
        ev["hide_command"] = True
    if log:
        ev["detached"] = True
        ev["log"] = log
    return ev


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


class _Options:
    """pingch's command line, parsed and checked."""

    def __init__(self) -> None:
        self.title: str | None = None
        self.pid: int | None = None
        self.group: str | None = None
        self.notify = "all"
        self.tail: str | None = None
        self.lines: int | None = None
        self.attach: str | None = None
        self.hide_command = False
        self.detach = False
        self.output: str | None = None
        self.command: list[str] = []
        # The options again without -d/-o: what the background pingch of -d is given.
        self.inner_args: list[str] = []


# Option name -> attribute, for options that take a value (`-t X`, `--title=X`).
_VALUED = {"-t": "title", "--title": "title", "-p": "pid", "--pid": "pid", "-g": "group",
           "--group": "group", "--notify": "notify", "--tail": "tail", "-n": "lines",
           "--lines": "lines", "--attach": "attach", "-o": "output", "--output": "output"}
_FLAGS = {"--hide-command": "hide_command", "-d": "detach", "--detach": "detach"}


def _parse_args(argv: list[str]) -> _Options:
    opts = _Options()
    values: dict[str, tuple[str, str]] = {}  # attribute -> (option as typed, value)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if arg in ("-h", "--help"):
            sys.stdout.write(USAGE)
            raise SystemExit(0)
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in _VALUED:
            taken = [arg]
            if not eq:
                if i + 1 >= len(argv):
                    _usage_error(f"{arg} needs a value")
                i += 1
                value = argv[i]
                taken.append(value)
            values[_VALUED[name]] = (name, value)
            if _VALUED[name] != "output":
                opts.inner_args += taken
        elif arg in _FLAGS:
            setattr(opts, _FLAGS[arg], True)
            if _FLAGS[arg] != "detach":
                opts.inner_args.append(arg)
        elif arg.startswith("-") and arg != "-":
            _usage_error(f"unknown option {arg!r} (put -- before a command that starts with '-')")
        else:
            break
        i += 1
    opts.command = argv[i:]
    _check_values(opts, values)
    return opts


def _check_values(opts: _Options, values: dict[str, tuple[str, str]]) -> None:
    """Turn the raw option values into opts' fields, or exit with a usage error."""
    for attr, (name, value) in values.items():
        if attr == "pid":
            if not (value.isascii() and value.isdigit()) or int(value) <= 0:
                _usage_error(f"{name} needs a process id (a positive number), not {value!r}")
            opts.pid = int(value)
        elif attr == "lines":
            if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= TAIL_LINES_MAX:
                _usage_error(f"{name} needs a number of lines from 1 to {TAIL_LINES_MAX}, not {value!r}")
            opts.lines = int(value)
        elif attr == "group":
            if not 1 <= len(value) <= GROUP_MAX or not NAME_CHARS.issuperset(value):
                _usage_error(f"{name} needs a group name of 1 to {GROUP_MAX} letters, digits, "
                             f"'.', '_' or '-', not {value!r}")
            opts.group = value
        elif attr == "notify":
            if value not in NOTIFY_WHEN:
                _usage_error(f"{name} takes failure, all or none, not {value!r}")
            opts.notify = value
        elif attr in ("tail", "attach", "output") and not value:
            _usage_error(f"{name} needs a file name")
        else:
            setattr(opts, attr, value)
    if opts.lines is not None and opts.tail is None:
        _usage_error("-n/--lines goes with --tail FILE")
    if opts.output is not None and not opts.detach:
        _usage_error("-o/--output goes with -d (a job in the foreground writes where your shell says)")
    if opts.detach and opts.pid is not None:
        _usage_error("-d starts a job in the background; it cannot follow a running -p PID")
    if opts.attach is not None:
        # Absolute now: the check at the job's end and the watcher need no cwd.
        opts.attach = os.path.normpath(os.path.join(_cwd(), opts.attach))


def _usage_error(message: str) -> NoReturn:
    sys.stderr.write(f"pingch: {message}\n{USAGE}")
    raise SystemExit(EXIT_USAGE)


def run_job(opts: _Options, spool: _Spool, job: str = "", log: str = "") -> int:
    """Run the job in the foreground; `job` and `log` come from `pingch -d` (else: a new id)."""
    command = opts.command
    if len(command) == 1 and SHELL_CHARS.intersection(command[0]):
        argv = ["bash", "-c", command[0]]
        shown = command[0]
    else:
        argv = command
        shown = " ".join(_quote(a) for a in command)
    # --hide-command: nothing of the command line but the program's name may
    # leave the machine (a snippet's program is bash).
    program = os.path.basename(argv[0]) or argv[0]
    if opts.hide_command:
        shown = ""
    title = opts.title or (program if opts.hide_command else _short_title(command))

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
    since = time.monotonic()
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ, setsigmask=old_mask,
                              setsigdef=PYTHON_IGNORES)
    except OSError as exc:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        code = EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else EXIT_CANNOT_EXECUTE
        reason = "command not found" if code == EXIT_NOT_FOUND else exc.strerror
        sys.stderr.write(f"pingch: {argv[0]}: {reason}\n")
        job = job or events.new_job_id(spool.host, os.getpid())
        base = _base_event(spool, "start", job=job, pid=os.getpid(), title=title, cmd=shown,
                           start=start, cwd=cwd, opts=opts, log=log)
        spool.finish(_finish(base, time.time(), start, exit=code, signal=None,
                             error=f"{program if opts.hide_command else argv[0]}: {reason}",
                             **_end_fields(opts, os.environ)))
        _ensure_watcher(spool)
        return code

    floor = _own_peak_rss()  # after the spawn: posix_spawn's own pages count too
    job = job or events.new_job_id(spool.host, pid)
    base = _base_event(spool, "start", job=job, pid=pid, title=title, cmd=shown, start=start, cwd=cwd,
                       opts=opts, log=log)
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
    extra = _end_fields(opts, os.environ)
    if sig == signal.SIGKILL and oom_killed(pid, since):
        extra["oom"] = True
    spool.finish(_finish(
        base, end, start,
        exit=None if sig is not None else code,
        signal=sig,
        maxrss_kb=usage.ru_maxrss,  # KiB on Linux: getrusage(2)
        maxrss_floor_kb=floor,
        cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
        **extra,
    ))
    return code


def _end_fields(opts: _Options, environ: Mapping[str, str]) -> dict[str, object]:
    """The finish event's fields read at the job's end: --tail, --attach, node memory, cores."""
    fields: dict[str, object] = {}
    if opts.tail is not None:
        fields["tail"] = read_tail(opts.tail, opts.lines or TAIL_LINES)
        fields["tail_file"] = opts.tail
    if opts.attach is not None:
        problem = _attach_problem(opts.attach)
        if problem:
            fields["attach_error"] = f"cannot attach {opts.attach}: {problem}"
        else:
            fields["attach"] = opts.attach
    mem = _mem_total_kb()
    if mem is not None:
        fields["mem_total_kb"] = mem
    cores = job_cores(environ)
    if cores is not None:
        fields["cores"] = cores
    return fields


def read_tail(path: str, lines: int) -> str:
    """The last `lines` lines of `path`, read from its end only; never raises.

    Blocks of TAIL_BLOCK bytes are read backwards with pread until enough
    newlines are seen or TAIL_READ_MAX bytes are read, so the size of the
    file does not matter. Lines longer than TAIL_LINE_MAX characters are cut
    and the oldest lines dropped until the text fits the event's field.
    """
    try:
        # O_NONBLOCK: a FIFO given by mistake must not hang the job's end.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return f"(cannot read {path}: {exc.strerror or exc})"
    chunks: list[bytes] = []
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return f"(cannot read {path}: not a regular file)"
        pos = end = st.st_size
        newlines = 0
        # A file ending in a newline needs one more: the one before the first line wanted.
        while pos > 0 and end - pos < TAIL_READ_MAX and newlines <= lines:
            size = min(TAIL_BLOCK, pos)
            block = os.pread(fd, size, pos - size)
            if len(block) != size:  # the file shrank while we read: keep the blocks we have
                break
            pos -= size
            chunks.append(block)
            newlines += block.count(b"\n")
    except OSError as exc:
        return f"(cannot read {path}: {exc.strerror or exc})"
    finally:
        os.close(fd)
    parts = b"".join(reversed(chunks)).decode("utf-8", errors="replace").split("\n")
    if parts[-1] == "":
        parts.pop()  # the newline that ends the last line
    cut_front = pos > 0 and len(parts) == 1  # one line longer than all we read: its end only
    if pos > 0 and len(parts) > 1:
        parts.pop(0)  # the part of a line whose start we did not read
    shown: list[str] = []
    size = -1
    for raw in reversed(parts[-lines:]):
        line = _as_shown(raw)
        if len(line) > TAIL_LINE_MAX:
            line = "…" + line[1 - TAIL_LINE_MAX:] if cut_front else line[: TAIL_LINE_MAX - 1] + "…"
        if size + 1 + len(line) > TAIL_FIELD_MAX:
            break  # the newest lines matter most: drop the oldest rather than cut the end
        size += 1 + len(line)
        shown.append(line)
    return "\n".join(reversed(shown))


def _as_shown(line: str) -> str:
    """A line as a terminal shows it: a progress bar's \r-overwritten states give their last."""
    line = line.rstrip("\r")
    return line.rsplit("\r", 1)[-1]


def _attach_problem(path: str) -> str:
    """Why `path` cannot be attached, or "" if it can."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if not os.access(path, os.R_OK):
        return "not readable"
    return ""


def _mem_total_kb() -> int | None:
    """The node's MemTotal from /proc/meminfo (KiB): what a job's peak RSS is measured against."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemTotal:"):
                    return int(line.split()[1])
    except (OSError, IndexError, ValueError):
        pass
    return None


def job_cores(environ: Mapping[str, str]) -> int | None:
    """The cores the job was meant to use, from the first of CORES_VARS that is a positive integer."""
    for name in CORES_VARS:
        value = environ.get(name, "").strip()
        if value.isascii() and value.isdigit() and int(value) > 0:
            return int(value)
    return None


def oom_killed(pid: int, since: float, kmsg: str = "/dev/kmsg") -> bool:
    """Does the kernel log say the OOM killer killed `pid` after `since` (time.monotonic())?

    False when it does not or cannot say: /dev/kmsg unreadable (dmesg_restrict,
    containers) or the record not within KMSG_READ_MAX bytes. O_NONBLOCK makes
    a read at the end of the log fail with EAGAIN instead of waiting for more.
    A record's time is microseconds since boot, as CLOCK_MONOTONIC counts; the
    check skips older records, which could name an earlier process of the same pid.
    """
    try:
        fd = os.open(kmsg, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    # The OOM killer's lines (mm/oom_kill.c): "Killed process PID (name) ..."
    # and "oom-kill:...,task=name,pid=PID,uid=...".
    wanted = (f"Killed process {pid} (".encode(), f",pid={pid},".encode())
    since_us = int((since - 1.0) * 1_000_000)  # a second of slack: the two clocks may drift
    read = 0
    try:
        while read < KMSG_READ_MAX:
            try:
                data = os.read(fd, 8192)
            except BrokenPipeError:
                # EPIPE: records we had not read yet were overwritten; the next
                # read goes on from the oldest one kept. Counted, so it cannot loop forever.
                read += 512
                continue
            except BlockingIOError:
                return False  # EAGAIN: the end of the log
            if not data:
                return False
            read += len(data)
            # /dev/kmsg gives one record per read ("prio,seq,usec,flags;text");
            # a plain file (as in the tests) gives many.
            for record in data.split(b"\n"):
                if not any(w in record for w in wanted):
                    continue
                try:
                    usec = int(record.split(b";", 1)[0].split(b",")[2])
                except (IndexError, ValueError):
                    continue
                if usec >= since_us:
                    return True
    except OSError:
        pass
    finally:
        os.close(fd)
    return False


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


def watch_pid(pid: int, opts: _Options, spool: _Spool) -> int:
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
    if opts.hide_command:
        title = opts.title or (os.path.basename(argv[0]) if argv else "") or f"pid {pid}"
        shown = ""
    else:
        title = opts.title or _short_title(argv or [shown])
    environ = _proc_environ(pid)  # now: a process's environment is unreadable once it is gone
    start = _boot_time() + int(start_ticks) / os.sysconf("SC_CLK_TCK")
    job = events.new_job_id(spool.host, pid)
    base = _base_event(spool, "start", job=job, pid=pid, title=title, cmd=shown, start=start, cwd=cwd,
                       opts=opts)
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
    extra = _end_fields(opts, environ)
    if stopped_by:
        names: dict[int, str] = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM",
                                 signal.SIGHUP: "SIGHUP"}
        name = names.get(stopped_by[0], f"signal {stopped_by[0]}")
        extra.update(unwatched=True,
                     error=f"pingch -p was stopped by {name}; pid {pid} may still be running")
    spool.finish(_finish(base, time.time(), start, exit=None, signal=None, exit_unknown=True,
                         maxrss_kb=maxrss, cpu_s=None if cpu is None else round(cpu, 3), **extra))
    return 128 + stopped_by[0] if stopped_by else 0


def _proc_environ(pid: int) -> dict[str, str]:
    """A process's environment as it was started (/proc/PID/environ); {} if unreadable."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        return {}
    pairs = (os.fsdecode(item).partition("=") for item in data.split(b"\0") if item)
    return {name: value for name, _, value in pairs}


def detach(opts: _Options, spool: _Spool) -> int:
    """pingch -d: start this pingch again in a session of its own and return at once.

    The job's pingch gets the job id from here (so it can be printed now), its
    own session (no controlling terminal: the hangup at logout cannot reach
    it), SIGHUP ignored for good measure, stdin from /dev/null and its output
    appended to the log.
    """
    job = events.new_job_id(spool.host, os.getpid())
    try:
        if opts.output is None:
            log = os.path.join(spool.state_dir, "joblogs", f"{job}.log")
            paths.ensure_private_dir(os.path.dirname(log), spool.state_dir)
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600)
        else:
            log = os.path.normpath(os.path.join(_cwd(), opts.output))
            # A file the user names is created as a shell's `>> FILE` would create it.
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        target = opts.output or os.path.join(spool.state_dir, "joblogs")
        sys.stderr.write(f"pingch: cannot open {target} for the job's output: {exc.strerror or exc}; "
                         "the job was not started (name another file with -o FILE)\n")
        return EXIT_ERROR
    actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, fd, 1),
        (os.POSIX_SPAWN_DUP2, fd, 2),
    ]
    # Descriptors the caller let us inherit stay behind: a job holding, say,
    # a pipe of the ssh session would keep that session from closing.
    try:
        inherited = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        inherited = []
    for n in inherited:
        try:
            if n > 2 and os.get_inheritable(n):
                actions.append((os.POSIX_SPAWN_CLOSE, n))
        except OSError:
            pass  # the descriptor listdir itself used, already closed
    argv = [sys.executable, "-c", _INNER_ENTRY, *opts.inner_args, "--", *opts.command]
    env = {**os.environ, ENV_JOB_ID: job, ENV_JOB_LOG: log}
    # The child inherits an ignored SIGHUP, and the job pingch starts keeps it
    # ignored (see run_job); a handler would be reset by exec.
    old_hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        os.posix_spawn(sys.executable, argv, env, file_actions=actions, setsid=True)
    except OSError as exc:
        sys.stderr.write(f"pingch: cannot start the job in the background: {exc}\n")
        return EXIT_ERROR
    finally:
        signal.signal(signal.SIGHUP, old_hup)
        os.close(fd)
    sys.stderr.write(f"pingch: started {job} in the background; output in {log}\n")
    sys.stdout.write(f"{job}\n")
    return 0


def _handed_over() -> tuple[str, str]:
    """(job id, log) from the `pingch -d` that started this one, taken out of the environment.

    Removed so the job does not inherit them: a pingch inside the job is
    another job. An id that is not made of a host name's characters is ignored.
    """
    job = os.environ.pop(ENV_JOB_ID, "")
    log = os.environ.pop(ENV_JOB_LOG, "")
    if not 0 < len(job) <= 200 or not NAME_CHARS.issuperset(job):
        job = ""
    return job, log


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    opts = _parse_args(args)
    job, log = _handed_over()
    spool = _Spool()
    if opts.pid is not None:
        if opts.command:
            _usage_error("give either -p PID or a COMMAND, not both")
        return watch_pid(opts.pid, opts, spool)
    if not opts.command:
        _usage_error("no COMMAND given")
    if opts.detach:
        return detach(opts, spool)
    return run_job(opts, spool, job=job, log=log)


if __name__ == "__main__":
    sys.exit(main())
