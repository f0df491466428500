"""The node snapshots as `notifyd procs` and `notifyd nodes` both read them.

Not a verb: the two verbs share it, and verbs do not import each other.
"""

from __future__ import annotations

import typer

from notifyd.cli.commands.common import config, context
from notifyd.nodes import reader as nodeview


def load_nodes(node_filter: list[str] | None) -> list[nodeview.Node]:
    """Every usable snapshot (only `node_filter`'s hosts, if given); a note on stderr per skipped file."""
    paths, host = context()
    cfg = config(paths)
    nodes, notes = nodeview.load(paths.procs_dir(cfg.procs_dir), cfg.stale_after, host)
    for note in notes:
        typer.echo(f"notifyd: {note}", err=True)
    if node_filter:
        nodes = [n for n in nodes if n.host in node_filter]
    return nodes
