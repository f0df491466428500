"""Starting a watcher in the background: the rule shared by pingch and `notifyd ensure`.

Also the detached spawn itself (a session of its own, no inherited fds), which
pingch -d uses for its job, the `python -c` entry of installed code that
both spawns run, and the note of why no watcher can start on a host
(lease/cannot-start.<host>), which pingch tells once. Standard library only:
pingch calls it whenever its own quick look at the lease (pingch/record.py)
finds no watcher.
"""

import os
import sys

from notifyd import fsutil, paths
from notifyd.watcher import lease

TYPE_CHECKING = False  # typing/collections.abc stay off pingch's path
if TYPE_CHECKING:
    from collections.abc import Mapping


def spawn_detached(argv: list[str], env: "Mapping[str, str] | None" = None, out_fd: int | None = None,
                   *, keep_sigmask: bool = False) -> int:
    """Start argv in a session of its own, stdin from /dev/null, no inherited fds; returns its pid.

    Its stdout and stderr go to `out_fd` (pingch -d: the job's log), else to
    /dev/null. A session of its own has no controlling terminal, so the hangup
    at the end of an ssh session does not reach it. Inherited descriptors are
    closed so it never holds a caller's pipe open (ssh and `$(...)` would
    wait). Its signal mask is emptied unless `keep_sigmask`: pingch spawns a
    watcher with its forwarded signals blocked, and a watcher that inherited
    that would never see SIGTERM; a pingch -d job keeps the mask it was given,
    as from a shell. OSError if it cannot be started.
    """
    actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
    ]
    if out_fd is None:
        actions += [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0), (os.POSIX_SPAWN_DUP2, 1, 2)]
    else:
        actions += [(os.POSIX_SPAWN_DUP2, out_fd, 1), (os.POSIX_SPAWN_DUP2, out_fd, 2)]
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        fds = []
    for fd in fds:
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    actions.append((os.POSIX_SPAWN_CLOSE, fd))
            except OSError:
                pass  # the descriptor listdir itself used, already closed
    env = os.environ if env is None else env
    if keep_sigmask:
        return os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=True)
    return os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=True, setsigmask=())


def python_entry(prog: str, module: str, function: str) -> str:
    """The `python -c` program that runs `module.function()` as `prog`, from installed code only.

    Not `python -m`: that would put the working directory (the job's, when
    pingch starts the watcher) first on sys.path, where a typer.py, logging.py
    or events.py of the user's would shadow ours. -c puts '' there, and the
    program removes it; with PYTHONSAFEPATH there is none, and nothing else goes.
    """
    return (f"import sys; sys.path[:1] = [p for p in sys.path[:1] if p]; sys.argv[0] = {prog!r}; "
            f"from {module} import {function}; sys.exit({function}())")


# The background watcher's entry skips the typer CLI, which would stay in
# memory for the watcher's whole life. "watch --background" is in argv for the
# moment before it names itself `notifyd watcher (USER)` (proctitle.py).
_ENTRY = python_entry("notifyd", "notifyd.watcher.loop", "run_in_background")


def watcher_argv() -> list[str]:
    return [sys.executable, "-c", _ENTRY, "watch", "--background"]


def start_watcher(state_dir: str, host: str, careful: bool, *, force: bool = False) -> int:
    """Spawn a background watcher unless one runs; returns its pid, or 0 if none was needed.

    careful=False (pingch) trusts the local clock with a wide margin; True
    (`notifyd ensure`) judges the lease exactly as a candidate would. Either
    way the spawned watcher takes the lease only if it is really free, so a
    needless spawn costs a process that exits at once, never a second watcher.
    force=True (a person's `notifyd ensure`) spawns even within the spawn
    debounce: a watcher that just failed to start (a config being fixed)
    leaves its mark, and the person's try after the fix must not be swallowed.
    """
    lease_dir = paths.lease_dir_str(state_dir)
    if careful:
        if live_holder(lease_dir, host) is not None:
            return 0
    elif lease.quick_live(lease_dir, host):
        return 0
    paths.ensure_private_dir(lease_dir, state_dir)
    if not lease.should_spawn(lease_dir, host) and not force:
        return 0
    return spawn_detached(watcher_argv())


def live_holder(lease_dir: str, host: str) -> "lease.LeaseInfo | None":
    """The lease's holder if it is alive, judged exactly as a candidate would (the server's clock)."""
    info = lease.current(lease_dir)
    if info is None or lease.is_stale(info, host, fsutil.server_now(lease_dir, host)):
        return None
    return info


# Why no watcher can start on a host, in lease/: written by the watcher that
# failed (or by `notifyd ensure`, which checks the config first), renamed to
# .told by the pingch that printed it, removed by a watcher that starts. A
# cause already told is not written again, so each cause is told once; the
# rename lets only one of many pingch processes print it. One file per host,
# as every file in the state dir: a cause may be this host's alone (a
# directory it cannot write), and no two hosts ever write one file.
CANNOT_START_PREFIX = "cannot-start."
TOLD_SUFFIX = ".told"
CAUSE_MAX = 2000  # bytes read back: a cause is one message, never a log


def _cause_path(lease_dir: str, host: str) -> str:
    return os.path.join(lease_dir, f"{CANNOT_START_PREFIX}{host}")


def _read_cause(path: str) -> str:
    """The cause in `path` ('' when there is none, or something else is in its place)."""
    return fsutil.read_head(path, CAUSE_MAX, follow=False).decode("utf-8", "replace").strip()


def record_cause(lease_dir: str, host: str, cause: str, *, told: bool = False) -> None:
    """Remember why no watcher can start on `host`, for pingch to tell once (told=True: told already).

    A watcher that cannot start has no terminal, so this note and its log
    are all it leaves; a note that cannot be written is not worth an error
    more (the log has the cause).
    """
    line = " ".join(cause.split())  # one line on pingch's stderr
    path = _cause_path(lease_dir, host)
    try:
        if _read_cause(path + TOLD_SUFFIX) == line:
            return
        # Never the home itself: a watcher whose home was deleted while it
        # started must not bring it back (FileNotFoundError: no note then).
        paths.ensure_private_dir(lease_dir, os.path.dirname(lease_dir), paths.home_str())
        data = f"{line}\n".encode()
        if told:
            fsutil.atomic_write(path + TOLD_SUFFIX, data, f"{path}.tmp.{os.getpid()}")
            os.unlink(path)
        else:
            fsutil.atomic_write(path, data, f"{path}.tmp.{os.getpid()}")
    except (OSError, paths.NoHome):
        pass


def take_cause(lease_dir: str, host: str) -> str:
    """The cause not told yet ('' if none), marked told: the caller prints it."""
    path = _cause_path(lease_dir, host)
    try:
        os.replace(path, path + TOLD_SUFFIX)  # one pingch of many gets it
    except OSError:
        return ""
    return _read_cause(path + TOLD_SUFFIX)


def clear_cause(lease_dir: str, host: str) -> None:
    """A watcher started: whatever stopped the last one is gone (a new failure is news again)."""
    path = _cause_path(lease_dir, host)
    for name in (path, path + TOLD_SUFFIX):
        try:
            os.unlink(name)
        except OSError:
            pass
