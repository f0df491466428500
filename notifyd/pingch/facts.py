"""What pingch reads about a job besides its exit: the tail of its log, an attachment's state,
the node's memory, its cores, an OOM kill in the kernel log, and the directory it runs in;
and at the start, whether the node is already busy.

Each of these is best effort and never raises: a fact that cannot be read is
left out of the finish event, or says why in its own words.

The busy node (warn_if_busy, at the end of this module):

    $ pingch ./relax 20G
    pingch: node3 is busy: load 31.8/16 cores, 6 % mem free; notifyd nodes --free

Busy: available memory under `[pressure] warn_mem` of the total (10 % by
default), or a 1-minute load over 1.5 times the node's cores. The job runs
all the same and never waits for it: the check comes after the spawn and
reads two small files of /proc (procfs.node_figures). It lives here, not in
a module of its own, because a module's import would cost a job as much
again as the check (bench/: busy-node check). pingch cannot afford to parse
the config either (configparser alone costs more than the whole check), so
the watcher, which has it parsed, writes what pingch needs into
`$STATE/pingch.conf` at its start and at each reload (write_settings: the
format's writer beside its reader), and pingch reads it with one open and
one read. Without the file (no watcher yet) the defaults apply;
`NOTIFYD_BUSY_WARNING=0` turns the line off for one shell.
"""

import os
import stat
import sys

from notifyd import fsutil, procfs
from notifyd.spool import events

TYPE_CHECKING = False  # typing/collections.abc stay off the hot path
if TYPE_CHECKING:
    from collections.abc import Mapping

    from notifyd.pingch.options import Options

# --tail reads only the end of the file, backwards in blocks, so a job's
# multi-gigabyte log on NFS costs a few reads, never a scan.
TAIL_LINES = 10
TAIL_BLOCK = 8192
TAIL_READ_MAX = 65536
TAIL_LINE_MAX = 300
TAIL_FIELD_MAX = events.FIELD_LIMITS["tail"]
# The variables a job's thread count comes from: OpenMP, Slurm, Grid Engine.
CORES_VARS = ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK", "NSLOTS")
# Reading the kernel log for an OOM kill stops after this much: the lines
# for a job that just died are the newest, and pingch must stay cheap.
KMSG_READ_MAX = 1 << 20
# The busy node's line (warn_if_busy).
SETTINGS_FILE = "pingch.conf"
DEFAULT_WARN_MEM = 10.0  # percent of the node's memory; config.py's default says the same
LOAD_PER_CORE = 1.5
ENV_BUSY_OFF = "NOTIFYD_BUSY_WARNING"
OFF_WORDS = frozenset({"0", "no", "off", "false"})
# Where the node's files are read from: another directory in the tests only.
ENV_PROC = "NOTIFYD_TEST_PROC_ROOT"


def working_dir() -> str:
    """The current directory; $PWD (or '?') when it was removed under us."""
    try:
        return os.getcwd()
    except OSError:
        return os.environ.get("PWD", "?")


def end_fields(opts: "Options", environ: "Mapping[str, str]") -> dict[str, object]:
    """The finish event's fields read at the job's end: --tail, --attach, node memory, cores."""
    fields: dict[str, object] = {}
    if opts.tail is not None:
        fields["tail"] = read_tail(opts.tail, opts.lines or TAIL_LINES)
        fields["tail_file"] = opts.tail
    if opts.attach is not None:
        problem = attach_problem(opts.attach)
        if problem:
            # --hide-command: the file's name only, as the message shows it (notify/message.py).
            named = os.path.basename(opts.attach) if opts.hide_command else opts.attach
            fields["attach_error"] = f"cannot attach {named}: {problem}"
        else:
            fields["attach"] = opts.attach
    mem = procfs.mem_total_kb()  # what a job's peak RSS is measured against
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


def attach_problem(path: str) -> str:
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


def job_cores(environ: "Mapping[str, str]") -> int | None:
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


# -- at the start: is the node already busy? ------------------------------------------------------
def settings_path(state_dir: str) -> str:
    return os.path.join(state_dir, SETTINGS_FILE)


def write_settings(state_dir: str, start_warning: bool, warn_mem: float) -> None:
    """The watcher's side: `[pressure]` as pingch reads it (temp + rename; OSError if it cannot)."""
    data = f"start_warning={'yes' if start_warning else 'no'}\nwarn_mem={warn_mem:g}\n".encode()
    path = settings_path(state_dir)
    fsutil.atomic_write(path, data, f"{path}.tmp")


def read_settings(state_dir: str) -> "tuple[bool, float]":
    """(warn at start, warn_mem percent) from the watcher's file; the defaults where it says nothing."""
    on, warn_mem = True, DEFAULT_WARN_MEM
    data = fsutil.read_head(settings_path(state_dir), 1024) if state_dir else b""
    for line in data.decode("ascii", "replace").splitlines():
        key, _, value = line.partition("=")
        if key == "start_warning" and value in ("yes", "no"):
            on = value == "yes"
        elif key == "warn_mem" and value.replace(".", "", 1).isdigit() and float(value) <= 100:
            warn_mem = float(value)
    return on, warn_mem


def proc_root() -> str:
    return os.environ.get(ENV_PROC) or "/proc"


def busy_line(host: str, figures: "dict[str, float]", warn_mem: float) -> str:
    """The warning for a node with these figures (procfs.node_figures), or "" if it is not busy.

    A figure that could not be read judges nothing and is not shown.
    """
    total, avail = figures.get("mem_total_kb", 0), figures.get("mem_avail_kb")
    load, cores = figures.get("load1"), figures.get("cores")
    free = 100.0 * avail / total if total > 0 and avail is not None else None
    short_of_memory = free is not None and free < warn_mem
    overloaded = load is not None and cores is not None and load > LOAD_PER_CORE * cores
    if not (short_of_memory or overloaded):
        return ""
    said = []
    if load is not None and cores is not None:
        said.append(f"load {load:.1f}/{cores:.0f} cores")
    if free is not None:
        # Rounded down, so that 9.6 % under a warn_mem of 10 % never reads "10 %".
        said.append(f"{int(free)} % mem free" if free >= 1 else f"{free:.1f} % mem free")
    # Within 80 columns for a host name of up to 8 characters.
    return f"pingch: {host} is busy: {', '.join(said)}; notifyd nodes --free\n"


def warn_if_busy(host: str, state_dir: str) -> None:
    """Print the busy line on stderr when this node is busy and the warning is on; never raises."""
    try:
        if os.environ.get(ENV_BUSY_OFF, "").strip().lower() in OFF_WORDS:
            return
        on, warn_mem = read_settings(state_dir)
        if not on:
            return
        line = busy_line(host, procfs.node_figures(proc_root()), warn_mem)
        if line:
            sys.stderr.write(line)
            sys.stderr.flush()
    except Exception:
        pass  # a warning that cannot be given changes nothing for the job
