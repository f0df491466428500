"""Drop the deliveries that wait for URLs no longer configured (`notifyd status` lists them).

    $ notifyd drop
    dropped 1 delivery waiting for discord://123456789012345678/****

Without it they wait until `retry_for`, in case the URL comes back (a
config rewritten in two steps loses nothing). The watcher, wherever it runs,
drops them in its next round; URLs that are configured keep everything.
"""

from __future__ import annotations

import time

import typer

from notifyd import state
from notifyd.cli.commands import status
from notifyd.cli.commands.common import config, context
from notifyd.errors import ExitStatus, NotifydError
from notifyd.notify import targets as sender
from notifyd.watcher import drop, lease


def command(
    wait: float = typer.Option(10.0, "--wait", metavar="SECONDS",
                               help="Seconds to wait for the watcher to drop them."),
) -> int:
    paths, host = context()
    cfg = config(paths)
    configured = {t.key for t in sender.build_targets(cfg, paths.inbox_dir, host)}
    saved = state.load(paths.state_file, paths.journal_dir)
    waiting = status.unconfigured(saved, configured, cfg.retry_for)
    if not waiting:
        typer.echo("nothing waits for a URL that is not configured")
        return 0
    names = ", ".join(w["url"] or "a URL no longer named" for w in waiting)
    count = sum(w["pending"] for w in waiting)
    paths.private_dir(paths.drop_dir)
    asked = drop.request(paths.drop_dir, host, [w["key"] for w in waiting])
    info = lease.current(str(paths.lease_dir))
    if info is None or info.released:
        typer.echo(f"asked to drop {_n(count)} waiting for {names}; no watcher runs now: the next one "
                   "drops them when it starts (notifyd ensure starts one)")
        return 0
    deadline = time.monotonic() + wait
    while asked.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if asked.exists():
        raise NotifydError(f"the watcher (pid {info.pid} on {info.host}) has not taken the request "
                           f"{asked} within {wait:g} s; it does at its next round (over NFS a new file "
                           "can take up to a minute to show): run notifyd status later", ExitStatus.ERROR)
    after = state.load(paths.state_file, paths.journal_dir)
    left = sum(w["pending"] for w in status.unconfigured(after, configured, cfg.retry_for))
    typer.echo(f"dropped {_n(count - left)} waiting for {names}"
               + (f"; {_n(left)} kept: the watcher has that URL configured" if left > 0 else ""))
    return 0


def _n(count: int) -> str:
    return "1 delivery" if count == 1 else f"{count} deliveries"
