"""A real single-node SLURM cluster for the tests, started and stopped by the suite itself (as root).

    lab = SlurmLab().start(LabConfig(min_job_age=600))
    job = lab.submit("exit 3")                    # sbatch --wrap, as the test user
    lab.wait_state(job, "FAILED")                 # -> 'FAILED'
    lab.job_info(job)["ExitCode"]                 # -> '3:0'
    lab.restart(accounting=True, min_job_age=30)  # MariaDB + slurmdbd as well
    lab.stop()                                    # every daemon it started, and only those

Everything lives under one directory of its own (`/tmp/notifyd-slurmlab` by
default), never in /etc/slurm or /run: the config files (`etc/`), a private
munged (its own socket: `AuthInfo=socket=...` points the daemons and the
clients at it, and `AccountingStoragePass=<socket>` the connections to
slurmdbd, which do not read AuthInfo), the controller's state, slurmd's
spool, a private MariaDB datadir on 127.0.0.1, the logs (`log/`) and the test
user's home (`home/notifydtest`). The daemons get both `-f etc/slurm.conf`
and `SLURM_CONF`: slurmdbd has no `-f`, and `slurmdbd.conf` and
`cgroup.conf` are looked up beside `SLURM_CONF`. The clients need only
`SLURM_CONF`. The ports are free ones picked at each start, so a site's SLURM
on the default ports is left alone.

The daemons run in the foreground (`-D`, `-F`) as children of the test
process: their pids are ours, never read back from a pid file (slurmctld and
slurmdbd leave stale ones: shared/design/slurm-facts.md §2.2), and a daemon that
dies while starting is noticed at once, with its log in the error. Every wait
is bounded. Stopping cancels every job first and waits for the node to be
idle: a job's slurmstepd detaches from slurmd and would outlive it. A
session that was killed before it could stop its daemons leaves their pids
in `run/daemons`; the next start stops those that still run that daemon (by
name) with this lab's directory in their command line or environment. One
session at a time holds the lab (`flock` on `lock`). The first start of a
`SlurmLab` wipes the previous session's controller state, spool and logs (and
its first start with accounting the accounting database), so job ids start
at 1; restarts keep them, so ids keep growing and sacct never sees one twice.

The test user (`notifydtest`, created once with `useradd`, home under the
lab's directory) runs commands with a clean environment: HOME, USER, PATH
with this venv's bin first, SLURM_CONF, LANG and TZ, as
`runuser -u notifydtest -- env -i ...` would give, but set up by subprocess
itself (`user=`, `group=`, `extra_groups=`) so that a timeout kills the
command and not a runuser in between. It must be able to run this venv's
python, the interpreter that python links to, and read the checkout (an
editable install imports from it). A clean clone in /tmp (`git clone .
/tmp/x`, as CI does) is readable by anyone, but the interpreter may not be:
on the CI image it is pyenv's, under /root (0700). So for the session the
lab adds the search bit for others (`o+x`, never read) to each directory on
those paths that lacks it, and puts the old mode back at `stop()`. At start
it checks that the test user can `import notifyd` with the venv's python,
and says what to do when it cannot.

Measured on the 2-core Debian 12 VM: a start without accounting takes 0.3 s,
a restart with MariaDB and slurmdbd 1.3-1.6 s (plus ~1 s the first time, for
mariadb-install-db), a stop ~2 s; a batch job starts ~1 s after sbatch.
Standard library only; pytest appears only in tests/slurm/conftest.py.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import fcntl
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ROOT = Path("/tmp/notifyd-slurmlab")
TEST_USER = "notifydtest"
SLURM_USER = "slurm"  # made by the Debian packages (uid 64030)
MUNGE_USER = "munge"
MYSQL_USER = "mysql"
DB_PASSWORD = "notifyd-lab"  # a throwaway MariaDB that listens on 127.0.0.1 only
CLUSTER = "lab"

# What each part needs, and the Debian package that has it (tests/system-deps.sh).
_NEEDS = (("/usr/sbin/slurmctld", "slurmctld"), ("/usr/sbin/slurmd", "slurmd"),
          ("/usr/bin/sbatch", "slurm-client"), ("/usr/sbin/munged", "munge"))
_NEEDS_ACCOUNTING = (("/usr/sbin/slurmdbd", "slurmdbd"), ("/usr/sbin/mariadbd", "mariadb-server"),
                     ("/usr/bin/mariadb-install-db", "mariadb-server"))

START_TIMEOUT = 30.0  # for each daemon; they come up in well under 2 s here
STOP_TIMEOUT = 10.0   # then SIGKILL


class LabError(Exception):
    """The lab could not do what was asked; the message names the daemon, the log and the cause."""


def missing(accounting: bool = True) -> str:
    """What this machine lacks to run the lab, and who provides it ('' when nothing)."""
    if os.geteuid() != 0:
        return "root (it starts slurmctld, slurmd and munged, and creates a test user)"
    needs = _NEEDS + (_NEEDS_ACCOUNTING if accounting else ())
    lacks = []
    packages = sorted({pkg for path, pkg in needs if not os.access(path, os.X_OK)})
    if packages:
        lacks.append(f"the Debian packages {' '.join(packages)} (tests/system-deps.sh installs them as root)")
    for user in (SLURM_USER, MUNGE_USER) + ((MYSQL_USER,) if accounting else ()):
        try:
            pwd.getpwnam(user)
        except KeyError:
            lacks.append(f"the user {user} (its Debian package makes it)")
    return ", ".join(lacks)


# -- what the lab runs: its config -------------------------------------------------------------
@dataclass(frozen=True)
class Partition:
    """One `PartitionName=` line on the lab's node; `options` are appended as given."""

    name: str
    default: bool = False
    options: str = ""  # e.g. "PriorityTier=2" for a `high` partition that preempts

    def line(self, node: str) -> str:
        default = " Default=YES" if self.default else ""
        extra = f" {self.options}" if self.options else ""
        return f"PartitionName={self.name} Nodes={node}{default} MaxTime=INFINITE State=UP{extra}"


@dataclass(frozen=True)
class LabConfig:
    """What a start of the lab sets; `restart(**changes)` replaces fields of the current one."""

    accounting: bool = False       # slurmdbd + MariaDB, so that sacct answers
    min_job_age: int = 300         # seconds a finished job stays in squeue/scontrol
    partitions: tuple[Partition, ...] = (Partition("debug", default=True),)
    cgroup: bool | None = None     # None: task/cgroup where the memory controller is usable
    extra: tuple[str, ...] = ()    # more slurm.conf lines, e.g. "PreemptType=preempt/partition_prio"


@dataclass(frozen=True)
class Node:
    """This machine as slurm.conf describes it."""

    name: str
    cpus: int
    memory_mb: int


def this_node() -> Node:
    """`hostname -s`, the CPUs and the MemTotal slurmd will find (it drains a node that claims more)."""
    name = socket.gethostname().split(".")[0]
    with open("/proc/meminfo") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    return Node(name, os.cpu_count() or 1, kib // 1024)


def cgroup_v1_memory() -> str:
    """'' when slurm's cgroup/v1 plugin can use the memory and freezer controllers here, else why not.

    The Debian 12 VM mounts each v1 controller under a tmpfs /sys/fs/cgroup
    (plus a cgroup2 `unified` mount); a v2-only host, a container with a
    read-only cgroupfs or a disabled controller falls back to linuxproc.
    """
    try:
        with open("/proc/cgroups") as f:
            enabled = {cols[0]: cols[3] == "1" for cols in (line.split() for line in f)
                       if len(cols) == 4 and not cols[0].startswith("#")}
    except OSError as e:
        return f"no /proc/cgroups ({e.strerror})"
    mounts: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            _, _, rest = line.partition(" - ")
            fstype, _, options = [*rest.split(), "", "", ""][:3]
            if fstype == "cgroup":
                for controller in ("memory", "freezer"):
                    if controller in options.split(","):
                        mounts[controller] = line.split()[4]
    for controller in ("memory", "freezer"):
        if not enabled.get(controller):
            return f"the {controller} controller is not enabled (/proc/cgroups)"
        if mounts.get(controller) != f"/sys/fs/cgroup/{controller}":
            return f"no cgroup v1 {controller} hierarchy at /sys/fs/cgroup/{controller}"
    probe = Path("/sys/fs/cgroup/memory") / f"notifyd-slurmlab-probe-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as e:
        return f"cannot make a memory cgroup ({probe}: {e.strerror})"
    return ""


@dataclass(frozen=True)
class Ports:
    slurmctld: int
    slurmd: int
    slurmdbd: int
    mariadb: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def slurm_conf(config: LabConfig, node: Node, root: Path, ports: Ports, cgroup: bool,
               *, ctld_host: str = "", message_timeout: int = 0) -> str:
    """The lab's slurm.conf text (a pure function of its arguments)."""
    host = ctld_host or node.name
    plugins = ("ProctrackType=proctrack/cgroup\nTaskPlugin=task/cgroup,task/affinity\n" if cgroup
               else "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n")
    munge_socket = root / "munge" / "munge.socket"
    # Toward slurmdbd, slurmctld and the clients take the munge socket from
    # AccountingStoragePass ("a MUNGE daemon specifically configured ...",
    # man slurm.conf), not from AuthInfo: without it they try /run/munge.
    storage = (f"AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=localhost\n"
               f"AccountingStoragePort={ports.slurmdbd}\nAccountingStoragePass={munge_socket}\n"
               if config.accounting else "AccountingStorageType=accounting_storage/none\n")
    # Under CR_Core_Memory a job without --mem would take the whole node's memory.
    def_mem = max(1, min(1024, node.memory_mb // node.cpus))
    lines = [
        "# Written by tests/slurmlab.py: the notifyd test lab, one node, this host.",
        f"ClusterName={CLUSTER}",
        f"SlurmctldHost={host}",
        f"SlurmctldPort={ports.slurmctld}",
        f"SlurmdPort={ports.slurmd}",
        f"SlurmUser={SLURM_USER}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={munge_socket}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'run' / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'run' / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",  # slurmstepd logs here too
        plugins.rstrip("\n"),
        "ReturnToService=2",
        "SchedulerType=sched/backfill",
        # A batch job waits up to 3 s (the default batch_sched_delay) before it is scheduled;
        # with 0 it starts on the controller's next tick, ~1 s after sbatch.
        "SchedulerParameters=batch_sched_delay=0",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        f"DefMemPerCPU={def_mem}",
        "JobAcctGatherType=jobacct_gather/linux",
        "JobAcctGatherFrequency=task=2",
        storage.rstrip("\n"),
        f"MinJobAge={config.min_job_age}",
        "MpiDefault=none",  # Debian's pmix plugin fails to load its library and says so at each start
        "MailProg=/bin/true",  # the default /bin/mail is absent: slurmctld would log an error
        *( [f"MessageTimeout={message_timeout}"] if message_timeout else []),
        *config.extra,
        f"NodeName={node.name} CPUs={node.cpus} RealMemory={node.memory_mb} State=UNKNOWN",
        *(p.line(node.name) for p in config.partitions),
    ]
    return "\n".join(lines) + "\n"


CGROUP_CONF = "CgroupPlugin=cgroup/v1\nConstrainRAMSpace=yes\n"


def slurmdbd_conf(root: Path, ports: Ports) -> str:
    return "\n".join([
        "# Written by tests/slurmlab.py: the notifyd test lab's accounting daemon.",
        "AuthType=auth/munge",
        f"AuthInfo=socket={root / 'munge' / 'munge.socket'}",
        "DbdHost=localhost",
        f"DbdPort={ports.slurmdbd}",
        f"SlurmUser={SLURM_USER}",
        "StorageType=accounting_storage/mysql",
        "StorageHost=127.0.0.1",  # "localhost" would mean the system's MariaDB socket
        f"StoragePort={ports.mariadb}",
        f"StorageUser={SLURM_USER}",
        f"StoragePass={DB_PASSWORD}",
        "StorageLoc=slurm_acct_db",
        f"LogFile={root / 'log' / 'slurmdbd.log'}",
        f"PidFile={root / 'run' / 'slurmdbd.pid'}",
    ]) + "\n"


# -- what the lab shows -------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueRow:
    """One line of `squeue --me -t all` as the test user sees it."""

    job_id: str  # %i: "12", or "7_3" for an array task
    state: str   # %T: COMPLETED, FAILED, ...
    reason: str  # %r: None, NonZeroExitCode, ...
    name: str    # %j, last: it may hold any character


_US = "\x1f"  # ASCII unit separator: never in a job name (Open OnDemand does the same)
_SQUEUE_FORMAT = _US.join(("%i", "%T", "%r", "%j"))


@dataclass
class Daemon:
    """A daemon the lab started, in the foreground, as its child."""

    name: str  # also its /proc/PID/comm
    proc: subprocess.Popen[bytes]
    log: Path  # its own log file
    out: Path  # its stdout and stderr (what it says before its log is open)

    def tail(self, lines: int = 15) -> str:
        parts = []
        for path in dict.fromkeys((self.log, self.out)):
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            if text:
                parts.append(f"--- {path}:\n" + "\n".join(text))
        return "\n".join(parts) or f"(nothing in {self.log} nor {self.out})"


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _mentions(pid: int, text: str) -> bool:
    """Whether the process's command line or environment names `text`."""
    for part in ("cmdline", "environ"):
        try:
            if text.encode() in Path(f"/proc/{pid}/{part}").read_bytes():
                return True
        except OSError:
            pass
    return False


def _terminate(pids: Iterable[int], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM to each, then SIGKILL to those left after `timeout`.

    slurmd retrying a controller that is gone ignores SIGTERM for minutes
    (shared/design/slurm-facts.md §2.2). A pid that is not our child is polled in /proc.
    """
    left = set()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            left.add(pid)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        for pid in list(left):
            try:
                done = os.waitpid(pid, os.WNOHANG)[0] == pid
            except ChildProcessError:
                done = not Path(f"/proc/{pid}").exists()
            if done:
                left.discard(pid)
        time.sleep(0.02)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


@dataclass
class Timings:
    """How long each start and stop took, for the session's summary."""

    stages: dict[str, float] = field(default_factory=dict)  # the last start: stage -> seconds from t0
    stops: dict[str, float] = field(default_factory=dict)   # the last stop: daemons -> seconds taken
    history: list[tuple[str, float]] = field(default_factory=list)  # (what, seconds)

    def summary(self) -> str:
        return "; ".join(f"{what} {secs:.1f} s" for what, secs in self.history)


class SlurmLab:
    """A single-node SLURM cluster under `root`, and a non-root test user to submit jobs as."""

    def __init__(self, root: Path = ROOT, user: str = TEST_USER, venv: Path | None = None) -> None:
        self.root = root
        self.user = user
        self.venv = venv or Path(sys.prefix)
        self.node = this_node()
        self.config = LabConfig()
        self.uses_cgroup = False  # proctrack/cgroup + task/cgroup in the running config
        self.cgroup_note = ""     # why the memory controller is not usable here ('' when it is)
        self.timings = Timings()
        self._daemons: dict[str, Daemon] = {}
        self._ports: Ports | None = None
        self._lock: int | None = None
        self._fresh = True        # the first start of this object wipes the previous session's state
        self._db_fresh = True     # and the first start with accounting its database
        self._granted: list[tuple[Path, int]] = []  # directories given o+x, with their old mode

    # -- where things are ----------------------------------------------------------------------
    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def home(self) -> Path:
        return self.root / "home" / self.user

    @property
    def logs(self) -> Path:
        return self.root / "log"

    @property
    def min_job_age(self) -> int:
        return self.config.min_job_age

    @property
    def accounting(self) -> bool:
        return self.config.accounting

    @property
    def running(self) -> dict[str, int]:
        """Each daemon the lab started and that still runs: name -> pid."""
        return {name: d.proc.pid for name, d in self._daemons.items() if d.proc.poll() is None}

    # -- start and stop ------------------------------------------------------------------------
    def start(self, config: LabConfig | None = None) -> SlurmLab:
        """Start munged, (MariaDB, slurmdbd,) slurmctld and slurmd with `config`; wait for an idle node.

        A start of a running lab is a restart: every job is cancelled, slurmd
        and slurmctld (and slurmdbd, when accounting goes) are stopped and
        started again; munged and MariaDB keep running. The controller keeps
        its state, so job ids go on growing and sacct never sees one twice.
        """
        config = config or self.config
        lacking = missing(accounting=config.accounting)
        if lacking:
            raise LabError(f"the SLURM lab needs {lacking}")
        t0 = time.monotonic()
        self.timings.stages, self.timings.stops = {}, {}
        what = "restart" if self.running else "start"
        if self._lock is None:
            self._take_lock()
            self._stop_leftovers()
            atexit.register(self.stop)
            self._make_dirs()
            self._ensure_user()
        self._stop_slurm(keep_dbd=config.accounting)
        self.config = config
        try:
            self._start_daemons(t0)
        except BaseException:
            self.stop()
            raise
        self.timings.history.append((f"{what} (accounting={self.accounting}, "
                                     f"min_job_age={self.min_job_age})", time.monotonic() - t0))
        return self

    def restart(self, **changes: Any) -> SlurmLab:
        """Start again with the current config's fields replaced by `changes` (see start)."""
        return self.start(dataclasses.replace(self.config, **changes))

    def ensure(self, **changes: Any) -> SlurmLab:
        """Restart only when `changes` differ from the running config (tests state what they need)."""
        if self._lock is None or dataclasses.replace(self.config, **changes) != self.config:
            return self.restart(**changes)
        return self

    def stop(self) -> None:
        """Stop every daemon this lab started (only those), give back what it granted; idempotent."""
        t0 = time.monotonic()
        self.timings.stops = {}
        had = bool(self.running)
        self._stop_slurm(keep_dbd=False)
        self._stop_daemons("mariadbd", "munged")
        self._revoke_access()
        if self._lock is not None:
            (self.root / "run" / "daemons").unlink(missing_ok=True)
            os.close(self._lock)
            self._lock = None
            atexit.unregister(self.stop)
        if had:
            self.timings.history.append(("stop", time.monotonic() - t0))

    def _stop_slurm(self, keep_dbd: bool) -> None:
        """Cancel every job, stop slurmd and slurmctld (and slurmdbd), then end what the jobs left."""
        if "slurmctld" in self.running:
            self._cancel_all_jobs()
        # slurmctld saves its state and, with accounting, tells slurmdbd: slurmdbd goes after it.
        self._stop_daemons("slurmd", "slurmctld")
        if not keep_dbd:
            self._stop_daemons("slurmdbd")
        # slurmstepd detaches from slurmd and ends a cancelled job's step a moment later.
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.job_processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in self.job_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def job_processes(self) -> list[int]:
        """This lab's slurmstepds, and the processes of its jobs (SLURM_JOB_ID and its SLURM_CONF)."""
        uid = pwd.getpwnam(self.user).pw_uid
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                ours = _mentions(pid, f"SLURM_CONF={self.conf}")
                owner = os.stat(f"/proc/{entry}").st_uid
            except OSError:
                continue
            comm = _comm(pid)
            if ours and (comm in ("slurmstepd", "slurmd")  # slurmd: one forked to exec a slurmstepd
                         or (owner == uid and _mentions(pid, "SLURM_JOB_ID="))):
                found.append(pid)
        return found

    def _stop_daemons(self, *names: str) -> None:
        """Stop these daemons of the lab's together (only while the pid still runs that daemon)."""
        t0 = time.monotonic()
        ds = [d for d in (self._daemons.pop(name, None) for name in names) if d is not None]
        _terminate([d.proc.pid for d in ds if d.proc.poll() is None and _comm(d.proc.pid) == d.name])
        for d in ds:
            d.proc.poll()
        self._write_pids()
        if ds:
            self.timings.stops["+".join(d.name for d in ds)] = time.monotonic() - t0

    def _cancel_all_jobs(self) -> None:
        """Jobs outlive slurmd (slurmstepd detaches), so cancel them and wait for their ends."""
        p = self.admin(["squeue", "-h", "-o", "%A", "-t", "PD,R,CG,S,CF,RQ,RS"], timeout=15)
        jobs = p.stdout.split()
        if not jobs:
            return
        self.admin(["scancel", *jobs], timeout=15)
        # The node is idle once no job holds it and every ended job's step has reported back
        # (a job launched a moment ago is RUNNING for the controller before its slurmstepd exists).
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            running = self.admin(["squeue", "-h", "-o", "%A", "-t", "R,CG"], timeout=15).stdout.split()
            if not running and self.node_state() in ("idle", "down", "drain", "down*", "idle*"):
                return
            time.sleep(0.1)

    # -- the daemons ---------------------------------------------------------------------------
    def _start_daemons(self, t0: float) -> None:
        old = self._ports
        self._ports = Ports(
            slurmctld=free_port(), slurmd=free_port(),
            slurmdbd=old.slurmdbd if old and "slurmdbd" in self.running else free_port(),
            mariadb=old.mariadb if old and "mariadbd" in self.running else free_port())
        if self._fresh:  # no job, node state or log of an earlier session
            for sub in ("state", "spool", "log"):
                for entry in (self.root / sub).iterdir():
                    if entry.is_dir():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
            (self.root / "mysql" / "mariadbd.log").unlink(missing_ok=True)
            self._fresh = False
        self._write_configs()

        def stamp(what: str) -> None:
            self.timings.stages[what] = time.monotonic() - t0

        if "munged" not in self.running:
            self._start_munged()
            stamp("munged answers")
        if self.accounting:
            if "mariadbd" not in self.running:
                self._start_mariadb()
                stamp("MariaDB answers")
            if "slurmdbd" not in self.running:
                self._start_slurmdbd()
                stamp("slurmdbd listens")
        self._start_slurmctld()
        stamp("slurmctld listens")
        self._start_slurmd()
        stamp("node idle")

    def _spawn(self, name: str, argv: Sequence[str], user: str = "root",
               log: Path | None = None) -> Daemon:
        out = self.logs / f"{name}.out"
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SLURM_CONF": str(self.conf), "LANG": "C.UTF-8"}
        pw = pwd.getpwnam(user)
        with out.open("ab") as f:
            proc = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, env=env,
                cwd="/", start_new_session=True,
                user=pw.pw_uid, group=pw.pw_gid, extra_groups=os.getgrouplist(user, pw.pw_gid))
        d = Daemon(name, proc, log or self.logs / f"{name}.log", out)
        self._daemons[name] = d
        self._write_pids()
        return d

    def _wait(self, d: Daemon, check: Callable[[], bool], what: str,
              timeout: float = START_TIMEOUT) -> None:
        """Poll `check()` until true; fail at once if the daemon exits, or after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            if d.proc.poll() is not None:
                raise LabError(f"{d.name} exited with status {d.proc.returncode} while starting "
                               f"(waiting for {what}); its log:\n{d.tail()}")
            if check():
                return
            if time.monotonic() > deadline:
                raise LabError(f"{d.name} did not come up within {timeout:.0f} s (waiting for {what}); "
                               f"its log:\n{d.tail()}")
            time.sleep(0.05)

    def _start_munged(self) -> None:
        sock = self.root / "munge" / "munge.socket"
        d = self._spawn("munged", [
            "/usr/sbin/munged", "--foreground", f"--socket={sock}",
            f"--pid-file={self.root / 'munge' / 'munged.pid'}",
            f"--seed-file={self.root / 'munge' / 'munged.seed'}"],  # in the foreground it logs to stderr
            user=MUNGE_USER, log=self.logs / "munged.out")

        def answers() -> bool:
            if not sock.exists():
                return False
            cred = subprocess.run(["munge", "-n", f"--socket={sock}"], capture_output=True, timeout=10)
            return cred.returncode == 0 and subprocess.run(
                ["unmunge", f"--socket={sock}"], input=cred.stdout, capture_output=True,
                timeout=10).returncode == 0

        self._wait(d, answers, "munge -n | unmunge to succeed")

    def _start_mariadb(self) -> None:
        data = self.root / "mysql" / "data"
        common = ["--no-defaults", f"--user={MYSQL_USER}", f"--datadir={data}",
                  "--innodb-log-file-size=16M"]  # the default 96 MB log file would sit in /tmp
        if not (data / "mysql").is_dir():
            shutil.rmtree(data, ignore_errors=True)
            p = subprocess.run(["mariadb-install-db", *common, "--auth-root-authentication-method=socket",
                                "--skip-test-db"], capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                raise LabError(f"mariadb-install-db --datadir={data} failed:\n{p.stdout}{p.stderr}")
        assert self._ports is not None
        sock = self.root / "mysql" / "mysqld.sock"
        d = self._spawn("mariadbd", [
            "/usr/sbin/mariadbd", *common, f"--socket={sock}", f"--port={self._ports.mariadb}",
            "--bind-address=127.0.0.1", "--skip-name-resolve",
            f"--pid-file={self.root / 'mysql' / 'mariadbd.pid'}",
            f"--log-error={self.root / 'mysql' / 'mariadbd.log'}", "--innodb-lock-wait-timeout=900"],
            log=self.root / "mysql" / "mariadbd.log")
        self._wait(d, lambda: self._sql("SELECT 1", check=False), f"an answer on {sock}")
        reset = "DROP DATABASE IF EXISTS slurm_acct_db; " if self._db_fresh else ""
        self._db_fresh = False
        self._sql(f"{reset}CREATE USER IF NOT EXISTS '{SLURM_USER}'@'127.0.0.1' "
                  f"IDENTIFIED BY '{DB_PASSWORD}'; "
                  f"GRANT ALL ON slurm_acct_db.* TO '{SLURM_USER}'@'127.0.0.1';")

    def _sql(self, sql: str, check: bool = True) -> bool:
        p = subprocess.run(["mariadb", "--no-defaults", f"--socket={self.root / 'mysql' / 'mysqld.sock'}",
                            "-u", "root", "-e", sql], capture_output=True, text=True, timeout=30)
        if check and p.returncode != 0:
            raise LabError(f"MariaDB refused {sql!r}: {p.stderr.strip()}; "
                           f"its log: {self.root / 'mysql' / 'mariadbd.log'}")
        return p.returncode == 0

    def _start_slurmdbd(self) -> None:
        assert self._ports is not None
        port = self._ports.slurmdbd
        d = self._spawn("slurmdbd", ["/usr/sbin/slurmdbd", "-D"])  # no -f: SLURM_CONF's directory
        self._wait(d, lambda: _listens(port), f"it to listen on port {port}")

    def _start_slurmctld(self) -> None:
        assert self._ports is not None
        port = self._ports.slurmctld
        # -i: a state file written by another version or config must not stop the lab.
        d = self._spawn("slurmctld", ["/usr/sbin/slurmctld", "-D", "-i", "-f", str(self.conf)])
        # (each probe's bare connect costs one "Zero Bytes were transmitted" line in its log)
        self._wait(d, lambda: _listens(port), f"it to listen on port {port}")

    def _start_slurmd(self) -> None:
        d = self._spawn("slurmd", ["/usr/sbin/slurmd", "-D", "-f", str(self.conf)])

        def idle() -> bool:
            p = self.admin(["sinfo", "-h", "-N", "-o", "%t"], timeout=10)
            return p.stdout.split()[:1] == ["idle"]

        self._wait(d, idle, f"sinfo to show {self.node.name} idle")

    def _write_configs(self) -> None:
        assert self._ports is not None
        self.cgroup_note = cgroup_v1_memory()
        use_cgroup = not self.cgroup_note if self.config.cgroup is None else self.config.cgroup
        self.uses_cgroup = use_cgroup
        etc = self.root / "etc"
        _write(etc / "slurm.conf", slurm_conf(self.config, self.node, self.root, self._ports, use_cgroup))
        if use_cgroup:
            _write(etc / "cgroup.conf", CGROUP_CONF)
        else:
            (etc / "cgroup.conf").unlink(missing_ok=True)
        slurm = pwd.getpwnam(SLURM_USER)
        # slurmdbd refuses a slurmdbd.conf that is not 0600 and its SlurmUser's: it holds a password.
        _write(etc / "slurmdbd.conf", slurmdbd_conf(self.root, self._ports), mode=0o600,
               owner=(slurm.pw_uid, slurm.pw_gid))

    def _write_pids(self) -> None:
        if self._lock is None:
            return
        text = "".join(f"{name} {d.proc.pid}\n" for name, d in self._daemons.items())
        _write(self.root / "run" / "daemons", text)

    def _take_lock(self) -> None:
        self.root.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LabError(f"another test session holds the SLURM lab ({self.root / 'lock'})") from None
        self._lock = fd

    def _stop_leftovers(self) -> None:
        """Stop the daemons a killed session left (named in run/daemons, still that daemon, ours)."""
        try:
            lines = (self.root / "run" / "daemons").read_text().splitlines()
        except OSError:
            return
        for line in lines:
            name, _, pid = line.partition(" ")
            if pid.isdigit() and _comm(int(pid)) == name and _mentions(int(pid), str(self.root)):
                _terminate([int(pid)])

    def _make_dirs(self) -> None:
        ids = {u: (pwd.getpwnam(u).pw_uid, pwd.getpwnam(u).pw_gid) for u in (SLURM_USER, MUNGE_USER)}
        dirs = [("etc", None, 0o755), ("munge", ids[MUNGE_USER], 0o755), ("state", ids[SLURM_USER], 0o700),
                ("spool", None, 0o755), ("log", ids[SLURM_USER], 0o755), ("run", ids[SLURM_USER], 0o755),
                ("home", None, 0o755)]
        with contextlib.suppress(KeyError):
            mysql = pwd.getpwnam(MYSQL_USER)
            dirs.append(("mysql", (mysql.pw_uid, mysql.pw_gid), 0o755))
        os.chmod(self.root, 0o755)
        for name, owner, mode in dirs:
            path = self.root / name
            path.mkdir(exist_ok=True)
            os.chown(path, *(owner or (0, 0)))
            os.chmod(path, mode)

    # -- the test user -------------------------------------------------------------------------
    def _ensure_user(self) -> None:
        try:
            pw = pwd.getpwnam(self.user)
        except KeyError:
            subprocess.run(["useradd", "--home-dir", str(self.home), "--no-create-home",
                            "--shell", "/bin/bash", "--user-group",
                            "--comment", "notifyd test lab (tests/slurmlab.py)", self.user],
                           check=True, capture_output=True, timeout=30)
            pw = pwd.getpwnam(self.user)
        if pw.pw_dir != str(self.home):
            subprocess.run(["usermod", "--home", str(self.home), self.user], check=True,
                           capture_output=True, timeout=30)
        self.home.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.home, pw.pw_uid, pw.pw_gid)
        self._grant_access()

    def _grant_access(self) -> None:
        """Let the test user reach this venv's python and the checkout: o+x where a directory lacks it."""
        pw = pwd.getpwnam(self.user)
        groups = set(os.getgrouplist(self.user, pw.pw_gid))
        wanted = {self.venv, REPO, Path(os.path.realpath(sys.executable)).parent}
        for target in wanted:
            for d in [target, *target.parents]:
                st = d.stat()
                if (st.st_mode & stat.S_IXOTH or (st.st_uid == pw.pw_uid and st.st_mode & stat.S_IXUSR)
                        or (st.st_gid in groups and st.st_mode & stat.S_IXGRP)):
                    continue
                self._granted.append((d, stat.S_IMODE(st.st_mode)))
                os.chmod(d, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
        py = self.venv / "bin" / "python"
        p = self.as_user([str(py), "-c", "import notifyd"], timeout=60)
        if p.returncode != 0:
            raise LabError(f"the test user {self.user} cannot import notifyd with {py}: {p.stderr.strip()}; "
                           f"the checkout {REPO} and the venv {self.venv} must be readable by others "
                           f"(a clone made with umask 022 is)")

    def _revoke_access(self) -> None:
        while self._granted:
            d, mode = self._granted.pop()
            with contextlib.suppress(OSError):
                os.chmod(d, mode)

    def user_env(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """The test user's environment: a login's basics, this venv's bin first on PATH, SLURM_CONF."""
        base = {
            "HOME": str(self.home), "USER": self.user, "LOGNAME": self.user, "SHELL": "/bin/bash",
            "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "SLURM_CONF": str(self.conf), "LANG": "C.UTF-8", "TZ": "UTC",
        }
        base.update(env or {})
        return base

    def _ids(self) -> tuple[int, int, list[int]]:
        pw = pwd.getpwnam(self.user)
        return pw.pw_uid, pw.pw_gid, os.getgrouplist(self.user, pw.pw_gid)

    def as_user(self, argv: Sequence[str], env: Mapping[str, str] | None = None, *,
                timeout: float = 60, input: str | None = None,
                cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run `argv` as the test user (in its home, with `user_env(env)`); never raises on exit status."""
        uid, gid, groups = self._ids()
        return subprocess.run(list(argv), env=self.user_env(env), cwd=cwd or self.home, input=input,
                              capture_output=True, text=True, timeout=timeout,
                              user=uid, group=gid, extra_groups=groups)

    def popen_as_user(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
                      **kw: Any) -> subprocess.Popen[bytes]:
        """Start `argv` as the test user and return at once (a watcher, a long job's client)."""
        kw.setdefault("cwd", self.home)
        uid, gid, groups = self._ids()
        return subprocess.Popen(list(argv), env=self.user_env(env), user=uid, group=gid,
                                extra_groups=groups, **kw)

    def admin(self, argv: Sequence[str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a SLURM command as root against the lab (scontrol update, sinfo...)."""
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SLURM_CONF": str(self.conf), "LANG": "C.UTF-8",
               "HOME": "/root"}
        return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=timeout)

    # -- jobs ----------------------------------------------------------------------------------
    def submit(self, script_or_wrap: str, *sbatch_args: str, env: Mapping[str, str] | None = None) -> int:
        """sbatch as the test user: a script (text starting with #!) or a command for --wrap; the job id."""
        if script_or_wrap.startswith("#!"):
            jobs = self.home / "jobs"
            pw = pwd.getpwnam(self.user)
            jobs.mkdir(exist_ok=True)
            os.chown(jobs, pw.pw_uid, pw.pw_gid)
            script = jobs / f"job-{time.time_ns()}.sh"
            _write(script, script_or_wrap, mode=0o700, owner=(pw.pw_uid, pw.pw_gid))
            argv = ["sbatch", "--parsable", *sbatch_args, str(script)]
        else:
            argv = ["sbatch", "--parsable", *sbatch_args, "--wrap", script_or_wrap]
        p = self.as_user(argv, env, timeout=30)
        if p.returncode != 0:
            raise LabError(f"sbatch as {self.user} failed ({p.returncode}): {p.stderr.strip()}")
        return int(p.stdout.strip().split(";")[0])

    def squeue(self) -> list[QueueRow]:
        """`squeue --me -t all` as the test user: its jobs, finished ones too until purged."""
        p = self.as_user(["squeue", "--me", "-t", "all", "-h", "-o", _SQUEUE_FORMAT], timeout=30)
        if p.returncode != 0:
            raise LabError(f"squeue as {self.user} failed ({p.returncode}): {p.stderr.strip()}")
        return [QueueRow(*line.split(_US, 3)) for line in p.stdout.splitlines() if line]

    def state(self, job: int | str) -> str:
        """The job's state as the test user's squeue shows it; '' once slurmctld has purged it."""
        p = self.as_user(["squeue", "-j", str(job), "-t", "all", "-h", "-o", "%T"], timeout=30)
        return p.stdout.strip() if p.returncode == 0 else ""

    def wait_state(self, job: int | str, states: str | Iterable[str], timeout: float = 60) -> str:
        """Poll the job's state until it is one of `states`; the state reached, or LabError."""
        wanted = {states} if isinstance(states, str) else set(states)
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            last = self.state(job)
            if last in wanted:
                return last
            if time.monotonic() > deadline:
                info = self.admin(["scontrol", "show", "job", str(job)], timeout=30)
                raise LabError(f"job {job} not in {sorted(wanted)} after {timeout:.0f} s "
                               f"(last seen: {last or 'no record'}):\n{info.stdout}{info.stderr}"
                               f"logs: {self.logs}")
            time.sleep(0.2)

    def job_info(self, job: int | str) -> dict[str, str]:
        """`scontrol -o show job` as the test user, as key -> value (a value with a space is cut)."""
        p = self.as_user(["scontrol", "-o", "show", "job", str(job)], timeout=30)
        if p.returncode != 0:
            raise LabError(f"scontrol show job {job} as {self.user} failed: {p.stderr.strip()}")
        return dict(tok.split("=", 1) for tok in p.stdout.split() if "=" in tok)

    def job_output(self, job: int | str) -> str:
        """What the job wrote to its default output file (slurm-ID.out in the test user's home)."""
        return (self.home / f"slurm-{job}.out").read_text(errors="replace")

    def cancel(self, job: int | str) -> None:
        """scancel as the test user."""
        p = self.as_user(["scancel", str(job)], timeout=30)
        if p.returncode != 0:
            raise LabError(f"scancel {job} as {self.user} failed: {p.stderr.strip()}")

    def set_node_state(self, state: str, reason: str = "notifyd test") -> None:
        """`scontrol update nodename=NODE state=STATE` as root: down (a NODE_FAIL), resume, drain."""
        argv = ["scontrol", "update", f"nodename={self.node.name}", f"state={state}"]
        if state.lower() in ("down", "drain", "fail", "failing"):
            argv.append(f"reason={reason}")
        p = self.admin(argv, timeout=30)
        if p.returncode != 0:
            raise LabError(f"{' '.join(argv)} failed: {p.stderr.strip()}")

    def resume_node(self, timeout: float = 30) -> None:
        """Bring the node back after set_node_state: `resume` unless it is back already, then wait.

        With ReturnToService=2 a node set DOWN is IDLE again as soon as slurmd
        registers, a second later; `state=resume` on an idle node is refused.
        """
        deadline = time.monotonic() + timeout
        while (state := self.node_state()) not in ("idle", "mix", "alloc"):
            if state.startswith(("down", "drain", "drng", "fail")):
                self.admin(["scontrol", "update", f"nodename={self.node.name}", "state=resume"])
            if time.monotonic() > deadline:
                raise LabError(f"node {self.node.name} is {state}, not back after {timeout:.0f} s; "
                               f"see {self.logs / 'slurmctld.log'}")
            time.sleep(0.2)

    def node_state(self) -> str:
        """sinfo's short state of the lab's node (idle, mix, alloc, down, drain...)."""
        # One line per partition the node is in; its state is the same in each.
        lines = self.admin(["sinfo", "-h", "-N", "-o", "%t"], timeout=30).stdout.split()
        return lines[0] if lines else ""


def _listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _write(path: Path, text: str, mode: int = 0o644, owner: tuple[int, int] = (0, 0)) -> None:
    """Write a whole file (temp + rename), with its mode and owner set before it appears."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chown(tmp, *owner)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


# -- a controller that answers nothing ------------------------------------------------------------
@dataclass
class DeadController:
    """A slurm.conf whose controller port accepts connections and never answers.

    The socket listens but nothing accepts: the kernel completes the
    handshake, so squeue sends its request and waits for MessageTimeout.
    """

    conf: Path
    port: int
    message_timeout: int

    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}


@contextlib.contextmanager
def dead_controller(lab: SlurmLab, message_timeout: int = 2) -> Iterator[DeadController]:
    """A config for `lab`'s cluster (its munged) whose SlurmctldHost never answers, until the block ends."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = int(listener.getsockname()[1])
    where = lab.root / "dead"
    where.mkdir(mode=0o755, exist_ok=True)
    conf = where / "slurm.conf"
    ports = Ports(slurmctld=port, slurmd=free_port(), slurmdbd=free_port(), mariadb=free_port())
    _write(conf, slurm_conf(lab.config, lab.node, lab.root, ports, cgroup=False,
                            ctld_host=f"{lab.node.name}(127.0.0.1)", message_timeout=message_timeout))
    try:
        yield DeadController(conf, port, message_timeout)
    finally:
        listener.close()
        conf.unlink(missing_ok=True)

