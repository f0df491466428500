"""Send a test message to every configured URL and say, per URL, whether it arrived."""

from __future__ import annotations

import os

import typer

from notifyd.cli.commands.common import config, context, discord_howto
from notifyd.errors import ExitStatus
from notifyd.notify import message
from notifyd.notify import targets as sender


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
    entry = {"id": f"test-{os.getpid()}", "title": msg.title, "body": msg.body, "kind": msg.kind}
    failed = 0
    for target in targets:
        ok, detail = target.send(entry)
        if ok:
            typer.echo(f"ok      {target.display}")
        else:
            failed += 1
            typer.echo(f"FAILED  {target.display}: {detail}")
            permanent = target.last_status in sender.PERMANENT
            typer.echo(f"        {sender.hint(target.last_status)}"
                       + ("; the watcher does not retry such an answer" if permanent else ""))
    return int(ExitStatus.DELIVERY) if failed else 0
