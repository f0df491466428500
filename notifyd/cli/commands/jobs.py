"""List running jobs on every host and recently finished ones, with what became of each notification.

    $ notifyd jobs --since 2d
    running: 1 job
    TITLE HOST  PID   ELAPSED    GROUP
    relax node5 81234 2 h 03 min sweep

    finished since 05-01 14:03: 2 jobs, 1 failed or lost
    END         TITLE HOST  OUTCOME DURATION    PEAK RSS  DELIVERY
    05-02 09:12 prep  node2 ok      12 min 03 s   1.1 GiB delivered
    05-02 11:40 fit   node5 exit 3         41 s 812.0 MiB pending
"""

from __future__ import annotations

import json
import shutil
import time

import typer

from notifyd.cli.commands.common import context
from notifyd.cli.tables import shown, table
from notifyd.errors import ExitStatus, NotifydError
from notifyd.notify import history as jobs_mod
from notifyd.text import human_duration, human_kib, parse_duration, short_date


def parse_since(text: str) -> float:
    """--since as seconds; a bad value is a usage error naming the option."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise NotifydError(f"--since {text!r} is not {exc} (for example: --since 2d)",
                           ExitStatus.USAGE) from None


# --------------------------------------------------------------------------- output


def _title(title: str, slurm_job: str, source: str = "") -> str:
    """A SLURM job's title with the id users know: `relax (7_4)`; the old function's, with its file."""
    if source == "pingchilling":
        return f"{shown(title)} (~/.pingchilling)"
    return f"{shown(title)} ({shown(slurm_job)})" if slurm_job else shown(title)


def _running_lines(running: list[jobs_mod.Running], now: float, width: int) -> list[str]:
    rows = []
    for r in running:
        elapsed = r.elapsed(now)
        # A SLURM job has no pid of ours: its state says more (and why a pending one waits).
        pid = (f"{r.state.lower()}" + (f" ({r.reason})" if r.reason and r.state == "PENDING" else "")
               if r.slurm_job else "?" if r.pid is None else str(r.pid))
        rows.append([_title(r.title, r.slurm_job, r.source), shown(r.host), shown(pid),
                     "?" if elapsed is None else human_duration(elapsed), shown(r.group)])
    header = "PID/STATE" if any(r.slurm_job for r in running) else "PID"
    return table(["TITLE", "HOST", header, "ELAPSED", "GROUP"], rows, width, flex=0,
                 right=frozenset({3}), droppable=(4, 2))


OUTCOME_COLOURS = {"lost": "1;31", "ok": "32"}
DELIVERY_COLOURS = {"failed": "1;31", "pending": "33", "pending (digest)": "33"}


def _finished_lines(finished: list[jobs_mod.Finished], now: float, width: int) -> list[str]:
    rows = []
    outcome_colours = dict(OUTCOME_COLOURS)
    for f in finished:
        outcome = shown(f.outcome_text)
        if f.outcome == "failed":
            outcome_colours[outcome] = "1;31"
        rows.append([
            short_date(f.end_ts, now), _title(f.title, f.slurm_job),
            shown(f.host),
            outcome, "-" if f.duration is None else human_duration(f.duration),
            "-" if f.maxrss_kb is None else human_kib(f.maxrss_kb), f.delivery,
        ])
    return table(["END", "TITLE", "HOST", "OUTCOME", "DURATION", "PEAK RSS", "DELIVERY"], rows, width,
                 flex=1, right=frozenset({4, 5}), droppable=(5, 4),
                 colours={3: outcome_colours, 6: DELIVERY_COLOURS})


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def command(
    failed: bool = typer.Option(False, "--failed", help="Only jobs that failed or were lost."),
    since: str = typer.Option("1d", "--since", metavar="DURATION",
                              help="Finished jobs this recent: 30m, 12h, 2d..."),
    group: str | None = typer.Option(None, "--group", metavar="NAME",
                                     help="Only jobs of this group (pingch -g NAME)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object for scripts."),
    limit: int = typer.Option(50, "-n", "--limit", min=1, metavar="N",
                              help="At most N jobs per list, newest last."),
) -> int:
    now = time.time()
    # Further back than 1970 (--since 1e400d is inf) is everything, not a date to format.
    cutoff = max(0.0, now - parse_since(since))
    paths, _host = context()
    found = jobs_mod.collect(paths, cutoff=cutoff, failed_only=failed,
                             group=group, limit=limit)
    for note in found.notes:
        typer.echo(f"notifyd: {note}", err=True)
    if as_json:
        typer.echo(json.dumps(jobs_mod.as_json(found, now), indent=1))
        return 0
    width = max(60, shutil.get_terminal_size((80, 24)).columns)
    which = " in group " + shown(group) if group is not None else ""
    if not failed:
        total = len(found.running) + found.running_left_out
        if found.running:
            typer.echo(f"running{which}: {_count(total, 'job')}")
            for line in _running_lines(found.running, now, width):
                typer.echo(line)
            if found.running_left_out:
                typer.echo(f"({found.running_left_out} started earlier not shown; "
                           f"-n {total} shows them)")
        else:
            typer.echo(f"running{which}: none")
        typer.echo("")
    since_text = short_date(cutoff, now)
    total = len(found.finished) + found.finished_left_out
    what = "failed or lost" if failed else "finished"
    if not found.finished:
        typer.echo(f"{what}{which} since {since_text}: none (--since 7d looks further back)")
        return 0
    bad = found.finished_bad
    extra = f", {bad} failed or lost" if bad and not failed else ""
    typer.echo(f"{what}{which} since {since_text}: {_count(total, 'job')}{extra}")
    if found.finished_left_out:
        typer.echo(f"({found.finished_left_out} earlier not shown; -n {total} shows them)")
    for line in _finished_lines(found.finished, now, width):
        typer.echo(line)
    return 0
