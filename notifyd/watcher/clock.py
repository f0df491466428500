"""The watcher's clocks: wall time, a monotonic one for intervals, and the file server's.

A round reads them once (Round) and passes them down, so every rule in it
sees the same `now`, and tests can hand the watcher a clock of their own.
"""

from __future__ import annotations

import time

from notifyd import fsutil


class Clock:
    """The watcher's clocks: wall time, a monotonic one for intervals, and the file server's.

    The file server's is read by writing a probe file (fsutil.server_now),
    so a round reads it at most once and only when it needs it (Round).
    Tests pass a Clock of their own with fixed times.
    """

    def __init__(self, server_dir: str, host: str) -> None:
        self._dir, self._host = server_dir, host

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def server_time(self) -> float:
        return fsutil.server_now(self._dir, self._host)


class Round:
    """One round's clocks, read once: `now`, and the server's time the first time it is asked."""

    def __init__(self, clock: Clock) -> None:
        self.now = clock.time()
        self.tick = clock.monotonic()
        self._clock = clock
        self._server: float | None = None

    @property
    def server_now(self) -> float:
        if self._server is None:
            self._server = self._clock.server_time()
        return self._server
