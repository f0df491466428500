"""The node snapshots as `notifyd procs` and `notifyd nodes` both read them.

Not a verb: the two verbs share it, and verbs do not import each other.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NamedTuple

import typer

from notifyd.cli.commands.common import config, context
from notifyd.nodes import reader as nodeview

if TYPE_CHECKING:
    from notifyd.config import Config
    from notifyd.paths import Paths
    from notifyd.slurm.parse import SlurmNode

# sinfo answers in well under a second; a controller that hangs must not hold the table up.
SINFO_TIMEOUT = 10.0


class Where(NamedTuple):
    """The paths, this host and the config, resolved once per command (a warning is said once)."""

    paths: Paths
    host: str
    config: Config


def where() -> Where:
    paths, host = context()
    return Where(paths, host, config(paths))


def load_nodes(at: Where, node_filter: list[str] | None) -> list[nodeview.Node]:
    """Every usable snapshot (only `node_filter`'s hosts, if given); a note on stderr per skipped file."""
    nodes, notes = nodeview.load(at.paths.procs_dir(at.config.procs_dir), at.config.stale_after, at.host)
    for note in notes:
        typer.echo(f"notifyd: {note}", err=True)
    if node_filter:
        nodes = [n for n in nodes if n.host in node_filter]
    return nodes


def say_no_snapshots(at: Where, node_filter: list[str] | None) -> None:
    """What `procs` and `nodes` print when there is nothing to show, and what to run."""
    said = no_snapshots(at, node_filter)
    if said:
        typer.echo(said)


def no_snapshots(at: Where, node_filter: list[str] | None) -> str:
    """The words for say_no_snapshots(); empty when the directory cannot be read (load_nodes() said why)."""
    directory = at.paths.procs_dir(at.config.procs_dir)
    if node_filter:
        return f"no snapshot of {', '.join(node_filter)} in {directory}"
    try:
        os.stat(directory)
    except FileNotFoundError:
        missing = " (it does not exist yet)"
    except OSError:
        return ""  # a parent we may not pass: load() said so, naming the directory
    else:
        if not os.access(directory, os.R_OK | os.X_OK):
            return ""  # as above: "cannot list ..."
        missing = ""
    return (f"no node snapshots in {directory}{missing}\n"
            "(notifyd snapshot writes one; notifyd cron install runs it every minute)")


def load_slurm_nodes(at: Where, node_filter: list[str] | None) -> list[SlurmNode]:
    """The cluster's nodes from one `sinfo` call, where this host has SLURM's tools and [slurm] allows.

    None of them when there is no SLURM here; a note on stderr when sinfo
    fails or hangs (the snapshot nodes are shown all the same).
    """
    from notifyd.slurm import parse, tools

    cfg = at.config
    if cfg.slurm == "no" or not tools.available():
        return []
    answer = tools.run(parse.sinfo_argv(), min(cfg.slurm_timeout, SINFO_TIMEOUT))
    if not answer.ok:
        typer.echo(f"notifyd: SLURM nodes not shown: {answer.problem}", err=True)
        return []
    nodes = parse.parse_sinfo(answer.stdout)
    return [n for n in nodes if not node_filter or n.name in node_filter]
