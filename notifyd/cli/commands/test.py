"""Send a test message to every configured URL and say, per URL, whether it arrived."""

from __future__ import annotations

import os
import time

import typer

from notifyd import fsutil, paths
from notifyd.cli.commands.common import config, context, init_hint
from notifyd.errors import ExitStatus
from notifyd.notify import message, reasons
from notifyd.notify import targets as sender
from notifyd.records import OutboxEntry


def command() -> int:
    p, host = context()
    cfg = config(p)
    targets = [t for t in sender.build_targets(cfg, p.inbox_dir, host)
               if t.key != sender.INBOX_KEY]
    if not targets:
        typer.echo("no URL configured: nothing is pushed, notifications only reach "
                   "notifyd inbox", err=True)
        typer.echo("\n".join(init_hint()), err=True)
        return int(ExitStatus.DELIVERY)
    msg = message.make_test_message(host)
    entry = OutboxEntry(id=f"test-{os.getpid()}", title=msg.title, body=msg.body, severity=msg.severity,
                        created=time.time(), targets=[t.key for t in targets])
    failed = 0
    for target in targets:
        sent = target.send(entry)
        if sent.ok:
            typer.echo(f"ok      {target.display}")
        else:
            failed += 1
            why = reasons.explain(sent.detail, sent.status)
            typer.echo(f"FAILED  {target.display}: {why.what}")
            typer.echo(f"        {why.advice}"
                       + ("; the watcher does not retry such an answer" if sent.permanent else ""))
            if not why.reached and _log_raw(p, host, f"notifyd test: {target.display}: {sent.detail}"):
                typer.echo(f"        (Apprise's own words are in {p.log_file(host)})")
    return int(ExitStatus.DELIVERY) if failed else 0


def _log_raw(p: paths.Paths, host: str, text: str) -> bool:
    """Keep Apprise's words (secrets scrubbed) in this host's log, as the watcher does; False if not."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    line = f"{stamp} {os.getpid()} WARNING {text}".replace("\n", " ")
    try:
        p.private_dir(p.log_dir)
        fsutil.append_line(p.log_file(host), (line + "\n").encode("utf-8", "backslashreplace"))
    except OSError:
        return False
    return True
