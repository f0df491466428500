"""Manage notifyd's block in your crontab: snapshots every minute, the watcher kept alive."""

from __future__ import annotations

import typer

from notifyd.setup import cron


def install(
    snapshot: bool = typer.Option(True, "--snapshot/--no-snapshot",
                                  help="Include the per-minute snapshot line (one writer per node "
                                  "is enough: others use --no-snapshot)."),
) -> int:
    """Add (or update) the block; running it twice changes nothing."""
    changed = cron.install(snapshot=snapshot)
    typer.echo(("installed in your crontab:\n" if changed else "already installed:\n")
               + cron.current_block(cron.read()), nl=False)
    return 0


def remove() -> int:
    """Take the block out, leaving the rest of your crontab exactly as it was."""
    typer.echo("removed notifyd's block from your crontab" if cron.remove()
               else "notifyd's block was not in your crontab")
    return 0


def show() -> int:
    """Print the block as it is in your crontab (or what install would add)."""
    current = cron.current_block(cron.read())
    if current:
        typer.echo(current, nl=False)
    else:
        typer.echo("not installed; `notifyd cron install` would add:\n" + cron.block(), nl=False)
    return 0
