"""Send a test message to every configured URL and say, per URL, whether it arrived."""

from __future__ import annotations

import os
import time

import typer

from notifyd.cli.commands.common import config, context, discord_howto
from notifyd.errors import ExitStatus
from notifyd.notify import message
from notifyd.notify import targets as sender
from notifyd.records import OutboxEntry


def command() -> int:
    paths, host = context()
    cfg = config(paths)
    targets = [t for t in sender.build_targets(cfg, paths.inbox_dir, host)
               if t.key != sender.INBOX_KEY]
    if not targets:
        typer.echo("no URL configured: nothing is pushed, notifications only reach "
                   "the inbox (notifyd inbox).", err=True)
        typer.echo(discord_howto(paths.config_file), err=True)
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
            typer.echo(f"FAILED  {target.display}: {sent.detail}")
            typer.echo(f"        {sender.hint(sent.status)}"
                       + ("; the watcher does not retry such an answer" if sent.permanent else ""))
    return int(ExitStatus.DELIVERY) if failed else 0
