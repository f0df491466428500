"""One watcher per user across every host that shares the home.

fcntl/flock cannot be trusted across hosts (NFS with `nolock`/`local_lock`,
sshfs: both locks succeed), but exclusive creation can: link(2) and
O_CREAT|O_EXCL fail with EEXIST on the second client. So the lease is a
sequence of generation files, lease/lease.<N>:

* whoever creates lease.<N+1> (by link(2) of a fully written temp file, so it
  is never seen half-written) holds the lease; two candidates racing for the
  same N+1 cannot both win;
* the holder heartbeats by rewriting *its own* file (temp + rename), so it can
  never overwrite a newer holder's file;
* a candidate may create N+1 only when lease.<N> is released, or its holder is
  on this host and its process is gone, or it has not been rewritten for
  `timeout` seconds. That age is measured in the file server's clock (the
  mtime of a probe file we write now minus the lease file's mtime:
  fsutil.server_now), so hosts whose clocks disagree still agree on it;
* a holder that sees any generation above its own, or its file gone, has lost
  and must stop before sending anything more.

Standard library only, and no json: pingch loads this module when its own
quick look at the newest lease (pingch/record.py, held to quick_live by a
test) finds no watcher, to start one.
"""

import os
import time

from notifyd import fsutil, procfs
from notifyd.fsutil import server_now
from notifyd.spool.events import TIME_MAX

PREFIX = "lease."
STOP_PREFIX = "stop."
SPAWN_PREFIX = "spawn."
# A second spawn from one host within this many seconds is skipped: 100 jobs
# started at once must not start 100 Python processes that all lose the race.
SPAWN_DEBOUNCE = 15.0


TIMEOUT_MAX = 86400.0 * 365  # a lease's own timeout beyond a year is no notifyd's


class LeaseLost(Exception):
    """Another watcher holds the lease now; this one must stop at once."""


class LeaseInfo:
    """What a lease file says, plus its mtime in the file server's clock."""

    __slots__ = ("gen", "host", "mtime", "pid", "pid_start", "released", "since", "timeout", "token")

    def __init__(self, gen: int, fields: dict[str, str], mtime: float) -> None:
        self.gen = gen
        self.mtime = mtime
        self.host = fields.get("host", "?")
        self.token = fields.get("token", "")
        self.pid_start = fields.get("pid_start", "")
        self.released = fields.get("released") == "1"
        try:
            self.pid = int(fields.get("pid", "0"))
            self.since = float(fields.get("since", "0"))
            self.timeout = float(fields.get("timeout", "60"))
        except ValueError:
            # Not written by notifyd: judged by its age alone.
            self.pid, self.since, self.timeout = 0, 0.0, 60.0
        # A garbled file must neither keep the lease for good (an infinite or NaN
        # timeout is never passed) nor break the date `notifyd ensure` shows.
        if not 0 < self.timeout <= TIMEOUT_MAX:
            self.timeout = 60.0
        if not 0 <= self.since <= TIME_MAX:  # a start no calendar shows
            self.since = 0.0


def _format(fields: dict[str, object]) -> bytes:
    return "".join(f"{k}={v}\n" for k, v in fields.items()).encode()


def _parse(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


def _generations(lease_dir: str) -> list[int]:
    try:
        names = os.listdir(lease_dir)
    except FileNotFoundError:
        return []
    gens = []
    for name in names:
        if name.startswith(PREFIX) and name[len(PREFIX) :].isdigit():
            gens.append(int(name[len(PREFIX) :]))
    return sorted(gens)


def lease_path(lease_dir: str, gen: int) -> str:
    return os.path.join(lease_dir, f"{PREFIX}{gen}")


def current(lease_dir: str) -> LeaseInfo | None:
    """The newest generation's lease, or None when there has never been one."""
    for gen in reversed(_generations(lease_dir)):
        path = lease_path(lease_dir, gen)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue  # removed by a holder's clean-up between listdir and open
        try:
            data = os.read(fd, 4096)
            mtime = os.fstat(fd).st_mtime
        finally:
            os.close(fd)
        return LeaseInfo(gen, _parse(data), mtime)
    return None


def process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' if it is gone).

    Together with the pid it names one process: a pid reused after the holder
    died has another start time.
    """
    return procfs.start_ticks(pid)


def holder_process_alive(info: LeaseInfo) -> bool:
    """On the holder's own host: is its process still the one that took the lease?"""
    if info.pid <= 0:
        return False
    start = process_start(info.pid)
    return bool(start) and (not info.pid_start or start == info.pid_start)


def is_stale(info: LeaseInfo, host: str, now_on_server: float) -> bool:
    """May a candidate on `host` take over from this lease?"""
    if info.released:
        return True
    if info.host == host and not holder_process_alive(info):
        return True  # our own host: a dead holder is known at once
    return now_on_server - info.mtime > info.timeout


def quick_live(lease_dir: str, host: str) -> bool:
    """The cheap check: does a watcher look alive? False means 'start a candidate'.

    pingch makes the same judgement without loading this module
    (record.watcher_looks_alive); tests/pingch/test_record.py holds the two together.

    It errs towards False (a spawned candidate does the careful check), and
    uses the local clock with a wide margin instead of writing a probe file.
    """
    info = current(lease_dir)
    if info is None or info.released:
        return False
    if info.host == host:
        return holder_process_alive(info)
    return time.time() - info.mtime < 3 * info.timeout


def should_spawn(lease_dir: str, host: str) -> bool:
    """Debounce spawns from one host: True for the first caller in SPAWN_DEBOUNCE s."""
    path = os.path.join(lease_dir, f"{SPAWN_PREFIX}{host}")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return True
    except FileExistsError:
        pass
    try:
        if time.time() - os.stat(path).st_mtime < SPAWN_DEBOUNCE:
            return False
        os.utime(path)
    except OSError:
        pass
    return True


def request_stop(lease_dir: str, gen: int) -> None:
    """Ask the holder of generation `gen` to stop, from any host."""
    path = os.path.join(lease_dir, f"{STOP_PREFIX}{gen}")
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


class Lease:
    """The lease as held by one watcher process."""

    def __init__(self, lease_dir: str, host: str, timeout: float) -> None:
        self.lease_dir = lease_dir
        self.host = host
        self.timeout = timeout
        self.pid = os.getpid()
        self.token = os.urandom(8).hex()
        self.gen = 0
        self.since = 0.0
        self.took_over_from: LeaseInfo | None = None
        self._last_beat = 0.0  # time.monotonic() of the last successful heartbeat

    def _fields(self, released: bool = False) -> dict[str, object]:
        return {
            "host": self.host,
            "pid": self.pid,
            "pid_start": process_start(self.pid),
            "token": self.token,
            "since": f"{self.since:.3f}",
            "heartbeat": f"{time.time():.3f}",
            "timeout": self.timeout,
            "released": 1 if released else 0,
        }

    def _tmp(self) -> str:
        return os.path.join(self.lease_dir, f".tmp.{self.host}.{self.pid}.{self.token}")

    def _write_tmp(self, released: bool = False) -> str:
        tmp = self._tmp()
        fsutil.write_new(tmp, _format(self._fields(released)))
        return tmp

    def _rewrite(self, released: bool = False) -> None:
        """Replace our own lease file (never another holder's) with fresh fields."""
        data = _format(self._fields(released))
        fsutil.atomic_write(lease_path(self.lease_dir, self.gen), data, self._tmp())

    def acquire(self) -> LeaseInfo | None:
        """Take the lease if it is free or stale. Returns None on success, else the holder."""
        info = current(self.lease_dir)
        if info is not None and not is_stale(info, self.host, server_now(self.lease_dir, self.host)):
            return info
        gen = (info.gen if info else 0) + 1
        self.since = time.time()
        tmp = self._write_tmp()
        try:
            try:
                os.link(tmp, lease_path(self.lease_dir, gen))
            except FileExistsError:
                # On NFS a retransmitted LINK can report EEXIST although it
                # worked: the temp file's link count tells (flufl.lock's check).
                if os.stat(tmp).st_nlink != 2:
                    return current(self.lease_dir) or info
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        self.gen = gen
        self.took_over_from = info if info is not None and not info.released else None
        self._last_beat = time.monotonic()
        self._clean_old()
        return None

    def _clean_old(self) -> None:
        # Keep the previous generation: a frozen old holder that wakes up
        # finds ours above its own either way.
        for gen in _generations(self.lease_dir):
            if gen < self.gen - 1:
                for name in (f"{PREFIX}{gen}", f"{STOP_PREFIX}{gen}"):
                    try:
                        os.unlink(os.path.join(self.lease_dir, name))
                    except OSError:
                        pass

    def check(self) -> None:
        """Raise LeaseLost unless this process still holds the lease."""
        gens = _generations(self.lease_dir)
        if not gens or gens[-1] != self.gen:
            raise LeaseLost(f"lease generation {gens[-1] if gens else 'none'} is not ours ({self.gen})")
        info = current(self.lease_dir)
        if info is None or info.token != self.token:
            raise LeaseLost("our lease file was replaced")

    def heartbeat(self, force: bool = False) -> None:
        """Rewrite our lease file when due (every timeout/6 s), after checking it is ours."""
        now = time.monotonic()
        if not force and now - self._last_beat < self.timeout / 6:
            return
        self.check()
        self._rewrite()
        self._last_beat = now

    def stop_requested(self) -> bool:
        return os.path.exists(os.path.join(self.lease_dir, f"{STOP_PREFIX}{self.gen}"))

    def release(self) -> None:
        """Mark our lease released so the next candidate takes over at once."""
        try:
            self.check()
        except LeaseLost:
            return
        self._rewrite(released=True)


def clear_spawn_mark(lease_dir: str, host: str) -> None:
    """Called by a started watcher once it knows whether it holds the lease."""
    try:
        os.unlink(os.path.join(lease_dir, f"{SPAWN_PREFIX}{host}"))
    except OSError:
        pass
