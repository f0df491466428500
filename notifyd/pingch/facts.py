"""What pingch reads about a job besides its exit: the tail of its log, an attachment's state,
the node's memory, its cores, an OOM kill in the kernel log, and the directory it runs in.

Each of these is best effort and never raises: a fact that cannot be read is
left out of the finish event, or says why in its own words.
"""

import os
import stat

from notifyd import procfs
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
