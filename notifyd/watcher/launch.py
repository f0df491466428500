"""Starting a watcher in the background: the rule shared by pingch and `notifyd ensure`.

Standard library only: pingch calls it on every job.
"""

from __future__ import annotations

import os
import sys

from notifyd import fsutil, paths
from notifyd.watcher import lease


def spawn_detached(argv: list[str]) -> int:
    """Start argv in a session of its own, stdio on /dev/null, no inherited fds.

    A session of its own has no controlling terminal, so the hangup at the end
    of an ssh session does not reach it. Inherited descriptors are closed so a
    watcher never holds a caller's pipe open (ssh and `$(...)` would wait).
    """
    actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
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
    # An empty signal mask: pingch calls this with its forwarded signals
    # blocked, and a watcher that inherited that would never see SIGTERM.
    return os.posix_spawn(argv[0], argv, os.environ, file_actions=actions, setsid=True,
                          setsigmask=())


# `python -m` would put the working directory (the job's, when pingch starts
# the watcher) first on sys.path, where a typer.py or logging.py of the
# user's would shadow ours. -c with that entry removed imports only installed
# code. The entry skips the typer CLI, which would stay in memory for the
# watcher's whole life; "watch --background" stays in argv for ps.
_ENTRY = ("import sys; sys.path[:1] = [p for p in sys.path[:1] if p]; sys.argv[0] = 'notifyd'; "
          "from notifyd.watcher.loop import run_in_background; sys.exit(run_in_background())")


def watcher_argv() -> list[str]:
    return [sys.executable, "-c", _ENTRY, "watch", "--background"]


def start_watcher(state_dir: str, host: str, careful: bool) -> int:
    """Spawn a background watcher unless one runs; returns its pid, or 0 if none was needed.

    careful=False (pingch) trusts the local clock with a wide margin; True
    (`notifyd ensure`) judges the lease exactly as a candidate would. Either
    way the spawned watcher takes the lease only if it is really free, so a
    needless spawn costs a process that exits at once, never a second watcher.
    """
    lease_dir = os.path.join(state_dir, "lease")
    if careful:
        info = lease.current(lease_dir)
        if info is not None and not lease.is_stale(info, host, fsutil.server_now(lease_dir, host)):
            return 0
    elif lease.quick_live(lease_dir, host):
        return 0
    paths.ensure_private_dir(lease_dir, state_dir)
    if not lease.should_spawn(lease_dir, host):
        return 0
    return spawn_detached(watcher_argv())
