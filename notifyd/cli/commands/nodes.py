"""One line per node: how busy, how much memory, which GPUs, who uses it.

    $ notifyd nodes
    NODE  STATE  LOAD/CORES  MEM USED/TOTAL   MEM  GPU  TOP USERS         AGE
    node5 busy    15.8/16      59.1G/62.8G  94%↑  1/2  ana 12.0, bob 3.9 23 s

MEM: memory in use, and where it goes over the last 10 minutes of
snapshots (↑ rising, ↓ falling, → steady; nodes/pressure.py).
    $ notifyd nodes --free --cpus 8 --mem 20G

Where this host has SLURM's client tools, the cluster's nodes follow, from
one `sinfo` call: what the scheduler has allocated on each (cores, memory),
its state with the admin's reason, its load.
"""

from __future__ import annotations

import json

import typer

from notifyd.cli.nodes_view import load_nodes, load_slurm_nodes, say_no_snapshots, where
from notifyd.cli.tables import colour
from notifyd.errors import ExitStatus, NotifydError
from notifyd.nodes import pressure
from notifyd.nodes import reader as nodeview
from notifyd.slurm.parse import SlurmNode
from notifyd.text import human_age, human_bytes, parse_size, printable

STATE_COLOUR = {"idle": "32", "mixed": "33", "busy": "31", "stale": "1;31"}
ARROWS = {"rising": "↑", "falling": "↓", "steady": "→", "": ""}


def _memory(n: nodeview.Node, settings: pressure.Settings) -> dict[str, object]:
    """The node's memory pressure in figures: use, its trend, swap, the rules that fire."""
    samples = n.history
    reading = pressure.judge(samples, settings)
    line = reading.trend if reading else None
    left = reading.seconds_left if reading else None
    return {
        "mem_used_percent": round(100 * (1 - samples[-1].available_share), 1),
        "mem_trend": pressure.direction(samples) or None,
        # bytes a minute of memory coming into use (negative: freed), over the trend's window
        "mem_use_per_min": round(-line.slope * 60) if line and line.span >= pressure.TREND_SPAN else None,
        "mem_minutes_left": round(left / 60, 1) if left is not None else None,
        "swap_used": n.data.get("swap_used"), "swap_total": n.data.get("swap_total"),
        "swap_growing": bool(reading and reading.swap_growing),
        "pressure": list(reading.fired) if reading else [], "history_points": len(samples),
    }


def _as_json(n: nodeview.Node, settings: pressure.Settings) -> dict[str, object]:
    busy, total = n.gpus
    return {
        "source": "snapshot", "node": n.host, "state": n.state, "age": round(n.age, 1), "cores": n.cores,
        "busy_cores": round(n.busy_cores, 2), "free_cores": round(n.free_cores, 2),
        "load": n.data["load"], "mem_total": n.mem_total, "mem_free": n.mem_free,
        **_memory(n, settings), "gpus_busy": busy, "gpus": total,
        "top_users": [{"user": u, "cores": round(c, 2)} for u, c in n.top_users()],
    }


USERS_WIDTH = 17  # the MEM column took the rest: a line stays within 80 columns


def _users(n: nodeview.Node, width: int) -> str:
    """'ana 12.0, bob 3.9': the busiest users that fit in `width`, each whole (only a lone one is cut)."""
    shown = ""
    for u, c in n.top_users():
        more = f"{shown}, {printable(u)} {c:.1f}" if shown else f"{printable(u)} {c:.1f}"
        if len(more) > width:
            break
        shown = more
    return shown or (printable(n.top_users()[0][0])[:width] if n.top_users() else "-")


def _mem_percent(n: nodeview.Node) -> str:
    """'94%↑': memory in use, and its way over the last snapshots (one word, so scripts can split lines)."""
    samples = n.history
    return f"{100 * (1 - samples[-1].available_share):>3.0f}%{ARROWS[pressure.direction(samples)] or ' '}"


# SLURM's states in which a node takes no new job.
_CLOSED = ("down", "drain", "drained", "draining", "fail", "failing", "future", "maint", "reboot",
           "power_down", "powered_down", "not_responding", "unknown")


def _slurm_json(n: SlurmNode) -> dict[str, object]:
    return {"source": "slurm", **{k: v for k, v in n.__dict__.items() if k != "partitions"},
            "partitions": list(n.partitions)}


def _slurm_room(n: SlurmNode) -> tuple[int, int]:
    """Cores and MiB the scheduler has not handed out on `n` (0 for a node that takes no job)."""
    if any(word in n.state.lower() for word in _CLOSED):
        return 0, 0
    cores = (n.cpus_total or 0) - (n.cpus_alloc or 0)
    return max(0, cores), max(0, (n.mem_total_mb or 0) - (n.mem_alloc_mb or 0))


def _print_slurm(nodes: list[SlurmNode], free: bool) -> None:
    if not nodes:
        return
    w = max([10, *(len(printable(n.name)) for n in nodes)])
    typer.echo(f"{'SLURM NODE':<{w}} {'STATE':<16} {'CPUS ALLOC':>10} {'MEM ALLOC':>15} {'LOAD':>5}  "
               "PARTITIONS / REASON")
    for n in nodes:
        total_mem = (n.mem_total_mb or 0) * 2**20
        mem = f"{human_bytes((n.mem_alloc_mb or 0) * 2**20)}/{human_bytes(total_mem)}"
        cpus = f"{n.cpus_alloc if n.cpus_alloc is not None else '?'}/{n.cpus_total or '?'}"
        load = f"{n.load:.1f}" if n.load is not None else "-"
        reason = f"  ({printable(n.reason)})" if n.reason else ""
        typer.echo(f"{printable(n.name):<{w}} {printable(n.state)[:16]:<16} {cpus:>10} {mem:>15} "
                   f"{load:>5}  {printable(','.join(n.partitions))}{reason}")
    if free:
        typer.echo("(SLURM nodes with room by what the scheduler has allocated: submit with sbatch)")


def _print_nodes(nodes: list[nodeview.Node], w: int) -> None:
    """The table of snapshot nodes, names `w` wide."""
    typer.echo(f"{'NODE':<{w}} {'STATE':<6} {'LOAD/CORES':>10} {'MEM USED/TOTAL':>15} {'MEM':>5} "
               f"{'GPU':>4}  {'TOP USERS':<{USERS_WIDTH}} AGE")
    for n in nodes:
        busy, total = n.gpus
        users = _users(n, USERS_WIDTH)
        mem_text = f"{human_bytes(n.mem_total - n.mem_free)}/{human_bytes(n.mem_total)}"
        gpu_text = f"{busy}/{total}" if total else "-"
        state = colour(f"{n.state:<6}", STATE_COLOUR[n.state])
        load = f"{n.data['load'][0]:>5.1f}/{n.cores:<4}"
        typer.echo(f"{printable(n.host):<{w}} {state} {load} {mem_text:>15} {_mem_percent(n)} "
                   f"{gpu_text:>4}  {users:<{USERS_WIDTH}} {human_age(n.age)}")


def command(
    free: bool = typer.Option(False, "--free", help="List nodes with room, most free cores first."),
    cpus: float = typer.Option(0.0, "--cpus", min=0, metavar="N", help="With --free: cores the job needs."),
    mem: str = typer.Option("0", "--mem", metavar="SIZE",
                            help="With --free: memory the job needs, e.g. 20G."),
    node: list[str] = typer.Option(None, "--node", "-n", metavar="NODE", help="Only these nodes."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> int:
    try:
        need_mem = parse_size(mem)
    except ValueError as exc:
        raise NotifydError(f"--mem: {mem!r} is not {exc} (for example: --mem 20G)",
                           ExitStatus.USAGE) from None
    at = where()
    nodes = sorted(load_nodes(at, node), key=lambda n: n.host)
    slurm = sorted(load_slurm_nodes(at, node), key=lambda n: n.name)
    if free:
        nodes = [n for n in nodes if not n.stale and n.free_cores >= cpus and n.mem_free >= need_mem]
        nodes.sort(key=lambda n: (-n.free_cores, -n.mem_free))
        slurm = [n for n in slurm if _slurm_room(n)[0] >= max(cpus, 1) and
                 _slurm_room(n)[1] * 2**20 >= need_mem]
        slurm.sort(key=lambda n: tuple(-x for x in _slurm_room(n)))
    if as_json:
        settings = pressure.Settings.of(at.config)
        typer.echo(json.dumps([*(_as_json(n, settings) for n in nodes), *map(_slurm_json, slurm)], indent=1))
        return 0 if nodes or slurm or not free else 1
    if not nodes and slurm:
        _print_slurm(slurm, free)
        return 0
    if not nodes:
        if free:
            typer.echo(f"no fresh node has {cpus:g} free cores and {human_bytes(need_mem)} "
                       "free memory now", err=True)
            return 1
        say_no_snapshots(at, node)
        return 0
    # Names are never cut: compute-node-017 and -018 must stay apart.
    w = max([4, *(len(printable(n.host)) for n in nodes)])
    if free:
        typer.echo(f"{'NODE':<{w}} {'FREE CORES':>10} {'FREE MEM':>9}  {'STATE':<6} AGE")
        for n in nodes:
            typer.echo(f"{printable(n.host):<{w}} {n.free_cores:>10.1f} "
                       f"{human_bytes(n.mem_free):>9}  {n.state:<6} {human_age(n.age)}")
        if slurm:
            typer.echo("")
            _print_slurm(slurm, free=True)
        return 0
    _print_nodes(nodes, w)
    if slurm:
        typer.echo("")
        _print_slurm(slurm, free=False)
    return 0
