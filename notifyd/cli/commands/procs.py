"""Who runs what on every node, from the nodes' snapshots (the classic ps view).

    $ notifyd procs --min-cpu 50
    node5  load 15.8/16  mem 41.2G/62.8G  swap 0B  snapshot 23 s old
        PID USER      %CPU %MEM    RSS  ELAPSED COMMAND
      81234 ana      398.0 12.3   7.7G  2-03:04 python relax.py --steps 400
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import typer

from notifyd.cli.nodes_view import load_nodes, say_no_snapshots, where
from notifyd.cli.tables import colour
from notifyd.nodes import reader as nodeview
from notifyd.text import human_age, human_bytes, human_elapsed, printable

SORT_KEYS = {"cpu": "cpu", "mem": "mem", "rss": "rss", "elapsed": "elapsed"}


def _rows(node: nodeview.Node, users: list[str] | None, min_cpu: float, sort: str) -> list[dict[str, Any]]:
    rows = [r for r in node.data["procs"] if float(r["cpu"]) >= min_cpu
            and (not users or r["user"] in users)]
    return sorted(rows, key=lambda r: -float(r[SORT_KEYS[sort]]))


def short_command(cmd: str) -> str:
    """The program's base name instead of its full path, as top(1) shows it.

    On 80 columns "/root/.pyenv/versions/3.11.7/bin/python3.11" would leave
    no room for the arguments, which say which job it is.
    """
    first, sep, rest = cmd.partition(" ")
    if first.startswith("/"):
        first = first.rsplit("/", 1)[1] or first
    # pingch is a script: `python3 /home/ana/.notifyd-venv/bin/pingch -d ./run.sh`
    # reads as what was typed, `pingch -d ./run.sh` (top shows it as pingch too).
    script, sep2, args = rest.partition(" ")
    if first.startswith("python") and script.startswith("/") and script.endswith("/pingch"):
        return "pingch" + sep2 + args
    return first + sep + rest


def _header(node: nodeview.Node, width: int) -> str:
    d = node.data
    used = node.mem_total - node.mem_free
    age = f"snapshot {human_age(node.age)} old"
    mark = f"STALE: {age}" if node.stale else age
    host = printable(node.host)
    load = f"load {d['load'][0]:.1f}/{node.cores}"
    mem = f"mem {human_bytes(used)}/{human_bytes(node.mem_total)}"
    swap = f"swap {human_bytes(int(d.get('swap_used', 0)))}"
    scan: dict[str, Any] = d["scan"] if isinstance(d.get("scan"), dict) else {}
    # Processes the snapshot could not read are counted, not hidden.
    missed = ", ".join(f"{scan[k]} {k}" for k in ("vanished", "denied")
                       if isinstance(scan.get(k), int) and scan[k] > 0)
    # Drop the least useful parts first so the age (and STALE) always shows.
    counts = [f"({missed})"] if missed else []
    for parts in ([host, load, mem, swap, mark, *counts], [host, load, mem, mark, *counts],
                  [host, load, mark, *counts], [host, mark, *counts], [host, mark]):
        if len("  ".join(parts)) <= width:
            break
    if len("  ".join(parts)) > width:
        parts = [host[: max(1, width - len(mark) - 3)] + "…", mark]
    text = "  ".join(parts)
    text = text.replace(parts[0], colour(parts[0], "1"), 1)
    return text.replace(mark, colour(mark, "1;31"), 1) if node.stale else text


def command(
    user: list[str] = typer.Option(None, "--user", "-u", metavar="USER", help="Only these users' processes."),
    node: list[str] = typer.Option(None, "--node", "-n", metavar="NODE", help="Only these nodes."),
    min_cpu: float = typer.Option(0.0, "--min-cpu", metavar="PERCENT",
                                  help="Only processes at or above this %CPU."),
    sort: str = typer.Option("cpu", "--sort", metavar="KEY",
                             help="cpu, mem, rss or elapsed (largest first)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> int:
    if sort not in SORT_KEYS:
        raise typer.BadParameter(f"--sort takes one of {', '.join(SORT_KEYS)}, not {sort!r}")
    at = where()
    nodes = load_nodes(at, node)
    if as_json:
        typer.echo(json.dumps([
            {"node": n.host, "stale": n.stale, "age": round(n.age, 1), "load": n.data["load"],
             "cpu_count": n.cores, "mem_total": n.mem_total, "mem_available": n.mem_free,
             "scan": n.data.get("scan"),
             "procs": _rows(n, user, min_cpu, sort)} for n in nodes], indent=1))
        return 0
    if not nodes:
        say_no_snapshots(at, node)
        return 0
    width = max(60, shutil.get_terminal_size((80, 24)).columns)
    for i, n in enumerate(sorted(nodes, key=lambda n: n.host)):
        if i:
            typer.echo("")
        typer.echo(_header(n, width))
        rows = _rows(n, user, min_cpu, sort)
        if not rows:
            typer.echo("    (no matching processes)")
            continue
        typer.echo(f"{'PID':>7} {'USER':<8} {'%CPU':>6} {'%MEM':>5} {'RSS':>6} {'ELAPSED':>10} COMMAND")
        for r in rows:
            who = printable(r["user"])[:8]
            line = (f"{r['pid']:>7} {who:<8} {float(r['cpu']):>6.1f} {float(r['mem']):>5.1f} "
                    f"{human_bytes(int(r['rss'])):>6} "
                    f"{human_elapsed(float(r['elapsed'])):>10} "
                    f"{printable(short_command(r['cmd']))}")
            typer.echo(line if len(line) <= width else line[: width - 1] + "…")
    return 0
