"""What pingch writes for the watcher: this host's events, its liveness marks, and the events' fields;
and a watcher started when none runs to read them.

Events stay plain dicts (the wire format is spool/events.py's; docs/EVENTS.md
lists the fields). Nothing here raises because of the spool: a job is never
stopped or changed by notification trouble, the user is warned once instead.
"""

import os
import sys
import time

from notifyd import fsutil, paths, procfs
from notifyd.spool import events, wake

TYPE_CHECKING = False  # typing/collections.abc stay off the hot path
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from notifyd.pingch.options import Options

# Characters that make a lone argument a shell snippet rather than a program name.
SHELL_CHARS = frozenset(" \t\n|&;<>()$`\\\"'*?[]#~=%{}!")
TITLE_MAX = 80
# lease.TIMEOUT_MAX, not imported: the lease module stays off pingch's path
# (tests/pingch/test_record.py holds the two together).
LEASE_TIMEOUT_MAX = 86400.0 * 365


class HostRecorder:
    """This host's side of the spool: events, liveness marks, a watcher if none runs; warns once."""

    def __init__(self) -> None:
        self.host = paths.host_name()
        self.warned = False
        # Set when the quick look at the lease found no watcher: only then is
        # the note of why none can start looked at, at the start and the end.
        self.no_watcher = False
        try:
            self.state_dir = paths.state_dir_str()
        except paths.NoHome as exc:
            # No state dir to write to: the job runs, nothing is recorded (and
            # nothing created in the job's directory); said once, here.
            self.state_dir = ""
            self.warn(f"{exc}; the job runs on, but no notification will come for it")
        self.path = paths.spool_file_str(self.state_dir, self.host) if self.state_dir else ""

    def append(self, event: dict[str, object]) -> None:
        if not self.state_dir:
            return
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
        if self.state_dir:
            wake.poke(self.state_dir, self.host)
        if self.no_watcher:
            # The watcher spawned at the start may have failed since.
            self.tell_cannot_start()

    def _in_state_dir(self, write: "Callable[[str, bytes], None]", path: str, data: bytes) -> None:
        """write(path, data), creating its directory (0700) the first time it is missing."""
        try:
            write(path, data)
        except FileNotFoundError:
            paths.ensure_private_dir(os.path.dirname(path), self.state_dir)
            write(path, data)

    def mark_alive(self, proc: str = "/proc") -> None:
        """Rewrite alive/<host>: its mtime (set by the file server) is the mark, its line the node's
        memory, swap and load (spool/alive.py), for a watcher that has no snapshot of this node.
        """
        if not self.state_dir:
            return
        try:
            # Loaded here, a minute into a job: most jobs end before their first mark.
            from notifyd.spool import alive

            line = alive.encode(procfs.node_figures(proc))
        except Exception:  # (notifyd downgraded under a running job): the mtime still counts
            line = b"1\n"
        try:
            self._in_state_dir(fsutil.write_new, paths.alive_file_str(self.state_dir, self.host), line)
        except Exception:
            pass  # a missed mark only makes the host look quieter

    def ensure_watcher(self) -> int:
        """Start a watcher in the background unless one looks alive. Returns its pid or 0."""
        if not self.state_dir:
            return 0
        try:
            if watcher_looks_alive(paths.lease_dir_str(self.state_dir), self.host):
                return 0
            # Loaded only now, at the job's start: the lease and launch code
            # cost ~0.5 ms of every job, and most jobs find a watcher running.
            from notifyd.watcher import launch

            self.no_watcher = True
            self.tell_cannot_start()
            return launch.start_watcher(self.state_dir, self.host, careful=False)
        except Exception as exc:
            self.warn(f"cannot start the notifyd watcher: {exc}")
            return 0

    def tell_cannot_start(self) -> None:
        """One line on stderr if the last watcher on this host could not start, once per cause.

        Its cause (an unsafe config, say) is otherwise only in the watcher's
        log, and every job would end with no word that nobody is told.
        """
        try:
            from notifyd.watcher import launch

            cause = launch.take_cause(paths.lease_dir_str(self.state_dir), self.host)
            if cause:
                sys.stderr.write(f"pingch: no notifyd watcher can start on {self.host}: {cause}; "
                                 "your jobs are recorded and told once one runs (after the fix: "
                                 "notifyd ensure)\n")
                sys.stderr.flush()
        except Exception:
            pass  # a note that cannot be read changes nothing for the job

    def warn(self, message: str) -> None:
        if not self.warned:
            self.warned = True
            try:
                sys.stderr.write(f"pingch: warning: {message}\n")
                sys.stderr.flush()
            except Exception:
                pass


def watcher_looks_alive(lease_dir: str, host: str) -> bool:
    """lease.quick_live's answer in the common case, without loading the lease code.

    True only where quick_live says True, and stricter: the newest lease.N is
    not released, and its holder is this host's process with the start time it
    recorded, or another host's that rewrote the file within 3 timeouts. Any
    doubt (no lease, a field missing or odd, a takeover racing the read) is
    False, and lease.py judges as always (tests/pingch/test_record.py holds
    the two together).
    """
    try:  # lease.<N> files: lease.PREFIX and lease._generations
        gens = [int(n[6:]) for n in os.listdir(lease_dir) if n.startswith("lease.") and n[6:].isdigit()]
        if not gens:
            return False
        fd = os.open(os.path.join(lease_dir, f"lease.{max(gens)}"), os.O_RDONLY | os.O_NOFOLLOW)
        try:
            data = os.read(fd, 4096)
            mtime = os.fstat(fd).st_mtime
        finally:
            os.close(fd)
        fields = {}
        for line in data.decode("utf-8", "replace").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                fields[key] = value
        if fields.get("released") != "0":
            return False
        if fields.get("host") == host:
            pid_start = fields.get("pid_start", "")
            return bool(pid_start) and procfs.start_ticks(int(fields["pid"])) == pid_start
        timeout = float(fields["timeout"])  # garbled (inf, nan, <= 0): lease.py judges it
        return 0 < timeout <= LEASE_TIMEOUT_MAX and time.time() - mtime < 3 * timeout
    except (OSError, KeyError, ValueError):
        return False


def short_title(argv: list[str]) -> str:
    text = " ".join(argv)
    return text if len(text) <= TITLE_MAX else text[: TITLE_MAX - 1] + "…"


def quote(arg: str) -> str:
    """arg as a shell would need it written (for the command line shown in the notification)."""
    if arg and not SHELL_CHARS.intersection(arg):
        return arg
    return "'" + arg.replace("'", "'\"'\"'") + "'"


def start_event(recorder: HostRecorder, *, job: str, pid: int, title: str, cmd: str, start: float,
                cwd: str, opts: "Options", log: str = "") -> dict[str, object]:
    """The start event; the finish event repeats all of it (see finish_event)."""
    ev: dict[str, object] = {
        "v": events.SCHEMA_VERSION,
        "ev": "start",
        "job": job,
        "user": paths.user_name(),
        "host": recorder.host,
        "pid": pid,
        "title": title,
        "cmd": cmd,
        # --hide-command keeps private paths home too: the directory is one.
        "cwd": "" if opts.hide_command else cwd,
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
    ev.update(slurm_ids(os.environ))
    return ev


def slurm_ids(environ: "Mapping[str, str]") -> dict[str, object]:
    """Where SLURM runs the job (inside an sbatch script): its ids, so the watcher tells it once.

    The watcher joins this job's finish with the scheduler's end of the same
    job (watcher/sources/slurm.py). Nothing outside SLURM: {}.
    """
    raw = environ.get("SLURM_JOB_ID", "")
    if not _number(raw):
        return {}
    array, task = environ.get("SLURM_ARRAY_JOB_ID", ""), environ.get("SLURM_ARRAY_TASK_ID", "")
    ids: dict[str, object] = {"slurm_raw": int(raw),
                              "slurm_job": f"{array}_{task}" if _number(array) and _number(task) else raw}
    if _number(array) and _number(task):
        ids["slurm_array"], ids["slurm_task"] = int(array), task
    for key, var in (("slurm_step", "SLURM_STEP_ID"), ("slurm_cluster", "SLURM_CLUSTER_NAME"),
                     ("slurm_node", "SLURMD_NODENAME"), ("slurm_partition", "SLURM_JOB_PARTITION")):
        if environ.get(var):
            ids[key] = environ[var][:100]
    cpus = environ.get("SLURM_CPUS_PER_TASK") or environ.get("SLURM_CPUS_ON_NODE") or ""
    if _number(cpus):
        ids["slurm_cpus"] = int(cpus)
    mem = environ.get("SLURM_MEM_PER_NODE", "")
    if _number(mem):
        ids["slurm_mem_mb"] = int(mem)
    return ids


def _number(text: str) -> bool:
    """ASCII digits, short enough for the event's range (str.isdigit also takes '²', which int() refuses)."""
    return text.isascii() and text.isdigit() and len(text) <= 18


def finish_event(start_ev: dict[str, object], end: float, start: float,
                 **fields: object) -> dict[str, object]:
    """The start event's fields, then the end's: when, how long, and `fields` (exit, usage, ...)."""
    ev = dict(start_ev)
    ev.update(ev="finish", end=events.iso_time(end), ts=round(end, 3),
              duration=round(end - start, 3))
    ev.update(fields)
    return ev
