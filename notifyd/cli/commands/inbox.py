"""Show the latest notifications, as the watcher recorded them (with or without URLs)."""

from __future__ import annotations

import json
import time

import typer

from notifyd.cli.commands.common import context
from notifyd.notify import inbox as inbox_file


def command(
    count: int = typer.Option(20, "-n", "--count", min=1, metavar="N", help="How many to show, newest last."),
    as_json: bool = typer.Option(False, "--json", help="Print them as JSON lines."),
) -> int:
    paths, _host = context()
    records = inbox_file.read(paths.inbox_dir, last=count)
    if as_json:
        for record in records:
            typer.echo(json.dumps(record))
        return 0
    if not records:
        typer.echo("the inbox is empty: no job has finished since the watcher started "
                   "(check it runs: notifyd status)")
        return 0
    for record in records:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(inbox_file.record_time(record)))
        info = record.get("info")
        quiet = " (kept quiet by a filter)" if isinstance(info, dict) and info.get("silent") else ""
        typer.echo(terminal_text(f"[{when}] {record.get('title', '')}{quiet}"))
        for line in str(record.get("body", "")).splitlines():
            if not line.startswith("```"):
                typer.echo(f"    {terminal_text(line)}")
    return 0


def terminal_text(markdown_line: str) -> str:
    """A message line as a terminal shows it: the Markdown marks (bold, code) left out, and a lone
    surrogate (a command line's undecodable byte) shown escaped rather than failing the output."""
    text = markdown_line.replace("**", "").replace("`", "")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
