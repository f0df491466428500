"""`notifyd`: the thin command-line front; each verb lives in notifyd/commands/.

Errors are raised as NotifydError anywhere and turned into one line on stderr
and a documented exit status here, and only here (see notifyd.errors).
"""

from __future__ import annotations

import sys
import traceback

import click
import typer

from notifyd.commands import ensure, inbox, status, stop, test, watch
from notifyd.errors import ExitStatus, NotifydError

app = typer.Typer(
    name="notifyd",
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


app.command("watch", help=watch.__doc__)(watch.command)
app.command("ensure", help=ensure.__doc__)(ensure.command)
app.command("stop", help=stop.__doc__)(stop.command)
app.command("status", help=status.__doc__)(status.command)
app.command("test", help=test.__doc__)(test.command)
app.command("inbox", help=inbox.__doc__)(inbox.command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: exit with a status from ExitStatus."""
    try:
        result = app(args=argv, standalone_mode=False)
    except NotifydError as exc:
        if _debug["on"]:
            traceback.print_exc()
        sys.stderr.write(f"notifyd: {exc.message}\n")
        sys.exit(int(exc.status))
    except click.exceptions.Abort:
        sys.stderr.write("notifyd: interrupted\n")
        sys.exit(int(ExitStatus.INTERRUPTED))
    except KeyboardInterrupt:
        sys.stderr.write("notifyd: interrupted\n")
        sys.exit(int(ExitStatus.INTERRUPTED))
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(int(ExitStatus.USAGE))
    sys.exit(int(result) if isinstance(result, int) else 0)
