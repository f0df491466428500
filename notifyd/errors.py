"""The one user-facing error type, the exit codes of `notifyd`, and the other failures by name.

Our exception hierarchy, and who catches each:

* NotifydError(message, status): a user's mistake or a failure the user can
  act on; raised anywhere, caught only at the entry points (cli.app.main,
  watcher.loop.run_in_background), printed as one line with its exit status.
* StateFileError: the state file, or one record in it, is not usable; the
  watcher sets a broken file aside and rebuilds it from the inbox (state.py),
  a bad record is skipped and counted (records.py).
* MalformedEvent (spool/events.py, a ValueError): a spool line that is not
  an event; the reader skips and counts it.
* LeaseLost (watcher/lease.py): another watcher holds the lease now; the
  loop stops at once without sending or saving anything more.

pingch exits with its job's status, never with one of these.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Every exit code `notifyd` uses; the README lists them too."""

    OK = 0
    ERROR = 1  # something failed at run time: a file could not be written, no watcher to stop...
    USAGE = 2  # the command line was wrong (typer/click use 2 as well)
    CONFIG = 3  # the configuration file or a URL in it is wrong or unsafe
    DELIVERY = 4  # `notifyd test`: at least one URL did not accept the test message
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


class NotifydError(Exception):
    """A user-facing error: the message names the file or value, the cause and the fix."""

    def __init__(self, message: str, status: ExitStatus = ExitStatus.ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class StateFileError(Exception):
    """The state file, or a record in it, exists but cannot be used."""
