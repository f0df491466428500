"""`notifyd`: the thin command-line front; each verb lives in notifyd/cli/commands/.

Errors are raised as NotifydError anywhere and turned into one line on stderr
and a documented exit status here, and only here (see notifyd.errors).
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any

import typer
import typer.core

from notifyd.cli.commands import (
    cron,
    drop,
    ensure,
    inbox,
    init,
    jobs,
    nodes,
    procs,
    snapshot,
    status,
    stop,
    test,
    watch,
)
from notifyd.errors import ExitStatus, NotifydError


class _FlagsWithoutType:
    """Help that shows no value type after a plain flag (`--debug`, not `--debug <bool>`).

    Recent typer releases print every option's type in the rich help, flags
    included, although a flag takes no value. A flag's metavar set to "" is
    what that help prints instead (typer.core: display_type_rich); the help
    option itself is made per command, so it is caught in get_params.
    """

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


class _Command(_FlagsWithoutType, typer.core.TyperCommand):
    pass


class _Group(_FlagsWithoutType, typer.core.TyperGroup):
    pass


app = typer.Typer(
    name="notifyd",
    cls=_Group,
    help="Job notifications for labs that share one home directory. "
    "Run jobs with `pingch CMD &`; the watcher tells you when they end.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_debug = {"on": False}


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="Show a traceback on errors."),
) -> None:
    _debug["on"] = debug


def _verb(group: typer.Typer, name: str, fn: Callable[..., int], help_text: str | None) -> None:
    """Register `fn` as `name` in `group`; its int result becomes the exit status."""

    @functools.wraps(fn)
    def run(*args: object, **kwargs: object) -> None:
        try:
            code = fn(*args, **kwargs)
        except KeyboardInterrupt:
            raise NotifydError("interrupted", ExitStatus.INTERRUPTED) from None
        if code:
            raise typer.Exit(code)

    group.command(name, help=help_text, cls=_Command)(run)


for _module, _name in ((init, "init"), (watch, "watch"), (ensure, "ensure"), (stop, "stop"),
                       (status, "status"), (test, "test"), (inbox, "inbox"), (jobs, "jobs"),
                       (drop, "drop"), (snapshot, "snapshot"), (procs, "procs"), (nodes, "nodes")):
    _verb(app, _name, _module.command, _module.__doc__)

cron_app = typer.Typer(help=cron.__doc__, no_args_is_help=True, cls=_Group)
for _fn in (cron.install, cron.remove, cron.show):
    _verb(cron_app, _fn.__name__, _fn, _fn.__doc__)
app.add_typer(cron_app, name="cron")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. typer reports usage errors itself (exit 2);
    a NotifydError from any verb becomes one line on stderr and its status."""
    try:
        app(args=argv)
    except NotifydError as exc:
        if _debug["on"]:
            traceback.print_exc()
        sys.stderr.write(f"notifyd: {exc.message}\n")
        sys.exit(int(exc.status))
    except OSError as exc:
        # A path that cannot be created or read (NOTIFYD_STATE_DIR under a
        # file, a home that is not ours): name it, never a traceback.
        if _debug["on"]:
            traceback.print_exc()
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"notifyd: {where}{exc.strerror or exc}; check that this path and its "
                         "parent directories exist and are yours (see `notifyd status`)\n")
        sys.exit(int(ExitStatus.ERROR))
