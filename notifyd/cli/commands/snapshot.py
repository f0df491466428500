"""Record this node's processes in the procs directory (cron runs it every minute)."""

from __future__ import annotations

import typer

from notifyd.cli.commands.common import config, context
from notifyd.nodes import snapshot


def command(
    interval: float = typer.Option(None, "--interval", min=0.1, max=30.0, metavar="SECONDS",
                                   help="Seconds to sample CPU over (default: [procs] interval)."),
) -> int:
    paths, host = context()
    cfg = config(paths)
    directory = paths.procs_dir(cfg.procs_dir)
    if not cfg.procs_dir:
        paths.private_dir(directory)  # the private default is ours to create
    data = snapshot.take(interval or cfg.snapshot_interval, cfg.snapshot_min_cpu, cfg.snapshot_top)
    data = snapshot.with_history(directory, host, data)  # what the pressure trend needs
    target = snapshot.write(directory, host, data)
    scan = data["scan"]
    typer.echo(f"wrote {target}: {scan['seen']} processes ({len(data['procs'])} listed, "
               f"{scan['vanished']} vanished, {scan['denied']} denied)")
    return 0
