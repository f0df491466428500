"""Run the watcher in the foreground (Ctrl-C stops it); `ensure` runs it in the background."""

from __future__ import annotations

import typer

from notifyd.cli.commands.common import context
from notifyd.watcher import loop as watcher


def command(
    background: bool = typer.Option(False, "--background", hidden=True,
                                    help="Started by ensure/pingch: log only, exit quietly if "
                                    "another watcher holds the lease."),
) -> int:
    paths, host = context()
    return watcher.main(paths, host, background=background)
