"""Stop the watcher, whichever host it runs on."""

from __future__ import annotations

import os
import signal
import time

import typer

from notifyd.cli.commands.common import context
from notifyd.errors import NotifydError
from notifyd.watcher import lease


def command(
    wait: float = typer.Option(10.0, "--wait", metavar="SECONDS", help="Seconds to wait for it to stop."),
) -> int:
    paths, host = context()
    lease_dir = str(paths.lease_dir)
    info = lease.current(lease_dir)
    if info is None or info.released:
        typer.echo("no watcher is running")
        return 0
    # Any host can ask through the shared lease directory; on the holder's
    # own host a signal makes it stop without waiting for its next round.
    lease.request_stop(lease_dir, info.gen)
    if info.host == host and lease.holder_process_alive(info):
        try:
            os.kill(info.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        now = lease.current(lease_dir)
        if now is None or now.gen != info.gen or now.released:
            break
        if info.host == host and not lease.holder_process_alive(info):
            break
        time.sleep(0.1)
    else:
        raise NotifydError(
            f"the watcher (pid {info.pid} on {info.host}) did not stop within {wait:g} s; "
            f"it stops at its next round, or run on {info.host}: kill {info.pid}"
        )
    typer.echo(f"stopped the watcher (pid {info.pid} on {info.host})")
    return 0
