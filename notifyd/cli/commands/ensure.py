"""Start a watcher in the background unless one already runs for you on any host.

From the login hook and cron (no terminal) it returns at once and prints
nothing. Run by a person (a terminal, or --verbose) it waits until the
watcher holds the lease and says which it is, "started now" or "already
running", with the pid and host, or exactly why none could start.
"""

from __future__ import annotations

import os
import sys
import time

import typer

from notifyd.cli.commands.common import config, context
from notifyd.errors import NotifydError
from notifyd.paths import Paths
from notifyd.watcher import launch, lease

# How long a person's ensure waits for the watcher it started to take the
# lease: its start (Python, the config, Apprise's plugin) takes about a
# second here, a loaded node or a slow NFS server may take several.
START_WAIT = 30.0


def command(
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Wait for the watcher and say what happened (the default "
                                 "when run at a terminal)."),
) -> int:
    paths, host = context()
    attended = verbose or sys.stderr.isatty()
    try:
        config(paths)  # a broken or unsafe config is reported here, not lost in a background log
    except NotifydError as exc:
        # From cron or the hook nobody reads this: the next pingch tells it.
        launch.record_cause(str(paths.lease_dir), host, exc.message, told=attended)
        raise
    if not attended:
        launch.start_watcher(str(paths.state_dir), host, careful=True)
        return 0
    typer.echo(start_attended(paths, host))
    return 0


def start_attended(paths: Paths, host: str) -> str:
    """Make sure a watcher runs, for a person: the line that says which; NotifydError if none can.

    The spawn debounce does not apply (launch.start_watcher's force): the
    person may have just fixed what stopped the last try.
    """
    lease_dir = str(paths.lease_dir)
    holder = launch.live_holder(lease_dir, host)
    if holder is not None:
        return f"watcher: already running: {describe(holder)}"
    pid = launch.start_watcher(str(paths.state_dir), host, careful=True, force=True)
    if pid == 0:  # one took the lease between the two looks
        holder = launch.live_holder(lease_dir, host)
        return f"watcher: already running: {describe(holder) if holder else 'just started'}"
    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline:
        info = lease.current(lease_dir)
        if info is not None and (info.host, info.pid) == (host, pid) and not info.released:
            return f"watcher: started now: pid {pid} on {host}"
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return _exited(paths, host, os.waitstatus_to_exitcode(status))
        time.sleep(0.05)
    raise NotifydError(f"the watcher started as pid {pid} has not taken the lease after "
                       f"{START_WAIT:.0f} s; see its log: {paths.log_file(host)}")


def _exited(paths: Paths, host: str, code: int) -> str:
    """The watcher we started ended: another one won the lease, or it could not start (why)."""
    lease_dir = str(paths.lease_dir)
    holder = launch.live_holder(lease_dir, host)
    if code == 0 and holder is not None:
        return f"watcher: already running: {describe(holder)} (it took the lease first)"
    # Printed here, so no pingch need tell it again.
    cause = launch.take_cause(lease_dir, host)
    if cause:
        raise NotifydError(f"no watcher can start on {host}: {cause}")
    raise NotifydError(f"the watcher exited at once (status {code}); see its log: {paths.log_file(host)}")


def describe(info: lease.LeaseInfo) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.since)) if info.since else "?"
    return f"pid {info.pid} on {info.host}, since {since}"
