"""The one error type and the exit codes of `notifyd` (pingch exits with its job's)."""

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
